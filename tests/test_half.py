"""float16 and bfloat16 on the kernel, on every ISA: within 1 ulp of the half type of the exact result
(computed in float32 and rounded once: 0.5 ulp plus the float32 kernel's error), every layout and axis,
the result dtype kept, out= and in place, special values as the specification (the fallback, which
computes in float32 too), and the same bits for any thread count."""
import numpy as np
import pytest

import fastsoftmax
from fastsoftmax import _fallback, _plan, _reference

try:
    import ml_dtypes
    HALVES = [np.dtype(np.float16), np.dtype(ml_dtypes.bfloat16)]
except Exception:  # bfloat16 comes from ml_dtypes, optional (and it fails to load on a NumPy older than its build)
    HALVES = [np.dtype(np.float16)]

OPS = ("softmax", "log_softmax", "logsumexp")
SIZES = [1, 2, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64, 65, 255, 256, 257, 1000, 16383, 16384, 16385, 40000]


def half_ulp(ref, dt):
    """The ulp of the half type at the correctly rounded |ref| (subnormals included)."""
    with np.errstate(over="ignore"):
        r = np.abs(ref).astype(dt)
        if dt == np.float16:
            return np.spacing(r).astype(np.float64)
    return np.maximum(np.spacing(r.astype(np.float32)).astype(np.float64) * 2.0 ** 16, 2.0 ** -133)


def half_error(op, x, axis, got):
    """Max error of got in ulp of the half type against the exact result on the same half inputs."""
    w = x.astype(np.float32)
    if op == "logsumexp":
        ref = _reference.logsumexp(w, axis)
        scale = _reference.logsumexp_scale(w, ref, axis, keepdims=False)
    else:
        ref = scale = _reference.REF[op](w, axis)
    ref, scale = np.asarray(ref, np.float64), np.asarray(scale, np.float64)
    with np.errstate(all="ignore"):
        use = np.isfinite(ref) & np.isfinite(np.abs(scale).astype(x.dtype).astype(np.float64))
        if not np.any(use):
            return 0.0
        err = np.abs(np.asarray(got, np.float64) - ref)[use] / half_ulp(scale[use], x.dtype)
    return float(np.max(err))


def data(shape, dt, scale=3.0, seed=0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(dt)


@pytest.mark.parametrize("dt", HALVES, ids=str)
@pytest.mark.parametrize("op", OPS)
def test_rows_of_every_size(isa, dt, op):
    f = getattr(fastsoftmax, op)
    for n in SIZES:
        rows = max(1, 3000 // n)
        x = data((rows, n), dt, seed=n)
        got = f(x, axis=-1)
        assert got.dtype == dt
        assert _plan.plan(op, x, -1).route_name == "direct"
        err = half_error(op, x, -1, got)
        assert err <= 1.0, (isa, dt, op, n, err)


@pytest.mark.parametrize("dt", HALVES, ids=str)
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("shape,axis", [((8, 21, 5, 7), 1), ((4, 300, 33), 1), ((3, 5000, 3), 1), ((6, 7), 0),
                                        ((5, 6, 7), None), ((5, 6, 7), (0, 2)), ((40, 1), -1)])
def test_layouts_and_axes(isa, dt, op, shape, axis):
    f = getattr(fastsoftmax, op)
    x = data(shape, dt, scale=5.0)
    got = f(x, axis=axis)
    assert np.asarray(got).dtype == dt
    assert half_error(op, x, axis, got) <= 1.0
    strided = data((shape[0], 2 * shape[1]) + shape[2:], dt, scale=5.0)[:, ::2]
    assert half_error(op, strided, axis, f(strided, axis=axis)) <= 1.0
    assert np.array_equal(np.asarray(f(x[::-1], axis=axis)), np.asarray(f(x[::-1].copy(), axis=axis)),
                          equal_nan=True)


@pytest.mark.parametrize("op", OPS)
def test_byteswapped_float16(isa, op):
    f = getattr(fastsoftmax, op)
    x = data((9, 70), np.float16)
    got = f(x.astype(">f2"), axis=1)
    assert np.asarray(got).dtype == np.float16
    assert np.array_equal(got, f(x, axis=1))


@pytest.mark.parametrize("dt", HALVES, ids=str)
@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
def test_out_and_in_place(isa, dt, op):
    f = getattr(fastsoftmax, op)
    x = data((37, 129), dt)
    want = f(x, axis=1)
    out = np.empty_like(x)
    assert f(x, axis=1, out=out) is out and np.array_equal(out, want)
    fortran = np.empty(x.shape, dt, order="F")
    assert f(x, axis=1, out=fortran) is fortran and np.array_equal(fortran, want)
    y = x.copy()
    assert f(y, axis=1, out=y) is y and np.array_equal(y, want)
    with pytest.raises(TypeError, match="out has dtype"):
        f(x, axis=1, out=np.empty(x.shape, np.float32))


@pytest.mark.parametrize("dt", HALVES, ids=str)
@pytest.mark.parametrize("op", OPS)
def test_special_values_as_the_specification(isa, dt, op):
    inf, nan = np.inf, np.nan
    finite_max = float(np.finfo(dt).max) if dt == np.float16 else 3.3e38
    rows = [[0.0, 1.0, 2.0, 3.0], [nan, 1.0, 2.0, 3.0], [inf, 1.0, 2.0, 3.0], [-inf, -inf, -inf, -inf],
            [-inf, 0.0, -inf, 1.0], [finite_max, -finite_max, 0.0, 1.0], [1e-7, 2e-7, 6e-8, 0.0],
            [0.0, -20.0, -40.0, -80.0], [60000.0, -60000.0, 0.0, 5.0] if dt == np.float16 else [3e38, -3e38, 0, 5]]
    x = np.array(rows, np.float32).astype(dt)
    f = getattr(fastsoftmax, op)
    got = np.asarray(f(x, axis=1)).astype(np.float64)
    want = np.asarray(getattr(_fallback, op)(x, axis=1)).astype(np.float64)
    assert np.array_equal(np.isnan(got), np.isnan(want))
    assert np.array_equal(np.isinf(got), np.isinf(want)) and np.array_equal(got[np.isinf(got)], want[np.isinf(want)])
    # finite values against the exact result (the specification's own log-sum is the naive one)
    assert half_error(op, x, 1, f(x, axis=1)) <= 1.0
    if op == "softmax":  # big spreads: exact zeros and subnormal halves where the exact result is that small
        y = f(np.array([0.0, -9.0, -12.0, -17.0, -30.0, -110.0], np.float32).astype(dt))
        assert half_error(op, np.array([0.0, -9.0, -12.0, -17.0, -30.0, -110.0], np.float32).astype(dt), None, y) <= 1


@pytest.mark.parametrize("dt", HALVES, ids=str)
def test_subnormal_half_inputs(isa, dt):
    tiny = float(np.finfo(dt).smallest_subnormal)
    x = (np.arange(1, 200, dtype=np.float32) * tiny).astype(dt)
    for op in OPS:
        got = getattr(fastsoftmax, op)(x)
        assert half_error(op, x, None, got) <= 1.0


@pytest.mark.parametrize("dt", HALVES, ids=str)
@pytest.mark.parametrize("op", OPS)
def test_agrees_with_the_fallback(dt, op):
    x = data((64, 1000), dt, scale=4.0)
    got = np.asarray(getattr(fastsoftmax, op)(x, axis=1)).astype(np.float64)
    want = np.asarray(getattr(_fallback, op)(x, axis=1)).astype(np.float64)
    tol = half_ulp(want, dt) * (1 if op == "softmax" else 2)  # the log ops: two roundings apart at most
    assert np.all(np.abs(got - want) <= tol)


@pytest.mark.parametrize("dt", HALVES, ids=str)
@pytest.mark.parametrize("op", OPS)
def test_same_bits_for_any_thread_count(dt, op):
    f = getattr(fastsoftmax, op)
    for shape, axis in (((300, 1000), 1), ((2, 100_000), 1), ((8, 21, 40, 40), 1)):
        x = data(shape, dt)
        one = np.asarray(f(x, axis=axis, threads=1)).view(np.uint16)
        assert np.array_equal(one, np.asarray(f(x, axis=axis, threads=2)).view(np.uint16))

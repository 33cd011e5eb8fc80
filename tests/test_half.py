"""float16 and bfloat16 on the kernel, on every ISA: within 1 ulp of the half type of the exact result
(computed in float32 and rounded once: 0.5 ulp plus the float32 kernel's error), every layout and axis,
the result dtype kept, out= and in place, special values as the specification (the fallback, which
computes in float32 too), and the same bits for any thread count."""
import subprocess
import sys
import warnings

import numpy as np
import pytest

import fastsoftmax
from fastsoftmax import _fallback, _plan, _reference

try:
    import ml_dtypes
    HALVES = [np.dtype(np.float16), np.dtype(ml_dtypes.bfloat16)]
except Exception:  # bfloat16 comes from ml_dtypes, optional (and it fails to load on a NumPy older than its build)
    ml_dtypes = None
    HALVES = [np.dtype(np.float16),
              pytest.param(None, id="bfloat16", marks=pytest.mark.skip(reason="bfloat16 needs ml_dtypes (not loaded)"))]
# np.finfo knows bfloat16 only on NumPy 2; ml_dtypes' finfo answers for both halves on NumPy 1.26 too
finfo = np.finfo if ml_dtypes is None else ml_dtypes.finfo

OPS = ("softmax", "log_softmax", "logsumexp")
# every length to 70 (the vector widths 8 and 16, unrolled x2, and their tails), the block size 16384
SIZES = [*range(1, 71), 255, 256, 257, 1000, 16383, 16384, 16385, 40000]


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
    finite_max = float(finfo(dt).max) if dt == np.float16 else 3.3e38
    rows = [[0.0, 1.0, 2.0, 3.0], [nan, 1.0, 2.0, 3.0], [inf, 1.0, 2.0, 3.0], [-inf, -inf, -inf, -inf],
            [-inf, 0.0, -inf, 1.0], [finite_max, -finite_max, 0.0, 1.0], [1e-7, 2e-7, 6e-8, 0.0],
            [0.0, -20.0, -40.0, -80.0], [60000.0, -60000.0, 0.0, 5.0] if dt == np.float16 else [3e38, -3e38, 0, 5]]
    x = np.array(rows, np.float32).astype(dt)
    f = getattr(fastsoftmax, op)
    got = np.asarray(f(x, axis=1)).astype(np.float64)
    want = np.asarray(getattr(_fallback, op)(x, axis=1)).astype(np.float64)
    assert np.array_equal(np.isnan(got), np.isnan(want))
    assert np.array_equal(np.isinf(got), np.isinf(want)) and np.array_equal(got[np.isinf(got)], want[np.isinf(want)])
    # finite values against the exact result
    assert half_error(op, x, 1, f(x, axis=1)) <= 1.0
    if op == "softmax":  # big spreads: exact zeros and subnormal halves where the exact result is that small
        y = f(np.array([0.0, -9.0, -12.0, -17.0, -30.0, -110.0], np.float32).astype(dt))
        assert half_error(op, np.array([0.0, -9.0, -12.0, -17.0, -30.0, -110.0], np.float32).astype(dt), None, y) <= 1


@pytest.mark.parametrize("dt", HALVES, ids=str)
def test_subnormal_half_inputs(isa, dt):
    tiny = float(finfo(dt).smallest_subnormal)
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
    assert np.all(np.abs(got - want) <= half_ulp(want, dt))


@pytest.mark.parametrize("dt", HALVES, ids=str)
@pytest.mark.parametrize("op", OPS)
def test_same_bits_for_any_thread_count(dt, op):
    f = getattr(fastsoftmax, op)
    for shape, axis in (((300, 1000), 1), ((2, 100_000), 1), ((8, 21, 40, 40), 1)):
        x = data(shape, dt)
        one = np.asarray(f(x, axis=axis, threads=1)).view(np.uint16)
        assert np.array_equal(one, np.asarray(f(x, axis=axis, threads=2)).view(np.uint16))


def check(op, x, axis, msg):
    """One call on the kernel: the result dtype, no warning, within 1 ulp of the exact result, and
    the specification's (the fallback's) special values and numbers within 1 ulp of the half type."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = getattr(fastsoftmax, op)(x, axis=axis)
        want = getattr(_fallback, op)(x, axis=axis)
    assert np.asarray(got).dtype == x.dtype.newbyteorder("="), f"{msg}: dtype {np.asarray(got).dtype}"
    err = half_error(op, x, axis, got)
    assert err <= 1.0, f"{msg}: {err} ulp from the exact result"
    g, w = np.asarray(got).astype(np.float64), np.asarray(want).astype(np.float64)
    special = ~np.isfinite(w)
    assert np.array_equal(g[special], w[special], equal_nan=True), f"{msg}: special values, vs the fallback"
    apart = np.abs(g[~special] - w[~special]) / half_ulp(w[~special], x.dtype)
    assert not apart.size or apart.max() <= 1.0, f"{msg}: {apart.max()} ulp from the fallback"
    return got


@pytest.mark.parametrize("dt", HALVES, ids=str)
@pytest.mark.parametrize("op", OPS)
def test_columns_of_every_inner_size(isa, dt, op):
    """A non-last axis (the column kernels, vectorised across the inner axis): inner sizes around the
    vector widths, reduced lengths from 1 to 300."""
    for n in (1, 2, 7, 21, 300):
        for inner in (*range(1, 34), 63, 64, 65, 127):
            check(op, data((2, n, inner), dt, scale=4.0, seed=n * 1000 + inner), 1, f"{op} (2, {n}, {inner}) axis=1")


@pytest.mark.parametrize("dt", HALVES, ids=str)
def test_dominant_class(isa, dt):
    """One logit far above the rest: its log_softmax, -log1p(tiny), is held to the half type's relative
    precision (bfloat16 down to 1e-40), by the kernel and by the specification."""
    rng = np.random.default_rng(40)
    for gap in (8, 14, 20, 40, 80):
        x = rng.standard_normal((50, 7)).astype(dt)
        x[:, 3] = (x.astype(np.float32).max(axis=1) + gap).astype(dt)
        for op in OPS:
            check(op, x, -1, f"{op} dominant by {gap}")
            check(op, x.T.copy(), 0, f"{op} dominant by {gap}, columns")


@pytest.mark.parametrize("dt", HALVES, ids=str)
@pytest.mark.parametrize("op", OPS)
def test_big_spreads(isa, dt, op):
    """Rows spread wide enough that softmax gives half subnormals and zeros (+0, never -0), in rows,
    columns and rows of more than one block."""
    depth = 20.0 if dt == np.float16 else 100.0   # exp(-depth) is below half the smallest subnormal
    for n in (7, 64, 1000, 20000):
        x = np.linspace(0, -depth, n).astype(dt)
        rows = np.stack([x, x[::-1], np.roll(x, n // 3)])
        got = check(op, rows, -1, f"{op} spread {depth} over {n}")
        check(op, rows.T.copy(), 0, f"{op} spread {depth} over {n}, columns")
        if op == "softmax" and n >= 64:
            g = got.astype(np.float64)
            assert np.any((g > 0) & (g < float(finfo(dt).smallest_normal))), "no subnormal outputs"
            assert np.any(g == 0) and not np.any(np.signbit(g)), "zeros, +0 only"


@pytest.mark.parametrize("dt", HALVES, ids=str)
@pytest.mark.parametrize("op", ["log_softmax", "logsumexp"])
def test_near_the_half_max(isa, dt, op):
    """Logits near the type's largest finite value: the sums do not overflow, and a log_softmax
    beyond the range is the -inf it rounds to (float16: -65504 - 65504)."""
    big = float(finfo(dt).max)
    below = float(np.nextafter(np.array(big, dt), np.array(0, dt)))
    rng = np.random.default_rng(3)
    rows = [np.full(7, big), np.full(300, big), [big, -big], [big, below, 0.0, -big / 2],
            big - np.abs(rng.standard_normal(40)) * (big - below) * 8]
    for row in rows:
        x = np.array(row).astype(dt)
        for arr, axis in ((x, -1), (np.stack([x, -x]), 1), (np.stack([x] * 20).T.copy(), 0)):
            check(op, arr, axis, f"{op} near the max, {arr.shape} axis={axis}")
    assert np.isfinite(fastsoftmax.logsumexp(np.full(1000, big, dt)))
    if op == "log_softmax":
        assert fastsoftmax.log_softmax(np.array([big, -big], dt))[1] == -np.inf


SPECIAL_ROWS = [[np.nan, 1.0, 2.0], [np.inf, 1.0], [np.inf, np.inf], [-np.inf, -np.inf], [np.inf, np.nan],
                [-np.inf, 1.0], [np.inf, -np.inf], [-np.inf, np.inf, 2.0], [np.nan, -np.inf], [7.0], [-np.inf],
                [np.nan], [np.inf], [1.0, 1.0, 1.0], [0.0, -0.0]]


@pytest.mark.parametrize("dt", HALVES, ids=str)
@pytest.mark.parametrize("op", OPS)
def test_special_values_in_columns_and_long_rows(isa, dt, op):
    """NaN, +inf and all -inf slices (the table in docs/semantics.md) as the specification, as a row, a column and
    inside a row of two blocks."""
    for row in SPECIAL_ROWS:
        x = np.array(row, dt)
        long_row = np.concatenate([data(5000, dt), x, data(20000, dt, seed=1)])
        for arr, axis in ((x, -1), (np.stack([x] * 40).T.copy(), 0), (long_row, None)):
            check(op, arr, axis, f"{op} {arr.shape} of {row} axis={axis}")


@pytest.mark.parametrize("dt", HALVES, ids=str)
def test_subnormal_inputs_are_not_flushed(isa, dt):
    """Subnormal half inputs are values: a one-element logsumexp returns them bit for bit."""
    fi = finfo(dt)
    tiny, unit = float(fi.smallest_normal), float(fi.smallest_subnormal)
    sub = np.array([unit, 3 * unit, tiny / 2, tiny - unit, -unit, -tiny / 3, 0.0, tiny], dt)
    rows = np.stack([np.roll(sub, k) for k in range(8)])
    for op in OPS:
        check(op, rows, -1, f"{op} subnormal rows")
        check(op, rows.T.copy(), 0, f"{op} subnormal columns")
    one = fastsoftmax.logsumexp(sub[:, None], axis=1)
    assert np.array_equal(one.view(np.uint16), sub.view(np.uint16))


@pytest.mark.parametrize("dt", HALVES, ids=str)
def test_result_types(dt):
    """The input's type: a NumPy scalar of it for 0-d input, keepdims and return_sign, empty input."""
    x = data((4, 9), dt)
    for op in ("softmax", "log_softmax"):
        assert type(getattr(fastsoftmax, op)(x[0, 0])) is dt.type, op
    assert type(fastsoftmax.logsumexp(x)) is dt.type
    assert fastsoftmax.logsumexp(x, axis=1, keepdims=True).shape == (4, 1)
    res, sgn = fastsoftmax.logsumexp(x, axis=0, return_sign=True)
    assert res.dtype == dt and sgn.dtype == dt and np.all(sgn == 1)
    empty = fastsoftmax.logsumexp(np.zeros((0, 3), dt), axis=0)
    assert empty.dtype == dt and np.all(empty == -np.inf)


@pytest.mark.parametrize("dt", HALVES, ids=str)
def test_logsumexp_weights(dt):
    """b= (the fallback): NumPy's promotion, bfloat16 a float type of its own by ml_dtypes' rules
    (with float16: float32; with int8 or bool: bfloat16); a half result within 1 ulp of the exact
    value, and its sign with negative weights."""
    rng = np.random.default_rng(7)
    a, w = data((5, 40), dt, scale=2.0), rng.uniform(0.5, 3, (5, 40)).astype(dt)
    others = [np.float16, np.float32, np.float64, np.int8, np.int16, np.bool_, np.complex64]
    for other in map(np.dtype, others + ([ml_dtypes.bfloat16] if ml_dtypes is not None else [])):
        if other.kind == "b":
            values, weights = rng.uniform(size=a.shape) < 0.7, rng.uniform(size=a.shape) < 0.7
        elif other.kind == "i":
            values, weights = rng.integers(-5, 6, a.shape).astype(other), rng.integers(1, 4, a.shape).astype(other)
        else:
            values, weights = a.astype(other), w.astype(other)
        for x, b in ((a, weights), (values, w)):
            try:
                expected = np.result_type(x.dtype, b.dtype)
            except TypeError:  # NumPy 1.26 does not promote float16 with bfloat16: neither do we
                with pytest.raises(TypeError):
                    fastsoftmax.logsumexp(x, axis=1, b=b)
                continue
            res = fastsoftmax.logsumexp(x, axis=1, b=b)
            assert res.dtype == expected, f"{x.dtype} with b {b.dtype}: {res.dtype}, expected {expected}"
            if _fallback.is_half(expected):
                exact = np.log(np.sum(b.astype(np.float64) * np.exp(x.astype(np.float64)), axis=1))
                unit = half_ulp(np.maximum(np.abs(exact), np.abs(x.astype(np.float64)).max(axis=1)), expected)
                assert np.all(np.abs(res.astype(np.float64) - exact) <= unit), f"{x.dtype} with b {b.dtype}"
    b = np.arange(40, dtype=np.int8) - 3          # a half type with int8 weights: the half type
    res, sgn = fastsoftmax.logsumexp(a, axis=1, b=b, return_sign=True)
    assert res.dtype == dt and sgn.dtype == dt
    direct = np.sum(b * np.exp(a.astype(np.float64)), axis=1)
    assert np.array_equal(sgn.astype(np.float64), np.sign(direct))
    exact = np.log(np.abs(direct))
    unit = half_ulp(np.maximum(np.abs(exact), np.abs(a.astype(np.float64)).max(axis=1)), dt)
    assert np.all(np.abs(res.astype(np.float64) - exact) <= unit)


def test_float16_does_not_import_ml_dtypes():
    """No new dependency: float16 calls never import ml_dtypes (bfloat16 is recognised by its dtype)."""
    code = ("import sys, numpy as np, fastsoftmax\n"
            "x = np.arange(6, dtype=np.float16)\n"
            "fastsoftmax.softmax(x); fastsoftmax.log_softmax(x); fastsoftmax.logsumexp(x, b=x)\n"
            "assert 'ml_dtypes' not in sys.modules, 'ml_dtypes was imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_other_two_byte_types_keep_their_error():
    """Only float16 and bfloat16 are half types: other void or ml_dtypes types raise as before."""
    others = [np.dtype("V2"), np.dtype([("bfloat16", "<u2")])]
    if ml_dtypes is not None:
        others += [np.dtype(ml_dtypes.float8_e4m3fn), np.dtype(ml_dtypes.int4)]
    for dt in others:
        for op in OPS:
            with pytest.raises(TypeError, match="expects a real or complex numeric array, got dtype"):
                getattr(fastsoftmax, op)(np.zeros(3, dt))


@pytest.mark.parametrize("dt", HALVES, ids=str)
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("threads", [1, 2])
def test_the_float32_result_rounded_once(isa, dt, op, threads):
    """A half result is the float32 call's result on the widened input, rounded once to the half
    type: softmax's exp pass widens as it reads and the other passes widen into a scratch, and
    both must give the float32 kernels' bits. Rows of every form: the plain one, rows with -inf
    (the clamp), rows whose max is above 240 (the shift), and a NaN row; lengths around the vector
    widths and the block size; the last axis and a column layout."""
    f = getattr(fastsoftmax, op)
    for n in [*range(1, 40), 63, 64, 65, 1000, 16385, 40000]:
        rows = max(4, 2000 // n)
        x = data((rows, n), dt, seed=n)
        x[1] = (x[1].astype(np.float32) * 100).astype(dt)  # |max| above 240 (for n > 1, nearly always)
        x[2, ::3] = -np.inf
        x[3, n // 2] = np.nan
        for axis in (-1, 0):
            got = np.asarray(f(x, axis=axis, threads=threads))
            want = np.asarray(f(x.astype(np.float32), axis=axis, threads=threads)).astype(dt)
            nan = np.isnan(want.astype(np.float32))
            assert np.array_equal(nan, np.isnan(got.astype(np.float32))), (isa, op, n, axis)
            assert np.array_equal(got.view(np.uint16)[~nan], want.view(np.uint16)[~nan]), (isa, op, n, axis)


@pytest.mark.parametrize("dt", HALVES, ids=str)
@pytest.mark.parametrize("offset", [0, 1, 5, 31])
def test_softmax_max_pass_on_the_bits(isa, dt, offset):
    """Softmax's max pass of a long half row compares the bits as 16-bit integers (template.h,
    max_half_bits): its max and min must be the widened row's in every sign pattern, so the result
    is the float32 call's rounded once. Rows of two blocks starting at several element offsets (the
    pass aligns its loads): all negative, a -0 or a +0 max among negatives, negative and positive
    NaN, -inf, subnormals of both signs, a max in the unaligned head or in the tail."""
    bits = 0xfe00 if dt == np.float16 else 0xffc0  # a negative quiet NaN
    neg_nan = np.array([bits], np.uint16).view(dt)[0]
    unit = float(finfo(dt).smallest_subnormal)
    n = 20000
    base = np.abs(data(n + offset, dt, seed=offset)) + dt.type(0.5)
    cases = {"all negative": -base, "positive": base}
    for name, value in (("-0 max", -0.0), ("+0 max", 0.0), ("head max", -0.25), ("tail max", -0.125)):
        row = -base.copy()
        where = {"head max": offset + 2, "tail max": n + offset - 3}.get(name, offset + n // 2)
        row[where] = dt.type(value)
        if name == "+0 max":
            row[where + 7] = dt.type(-0.0)
        cases[name] = row
    for name, value in (("negative NaN", neg_nan), ("positive NaN", np.nan), ("-inf", -np.inf)):
        row = -base.copy()
        row[offset + 9000] = value
        cases[name] = row
    sub = (np.arange(n + offset) % 7 - 3).astype(np.float32) * unit
    cases["subnormals"] = sub.astype(dt)
    cases["negative subnormals"] = (-np.abs(sub) - unit).astype(dt)
    for name, row in cases.items():
        x = row[offset:]  # a view: its first element is offset elements past the buffer's start
        got = fastsoftmax.softmax(x, threads=1)
        want = fastsoftmax.softmax(x.astype(np.float32), threads=1).astype(dt)
        nan = np.isnan(want.astype(np.float32))
        assert np.array_equal(nan, np.isnan(got.astype(np.float32))), (isa, name)
        assert np.array_equal(got.view(np.uint16)[~nan], want.view(np.uint16)[~nan]), (isa, name)
        if name.endswith("NaN"):
            assert nan.all(), (isa, name)


def test_two_operation_bfloat16_rounding():
    """The AVX2 and AVX-512 scale passes round softmax's float32 outputs to bfloat16 in two float
    operations where every output is +0 or normal and at most 1 (avx2.c, bf16_bits_normal):
    q = fl(65535 a), h = 65536 a - q (an FMA, exact) is a rounded to nearest even on the bfloat16
    grid. The identity in float32 arithmetic (the FMA's exact result in float64), against the
    integer rounding to nearest even, for every bfloat16 value in [2^-126, 1] with the low halves
    that decide the rounding (the tie 0x8000 after an even and an odd last bit, its neighbours, 0
    and 0xffff) and a random one, of both signs, and +0. (Over every float in [2^-126, 1] it held
    too: no mismatch.)"""
    hi = np.arange(0x0080, 0x3F80 + 1, dtype=np.uint32) << 16
    lows = np.array([0, 1, 0x7FFF, 0x8000, 0x8001, 0xFFFF], np.uint32)
    rnd = np.random.default_rng(3).integers(0, 1 << 16, hi.size, dtype=np.uint32)
    bits = np.concatenate([[0], (hi[:, None] | lows[None, :]).ravel(), hi | rnd]).astype(np.uint32)
    bits = bits[bits <= 0x3F800000]
    want = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
    for sign in (0, 0x80000000):
        a = (bits | sign).view(np.float32)[1 if sign else 0:]  # +0 only: -0 would give +0
        q = a * np.float32(65535.0)
        h = a.astype(np.float64) * 65536.0 - q.astype(np.float64)
        assert np.array_equal(h.astype(np.float32).astype(np.float64), h)  # the FMA is exact
        assert np.array_equal(h.astype(np.float32).view(np.uint32), (want | sign)[1 if sign else 0:])

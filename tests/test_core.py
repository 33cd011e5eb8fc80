"""The public API against its NumPy twin, scipy.special and a high-precision reference."""
import warnings

import numpy as np
import pytest
import scipy
import scipy.special as sps

import fastsoftmax
from fastsoftmax import _fallback, _plan
from conftest import axis_options, nasty_arrays
from fastsoftmax._reference import log_softmax as ref_log_softmax, logsumexp as ref_logsumexp, softmax as ref_softmax, ulp_error

# The specification is scipy.special 1.17's; tests that compare with the installed scipy say where an
# older one differs.
SCIPY_VERSION = tuple(int(p) for p in scipy.__version__.split(".")[:2])

FUNCS = ["softmax", "log_softmax", "logsumexp"]


def call(name, mod, x, axis):
    return getattr(mod, name)(x, axis=axis)


def outcome(f):
    try:
        return f(), None
    except Exception as e:  # the same exception type is part of the contract
        return None, type(e)


def assert_same(got, want, dtype, scale=1.0, *, msg):
    """Same type, dtype, shape and special values; values within the fallback's own error
    (NumPy's float32 sums drift by ~1e-4 over 10^5 elements; accuracy is checked against the
    high-precision reference separately). `msg` names the case in a failure."""
    assert type(got) is type(want) or (isinstance(got, np.ndarray) and isinstance(want, np.ndarray)), \
        f"{msg}: type {type(got).__name__}, expected {type(want).__name__}"
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype and got.shape == want.shape, \
        f"{msg}: {got.dtype}{got.shape}, expected {want.dtype}{want.shape}"
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=f"{msg}: NaN positions")
    rtol = {np.float16: 2e-3, np.float32: 1e-3}.get(np.dtype(dtype).type, 1e-9)
    finite = np.isfinite(want)
    np.testing.assert_array_equal(got[~finite], want[~finite], err_msg=f"{msg}: non-finite values")
    # log(s) with s close to 1 (NumPy's log_softmax) has an absolute error of a few eps * |x|
    atol = 16 * np.finfo(got.dtype).eps * scale if got.dtype.kind == "f" else 0
    np.testing.assert_allclose(got[finite], want[finite], rtol=rtol, atol=atol, err_msg=msg)


def as_rows(x, axis):
    """A 2-D copy whose rows are the slices reduced by `axis` (for the reference)."""
    axes = tuple(range(x.ndim)) if axis is None else tuple(
        a % x.ndim for a in (axis if isinstance(axis, tuple) else (axis,)))
    moved = np.moveaxis(x, axes, tuple(range(-len(axes), 0)))
    return moved.reshape(moved.shape[:x.ndim - len(axes)] + (-1,)).reshape(-1, int(np.prod([x.shape[a] for a in axes])))


def assert_accurate(name, x, axis, got, *, msg):
    """<= 2 ulp against the high-precision reference, over outputs in the normal range."""
    if _plan.plan(name, x, axis).route_name == "fallback" or np.isnan(x).any():
        return  # the NumPy fallback: NumPy's accuracy
    rows = as_rows(x, axis)
    if rows.shape[1] == 0:
        return
    if name == "logsumexp":
        rl = ref_logsumexp(rows)
        scale = np.maximum(np.abs(rl), np.abs(np.max(rows, axis=-1)).astype(rl.dtype))
        err = ulp_error(np.ravel(got), rl, scale)
    else:
        ref = ref_softmax(rows) if name == "softmax" else ref_log_softmax(rows)
        err = ulp_error(as_rows(np.asarray(got), axis), ref)
    assert err <= 2.0, f"{msg}: {err} ulp"


@pytest.mark.parametrize("name", FUNCS)
def test_nasty_arrays_match_fallback(isa, name):
    for label, x in nasty_arrays():
        x_before = x.copy()
        for axis in axis_options(x.ndim):
            got, gerr = outcome(lambda: call(name, fastsoftmax, x, axis))
            want, werr = outcome(lambda: call(name, _fallback, x, axis))
            assert gerr == werr, (label, axis, gerr, werr)
            if gerr is None:
                scale = 1 + float(np.max(np.abs(x[np.isfinite(x)]), initial=0))
                case = f"{name} {label} axis={axis}"
                assert_same(got, want, x.dtype, scale, msg=case)
                assert_accurate(name, x, axis, got, msg=case)
        np.testing.assert_array_equal(x, x_before)  # the input is never modified


@pytest.mark.parametrize("name", FUNCS)
def test_fallback_matches_scipy(name):
    """The executable spec agrees with scipy.special 1.17 (where scipy is not documented to differ)."""
    for label, x in nasty_arrays(dtypes=(np.float16, np.float32, np.float64, np.longdouble, np.complex128)):
        for axis in axis_options(x.ndim):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                half = x.dtype.kind == "f" and x.dtype.itemsize == 2
                if half:  # a stated deviation: float16 is computed in float32, rounded once
                    # (log_softmax with a careful log of the sum: scipy's float64, within 1 ulp)
                    wide = np.float64 if name == "log_softmax" else np.float32
                    want, werr = outcome(lambda: call(name, sps, x.astype(wide), axis))
                    if werr is None:
                        want = tuple(np.asarray(w).astype(np.float16) for w in want) if isinstance(want, tuple) \
                            else np.asarray(want).astype(np.float16)
                else:
                    want, werr = outcome(lambda: call(name, sps, x, axis))
            got, gerr = outcome(lambda: call(name, _fallback, x, axis))
            if name == "logsumexp" and x.size == 0 and x.ndim > 1 and werr is IndexError:
                # scipy 1.17 fails on empty arrays reduced over several axes; we return -inf
                assert gerr is None and np.all(np.asarray(got) == -np.inf)
                continue
            assert gerr == werr, (label, axis)
            if gerr is None:
                got, want = np.asarray(got), np.asarray(want)
                assert got.dtype == want.dtype and got.shape == want.shape, (label, axis)
                if got.dtype.kind == "c":  # scipy sums complex F-ordered data in another order
                    np.testing.assert_allclose(got, want, rtol=1e-15)
                elif half and name == "log_softmax":
                    special = ~np.isfinite(want)
                    np.testing.assert_array_equal(got[special], want[special])
                    np.testing.assert_array_max_ulp(got[~special], want[~special], maxulp=1)
                else:
                    np.testing.assert_array_equal(got, want)


SPECIAL_ROWS = [
    [np.inf, 1.0], [np.inf, np.inf], [-np.inf, -np.inf], [np.nan, 1.0], [np.inf, np.nan],
    [-np.inf, 1.0], [np.inf, -np.inf], [-np.inf, np.inf, 2.0], [np.nan, -np.inf], [3e38, -3e38],
    [-3e38, -3e38], [90.0, 95.0, 100.0], [-100.0, -95.0, -90.0], [7.0], [-np.inf], [np.nan], [np.inf],
    [1.0, 1.0, 1.0], [0.0, -0.0], [1e-40, 0.0],
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", FUNCS)
def test_special_values_as_scipy(isa, name, dtype):
    for row in SPECIAL_ROWS:
        x = np.array(row, dtype=dtype)
        for arr, axis in [(x, -1), (x, None), (np.stack([x, x]), 1), (np.stack([x, x]).T.copy(), 0),
                          (np.stack([x] * 300).T.copy(), 0)]:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                want = getattr(sps, name)(arr, axis=axis)
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # fastsoftmax never warns
                got = getattr(fastsoftmax, name)(arr, axis=axis)
            assert_same(got, want, dtype, msg=f"{name} {arr.shape} of {row} axis={axis}")


def test_single_element_and_overflow_rows(isa):
    for dt in (np.float32, np.float64):
        np.testing.assert_array_equal(fastsoftmax.softmax(np.array([[5.0]], dt), axis=1), [[1.0]])
        np.testing.assert_array_equal(fastsoftmax.log_softmax(np.array([[5.0]], dt), axis=1), [[0.0]])
        x = np.array([90.0, 100.0, 95.0], dt)  # exp(x) overflows float32 without the max shift
        np.testing.assert_allclose(fastsoftmax.softmax(x), sps.softmax(x.astype(np.float64)), rtol=1e-6)
        assert np.isfinite(fastsoftmax.logsumexp(np.array([3e38, 3e38], dt)))


def test_documentation_example():
    scores = np.array([4.1, 1.0, 2.3, -0.5, 0.2])  # beach, mountains, city, forest, indoors
    p = fastsoftmax.softmax(scores)
    np.testing.assert_array_equal(np.round(p * 100, 1), [80.6, 3.6, 13.3, 0.8, 1.6])
    assert abs(p.sum() - 1) < 1e-15


@pytest.mark.parametrize("dtype,expected", [
    (np.int8, np.float64), (np.uint8, np.float64), (np.int16, np.float64), (np.int32, np.float64),
    (np.int64, np.float64), (np.uint64, np.float64), (np.float16, np.float16), (np.float32, np.float32),
    (np.float64, np.float64), (np.longdouble, np.longdouble), (np.complex64, np.complex64),
])
def test_output_dtypes(dtype, expected):
    x = np.array([[1, 0, 3], [2, 2, 0]], dtype=dtype)
    for name in ("softmax", "log_softmax"):
        y = getattr(fastsoftmax, name)(x, axis=1)
        assert y.dtype == expected
        # float16 is computed in float32 and rounded once (scipy's float16 loops are ~5 ulp off): against
        # the float64 value, within one float16 ulp (2^-10 relative)
        ref = getattr(sps, name)(x.astype(expected if expected != np.float16 else np.float64), axis=1)
        np.testing.assert_allclose(y, ref, rtol=2 ** -10 if expected == np.float16 else 1e-6)
    lse = fastsoftmax.logsumexp(x, axis=1)
    assert lse.dtype == sps.logsumexp(x, axis=1).dtype


def test_unsigned_ints_do_not_wrap():
    # scipy computes x - max in uint8 (wraps); fastsoftmax converts to float64 first.
    y = fastsoftmax.softmax(np.array([1, 2], dtype=np.uint8))
    np.testing.assert_allclose(y, sps.softmax(np.array([1.0, 2.0])))


def test_bool_input():
    b = np.array([True, False, True])
    for name in ("softmax", "log_softmax"):
        with pytest.raises(TypeError, match="boolean"):
            getattr(fastsoftmax, name)(b)
    # logsumexp takes booleans as 1.0 / 0.0 (scipy 1.17): log(e + 1 + e), float64
    got = fastsoftmax.logsumexp(b)
    assert isinstance(got, np.float64) and got == fastsoftmax.logsumexp(b.astype(np.float64)), repr(got)
    np.testing.assert_allclose(got, np.log(2 * np.e + 1), rtol=1e-15)


@pytest.mark.xfail(SCIPY_VERSION < (1, 16), raises=TypeError, strict=True,
                   reason="scipy 1.15 computes x - max in bool for logsumexp and raises TypeError")
def test_bool_input_as_installed_scipy():
    b = np.array([True, False, True])
    assert fastsoftmax.logsumexp(b) == sps.logsumexp(b)


def test_array_likes_and_scalars():
    for f, g in [(fastsoftmax.softmax, sps.softmax), (fastsoftmax.log_softmax, sps.log_softmax),
                 (fastsoftmax.logsumexp, sps.logsumexp)]:
        for v in ([1.0, 2.0, 3.0], [[1, 2], [3, 4]], 3.0, 3, np.float32(2.0), np.array(2.0), (1.0, 2.0)):
            got, want = f(v), g(v)
            assert type(got) is type(want), (f, v)
            np.testing.assert_allclose(got, want, rtol=1e-12)
        assert f(np.array(2.0), axis=0) == g(np.array(2.0), axis=0)


def test_empty_arrays():
    for name in ("softmax", "log_softmax"):
        f = getattr(fastsoftmax, name)
        with pytest.raises(ValueError):
            f(np.zeros(0))
        with pytest.raises(ValueError):
            f(np.zeros((3, 0), np.float32), axis=1)
        y = f(np.zeros((0, 3), np.float32), axis=1)
        assert y.shape == (0, 3) and y.dtype == np.float32
    assert fastsoftmax.logsumexp(np.zeros(0)) == -np.inf
    np.testing.assert_array_equal(fastsoftmax.logsumexp(np.zeros((0, 3)), axis=0), [-np.inf] * 3)
    assert fastsoftmax.logsumexp(np.zeros((0, 3)), axis=1).shape == (0,)
    assert fastsoftmax.logsumexp(np.zeros((0, 3)), axis=0, keepdims=True).shape == (1, 3)


def test_axis_errors():
    x = np.ones((2, 3), np.float32)
    for f in (fastsoftmax.softmax, fastsoftmax.log_softmax, fastsoftmax.logsumexp):
        with pytest.raises(np.exceptions.AxisError):
            f(x, axis=2)
        with pytest.raises(np.exceptions.AxisError):
            f(x, axis=-3)
        with pytest.raises(np.exceptions.AxisError):
            f(x, axis=(0, 5))
        with pytest.raises(ValueError, match="duplicate"):
            f(x, axis=(0, 0))
        with pytest.raises(ValueError, match="duplicate"):
            f(x, axis=(1, -1))
        with pytest.raises(TypeError):
            f(x, axis=1.5)


@pytest.mark.parametrize("bad", [0, -1, "2", 2.5, True, [2]])
def test_threads_errors(bad):
    x = np.ones((2, 3), np.float32)
    for f in (fastsoftmax.softmax, fastsoftmax.log_softmax, fastsoftmax.logsumexp):
        with pytest.raises(ValueError, match="threads"):
            f(x, threads=bad)
    with pytest.raises(ValueError, match="threads"):
        fastsoftmax.softmax(np.ones(3, np.float16), threads=bad)  # fallback path checks too


def test_threads_accepts_any_positive_integer():
    """The argument only: (64, 300) is too small for a team, so every count computes on one thread
    (results for any thread count: tests/test_threads.py)."""
    x = np.random.default_rng(0).standard_normal((64, 300)).astype(np.float32)
    ref = fastsoftmax.softmax(x, axis=1)
    for t in (1, 2, 3, np.int64(4), 64):
        np.testing.assert_array_equal(fastsoftmax.softmax(x, axis=1, threads=t), ref)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_out(isa, name, dtype):
    f = getattr(fastsoftmax, name)
    x = np.random.default_rng(1).standard_normal((6, 70)).astype(dtype)
    ref = f(x, axis=1)
    out = np.empty_like(x)
    assert f(x, axis=1, out=out) is out
    np.testing.assert_array_equal(out, ref)
    fout = np.empty_like(x, order="F")  # another layout: still correct
    assert f(x, axis=1, out=fout) is fout
    np.testing.assert_array_equal(fout, ref)
    y = x.copy()
    assert f(y, axis=1, out=y) is y  # in place
    np.testing.assert_array_equal(y, ref)
    yt = x.T.copy().T  # in place on an F-ordered array
    ref_t = f(yt, axis=1)
    np.testing.assert_array_equal(f(yt, axis=1, out=yt), ref_t)


def test_out_errors():
    x = np.random.default_rng(2).standard_normal((4, 10)).astype(np.float32)
    f = fastsoftmax.softmax
    with pytest.raises(ValueError, match=r"shape \(4, 9\), expected \(4, 10\)"):
        f(x, out=np.empty((4, 9), np.float32))
    with pytest.raises(TypeError, match="dtype float64, expected float32"):
        f(x, out=np.empty((4, 10)))
    with pytest.raises(TypeError, match="dtype float32, expected float64"):
        f(x.astype(np.int64), out=np.empty((4, 10), np.float32))
    ro = np.empty_like(x)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        f(x, out=ro)
    with pytest.raises(TypeError, match="numpy.ndarray"):
        f(x, out=[0.0] * 40)
    big = np.zeros(50, np.float32)
    big[:40] = x.ravel()
    with pytest.raises(ValueError, match="overlaps"):
        f(big[:40].reshape(4, 10), out=big[5:45].reshape(4, 10))
    np.testing.assert_array_equal(big[:40], x.ravel())  # nothing written on error
    inter = np.zeros(80, np.float32)
    a, o = inter[0::2].reshape(4, 10), inter[1::2].reshape(4, 10)  # interleaved: no overlap
    a[...] = x
    np.testing.assert_array_equal(f(a, out=o), f(a))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_logsumexp_options(isa, dtype):
    rng = np.random.default_rng(3)
    a = (rng.standard_normal((3, 4, 5)) * 3).astype(dtype)
    for axis in axis_options(3):
        for keepdims in (False, True):
            got = fastsoftmax.logsumexp(a, axis=axis, keepdims=keepdims)
            want = sps.logsumexp(a, axis=axis, keepdims=keepdims)
            assert np.shape(got) == np.shape(want) and np.asarray(got).dtype == np.asarray(want).dtype
            np.testing.assert_allclose(got, want, rtol=1e-6 if dtype == np.float32 else 1e-14)
            r, s = fastsoftmax.logsumexp(a, axis=axis, keepdims=keepdims, return_sign=True)
            r2, s2 = sps.logsumexp(a, axis=axis, keepdims=keepdims, return_sign=True)
            np.testing.assert_array_equal(s, s2)
            assert np.asarray(s).dtype == np.asarray(s2).dtype


E = np.e
LSE_A = np.array([[1.0, 2.0, 3.0], [0.5, np.inf, 2.0], [1.0, 1.0, 1.0]])
# logsumexp(LSE_A, axis=1, b=b) as scipy 1.17 defines it: (b, result, (log|sum|, sign) with return_sign).
# A negative sum has no logarithm (NaN) but a sign; a zero weight drops its term, +inf included.
LSE_WEIGHTED = [
    ([1.0, -2.0, 0.5], [np.nan, np.nan, np.nan],
     ([np.log(abs(E - 2 * E**2 + 0.5 * E**3)), np.inf, np.log(0.5 * E)], [-1.0, -1.0, -1.0])),
    ([[0, 0, 0], [1, 0, 1], [1, -1, 0]], [-np.inf, np.log(E**0.5 + E**2), -np.inf],
     ([-np.inf, np.log(E**0.5 + E**2), -np.inf], [0.0, 1.0, 0.0])),
    (2.0, [np.log(2 * (E + E**2 + E**3)), np.inf, np.log(6 * E)],
     ([np.log(2 * (E + E**2 + E**3)), np.inf, np.log(6 * E)], [1.0, 1.0, 1.0])),
    ([[0.0], [1.0], [-1.0]], [-np.inf, np.inf, np.nan],
     ([-np.inf, np.inf, np.log(3 * E)], [0.0, 1.0, -1.0])),
]


def assert_lse_equal(got, want, msg):
    got, want = np.asarray(got), np.asarray(want)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=msg)
    np.testing.assert_allclose(got, want, rtol=1e-14, err_msg=msg)


def test_logsumexp_weights():
    for b, want, (want_abs, want_sign) in LSE_WEIGHTED:
        assert_lse_equal(fastsoftmax.logsumexp(LSE_A, axis=1, b=b), want, f"b={b}")
        r, s = fastsoftmax.logsumexp(LSE_A, axis=1, b=b, return_sign=True)
        assert_lse_equal(r, want_abs, f"b={b}, return_sign")
        np.testing.assert_array_equal(s, want_sign, err_msg=f"b={b}, sign")
    with pytest.raises(ValueError):
        fastsoftmax.logsumexp(LSE_A, axis=1, b=[1.0, 2.0])


@pytest.mark.xfail(SCIPY_VERSION < (1, 17), strict=True,
                   reason="before 1.17 scipy gets the sign of an infinite weighted sum wrong: 1.15 returns +inf "
                          "(sign +1) for -2 * exp(inf), 1.16 a NaN sign for +inf")
def test_logsumexp_weights_as_installed_scipy():
    for b, _, _ in LSE_WEIGHTED:
        for return_sign in (False, True):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                want = sps.logsumexp(LSE_A, axis=1, b=b, return_sign=return_sign)
            got = fastsoftmax.logsumexp(LSE_A, axis=1, b=b, return_sign=return_sign)
            for g, w in zip(got if return_sign else [got], want if return_sign else [want]):
                assert_lse_equal(g, w, f"b={b}, return_sign={return_sign}")


# (row, logsumexp, sign) as scipy 1.17 defines them: an empty sum (all -inf) has sign 0.
LSE_SIGNS = [([-np.inf, -np.inf], -np.inf, 0.0), ([np.nan, 1.0], np.nan, np.nan), ([np.inf, 1.0], np.inf, 1.0),
             ([1.0, 2.0], np.log(E + E**2), 1.0)]


def test_logsumexp_special_signs(isa):
    for row, want, sign in LSE_SIGNS:
        for x in (np.array(row), np.array([row] * 3)):
            r, s = fastsoftmax.logsumexp(x, axis=-1, return_sign=True)
            assert_lse_equal(r, np.full(np.shape(r), want), f"{row}")
            np.testing.assert_array_equal(s, np.full(np.shape(s), sign), err_msg=f"{row}")


@pytest.mark.xfail(SCIPY_VERSION < (1, 17), strict=True,
                   reason="before 1.17 scipy's signs differ: 1.15 gives sign +1 for an all -inf slice, "
                          "1.16 sign NaN for a slice with +inf")
def test_logsumexp_special_signs_as_installed_scipy():
    for row, _, _ in LSE_SIGNS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            want = sps.logsumexp(np.array(row), return_sign=True)
        got = fastsoftmax.logsumexp(np.array(row), return_sign=True)
        np.testing.assert_array_equal(got, want, err_msg=f"{row}")


NONLAST = [((8, 21, 16, 16), 1), ((2, 5, 300), 1), ((3, 7, 13), 1), ((4, 1000, 3), 1), ((5, 9), 0),
           ((2, 3, 4, 5), (1, 2)), ((1, 6, 1, 33), 1)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,axis", NONLAST)
def test_non_last_axis(isa, dtype, shape, axis):
    """C-contiguous reduced over a middle axis: the column kernels (vectorised across inner)."""
    x = (np.random.default_rng(4).standard_normal(shape) * 5).astype(dtype)
    ax = axis if isinstance(axis, tuple) else (axis,)
    moved = np.moveaxis(x, ax, tuple(range(-len(ax), 0)))
    rows = moved.reshape(moved.shape[:-len(ax)] + (-1,))
    for name, ref in [("softmax", ref_softmax), ("log_softmax", ref_log_softmax)]:
        y = getattr(fastsoftmax, name)(x, axis=axis)
        yr = np.moveaxis(y, ax, tuple(range(-len(ax), 0))).reshape(rows.shape)
        assert ulp_error(yr, ref(rows)) <= 2.0, name
    lse = fastsoftmax.logsumexp(x, axis=axis)
    rl = ref_logsumexp(rows)
    scale = np.maximum(np.abs(rl), np.abs(np.max(rows, axis=-1)).astype(rl.dtype))
    assert ulp_error(lse, rl, scale) <= 2.0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,axis", NONLAST)
def test_non_last_axis_in_place(isa, dtype, shape, axis):
    """out=x over a middle axis (the last column pass writes straight into out): same bits as a new array."""
    x = (np.random.default_rng(6).standard_normal(shape) * 5).astype(dtype)
    for name in ("softmax", "log_softmax"):
        f = getattr(fastsoftmax, name)
        want = f(x, axis=axis)
        y = x.copy()
        assert f(y, axis=axis, out=y) is y
        np.testing.assert_array_equal(y, want)


def test_doctests():
    import doctest
    for mod in (fastsoftmax, fastsoftmax._core):
        result = doctest.testmod(mod, optionflags=doctest.NORMALIZE_WHITESPACE)
        assert result.failed == 0
    assert doctest.testmod(fastsoftmax._core).attempted >= 4


def test_show_config(capsys):
    fastsoftmax.show_config()
    text = capsys.readouterr().out
    cfg = fastsoftmax.get_config()
    for key in ("version", "isa", "openmp", "default_threads"):
        assert key in text
    assert cfg["version"] == fastsoftmax.__version__
    assert cfg["isa"] in cfg["isas_available"]
    assert cfg["default_threads"] >= 1


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nan_rows_do_not_depend_on_what_out_held(isa, dtype):
    """A row with a NaN gives NaN whatever memory `out` held (the exp pass skips such rows: found by
    test_long_rows_and_column_blocks, whose freshly allocated outputs held negative NaNs)."""
    x = np.random.default_rng(3).standard_normal((3, 100)).astype(dtype)
    x[1, 7] = np.nan
    out = np.full_like(x, -np.nan)
    y = fastsoftmax.softmax(x, axis=-1, out=out)
    assert np.isnan(y[1]).all() and not np.signbit(y[1]).any()
    assert y.tobytes() == fastsoftmax.softmax(x, axis=-1).tobytes()

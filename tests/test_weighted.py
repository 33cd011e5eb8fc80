"""logsumexp with weights (b=) on the kernel (csrc/rows_dtype.h, lse_weighted; _core._weighted).

Every ISA: within the documented 2 ulp of the specification evaluated in the wide dtype (its unit
of error also covers the weights' cancellation, _reference.weighted_logsumexp), the specification's
NaN / +-inf and signs (fuzz/oracle.py's check for this route), shapes around the vector widths and
the 16384-element blocks, every axis form, broadcast and mixed-dtype weights, non-contiguous data,
the same bits for any thread count, and the rows the kernel hands back to the fallback.
"""
import pathlib
import sys

import numpy as np
import pytest

import fastsoftmax
from fastsoftmax import _fallback, _reference

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "fuzz"))
import oracle  # noqa: E402  (fuzz/oracle.py)

from conftest import axis_options  # noqa: E402

DTYPES = (np.float32, np.float64)
LENGTHS = list(range(1, 18)) + [31, 33, 64, 65, 1000, 16384, 16385, 128256]


def _weights(rng, shape, kind, dtype):
    if kind == "positive":
        return rng.random(shape).astype(dtype) + dtype(0.01)
    if kind == "masked":  # 0/1, as a mask: many rows whose max element has weight 0
        return (rng.random(shape) < 0.5).astype(dtype)
    return (rng.standard_normal(shape) * 2).astype(dtype)  # both signs


def _max_err(a, b, axis=-1, return_sign=False):
    """(max ulp error against the wide reference, result, sign)."""
    res = fastsoftmax.logsumexp(a, axis=axis, b=b, return_sign=True)
    ref, ref_sign, scale, cond = _reference.weighted_logsumexp(a, b, axis)
    got = np.asarray(res[0])
    err = _reference.ulp_errors(got, ref, scale, got.dtype, subnormal_abs=float(np.finfo(got.dtype).tiny))
    return float(np.max(err)) if err.size else 0.0, res, (ref, ref_sign, cond)


@pytest.mark.parametrize("dtype", DTYPES)
def test_accuracy_lengths(isa, dtype):
    rng = np.random.default_rng(7)
    for n in LENGTHS:
        rows = 3 if n > 20000 else 5
        a = (rng.standard_normal((rows, n)) * 4).astype(dtype)
        for kind in ("positive", "masked", "signed"):
            b = _weights(rng, a.shape, kind, dtype)
            err, (res, sgn), (ref, ref_sign, cond) = _max_err(a, b)
            assert err <= _reference.tolerance(dtype), (n, kind, err)
            ok = cond < 1e3
            np.testing.assert_array_equal(np.asarray(sgn)[ok], np.asarray(ref_sign, dtype)[ok], err_msg=f"{n} {kind}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_accuracy_dominant_and_spread(isa, dtype):
    """One dominant element (rest tiny next to k), widely spread rows, |max| beyond the kernel's shift."""
    rng = np.random.default_rng(8)
    a = (rng.standard_normal((64, 300)) * 3).astype(dtype)
    a[:16, 7] += dtype(40)          # log1p(rest / k) with rest ~ 1e-15
    a[16:32] *= dtype(60)           # exps clamped to 0 far below the max
    a[32:48] += dtype(500)          # the shift by the max
    a[48:] -= dtype(1e4)
    b = rng.random(a.shape).astype(dtype) * dtype(3)
    b[::3, 7] = dtype(1e-6)         # a small weight at the dominant element
    err, _, _ = _max_err(a, b)
    assert err <= _reference.tolerance(dtype), err


@pytest.mark.parametrize("dtype", DTYPES)
def test_agrees_with_spec_axes(isa, dtype):
    rng = np.random.default_rng(9)
    for shape in [(3, 4, 5), (6, 33), (2, 3, 1000)]:
        a = (rng.standard_normal(shape) * 3).astype(dtype)
        for kind in ("positive", "masked", "signed"):
            b = _weights(rng, shape, kind, dtype)
            for axis in axis_options(len(shape)):
                for keepdims in (False, True):
                    for return_sign in (False, True):
                        oracle.check_call("logsumexp", a, axis=axis, b=b, keepdims=keepdims, return_sign=return_sign)


SPECIAL_ROWS = [  # (a, b): each row is one case of scipy 1.17's rules
    ([1.0, 2.0, 3.0], [1.0, 1.0, 0.0]),           # zero weight at the max: the max of the others
    ([1.0, np.inf, 3.0], [1.0, 0.0, 1.0]),        # zero weight at +inf: removed
    ([1.0, np.nan, 3.0], [1.0, 0.0, 1.0]),        # zero weight at NaN: removed
    ([1.0, np.nan, 3.0], [1.0, 1.0, 1.0]),        # NaN with a weight: NaN
    ([1.0, np.inf, 3.0], [1.0, 2.0, 1.0]),        # +inf with a weight: +inf
    ([1.0, np.inf, 3.0], [1.0, -2.0, 1.0]),       # -inf sum: nan, or +inf with sign -1
    ([-np.inf, -np.inf, -np.inf], [1.0, 1.0, 1.0]),  # empty sum: -inf
    ([1.0, 2.0, 3.0], [0.0, 0.0, 0.0]),           # every weight zero: -inf, sign 0
    ([1.0, 2.0, 3.0], [1.0, -2.0, 0.5]),          # negative sum: nan, sign -1
    ([3.0, 1.0, 3.0], [1.0, 5.0, -1.0]),          # weights cancel at the max
    ([3.0, np.log(2.0), 3.0], [-0.5, 1.0, 0.0]),  # rest == -k: a zero sum
    ([1.0, 2.0, 3.0], [1.0, np.inf, 1.0]),        # an infinite weight
    ([1.0, 2.0, 3.0], [1.0, np.nan, 1.0]),        # a NaN weight
    ([1.0, 2.0, 3.0], [-1.0, -1.0, -1.0]),        # all negative: sign -1
    ([1.0, 2.0, 3.0], [-0.0, 1.0, -0.0]),         # negative zeros remove their element too
    ([700.0, 709.0, 710.0], [1.0, 1.0, 1.0]),     # the direct sum would overflow
    ([-800.0, -800.5, -801.0], [-1.0, 0.5, 0.5]),  # negative sum whose direct sum underflows
]


@pytest.mark.parametrize("dtype", DTYPES)
def test_special_rows_as_spec(isa, dtype):
    a = np.array([r[0] for r in SPECIAL_ROWS], dtype)
    b = np.array([r[1] for r in SPECIAL_ROWS], dtype)
    pad = (np.random.default_rng(1).standard_normal((len(SPECIAL_ROWS), 40)) - 30).astype(dtype)
    for x, w in ((a, b), (np.concatenate([a, pad], 1), np.concatenate([b, np.ones_like(pad)], 1))):
        for return_sign in (False, True):
            got = fastsoftmax.logsumexp(x, axis=-1, b=w, return_sign=return_sign)
            want = _fallback.logsumexp(x, axis=-1, b=w, return_sign=return_sign)
            for g, e in zip(got if return_sign else [got], want if return_sign else [want]):
                np.testing.assert_array_equal(np.isnan(g), np.isnan(e))
                np.testing.assert_array_equal(np.where(np.isfinite(e), 0, g), np.where(np.isfinite(e), 0, e))
                np.testing.assert_allclose(g, e, rtol=1e-5 if dtype == np.float32 else 1e-13)  # the spec's own error
            oracle.check_call("logsumexp", x, axis=-1, b=w, return_sign=return_sign)
    # The same rows inside long rows (blocks of 16384: the special element in a later block)
    for i, (ra, rb) in enumerate(SPECIAL_ROWS):
        x = np.full((1, 40000), -50.0, dtype)
        w = np.ones_like(x)
        x[0, 30000:30003], w[0, 30000:30003] = ra, rb
        for return_sign in (False, True):
            oracle.check_call("logsumexp", x, axis=-1, b=w, return_sign=return_sign)


def test_broadcast_and_dtypes(isa):
    rng = np.random.default_rng(11)
    a32 = (rng.standard_normal((256, 1000)) * 3).astype(np.float32)
    cases = [
        (a32, rng.random(1000).astype(np.float32)),            # a row of weights for every row
        (a32, rng.random((256, 1)).astype(np.float32)),        # one weight a row
        (a32, np.float32(2.5)),                                 # scalar
        (a32, 2),                                               # Python int: float32 (scipy's rules)
        (a32[:4, :10], np.ones((3, 4, 10), np.float32)),        # b broadcasts a
        (a32, rng.integers(0, 3, (256, 1000))),                 # int64 weights: float64 result
        (a32, rng.random((256, 1000)).astype(np.float16)),      # float16 weights: float32
        (a32.astype(np.float64), rng.random(1000).astype(np.float32)),
        (rng.integers(-5, 5, (8, 30)), rng.integers(0, 3, (8, 30))),  # integers: float64
        (np.array([[True, False, True]]), np.array([1.0, 2.0, 3.0])),
        (a32.astype(np.float16)[:8], np.float16(2.0)),          # float16 result: the fallback
        (a32[:8], rng.random((8, 1000)) + 1j),                  # complex weights: the fallback
    ]
    for a, b in cases:
        for axis in (None, -1, 0):
            for return_sign in (False, True):
                res = oracle.check_call("logsumexp", a, axis=axis, b=b, return_sign=return_sign)
                want = _fallback.logsumexp(a, axis=axis, b=b, return_sign=return_sign)
                r, w = (res[0], want[0]) if return_sign else (res, want)
                assert np.asarray(r).dtype == np.asarray(w).dtype and np.shape(r) == np.shape(w)


def test_layouts(isa):
    rng = np.random.default_rng(12)
    for dt in DTYPES:
        a = (rng.standard_normal((40, 66)) * 3).astype(dt)
        b = rng.random((40, 66)).astype(dt)
        views = [(a.T, b.T), (a[:, ::2], b[:, ::2]), (a[::-1], b[::-1]), (np.asfortranarray(a), b),
                 (a.astype(a.dtype.newbyteorder()), b), (a, b.astype(b.dtype.newbyteorder())),
                 (np.broadcast_to(a[:1], a.shape), b)]
        for x, w in views:
            for axis in (None, -1, 0, (0, 1)):
                oracle.check_call("logsumexp", x, axis=axis, b=w)
                got = fastsoftmax.logsumexp(x, axis=axis, b=w)
                want = fastsoftmax.logsumexp(np.ascontiguousarray(x), axis=axis, b=np.ascontiguousarray(w))
                np.testing.assert_array_equal(got, want)   # the same rows, the same bits


@pytest.mark.parametrize("dtype", DTYPES)
def test_threads_same_bits(isa, dtype):
    rng = np.random.default_rng(13)
    cases = [((300, 1000), -1), ((2, 200_003), -1), ((64, 5000), None), ((7, 40000), -1), ((5, 3), -1)]
    for shape, axis in cases:
        a = (rng.standard_normal(shape) * 3 + np.linspace(0, 20, shape[-1])).astype(dtype)
        b = (rng.random(shape) - 0.2).astype(dtype)
        b[:, ::7] = 0
        ref = fastsoftmax.logsumexp(a, axis=axis, b=b, return_sign=True, threads=1)
        for t in (2, 3, 4, None):
            got = fastsoftmax.logsumexp(a, axis=axis, b=b, return_sign=True, threads=t)
            np.testing.assert_array_equal(got[0], ref[0], err_msg=f"{shape} threads={t}")
            np.testing.assert_array_equal(got[1], ref[1], err_msg=f"{shape} threads={t}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_same_bits_on_every_isa(dtype):
    """The pass over (a, b, exps) has a form per ISA (plain C or SSE2 for the portable kernels, AVX2,
    AVX-512: rows_dtype.h, wsum) that sums the same 8 lanes in the same order, and the exps and the
    max are the same on every ISA, so the results are the same bits: lengths around the 8-element
    groups and the 64-element chunks (the padded last group), a long row's blocks, both signs, zero
    weights, a max of weight 0, ties at the max."""
    rng = np.random.default_rng(17)
    cases = []
    for n in (1, 7, 8, 9, 63, 64, 65, 127, 1000, 16385):
        a = (rng.standard_normal((3, n)) * 4).astype(dtype)
        b = (rng.standard_normal((3, n)) * 2).astype(dtype)
        b[1, ::5] = 0
        a[2, : n // 2 + 1] = a[2].max()  # ties at the max
        b[0, np.argmax(a[0])] = 0  # the max's weight 0: the second pass over the weighted elements
        cases.append((a, b))
    results = {}
    for isa in fastsoftmax.available_isas():
        fastsoftmax.set_isa(isa)
        try:
            results[isa] = [tuple(np.asarray(r).tobytes() for r in fastsoftmax.logsumexp(a, axis=-1, b=b, return_sign=True))
                            for a, b in cases]
        finally:
            fastsoftmax.set_isa("auto")
    first = next(iter(results.values()))
    for isa, got in results.items():
        for (a, _), g, f in zip(cases, got, first):
            assert g == f, f"{isa}: a row of {a.shape[1]} differs from {next(iter(results))}"


def test_regular_rows_stay_on_the_kernel(monkeypatch):
    """Only the rows the kernel cannot finish reach the fallback, and only those rows."""
    calls = []
    spec = _fallback.logsumexp

    def counting(a, axis=None, b=None, *args, **kwargs):
        calls.append(np.shape(a))
        return spec(a, axis, b, *args, **kwargs)

    monkeypatch.setattr(_fallback, "logsumexp", counting)
    rng = np.random.default_rng(15)
    a = rng.standard_normal((100, 50))
    b = rng.random((100, 50))
    fastsoftmax.logsumexp(a, axis=-1, b=b)
    fastsoftmax.logsumexp(a, axis=None, b=b, return_sign=True)
    fastsoftmax.logsumexp(rng.standard_normal((2, 40000)), axis=-1, b=rng.random((2, 40000)))  # in blocks
    assert calls == []
    b[3, :] = -1.0       # a negative sum (nan without return_sign)
    a[7, 5] = np.nan     # NaN with a weight
    fastsoftmax.logsumexp(a, axis=-1, b=b)
    assert calls == [(2, 50)]


def test_bad_inputs():
    a = np.ones((3, 4))
    for b, err in ((np.ones(3), ValueError), (np.ones((2, 4)), ValueError), ("1", TypeError),
                   (np.ones((3, 4), object), TypeError)):
        with pytest.raises(err):
            fastsoftmax.logsumexp(a, axis=-1, b=b)
        with pytest.raises(err):
            _fallback.logsumexp(a, axis=-1, b=b)
    for axis in (2, 1.0, (0, 0), True):
        with pytest.raises((TypeError, ValueError)) as got:
            fastsoftmax.logsumexp(a, axis=axis, b=np.ones(4))
        with pytest.raises(got.type):
            _fallback.logsumexp(a, axis=axis, b=np.ones(4))
    with pytest.raises(ValueError):
        fastsoftmax.logsumexp(a, b=np.ones(4), threads=0)

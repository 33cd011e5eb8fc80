"""The kernels' float16 / bfloat16 <-> float32 conversions, on every ISA: widening is exact for every one
of the 65 536 bit patterns, narrowing rounds to nearest even (ties, the overflow threshold, subnormal
halves, float32 subnormals) exactly as NumPy (float16) and ml_dtypes (bfloat16) do, NaN stays NaN."""
import numpy as np
import pytest

from fastsoftmax import _core


def _all_halves():
    return np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)


def _f32_cases(to_half, from_half):
    """float32 values at and around every rounding boundary of the half type, plus random bit patterns."""
    h = _all_halves()
    with np.errstate(invalid="ignore"):
        v = from_half(h).astype(np.float64)
    v = v[np.isfinite(v)]
    v = np.unique(v)
    mid = ((v[:-1] + v[1:]) / 2).astype(np.float32)        # exact ties (in float32 for both types)
    near = np.concatenate([mid, np.nextafter(mid, np.float32(np.inf)), np.nextafter(mid, np.float32(-np.inf))])
    rng = np.random.default_rng(0)
    bits = rng.integers(0, 1 << 32, 200_000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    special = np.array([0.0, -0.0, np.inf, -np.inf, 65504, 65519.996, 65520, 65536, 1e-45, -1e-45,
                        2 ** -24, 2 ** -25, 2 ** -25 * 1.0000001, 2 ** -14, 2 ** -126, 3.4028235e38], np.float32)
    x = np.concatenate([v.astype(np.float32), near, bits, special])
    return x[np.isfinite(x) | np.isinf(x)]


def test_widen_float16_is_exact(isa):
    h = _all_halves()
    got = _core._widen_half(h, False)
    want = h.view(np.float16).astype(np.float32)
    nan = np.isnan(want)
    assert np.array_equal(np.isnan(got), nan)
    assert np.array_equal(got[~nan].view(np.uint32), want[~nan].view(np.uint32))


def test_narrow_float16_rounds_to_nearest_even(isa):
    x = _f32_cases(None, lambda h: h.view(np.float16))
    got = _core._narrow_half(x, False)
    with np.errstate(over="ignore"):
        want = x.astype(np.float16).view(np.uint16)
    bad = np.flatnonzero(got != want)
    assert bad.size == 0, [(float(x[i]), hex(got[i]), hex(want[i])) for i in bad[:5]]
    nans = _core._narrow_half(np.array([np.nan, -np.nan], np.float32), False).view(np.float16)
    assert np.isnan(nans).all()


def test_bfloat16_widen_and_narrow(isa):
    try:
        import ml_dtypes
    except Exception as exc:  # not installed, or built for another NumPy (it then raises SystemError)
        pytest.skip(f"bfloat16 comes from ml_dtypes, which does not load here: {exc!r}"[:200])
    bf16 = ml_dtypes.bfloat16
    h = _all_halves()
    got = _core._widen_half(h, True)
    want = h.view(bf16).astype(np.float32)
    nan = np.isnan(want)
    assert np.array_equal(np.isnan(got), nan)
    assert np.array_equal(got[~nan].view(np.uint32), want[~nan].view(np.uint32))
    x = _f32_cases(None, lambda h: h.view(bf16).astype(np.float32))
    got = _core._narrow_half(x, True)
    want = x.astype(bf16).view(np.uint16)
    bad = np.flatnonzero(got != want)
    assert bad.size == 0, [(float(x[i]), hex(got[i]), hex(want[i])) for i in bad[:5]]
    payload = np.array([0x7F800001, 0xFF800001, 0x7FC00000, 0x7FFFFFFF], np.uint32).view(np.float32)
    assert np.isnan(_core._narrow_half(payload, True).view(bf16).astype(np.float32)).all()


@pytest.mark.parametrize("n", [0, 1, 7, 15, 16, 17, 31, 33, 1000])
def test_lengths_and_tails(isa, n):
    x = np.random.default_rng(n).standard_normal(n).astype(np.float32)
    assert np.array_equal(_core._narrow_half(x, False), x.astype(np.float16).view(np.uint16))
    h = x.astype(np.float16).view(np.uint16)
    assert np.array_equal(_core._widen_half(h, False), x.astype(np.float16).astype(np.float32))

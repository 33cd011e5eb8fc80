"""The two bfloat16 roundings of the AVX-512 set (csrc/kernels/avx512.c): AVX512_BF16's vcvtne2ps2bf16,
used where the CPU has it, and the integer form every other CPU and ISA takes. They must give the same
bits: for every rounding boundary and NaN payload (the conversion itself), and for every op, layout and
path of the driver (short rows, tile lanes, long rows in blocks, columns), including rows whose float32
results are subnormal, which the instruction would flush and the kernel rounds by the integer form.
The hidden _core._set_bf16cvt switch turns the instruction off; on a CPU without it both runs take the
integer form (and the tests still check the integer form against ml_dtypes)."""
import numpy as np
import pytest

import fastsoftmax
from fastsoftmax import _core

from conftest import under_each_mode

ml_dtypes = pytest.importorskip("ml_dtypes", exc_type=ImportError)
BF16 = ml_dtypes.bfloat16
OPS = ("softmax", "log_softmax", "logsumexp")


@pytest.fixture(params=["instruction", "integer"])
def form(request):
    """Each bfloat16 rounding form (the instruction only where the CPU has it)."""
    if request.param == "instruction" and not _core._bf16cvt()[1]:
        pytest.skip("this CPU has no AVX512_BF16")
    _core._set_bf16cvt(0 if request.param == "instruction" else -1)
    yield request.param
    _core._set_bf16cvt(0)


def _both(fn):
    return under_each_mode(_core._set_bf16cvt, (-1, 0), fn)


def test_switch_reports_and_restores():
    in_use, supported = _core._bf16cvt()
    assert in_use == supported
    _core._set_bf16cvt(-1)
    assert _core._bf16cvt() == (False, supported)
    _core._set_bf16cvt(0)
    assert _core._bf16cvt() == (supported, supported)


def _rounding_cases():
    """float32 values at, above and below every bfloat16 rounding boundary, subnormals, NaN payloads, random bits."""
    h = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
    with np.errstate(invalid="ignore"):
        v = np.unique(h.view(BF16).astype(np.float64))
    v = v[np.isfinite(v)]
    mid = ((v[:-1] + v[1:]) / 2).astype(np.float32)
    near = np.concatenate([mid, np.nextafter(mid, np.float32(np.inf)), np.nextafter(mid, np.float32(-np.inf))])
    bits = np.random.default_rng(1).integers(0, 1 << 32, 300_000, dtype=np.uint64).astype(np.uint32)
    nans = np.array([0x7F800001, 0xFF800001, 0x7FC00000, 0x7FFFFFFF, 0x7FA01234, 0xFFC0FFFF], np.uint32)
    subs = np.array([1, 2, 0x7FFF, 0x8000, 0x8001, 0x7FFFFF, 0x807FFFFF, 0x80000001], np.uint32)
    return np.concatenate([v.astype(np.float32), near, bits.view(np.float32), nans.view(np.float32),
                           subs.view(np.float32)])


@pytest.mark.parametrize("offset", [0, 1, 7, 31])
def test_narrowing_is_nearest_even_in_both_forms(isa, form, offset):
    """Every length and start offset of the vector pairs: the same bits as ml_dtypes (NaN: a quiet NaN of the
    same sign)."""
    x = _rounding_cases()[offset:]
    got = _core._narrow_half(x, True)
    with np.errstate(invalid="ignore"):
        want = x.astype(BF16).view(np.uint16)
    nan = np.isnan(x)
    bad = np.flatnonzero((got != want) & ~nan)
    assert bad.size == 0, [(float(x[i]), hex(got[i]), hex(want[i])) for i in bad[:5]]
    g = got[nan]
    assert np.all((g & 0x7F80) == 0x7F80) and np.all(g & 0x0040)
    assert np.array_equal(g >> 15, x[nan].view(np.uint32) >> 31)
    assert np.array_equal(got, _both(lambda: _core._narrow_half(x, True))[0])


def _cases():
    rng = np.random.default_rng(5)
    normal = (rng.standard_normal((64, 3000)) * 3).astype(np.float32)
    wide = rng.uniform(-120, 0, (40, 700)).astype(np.float32)  # float32 results down to 2^-170: subnormal outputs
    wide[:, 3] = 0.0
    long_row = (rng.standard_normal(40000) * 4).astype(np.float32)
    long_row[::9] -= 100.0
    special = np.array([[np.nan, 1, 2, 3] * 9, [np.inf, 1, 2, 3] * 9, [-np.inf] * 36, [0.0] * 36], np.float32)
    for n in (1, 5, 16, 31, 32, 33, 47, 64, 65, 128, 129, 1000):
        yield f"rows of {n}", (rng.standard_normal((37, n)) * 5).astype(np.float32), -1
    yield "normal", normal, -1
    yield "wide", wide, -1
    yield "wide columns", wide.T.copy(), 0
    yield "columns", normal[:, :40].T.copy(), 0
    yield "3-d axis=1", normal.reshape(8, 24, 1000)[:, :, :100].copy(), 1
    yield "long row", long_row, -1
    yield "long rows", np.stack([long_row, long_row[::-1] - 50]), -1
    yield "special", special, -1


@pytest.mark.parametrize("op", OPS)
def test_ops_give_the_same_bits_in_both_forms(isa, op):
    f = getattr(fastsoftmax, op)
    for name, x, axis in _cases():
        xb = x.astype(BF16)
        for threads in (1, 2):
            a, b = _both(lambda: f(xb, axis=axis, threads=threads))
            assert a.dtype == BF16 and np.array_equal(np.asarray(a).view(np.uint16), np.asarray(b).view(np.uint16)), \
                f"{op} {name} threads={threads}"


def test_subnormal_outputs_are_kept(isa, form):
    """Softmax outputs below 2^-126 are subnormal bfloat16 values, not flushed to zero."""
    x = np.concatenate([[0.0], -np.linspace(88, 95, 63)]).astype(np.float32).astype(BF16)
    y = fastsoftmax.softmax(x)
    want = fastsoftmax.softmax(x.astype(np.float32)).astype(BF16)
    assert np.array_equal(y.view(np.uint16), want.view(np.uint16))
    assert np.count_nonzero((np.abs(y.astype(np.float32)) < 2.0 ** -126) & (y != 0)) > 20

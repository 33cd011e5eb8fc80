"""The two forms of the float32 scale pass for rows whose outputs can be subnormal (csrc/kernels/
template.h: scale_careful_f32 builds them with integer operations, scale_direct_f32 lets the multiply
round them where the CPU computes with subnormals at full speed, csrc/cpu.c). They must give the same
bits, on every ISA, for rows, columns and the half types; the hidden _core._set_subnormals switch
forces each form (only the AVX-512 set has the direct form; on the others both runs take the integer
form)."""
import numpy as np
import pytest

import fastsoftmax
from fastsoftmax import _core

from conftest import under_each_mode



def _both(fn):
    return under_each_mode(_core._set_subnormals, (-1, 1), fn)


def _wide(shape, seed):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-80, 80, shape).astype(np.float32)
    x.flat[:: 7] = rng.uniform(-120, 0, x.size)[:: 7].astype(np.float32)  # around the clamp and below 2^-149
    return x


def test_switch_reports_and_restores():
    in_use, measured = _core._subnormals()
    _core._set_subnormals(1)
    assert _core._subnormals()[0] is True
    _core._set_subnormals(-1)
    assert _core._subnormals()[0] is False
    _core._set_subnormals(0)
    assert _core._subnormals() == (measured, measured)
    assert in_use == measured


@pytest.mark.parametrize("shape", [(1, 5), (3, 17), (64, 4096), (7, 1000), (2, 40000)], ids=str)
def test_rows_same_bits(isa, shape):
    x = _wide(shape, 1)
    careful, direct = _both(lambda: fastsoftmax.softmax(x, axis=-1))
    assert careful.tobytes() == direct.tobytes()
    sub = (careful > 0) & (careful < np.finfo(np.float32).tiny)
    if x.size >= 1000:
        assert sub.any(), "the data must produce subnormal outputs"


def test_row_reaching_below_the_smallest_subnormal(isa):
    # one dominant logit: the rest reach 2^-149 and below, where the output must round to +0
    x = np.linspace(-110.0, 0.0, 4001).astype(np.float32)
    careful, direct = _both(lambda: fastsoftmax.softmax(x))
    assert careful.tobytes() == direct.tobytes()
    assert (careful == 0).any() and ((careful > 0) & (careful < np.finfo(np.float32).tiny)).any()
    ref = np.exp(x.astype(np.float64) - np.log(np.sum(np.exp(x.astype(np.float64)))))
    units = np.abs(careful.astype(np.float64) - ref) / 2.0 ** -149
    small = ref < np.finfo(np.float32).tiny
    assert units[small].max() <= 2.0


@pytest.mark.parametrize("n", [2, 64])
def test_outputs_around_the_smallest_normal(isa, n):
    # Outputs within a few units of 2^-149 of 2^-126, on both sides: there the integer form's sum
    # z + 2^-62 reaches 2^-61 and must give the bits of 2^-126 itself. Rows [x, w, -inf ...]: the
    # output of x is e^(x - w) / (1 + e^(x - w)), and w steps by 2^-26 through [0, 2^-14), which
    # moves it by 2^-26 of itself through [2^-126 (1 - 2^-15), 2^-126 (1 + 2^-15)]. n = 2 takes the
    # short rows' lane kernels, n = 64 the row kernels.
    tiny = float(np.finfo(np.float32).tiny)
    w = np.arange(4096, dtype=np.float32) * np.float32(2.0 ** -26)
    rows = np.full((w.size, n), -np.inf, np.float32)
    rows[:, 0] = np.float32(np.log(tiny) + 2.0 ** -15)
    rows[:, 1] = w
    careful, direct = _both(lambda: fastsoftmax.softmax(rows, axis=-1))
    assert careful.tobytes() == direct.tobytes()
    y = careful[:, 0]
    assert (y < np.float32(tiny)).any() and (y == np.float32(tiny)).any() and (y > np.float32(tiny)).any()
    x64, w64 = rows[:, 0].astype(np.float64), w.astype(np.float64)
    ref = np.exp(x64 - w64) / (1.0 + np.exp(x64 - w64))
    assert (np.abs(y - ref) / 2.0 ** -149).max() <= 2.0


def test_long_row_block_far_below_the_max(isa):
    # A long row's first block (16384 elements) lies 250 below the row's max: its factor is ~2^-360,
    # so the careful form's threshold is beyond the float range (clamped to the largest float) and
    # every output of the block is +0 (a threshold of +inf once made them inf * 0 = NaN).
    rng = np.random.default_rng(3)
    x = (rng.standard_normal(20001) * 20).astype(np.float32)
    x[16384:] += 250.0
    careful, direct = _both(lambda: fastsoftmax.softmax(x))
    assert careful.tobytes() == direct.tobytes()
    assert not np.isnan(careful).any()
    assert (careful[:16384] == 0).all() and np.signbit(careful[:16384]).sum() == 0
    ref = np.exp(x.astype(np.float64) - np.log(np.sum(np.exp(x.astype(np.float64) - x.max()))) - x.max())
    assert np.abs(careful[16384:] - ref[16384:]).max() <= 2 * np.spacing(np.float32(ref[16384:].max()))


@pytest.mark.parametrize("threads", [1, 2])
def test_columns_same_bits(isa, threads):
    x = _wide((40, 3, 64), 2)
    careful, direct = _both(lambda: fastsoftmax.softmax(x, axis=0, threads=threads))
    assert careful.tobytes() == direct.tobytes()


@pytest.mark.parametrize("dtype", [np.float16, "bfloat16"])
def test_half_same_bits(isa, dtype):
    if dtype == "bfloat16":
        ml = pytest.importorskip("ml_dtypes")
        dtype = ml.bfloat16
    x = _wide((16, 1000), 3).astype(dtype)
    careful, direct = _both(lambda: fastsoftmax.softmax(x, axis=-1))
    assert careful.tobytes() == direct.tobytes()

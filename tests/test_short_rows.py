"""Short rows (csrc/rows_dtype.h): rows of up to 32 elements (48 for logsumexp) run as the lanes of a
column tile (rows_lanes), float32 softmax rows through the fused kernel (softmax_rows_f32, with its
aligned scratch where y's rows are not 64-byte aligned), half rows through both on the widened data.

What those paths promise, on every ISA: a row's result depends only on the row (not on its
neighbours, its position in the batch, the array's alignment or the thread count); the tile rows
are the column path's result for the same data; half rows are the float32 result rounded once;
special rows stay what they were; and the accuracy bound holds with subnormal outputs in a group.
"""
import numpy as np
import pytest

import fastsoftmax
from fastsoftmax._reference import softmax as ref_softmax, ulp_error

OPS = ("softmax", "log_softmax", "logsumexp")
# 256, 257, 600, 1000: AVX-512's softmax groups of 12, 11, 5 and 3 rows (FSM_SHORT_GROUP_BYTES), the smaller ones 16
SIZES = [1, 2, 3, 7, 8, 15, 16, 17, 31, 32, 33, 47, 48, 49, 64, 100, 128, 129, 256, 257, 600, 1000]
TINY = float(np.finfo(np.float32).tiny)
UNIT = float(np.finfo(np.float32).smallest_subnormal)


def _rows(n, dtype, count=37, seed=0):
    """`count` rows of n: normal data, with special and wide rows among them."""
    rng = np.random.default_rng(seed + n)
    x = (rng.standard_normal((count, n)) * 3).astype(dtype)
    x[3] = rng.uniform(-80, 80, n)            # subnormal float32 outputs: the careful scale
    x[5, n // 2] = np.nan
    x[9, 0] = np.inf
    x[11] = -np.inf
    x[14] += 1000                             # |max| > 240: the shifted reduction
    x[20, -1] = -np.inf
    x[26] = x[26, 0]                          # all equal: exactly 1 / n
    return x


def _f(op, x, **kw):
    return getattr(fastsoftmax, op)(x, axis=-1, **kw)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("n", SIZES)
def test_row_result_depends_only_on_the_row(isa, dtype, op, n):
    """Each row alone, the rows in another order, and two threads give the same bits as the batch."""
    x = _rows(n, dtype)
    y = _f(op, x)
    for i in range(x.shape[0]):
        np.testing.assert_array_equal(_f(op, x[i:i + 1]), y[i:i + 1], err_msg=f"row {i}")
    perm = np.random.default_rng(n).permutation(x.shape[0])
    np.testing.assert_array_equal(_f(op, x[perm]), y[perm])
    np.testing.assert_array_equal(_f(op, x, threads=2), y)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("n", [1, 2, 5, 16, 21, 32, 48])
def test_tile_rows_are_the_column_result(isa, dtype, op, n):
    """Rows short enough for the tile are computed as columns: the same bits as axis=0 of the transpose."""
    if op != "logsumexp" and n > 32:
        pytest.skip("rows of more than 32 take the row kernels")
    if isa == "portable":
        pytest.skip("one lane: the portable kernels run every row as a row")
    x = _rows(n, dtype, count=32)  # whole vectors of columns on every ISA
    rows = _f(op, x)
    cols = getattr(fastsoftmax, op)(np.ascontiguousarray(x.T), axis=0)
    np.testing.assert_array_equal(rows, cols.T if cols.ndim == 2 else cols)


@pytest.mark.parametrize("n", [8, 17, 100, 128, 256, 1000])
@pytest.mark.parametrize("shift", [1, 2, 3, 4, 8, 15])
def test_alignment_does_not_change_the_bits(isa, n, shift):
    """float32 softmax of the same rows from and into buffers 4 to 60 bytes past a 64-byte boundary."""
    x = _rows(n, np.float32, count=30)
    want = fastsoftmax.softmax(x, axis=-1)
    buf = np.empty(x.size + 32, np.float32)
    start = (-buf.ctypes.data % 64) // 4 + shift
    xs = buf[start:start + x.size].reshape(x.shape)
    xs[...] = x
    out = np.empty(x.size + 32, np.float32)[shift:shift + x.size].reshape(x.shape)
    np.testing.assert_array_equal(fastsoftmax.softmax(xs, axis=-1), want)
    assert fastsoftmax.softmax(xs, axis=-1, out=out) is out
    np.testing.assert_array_equal(out, want)
    assert fastsoftmax.softmax(xs, axis=-1, out=xs) is xs  # in place
    np.testing.assert_array_equal(xs, want)


@pytest.mark.parametrize("n", [24, 128, 256])
def test_subnormal_outputs_in_a_group(isa, n):
    """Rows that take the careful scale among rows that do not: each within the documented bounds."""
    rng = np.random.default_rng(n)
    x = (rng.standard_normal((40, n)) * 3).astype(np.float32)
    x[::3] = rng.uniform(-80, 80, (len(x[::3]), n))
    y, ref = fastsoftmax.softmax(x, axis=-1).astype(np.float64), ref_softmax(x)
    sub = (ref < TINY) & (ref >= UNIT)
    assert sub.any()
    assert np.max(np.abs(y[sub] - ref[sub])) <= 2 * UNIT and np.all(y[sub] > 0)
    assert ulp_error(y.astype(np.float32), ref) <= 2.0
    assert np.max(np.abs(y.sum(axis=-1) - 1)) <= 3e-7


def test_special_rows():
    """NaN and +inf rows and all -inf rows are NaN; -inf elements give 0; a row of equal values 1/n."""
    x = _rows(20, np.float32)
    y = fastsoftmax.softmax(x, axis=-1)
    assert np.isnan(y[[5, 9, 11]]).all()
    assert y[20, -1] == 0 and not np.isnan(np.delete(y, [5, 9, 11], axis=0)).any()
    np.testing.assert_array_equal(y[26], np.float32(1 / 20))
    lse = fastsoftmax.logsumexp(x, axis=-1)
    assert np.isnan(lse[5]) and lse[9] == np.inf and lse[11] == -np.inf


def _halves():
    out = [np.dtype(np.float16)]
    try:
        import ml_dtypes
        out.append(np.dtype(ml_dtypes.bfloat16))
    except Exception:  # optional, as in test_half.py
        pass
    return out


@pytest.mark.parametrize("half", _halves(), ids=str)
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("n", [1, 3, 16, 21, 33, 48, 100, 128, 300])
def test_half_rows_are_the_float32_result_rounded(isa, half, op, n):
    """A half row is computed in float32 on the widened values and rounded once: the same bits."""
    x = _rows(n, np.float32).astype(half)
    want = _f(op, x.astype(np.float32)).astype(half)
    got = _f(op, x)
    assert got.dtype == half
    np.testing.assert_array_equal(got.view(np.uint16), want.view(np.uint16))

"""logsumexp of short rows whose result is far from 0 (csrc/rows_dtype.h, lse_rows_short).

Rows of at most 2048 elements whose max m satisfies m >= 8 or m + log(n) <= -8 take softmax's exp
pass (the exps rounded, the max elements not); the others keep the log ops' pass with its unrounded
exps. What that promises, on every ISA and for float32 and float64: at most 0.5 + 0.11 ulp (of
max(|result|, |row max|)) on the far rows and the log ops' accuracy on the others, a row's result
that depends on the row alone when the two kinds share a batch, and the same bits for any thread
count. The rows' maxima are placed on both sides of both thresholds.
"""
import numpy as np
import pytest

import fastsoftmax
from fastsoftmax._reference import logsumexp as ref_logsumexp, logsumexp_scale, ulp_error

FAR = 8.0


def _mixed(n, dtype, seed=0):
    """Rows of n whose maxima lie on both sides of 8 and of -8 - log(n), and special rows."""
    rng = np.random.default_rng(seed + n)
    base = rng.standard_normal((40, n))
    base -= base.max(axis=1, keepdims=True)            # every row's max is 0 before the shift
    shifts = np.array([FAR, np.nextafter(FAR, 0), FAR + 1, FAR - 1, 30, 200, 0.0, 1.0, -1.0, 5.0,
                       -FAR - np.log(n), -FAR - np.log(n) + 0.5, -FAR - np.log(n) - 0.5, -50, -300, 100]
                      * 3)[:40]
    x = base * rng.choice([0.5, 3.0, 10.0], size=(40, 1)) + shifts[:, None]
    x = x.astype(dtype)
    x[16, n // 2] = np.nan
    x[17, 0] = np.inf
    x[18] = -np.inf
    x[19, -1] = -np.inf                                 # a far row with a -inf element: the clamp
    x[20] = x[20, 0]                                    # all equal: m + log(n)
    return x


def _far(x):
    m = x.max(axis=1).astype(np.float64)
    return np.isfinite(m) & ((m >= FAR) | (m + np.log(x.shape[1]) <= -FAR))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [49, 100, 1000, 2048])
def test_far_rows_within_bound(isa, dtype, n):
    x = _mixed(n, dtype)
    far = _far(x)
    assert far.sum() >= 10 and (~far).sum() >= 10    # both kinds in the batch
    y = fastsoftmax.logsumexp(x, axis=-1)
    ref = ref_logsumexp(x)
    finite = np.isfinite(ref)
    err_far = ulp_error(y[far & finite], ref[far & finite], logsumexp_scale(x[far & finite], ref[far & finite]))
    err_near = ulp_error(y[~far & finite], ref[~far & finite], logsumexp_scale(x[~far & finite], ref[~far & finite]))
    assert err_far <= 0.61, err_far
    assert err_near <= 0.55, err_near
    np.testing.assert_array_equal(np.isnan(y), np.isnan(ref))
    np.testing.assert_array_equal(y[~finite & ~np.isnan(ref)], ref[~finite & ~np.isnan(ref)])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [100, 1000])
def test_far_and_near_rows_do_not_see_each_other(isa, dtype, n):
    """Each row alone, the rows in another order, and two threads give the batch's bits."""
    x = _mixed(n, dtype)
    y = fastsoftmax.logsumexp(x, axis=-1)
    for i in range(x.shape[0]):
        np.testing.assert_array_equal(fastsoftmax.logsumexp(x[i:i + 1], axis=-1), y[i:i + 1], err_msg=f"row {i}")
    perm = np.random.default_rng(n).permutation(x.shape[0])
    np.testing.assert_array_equal(fastsoftmax.logsumexp(x[perm], axis=-1), y[perm])
    big = np.repeat(x, 20, axis=0)                      # enough rows for several tasks
    np.testing.assert_array_equal(fastsoftmax.logsumexp(big, axis=-1, threads=2), np.repeat(y, 20))
    np.testing.assert_array_equal(fastsoftmax.logsumexp(big, axis=-1, threads=1), np.repeat(y, 20))


def test_near_zero_results_keep_full_relative_accuracy(isa):
    """A dominant logit at 0 (result log1p(S') ~ 1e-13): the exact pass, correct to the result's own ulp."""
    rng = np.random.default_rng(3)
    x = rng.uniform(-60, -30, (64, 1000)).astype(np.float32)
    x[:, 0] = 0.0
    y = fastsoftmax.logsumexp(x, axis=-1)
    ref = ref_logsumexp(x)
    assert np.all(ref > 0) and np.all(ref < 1e-10)
    assert ulp_error(y, ref) <= 0.55                    # in ulp of the tiny result, not of the max

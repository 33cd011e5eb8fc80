"""High-precision softmax / log_softmax / logsumexp and the error measures of the report.

float32 data is evaluated in float64 and float64 data in np.longdouble (x87 80-bit on x86-64
Linux: 11 more significand bits). The shift x - max is kept exact as a pair (d, e) with Knuth's
two-sum, the maximum's own term is taken out of the sum so that log(sum) is computed as
log1p(rest), and so the reference is far below one ulp of the benchmarked dtype.
"""
import math

import numpy as np


def wide_dtype(dtype):
    return np.float64 if np.dtype(dtype) == np.float32 else np.longdouble


def _split_shift(x, axis):
    w = np.asarray(x).astype(wide_dtype(x.dtype))
    m = np.max(w, axis=axis, keepdims=True)
    d = w - m
    # two-sum of w and -m: d + e == w - m exactly
    back = d - w
    e = (w - (d - back)) + (-m - back)
    e = np.where(np.isfinite(e), e, 0)
    return w, m, d, e


def _terms(d, e):
    return np.exp(d) * (1 + e)


def _log_total(d, e, w, m, axis):
    """log(sum(exp(x - max))) via log1p of everything but the maximal entries."""
    top = w == m
    rest = np.where(top, 0, _terms(d, e))
    extra = np.sum(top, axis=axis, keepdims=True) - 1
    return np.log1p(np.sum(rest, axis=axis, keepdims=True) + extra)


def softmax(x, axis):
    _, _, d, e = _split_shift(x, axis)
    t = _terms(d, e)
    return t / np.sum(t, axis=axis, keepdims=True)


def log_softmax(x, axis):
    w, m, d, e = _split_shift(x, axis)
    return (d - _log_total(d, e, w, m, axis)) + e


def logsumexp(x, axis):
    w, m, d, e = _split_shift(x, axis)
    return np.squeeze(m + _log_total(d, e, w, m, axis), axis=axis)


REF = {"softmax": softmax, "log_softmax": log_softmax, "logsumexp": logsumexp}


def ulp_errors(y, ref, dtype):
    """|y - ref| in units of the ulp of the correctly rounded reference, over normal-range outputs.

    Returns (max, mean, share of outputs within 1 ulp, count of outputs compared).
    """
    dtype = np.dtype(dtype)
    ref = np.asarray(ref)
    y = np.asarray(y)
    rounded = np.abs(ref).astype(dtype)
    use = np.isfinite(ref) & (rounded >= np.finfo(dtype).tiny) & np.isfinite(rounded)
    if not np.any(use):
        return 0.0, 0.0, 1.0, 0
    unit = np.spacing(rounded[use]).astype(ref.dtype)
    err = np.abs(y[use].astype(ref.dtype) - ref[use]) / unit
    return float(np.max(err)), float(np.mean(err)), float(np.mean(err <= 1)), int(err.size)


def row_sum_error(op, y, axis, dtype):
    """max over rows of |sum(softmax) - 1| (log_softmax: |sum(exp(y)) - 1|), summed in the wide dtype."""
    w = np.asarray(y).astype(wide_dtype(dtype))
    if op == "log_softmax":
        w = np.exp(w)
    return float(np.max(np.abs(np.sum(w, axis=axis) - 1)))


# relative error limits of the sanity check made on every timed result:
# above STRICT a result is reported as inaccurate (and fastsoftmax fails the run), above GROSS it
# is wrong: not timed at all (a broken binding, an output never written, NaN)
STRICT = {"float32": 1e-4, "float64": 1e-12}
GROSS = {"float32": 5e-2, "float64": 1e-6}


def check(op, y, ref, dtype):
    """(max relative error, description) of a benchmarked result against ``ref``.

    The error of an output is |y - ref| / max(|ref|, 1) for log outputs and |y - ref| / |ref|
    for probabilities (i.e. relative, except that log outputs near 0 are measured absolutely).
    """
    y = np.asarray(y).astype(ref.dtype)
    if y.shape != ref.shape:
        return math.inf, f"shape {y.shape} != {ref.shape}"
    scale = np.maximum(np.abs(ref), np.finfo(dtype).tiny if op == "softmax" else 1)
    err = np.abs(y - ref) / scale
    err = np.where(np.isnan(y) & ~np.isnan(ref), np.inf, err)
    i = int(np.argmax(err))
    worst = float(err.flat[i])
    return worst, f"max relative error {worst:.1e} (got {float(y.flat[i]):.9g}, want {float(ref.flat[i]):.9g})"

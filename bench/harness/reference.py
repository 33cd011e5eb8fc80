"""High-precision softmax / log_softmax / logsumexp and the error measures of the report.

float32 data is evaluated in float64 and float64 data in np.longdouble (x87 80-bit on x86-64
Linux: 11 more significand bits). The shift x - max is kept exact as a pair (d, e) with Knuth's
two-sum, the maximum's own term is taken out of the sum so that log(sum) is computed as
log1p(rest), and so the reference is far below one ulp of the benchmarked dtype.
"""
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

    Returns (max, mean, count of outputs compared).
    """
    dtype = np.dtype(dtype)
    ref = np.asarray(ref)
    y = np.asarray(y)
    rounded = np.abs(ref).astype(dtype)
    use = np.isfinite(ref) & (rounded >= np.finfo(dtype).tiny) & np.isfinite(rounded)
    if not np.any(use):
        return 0.0, 0.0, 0
    unit = np.spacing(rounded[use]).astype(ref.dtype)
    err = np.abs(y[use].astype(ref.dtype) - ref[use]) / unit
    return float(np.max(err)), float(np.mean(err)), int(err.size)


def row_sum_error(op, y, axis, dtype):
    """max over rows of |sum(softmax) - 1| (log_softmax: |sum(exp(y)) - 1|), summed in the wide dtype."""
    w = np.asarray(y).astype(wide_dtype(dtype))
    if op == "log_softmax":
        w = np.exp(w)
    return float(np.max(np.abs(np.sum(w, axis=axis) - 1)))


def close_enough(op, y, x, axis):
    """A loose sanity check of a benchmarked result (catches wrong outputs, not ulp-level error)."""
    ref = REF[op](x, axis)
    y = np.asarray(y).astype(ref.dtype)
    if y.shape != ref.shape:
        return False, f"shape {y.shape} != {ref.shape}"
    rtol = 1e-4 if np.dtype(x.dtype) == np.float32 else 1e-10
    if op == "softmax":
        atol = 1e-3 * float(np.finfo(x.dtype).tiny)
    else:  # log outputs: errors scale with |max|
        atol = rtol * float(np.max(np.abs(np.asarray(x, dtype=np.float64))))
    bad = ~np.isclose(y, ref, rtol=rtol, atol=atol)
    if np.any(bad):
        i = np.argmax(bad)
        return False, f"{int(bad.sum())} of {bad.size} outputs off, e.g. got {y.flat[i]!r}, want {ref.flat[i]!r}"
    return True, ""

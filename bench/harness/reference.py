"""The benchmark's own checks on top of the shared high-precision reference (fastsoftmax._reference):
the row-sum error of the accuracy table and the sanity check made on every timed result.
"""
import math

import numpy as np


def row_sum_error(op, y, axis, dtype):
    """max over rows of |sum(softmax) - 1| (log_softmax: |sum(exp(y)) - 1|), summed in the wide dtype."""
    from fastsoftmax._reference import wide_dtype  # not at import: memory workers load only their candidate
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

"""High-precision references and ulp measurement, shared by the accuracy tests.

float32 data is checked against float64 computations, float64 data against long double ones
(80-bit on x86-64 Linux). x - m is carried exactly (TwoSum), the maxima are taken out of the sum
and log1p is used, so the reference itself is accurate to far below one ulp of the tested dtype.
"""
import numpy as np


def _wide(dtype):
    return np.float64 if np.dtype(dtype) == np.float32 else np.longdouble


def _shifted(x, axis):
    """(d, err, is_max) with x - max == d + err exactly, in the wide dtype."""
    w = x.astype(_wide(x.dtype))
    m = np.max(w, axis=axis, keepdims=True)
    with np.errstate(invalid="ignore"):
        d = w - m
        z = d - w
        err = (w - (d - z)) + (-m - z)
    err = np.where(np.isfinite(err), err, 0)
    return d, err, w == m, m


def _exp_shifted(d, err):
    return np.exp(d) * (1 + err)


def ref_softmax(x, axis=-1):
    d, err, _, _ = _shifted(x, axis)
    e = _exp_shifted(d, err)
    return e / np.sum(e, axis=axis, keepdims=True)


def _log_sum(d, err, is_max, axis):
    rest = np.where(is_max, 0, _exp_shifted(d, err))
    k = np.sum(is_max, axis=axis, keepdims=True)
    return np.log1p(np.sum(rest, axis=axis, keepdims=True) + (k - 1))


def ref_log_softmax(x, axis=-1):
    d, err, is_max, _ = _shifted(x, axis)
    return (d - _log_sum(d, err, is_max, axis)) + err


def ref_logsumexp(x, axis=-1):
    d, err, is_max, m = _shifted(x, axis)
    return np.squeeze(m + _log_sum(d, err, is_max, axis), axis=axis)


def ulp_error(y, ref, scale=None):
    """Max |y - ref| in ulp of the correctly rounded result (or of `scale`), over normal-range outputs.

    `scale` (same shape as ref) replaces |ref| as the magnitude whose ulp is the unit, e.g.
    max(|logsumexp|, |row max|).
    """
    dt = np.asarray(y).dtype
    info = np.finfo(dt)
    ref = np.asarray(ref)
    mag = np.abs(ref if scale is None else np.asarray(scale, dtype=ref.dtype))
    rounded = np.abs(mag).astype(dt)
    normal = np.isfinite(ref) & (rounded >= info.tiny)
    if not np.any(normal):
        return 0.0
    unit = np.spacing(rounded[normal]).astype(ref.dtype)
    err = np.abs(np.asarray(y, dtype=ref.dtype)[normal] - ref[normal]) / unit
    return float(np.max(err))

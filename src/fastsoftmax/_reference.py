"""High-precision softmax, log_softmax and logsumexp, and the ulp measures of the accuracy claims.

The one reference of the tests, the benchmark and the fuzz oracle. It ships with the package so
that the tests of an installed wheel can use it; NumPy only.

float32 data is evaluated in float64 and float64 data in np.longdouble. The shift x - max is
carried exactly as d + e (two-sum), each term is exp(d) * (1 + e), and the maximal terms are taken
out of the sum so that log(sum) is log1p(rest + k - 1): a dominant class of log_softmax is judged
against its true value, not against log(1 + tiny) == 0. With at least 11 more significand bits
than the data (float64 for float32; the x87 80-bit long double of x86-64 Linux or the IEEE quad
of aarch64 Linux for float64) the reference is far below one ulp of the data's dtype. Where long
double is plain double (Windows, macOS) the float64 reference is no better than the kernel it
judges: ``trusted(np.float64)`` is False there, and the mpmath golden values of
tests/data/golden.json hold the kernels to the same numbers on every platform.

Rows whose maximum is NaN or infinite take the NumPy fallback (the specification) evaluated in the
wide dtype: their values are NaN or infinite, and the error measures compare them exactly.

Two units of error, each kept with the bound that was set in it:

* ``ulp_error`` / ``ulp_stats``: the ulp of the correctly rounded result over outputs in the
  normal range -- the accuracy table of docs/accuracy.md, the benchmark's accuracy columns;
* ``ulp_errors``: every element, in the ulp of the exact value (subnormal outputs share the
  smallest one), +inf where the NaN / +-inf pattern differs -- the fuzz oracle's contract check.
"""
import numpy as np

from . import _fallback

#: The documented accuracy of the kernels on outputs in the normal range (docs/accuracy.md).
ULP_BOUND = 2.0

#: long double carries at least 64 significand bits (x87 80-bit, double-double, IEEE quad).
LONG_DOUBLE_IS_WIDE = np.finfo(np.longdouble).nmant >= 63


def wide_dtype(dtype):
    """The dtype the reference for ``dtype`` data is computed in: float64 for float32, else long double."""
    return np.dtype(np.float64) if np.dtype(dtype) == np.float32 else np.dtype(np.longdouble)


def trusted(dtype):
    """True when the reference for ``dtype`` data is far below one ulp of ``dtype``."""
    return np.dtype(dtype) == np.float32 or LONG_DOUBLE_IS_WIDE


def tolerance(dtype):
    """The bound the oracle holds kernel results to: ULP_BOUND, one more for float64 data where
    the reference is itself only double (no better reference to judge the kernel by)."""
    return ULP_BOUND if trusted(dtype) else ULP_BOUND + 1.0


def _split(x, axis):
    """(w, m, d, e, regular): x in the wide dtype, its max over ``axis`` (keepdims; 0 on rows whose
    max is not finite), and d + e == w - m exactly."""
    w = np.asarray(x).astype(wide_dtype(np.asarray(x).dtype))
    with np.errstate(all="ignore"):
        m = np.max(w, axis=axis, keepdims=True)
        regular = np.isfinite(m)
        m = np.where(regular, m, np.zeros((), w.dtype))
        d = w - m
        back = d - w
        e = (w - (d - back)) + (-m - back)
    return w, m, d, np.where(np.isfinite(e), e, 0), regular


def _terms(d, e):
    with np.errstate(all="ignore"):
        return np.exp(d) * (1 + e)


def _log_sum(w, m, d, e, axis):
    """log(sum(exp(x - max))) as log1p of every term but the maximal ones, keepdims."""
    top = w == m
    rest = np.sum(np.where(top, 0, _terms(d, e)), axis=axis, keepdims=True)
    with np.errstate(all="ignore"):
        return np.log1p(rest + (np.sum(top, axis=axis, keepdims=True) - 1))


def _special_rows(val, regular, spec):
    """val, with the rows whose max is not finite taken from spec() (the fallback, keepdims)."""
    return val if np.all(regular) else np.where(regular, val, spec())


def softmax(x, axis=-1):
    """softmax of ``x`` over ``axis`` (an int, a tuple or None), in the wide dtype."""
    w, m, d, e, regular = _split(x, axis)
    t = _terms(d, e)
    with np.errstate(all="ignore"):
        val = t / np.sum(t, axis=axis, keepdims=True)
    return _special_rows(val, regular, lambda: _fallback.softmax(w, axis))


def log_softmax(x, axis=-1):
    """log_softmax of ``x`` over ``axis`` (an int, a tuple or None), in the wide dtype."""
    w, m, d, e, regular = _split(x, axis)
    with np.errstate(all="ignore"):
        val = (d - _log_sum(w, m, d, e, axis)) + e
    return _special_rows(val, regular, lambda: _fallback.log_softmax(w, axis))


def logsumexp(x, axis=-1, keepdims=False):
    """logsumexp of ``x`` over ``axis`` (an int, a tuple or None), in the wide dtype."""
    w, m, d, e, regular = _split(x, axis)
    with np.errstate(all="ignore"):
        val = m + _log_sum(w, m, d, e, axis)
    val = _special_rows(val, regular, lambda: _fallback.logsumexp(w, axis, keepdims=True))
    return val if keepdims else np.squeeze(val, axis=axis)


def logsumexp_scale(x, lse, axis=-1, keepdims=False):
    """max(|lse|, |max of x|) over ``axis``: the magnitude whose ulp is logsumexp's unit of error
    (near a zero result the row max sets the absolute error that is attainable)."""
    w = np.asarray(x).astype(wide_dtype(np.asarray(x).dtype))
    return np.maximum(np.abs(np.asarray(lse, w.dtype)), np.abs(np.max(w, axis=axis, keepdims=keepdims)))


def weighted_logsumexp(x, b, axis=-1, keepdims=False):
    """(log|sum(b * exp(x))|, its sign, scale, cond) over ``axis`` with weights ``b`` (broadcast against x,
    both in the result dtype of scipy's rules, float32 or float64): the specification evaluated in the
    wide dtype. ``scale`` is the magnitude whose ulp is the unit of error: max(|result|, |max of x over
    the weighted elements|, cond), cond = sum|b exp(x)| / |sum b exp(x)| (the cancellation among
    weights of both signs, which multiplies every rounding of a term; 1 for weights of one sign)."""
    x, b = np.broadcast_arrays(np.asarray(x), np.asarray(b))
    wd = wide_dtype(np.result_type(x.dtype, b.dtype))
    w, bw = x.astype(wd), b.astype(wd)
    axes = _fallback.reduced_axes(axis, w.ndim) if axis is not None else None
    with np.errstate(all="ignore"):
        val, sgn = _fallback.logsumexp(w, axes, bw, keepdims=True, return_sign=True)
        absval = _fallback.logsumexp(w, axes, np.abs(bw), keepdims=True)
        m = np.max(np.where(bw == 0, -np.inf, w), axis=axes, keepdims=True)
        cond = np.exp(absval - val)
        scale = np.maximum(np.maximum(np.abs(val), np.abs(np.where(np.isfinite(m), m, 0))),
                           np.where(np.isfinite(cond), cond, 1))
    cond = np.where(np.isfinite(cond), cond, np.inf)
    if not keepdims:
        val, sgn, scale, cond = (np.squeeze(v, axis=axes) for v in (val, sgn, scale, cond))
    return val, sgn, scale, cond


#: The reference of each op, called as REF[op](x, axis).
REF = {"softmax": softmax, "log_softmax": log_softmax, "logsumexp": logsumexp}


# ---------------------------------------------------------------------------------------------
# Error in ulp of the correctly rounded result (the accuracy table, the benchmark)


def _rounded_errors(y, ref, scale, dtype):
    """|y - ref| in ulp of the correctly rounded |scale| (default |ref|), as a flat array over the
    outputs whose reference is finite and whose rounded magnitude is a finite normal number."""
    dtype = np.asarray(y).dtype if dtype is None else np.dtype(dtype)
    ref = np.asarray(ref)
    rounded = np.abs(ref if scale is None else np.asarray(scale, dtype=ref.dtype)).astype(dtype)
    use = np.isfinite(ref) & (rounded >= np.finfo(dtype).tiny) & np.isfinite(rounded)
    unit = np.spacing(rounded[use]).astype(ref.dtype)
    return np.abs(np.asarray(y).astype(ref.dtype)[use] - ref[use]) / unit


def ulp_error(y, ref, scale=None, dtype=None):
    """Max |y - ref| in ulp of the correctly rounded result (or of ``scale``), over normal-range outputs.

    ``dtype`` is the dtype whose ulp is the unit (default: y's); ``scale`` (ref's shape) replaces
    |ref| as the magnitude whose ulp is the unit, e.g. ``logsumexp_scale``. 0.0 when no output is
    in the normal range.
    """
    err = _rounded_errors(y, ref, scale, dtype)
    return float(np.max(err)) if err.size else 0.0


def ulp_stats(y, ref, dtype=None):
    """(max, mean, share within 1 ulp, count) of the errors ``ulp_error`` takes the max of."""
    err = _rounded_errors(y, ref, None, dtype)
    if not err.size:
        return 0.0, 0.0, 1.0, 0
    return float(np.max(err)), float(np.mean(err)), float(np.mean(err <= 1)), int(err.size)


# ---------------------------------------------------------------------------------------------
# Error of every element in ulp of the exact value (the fuzz oracle)


def ulp(v, dtype):
    """The unit in the last place, in ``dtype``, of values ``v`` (given in the wider dtype)."""
    fi = np.finfo(dtype)
    w = wide_dtype(dtype)
    v = np.abs(np.asarray(v, dtype=w))
    _, e = np.frexp(np.where(np.isfinite(v), v, np.zeros((), w)))
    e = np.maximum(e - 1, fi.minexp)          # floor(log2 |v|), subnormals share the smallest ulp
    return np.ldexp(np.ones((), w), (e - fi.nmant).astype(np.int32))


def ulp_errors(got, ref, scale, dtype, subnormal_abs=None):
    """|got - ref| in ulp(scale), element by element; 0 where got and ref have the same NaN or
    +-inf, +inf where one has a NaN or +-inf that the other has not.

    The documented accuracy covers outputs in the normal range (docs/accuracy.md). Where ``scale``
    is below the smallest normal number and ``subnormal_abs`` is given, an absolute error up to
    ``subnormal_abs`` counts as 0 ulp. (The fuzz oracle passes the smallest normal number, a loose
    allowance; the documented 2 units of 2^-149 for float32 is checked by tests/test_f32_lanes.py.)
    """
    w = wide_dtype(dtype)
    got = np.asarray(got)
    gw = got.astype(w)
    with np.errstate(all="ignore"):
        ref_r = np.asarray(ref).astype(dtype)      # the correctly rounded result
    special = ~np.isfinite(ref_r) | ~np.isfinite(got)
    same_special = (np.isnan(ref_r) & np.isnan(got)) | (ref_r == got)
    with np.errstate(all="ignore"):
        diff = np.abs(gw - np.asarray(ref, dtype=w))
        err = diff / ulp(scale, dtype)
    if subnormal_abs is not None:
        tiny = np.abs(np.asarray(scale, dtype=w)) < np.finfo(dtype).smallest_normal
        err = np.where(tiny & (diff <= subnormal_abs), 0.0, err)
    return np.where(special, np.where(same_special, 0.0, np.inf), err)

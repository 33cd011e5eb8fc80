"""NumPy implementations of softmax, log_softmax and logsumexp: the executable specification.

Same signatures and semantics as the public functions (and as scipy.special 1.17, with the
deviations listed in docs/semantics.md: integer inputs are converted to float64 before any arithmetic,
and no floating-point RuntimeWarning is emitted). The fast path is tested against these.
"""
import numpy as np

from ._plan import check_out, check_threads, is_bfloat16, reduced_axes


def is_half(dtype):
    """float16 or ml_dtypes' bfloat16: computed in float32 and rounded once to the type (both routes)."""
    return (dtype.kind == "f" and dtype.itemsize == 2) or is_bfloat16(dtype)


def elementwise_dtype(dtype, name):
    """The result dtype of softmax / log_softmax for input of `dtype` (TypeError if there is none)."""
    kind = dtype.kind
    if kind == "b":
        raise TypeError(f"{name} does not accept boolean arrays (as scipy.special); convert to a float dtype first")
    if kind in "iu":
        return np.dtype(np.float64)
    if kind not in "fc" and not is_bfloat16(dtype):
        raise TypeError(f"{name} expects a real or complex numeric array, got dtype {dtype}")
    return dtype.newbyteorder("=")


def _as_input(x, name):
    x = np.asarray(x)
    return x.astype(elementwise_dtype(x.dtype, name), copy=False)


def _prepare(x, axis, out, threads, name):
    check_threads(threads)
    x = _as_input(x, name)
    if x.ndim > 0:
        axis = reduced_axes(axis, x.ndim)
    elif axis is not None:
        reduced_axes(axis, 1)  # a 0-d array takes axis 0 or -1, as in np.max and scipy; others: AxisError
    if out is not None:
        check_out(out, x.dtype.newbyteorder("="), x)
    return x, axis


def _in_float32(fn, x, axis, out):
    """fn of a half-type x computed in float32, the result rounded once to x's type (into out if given)."""
    y = fn(x.astype(np.float32), axis)
    with np.errstate(over="ignore"):  # a float32 result beyond the half's range rounds to inf
        if out is None:
            return y.astype(x.dtype)
        np.copyto(out, y, casting="unsafe")
    return out


def softmax(x, axis=None, *, out=None, threads=None):
    """softmax(x) = exp(x - max) / sum(exp(x - max)) along ``axis``; see fastsoftmax.softmax."""
    x, axis = _prepare(x, axis, out, threads, "softmax")
    if is_half(x.dtype):
        return _in_float32(softmax, x, axis, out)
    with np.errstate(all="ignore"):
        e = np.exp(x - np.max(x, axis=axis, keepdims=True))
        s = np.sum(e, axis=axis, keepdims=True)
        if out is None:
            return e / s
        return np.divide(e, s, out=out)


def log_softmax(x, axis=None, *, out=None, threads=None):
    """log_softmax(x) = x - max - log(sum(exp(x - max))) along ``axis``; see fastsoftmax.log_softmax."""
    x, axis = _prepare(x, axis, out, threads, "log_softmax")
    if is_half(x.dtype):
        return _in_float32(_log_softmax_of_halves, x, axis, out)
    with np.errstate(all="ignore"):
        m = np.max(x, axis=axis, keepdims=True)
        m = np.where(np.isfinite(m), m, np.zeros((), x.dtype))  # scipy: a non-finite max shifts by 0
        shifted = x - m
        log_s = np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))
        if out is None:
            return shifted - log_s
        return np.subtract(shifted, log_s, out=out)


def _log_softmax_of_halves(w, axis):
    """log_softmax of a half type's data ``w`` widened to float32 (``axis`` normalised): the log of
    the sum in logsumexp's careful form, log(k) + log1p(rest / k), on slices with a finite max.

    A half type holds a dominant element's log_softmax, -log1p(tiny), to its own relative precision
    (bfloat16 down to 1e-40; the kernel computes it so), where float32 log(sum) is log(1 + tiny):
    bfloat16 log_softmax([0, -20])[0], -2e-9, came out 0, and this twin differed from the kernel by
    up to 63 ulp of bfloat16 on rows spread over 100, 26 on a logit 14 above the rest (float16: 2).
    Slices with a NaN or infinite max keep scipy's form.
    """
    with np.errstate(all="ignore"):
        a_max, k, rest = _lse_parts(w, None, axis)
        careful = (w - a_max) - (np.log(k) + np.log1p(rest / k))
    return np.where(np.isfinite(a_max), careful, log_softmax(w, axis))[()]


def lse_dtype(a_dtype, b_dtype=None):
    """The result dtype of logsumexp for data of ``a_dtype`` and weights of ``b_dtype`` (or None)."""
    if a_dtype.kind not in "biufc" and not is_bfloat16(a_dtype):
        raise TypeError(f"logsumexp expects a real or complex numeric array, got dtype {a_dtype}")
    if b_dtype is not None and b_dtype.kind not in "biufc" and not is_bfloat16(b_dtype):
        raise TypeError(f"logsumexp: b must be a real or complex numeric array, got dtype {b_dtype}")
    dt = np.result_type(a_dtype, b_dtype) if b_dtype is not None else a_dtype
    if dt.kind in "biu":
        return np.dtype(np.float64)
    return dt.newbyteorder("=")


def logsumexp(a, axis=None, b=None, keepdims=False, return_sign=False, *, threads=None):
    """log(sum(b * exp(a))) along ``axis``, without overflow; see fastsoftmax.logsumexp."""
    check_threads(threads)
    a = np.asarray(a)
    if b is not None:
        b = np.asarray(b)
    dt = lse_dtype(a.dtype, None if b is None else b.dtype)
    if is_half(dt):  # in float32, rounded once to the half type
        res = logsumexp(a.astype(np.float32), axis, None if b is None else b.astype(np.float32), keepdims,
                        return_sign)
        with np.errstate(over="ignore"):
            if return_sign:
                return tuple(np.asarray(r).astype(dt)[()] for r in res)
            return np.asarray(res).astype(dt)[()]
    a = a.astype(dt, copy=False)
    if b is not None:
        b = b.astype(dt, copy=False)
        a, b = np.broadcast_arrays(a, b)
    a = np.atleast_1d(a)
    b = np.atleast_1d(b) if b is not None else None
    axes = reduced_axes(axis, a.ndim)
    with np.errstate(all="ignore"):
        if a.size == 0:
            shape = np.array(a.shape)
            shape[np.array(axes, dtype=np.intp)] = 1
            out = np.full(tuple(shape), -np.inf, dtype=dt)
            sgn = np.sign(out)
        else:
            a_max, k, rest = _lse_parts(a, b, axes)
            direct = np.sum(np.exp(a) if b is None else b * np.exp(a), axis=axes, keepdims=True)
            out, sgn = lse_combine(a_max, k, rest, direct, return_sign)
        if dt.kind == "c":
            if return_sign:
                sgn = sgn.real + _wrap_angle(sgn.imag) * 1j
            else:
                out = out.real + _wrap_angle(out.imag) * 1j
    if not keepdims:
        out = np.squeeze(out, axis=axes)
        sgn = np.squeeze(sgn, axis=axes) if return_sign else sgn
    out = out[()] if out.ndim == 0 else out
    if return_sign:
        sgn = sgn[()] if sgn.ndim == 0 else sgn
        return out, sgn
    return out


def _wrap_angle(t):
    """Map an angle to (-pi, pi], keeping small angles untouched (full relative precision)."""
    return np.where(np.abs(t) < np.pi, t, -((np.pi - t) % (2 * np.pi) - np.pi))


def _lse_parts(a, b, axes):
    """(max, k, rest) of every slice: the maximum, the (weighted) count k of the elements equal to
    it, and the weighted sum of exp(a - max) over the others."""
    if b is not None:
        a = np.where(b == 0, -np.inf, a)  # a zero weight removes its element, even if inf or nan
    if a.dtype.kind == "c":
        real = a.real
        is_max = real == np.max(real, axis=axes, keepdims=True)
        # Pick one element among those with the largest real part: the last one in C order.
        idx = np.where(is_max, np.arange(a.size).reshape(a.shape), -1)
        is_max = idx == np.max(idx, axis=axes, keepdims=True)
        a_max = np.sum(np.where(is_max, a, 0), axis=axes, keepdims=True, dtype=a.dtype)
    else:
        a_max = np.max(a, axis=axes, keepdims=True)
        is_max = a == a_max
    weight = is_max.astype(a.dtype) if b is None else b * is_max
    k = np.sum(weight, axis=axes, keepdims=True, dtype=a.dtype)
    rest = np.where(is_max, -np.inf, a)
    terms = np.exp(rest - a_max) if b is None else b * np.exp(rest - a_max)
    return a_max, k, np.sum(terms, axis=axes, keepdims=True, dtype=terms.dtype)


def lse_combine(a_max, k, rest, direct, return_sign, dtype=None):
    """(result, sign) of logsumexp from a slice's (max, k, rest) and its direct sum(b * exp(a)).

    The careful form log1p(rest/k) + log(k) + max keeps full relative precision when one element
    dominates; where it is not finite, the direct form gives the IEEE answer (inf, -inf, nan).
    ``dtype``: the result's dtype when the parts are wider (fastsoftmax.dask's partials).
    """
    s = np.where(rest == 0, rest, rest / k)
    sgn = np.sign(s + 1) * np.sign(k)
    if s.dtype.kind == "f":
        s = np.where(s < -1, -s - 2, s)
        k = np.abs(k)
    else:
        sgn = sgn * np.exp(a_max.imag * 1j)
    out = np.log1p(s) + np.log(k) + a_max
    if return_sign:
        out = out.real
    elif out.dtype.kind == "f":
        out = np.where(sgn < 0, np.nan, out)
    if dtype is not None:
        out, sgn = out.astype(dtype), sgn.astype(dtype)
    finite = np.isfinite(out)
    if return_sign:
        sgn = np.where(finite, sgn, np.sign(direct))
        direct = np.abs(direct)
    out = np.where(finite, out, np.log(direct))
    if dtype is not None:
        out, sgn = out.astype(dtype), sgn.astype(dtype)
    return out, sgn


def unweighted_sign(res):
    """The sign logsumexp returns without weights: the sum is positive, so 1; 0 where the result
    is -inf (log 0); nan where it is nan."""
    return np.where(np.isnan(res), np.nan, np.where(res == -np.inf, 0.0, 1.0)).astype(res.dtype)


def shape_lse_result(out, axes, keepdims, return_sign):
    """scipy's result of logsumexp (without b) from its values over the kept axes: the reduced
    ``axes`` put back with keepdims, a NumPy scalar for a 0-d result, the sign with return_sign."""
    if keepdims:
        out = np.expand_dims(out, axes)
    if return_sign:
        sgn = unweighted_sign(out)
        return (out[()] if out.ndim == 0 else out), (sgn[()] if sgn.ndim == 0 else sgn)
    return out[()] if out.ndim == 0 else out


# ---- selection: the specification of topk_softmax and sample (rows along the last axis) ----

def topk_softmax_rows(z, k):
    """(probs, indices) of the k largest of each row of the 2-D array z (no NaN, no +inf, no all -inf
    row): descending, ties by the lower index, probs = exp(z - logsumexp(z)) of the row."""
    idx = np.argsort(-z, axis=-1, kind="stable")[:, :k]  # stable: equal values keep index order
    wide = np.longdouble if z.dtype.itemsize <= 8 else z.dtype
    zw = z.astype(wide)
    m = zw.max(axis=-1, keepdims=True)
    log_s = np.log(np.exp(zw - m).sum(axis=-1, keepdims=True))  # kept apart from m: m + log_s may absorb it
    with np.errstate(under="ignore"):
        probs = np.exp((np.take_along_axis(zw, idx, -1) - m) - log_s).astype(z.dtype)
    return probs, idx.astype(np.int64)


def _cut(values, weights, target):
    """The largest t with sum(weights[values >= t]) >= target (the smallest value when none reaches it)."""
    vals, inv = np.unique(values, return_inverse=True)
    mass = np.cumsum(np.bincount(inv.ravel(), weights=weights)[::-1])  # mass of values >= vals[::-1][j]
    hit = np.nonzero(mass >= target)[0]
    return vals[::-1][hit[0]] if hit.size else vals[0]


def sample_rows(p, top_k, top_p, min_p, u):
    """One index per row of the probabilities p (2-D), drawn with u (one uniform per row) from the
    filtered distribution: top_k (0: off), then top_p (>= 1: off) on what top_k kept, then min_p
    (<= 0: off). Each filter keeps p >= a threshold (ties at a cut are kept); the draw takes the first
    index, in index order, where the running kept mass exceeds u times the kept mass."""
    rows, n = p.shape
    out = np.empty(rows, dtype=np.int64)
    for r in range(rows):
        q = p[r]
        t = q.min()
        if 0 < top_k < n:
            t = np.sort(q)[::-1][top_k - 1]
        if top_p < 1.0:
            kept = q[q >= t]
            t = _cut(kept, kept.astype(np.float64), top_p * kept.astype(np.float64).sum())
        keep = q >= t
        if min_p > 0.0:
            keep &= q.astype(np.float64) >= min_p * float(q.max())
        w = np.where(keep, q, 0).astype(np.float64)
        cum = np.cumsum(w)
        i = int(np.searchsorted(cum, u[r] * cum[-1], side="right"))  # cum grows only where w > 0
        if i >= n:  # u * mass rounded up to the mass: the last kept element
            i = int(np.nonzero(w > 0)[0][-1])
        out[r] = i
    return out

"""logsumexp with weights (b=) on the kernel: the layout and the finish around the kernel call
(_core.logsumexp: ``finish(lay, _weighted_rows(lay, ...), ...)`` where ``lay = layout(a, axis, b)``).

The kernel (csrc/rows_dtype.h, lse_weighted) takes float32 or float64 data and weights of one dtype
(scipy's rules: ``np.result_type(a, b)``, integers and booleans as float64) as one C-ordered
(rows, n) pair with the reduced axes last: C-contiguous data and weights of one shape reduced over
the last axis or all axes are read in place, anything else (other layouts, a broadcast b, mixed
dtypes) is copied once. Per row it forms the fallback's _lse_parts and lse_combine's result; the
rows it leaves (``redo``: a non-finite max or result, weights that cancel at the max, sums beyond the
dtype's range, and without return_sign a negative sum, whose value is the direct sum's logarithm)
are recomputed here by the fallback, so every edge case is the specification's own.
"""
import numpy as np

from . import _fallback
from ._plan import reduced_axes

_KERNEL_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def layout(a, axis, b):
    """(a2, b2, kept_shape, axes, out, sgn, redo): the kernel's (rows, n) pair and its per-row outputs,
    or None when the call is not a kernel case (other dtypes, 0-d, empty, invalid arguments: the
    fallback raises what is raised)."""
    a = np.asarray(a)
    b = np.asarray(b)
    dt = a.dtype
    if not (dt is b.dtype and dt in _KERNEL_DTYPES):
        if a.dtype.kind not in "biuf" or b.dtype.kind not in "biuf":
            return None
        dt = _fallback.lse_dtype(a.dtype, b.dtype)
        if dt not in _KERNEL_DTYPES:
            return None
        dt = np.dtype(dt.type)
    nd = max(a.ndim, b.ndim)
    if nd == 0:
        return None
    if (a.shape == b.shape and (axis is None or (type(axis) is int and (axis == -1 or axis == nd - 1)))
            and a.dtype is dt and b.dtype is dt and a.flags.c_contiguous and b.flags.c_contiguous
            and a.flags.aligned and b.flags.aligned and a.size):
        if axis is None:
            return _with_outputs(a.reshape(1, -1), b.reshape(1, -1), (), tuple(range(nd)))
        return _with_outputs(a.reshape(-1, a.shape[-1]), b.reshape(-1, a.shape[-1]), a.shape[:-1], (nd - 1,))
    try:
        shape = np.broadcast_shapes(a.shape, b.shape)
        axes = reduced_axes(axis, nd)
    except (ValueError, TypeError, IndexError):
        return None
    if 0 in shape:
        return None
    kept = tuple(d for d in range(nd) if d not in axes)
    kept_shape = tuple(shape[d] for d in kept)
    order = kept + axes
    rows = int(np.prod(kept_shape, dtype=np.int64))
    a2 = np.require(np.broadcast_to(a, shape).transpose(order), dt, ["C", "A"]).reshape(rows, -1)
    b2 = np.require(np.broadcast_to(b, shape).transpose(order), dt, ["C", "A"]).reshape(rows, -1)
    return _with_outputs(a2, b2, kept_shape, axes)


def _with_outputs(a2, b2, kept_shape, axes):
    rows = a2.shape[0]
    return a2, b2, kept_shape, axes, np.empty(rows, a2.dtype), np.empty(rows, a2.dtype), np.empty(rows, np.uint8)


def finish(lay, nredo, keepdims, return_sign):
    """scipy's result from the kernel's outputs in the layout ``lay``: the ``nredo`` rows marked redo
    recomputed by the fallback, then the kept shape, keepdims and return_sign."""
    a2, b2, kept_shape, axes, out, sgn, redo = lay
    if nredo:
        idx = np.flatnonzero(redo)
        fb = _fallback.logsumexp(a2[idx], -1, b2[idx], False, return_sign)
        if return_sign:
            out[idx], sgn[idx] = fb
        else:
            out[idx] = fb
    out = out.reshape(kept_shape)
    if keepdims:
        out = np.expand_dims(out, axes)
    if not return_sign:
        return out[()] if out.ndim == 0 else out
    sgn = sgn.reshape(out.shape)
    return (out[()] if out.ndim == 0 else out), (sgn[()] if sgn.ndim == 0 else sgn)

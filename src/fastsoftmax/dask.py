"""softmax, log_softmax and logsumexp for Dask arrays, lazily, without rechunking the reduced axes.

Install with ``pip install 'fastsoftmax[dask]'``.

>>> import dask.array as da
>>> import fastsoftmax.dask as fsd
>>> x = da.random.default_rng(0).standard_normal((256, 65_536), chunks=(128, 16_384))
>>> y = fsd.softmax(x, axis=1)           # a dask array, same chunks, nothing computed yet
>>> y.sum(axis=1).compute()[:3]          # doctest: +SKIP
array([1., 1., 1.])

The results are those of ``fastsoftmax.softmax`` / ``log_softmax`` / ``logsumexp`` (and of
``scipy.special``) on the computed array: same dtypes, same special values, same ``keepdims``, ``b``
and ``return_sign`` handling for logsumexp.

How it works
------------
* The reduced axes each lie in one chunk: the fastsoftmax kernel runs on every block
  (``map_blocks``); nothing else is added to the graph.
* A reduced axis spans several chunks (it is never rechunked): each block is summarised, per
  slice, by a partial ``(m, u)``: its maximum ``m`` and ``u = s - 1`` for ``s = sum(exp(x - m))``,
  from one fastsoftmax kernel call on the block. Partials are merged in a tree
  (``dask.array.reduction``) with the online rule
  ``(m1, s1) + (m2, s2) = (M, s1 exp(m1 - M) + s2 exp(m2 - M))``, written for ``u`` so that
  ``log(s) = log1p(u)`` keeps full relative precision when one element dominates. Every block is
  then normalised on its own, from the kernel's result on that block: softmax as
  ``softmax(block) * s_block exp(m_block - M) / S`` and log_softmax as
  ``log_softmax(block) + (m_block - M) + (log s_block - log S)`` (two terms <= 0); logsumexp is
  ``M + log1p(U)``. Partials are float64 (long double for long double input); results keep the
  input dtype. Special values (NaN, +-inf, slices or whole blocks of -inf) give exactly the NumPy
  results.
* logsumexp with weights ``b`` has NumPy partials (as fastsoftmax uses NumPy for ``b``): the
  maximum, the weight at it, the weighted rest and the direct ``sum(b * exp(a))``.

Inside a Dask task the kernels use one thread unless ``threads`` says otherwise: Dask already
runs one task per worker thread.
"""
import functools
import math

import numpy as np

try:
    import dask.array as da
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "fastsoftmax.dask needs Dask: pip install 'fastsoftmax[dask]'"
    ) from exc

from . import log_softmax as _np_log_softmax
from . import logsumexp as _np_logsumexp
from . import softmax as _np_softmax
from ._fallback import elementwise_dtype, lse_combine, lse_dtype, unweighted_sign
from ._plan import check_threads, plan, reduced_axes

__all__ = ["softmax", "log_softmax", "logsumexp"]

_EMPTY_REDUCTION = "zero-size array to reduction operation maximum which has no identity"


# ---------------------------------------------------------------------------------------------
# argument handling
# ---------------------------------------------------------------------------------------------

def _task_threads(threads):
    """Threads for the kernels inside one task: 1 by default (Dask parallelises over blocks)."""
    check_threads(threads)
    return 1 if threads is None else int(threads)


def _as_dask(x):
    return x if isinstance(x, da.Array) else da.asarray(x)


def _work_dtype(dtype):
    """dtype of the partials: float64, or long double for long double data."""
    return np.dtype(np.longdouble) if dtype == np.longdouble else np.dtype(np.float64)


def _partial_dtype(dtype):
    """Partials (m, u) of data of ``dtype``, in the work dtype: the slice maximum m and
    u = sum(exp(x - m)) - 1, which keeps its relative precision when one element dominates."""
    work = _work_dtype(dtype)
    return np.dtype([("m", work), ("u", work)])


def _weighted_partial_dtype(dtype):
    """Partials (m, k, r, d) for logsumexp with weights: m, k, r in the work dtype, d in ``dtype``."""
    work = _work_dtype(dtype)
    return np.dtype([("m", work), ("k", work), ("r", work), ("d", dtype)])


def _check_chunks(x, axes, name):
    for ax in axes:
        if any(math.isnan(c) for c in x.chunks[ax]):
            raise ValueError(
                f"{name}: the chunk sizes along reduced axis {ax} are unknown; "
                "call x.compute_chunk_sizes() first")


def _single_chunk(x, axes):
    return all(x.numblocks[ax] == 1 for ax in axes)


def _no_complex(dt, name):
    if dt.kind == "c":
        raise NotImplementedError(
            f"{name} of complex data along an axis split into several chunks is not supported; "
            "rechunk the reduced axes into one chunk (x.rechunk({axis: -1}))")


def _meta(ndim, dtype):
    return np.empty((0,) * ndim, dtype=dtype)


# ---------------------------------------------------------------------------------------------
# block functions (run on the workers)
# ---------------------------------------------------------------------------------------------

def _two_diff(a, b):
    """(d, e) with a - b == d + e exactly for finite a, b; e is 0 where not finite."""
    d = a - b
    z = d - a
    e = (a - (d - z)) - (b + z)
    return d, np.where(np.isfinite(e), e, 0)


def _exp_diff(a, b):
    """exp(a - b) with the rounding error of a - b carried (relative error about 1 ulp)."""
    d, e = _two_diff(a, b)
    return np.exp(d) * (1 + e)


def _kernel_layout(x, axis):
    """(x2, axis2, perm): x2 a layout the kernels take on their fast path, ``_undo(y, perm)`` undoes it.

    Where the kernel would copy the block (the plan's copy route: a strided view such as a block of
    ``da.from_array``, or reduced axes with a kept axis between them), the copy is made here, with
    the plan's axis order (x2 = x.transpose(perm), kept axes first), so that the NumPy steps around
    the kernel call see the same layout.
    """
    p = plan("softmax", x, axis)
    if p.route_name != "copy":
        return x, axis, None
    perm = p.order
    nd, nred = len(perm), len(p.axes)
    return p.band_copy(), tuple(range(nd - nred, nd)), (None if perm == tuple(range(nd)) else perm)


def _undo(y, perm):
    """y (computed on x.transpose(perm)) with the axes of x."""
    return y if perm is None else y.transpose(np.argsort(perm))


def _empty_partial(shape, pdt):
    """Partials of slices with no element: max -inf, sum 0."""
    out = np.zeros(shape, dtype=pdt)
    out["m"] = -np.inf
    if "u" in pdt.names:
        out["u"] = -1
    return out


def _kept_shape(shape, axis):
    return tuple(1 if i in axis else n for i, n in enumerate(shape))


def _chunk_partial(x, axis, keepdims=True, op="softmax", threads=1):
    """(m, u) of every slice of the block, u = s - 1 for s = sum(exp(x - m)), from one kernel call.

    The kernel call gives s in the form the final step needs precise: for softmax s = 1 / max(p),
    with the relative precision of p (normalising divides by s); for log_softmax and logsumexp
    log(s) = -max(log_softmax(x)), with the relative precision of log_softmax, tiny values
    included (u = expm1(log s) keeps them). (logsumexp(x) - m would lose log(s) to the rounding
    of a large m.)
    """
    pdt = _partial_dtype(x.dtype)
    work = pdt["m"]
    if x.size == 0:
        return _empty_partial(_kept_shape(x.shape, axis), pdt)
    x, axis, perm = _kernel_layout(x, axis)
    out = np.empty(_kept_shape(x.shape, axis), dtype=pdt)
    with np.errstate(all="ignore"):
        m = np.max(x, axis=axis, keepdims=True).astype(work)
        if op == "softmax":
            p = _np_softmax(x, axis=axis, threads=threads)
            u = 1 / np.max(p, axis=axis, keepdims=True).astype(work) - 1
        else:
            y = _np_log_softmax(x, axis=axis, threads=threads)
            u = np.expm1(-np.max(y, axis=axis, keepdims=True).astype(work))
        out["m"] = m
        out["u"] = np.where(np.isfinite(m), u, -1)   # a slice of -inf adds nothing
    return _undo(out, perm)


def _merge(parts, axis, keepdims=True):
    """Merge (m, u) partials along ``axis`` with the online rule: the tree's combine step.

    s = sum over parts of s_i exp(m_i - M), written for u = s - 1: the parts whose maximum is M
    add u_i (and 1 for each after the first), the others (1 + u_i) exp(m_i - M).
    """
    if parts.size == 0:
        return _empty_partial(_kept_shape(parts.shape, axis), parts.dtype)
    out = np.empty(_kept_shape(parts.shape, axis), dtype=parts.dtype)
    m, u = parts["m"], parts["u"]
    with np.errstate(all="ignore"):
        big = np.max(m, axis=axis, keepdims=True)
        same = m == big
        n_same = np.sum(same, axis=axis, keepdims=True, dtype=u.dtype)
        terms = np.where(same, u, (1 + u) * _exp_diff(m, big))
        out["m"] = big
        out["u"] = np.sum(terms, axis=axis, keepdims=True) + (n_same - 1)
    return out


def _chunk_partial_b(a, b=None, axis=None, keepdims=True):
    """(m, k, r, d) of every slice for weights b, as the NumPy logsumexp computes them.

    m is the maximum of the elements with b != 0, k the sum of the weights at m, r the weighted
    sum of exp(a - m) over the others (all in the work dtype), d the direct sum(b * exp(a))
    in the data dtype (used where the careful result is not finite, as NumPy does).
    """
    pdt = _weighted_partial_dtype(a.dtype)
    work = pdt["m"]
    out = _empty_partial(_kept_shape(a.shape, axis), pdt)
    if a.size == 0:
        return out
    with np.errstate(all="ignore"):
        out["d"] = np.sum(b * np.exp(a), axis=axis, keepdims=True, dtype=a.dtype)
        aw = a.astype(work, copy=False)
        bw = b.astype(work, copy=False)
        aw = np.where(bw == 0, -np.inf, aw)   # a zero weight removes its element, even if inf or nan
        m = np.max(aw, axis=axis, keepdims=True)
        is_max = aw == m
        out["m"] = m
        out["k"] = np.sum(bw * is_max, axis=axis, keepdims=True, dtype=work)
        rest = np.where(is_max, -np.inf, aw)
        out["r"] = np.sum(bw * np.exp(rest - m), axis=axis, keepdims=True, dtype=work)
    return out


def _merge_b(parts, axis, keepdims=True):
    """Merge (m, k, r, d) partials: k adds where m is the maximum, r takes the rest scaled."""
    if parts.size == 0:
        return _empty_partial(_kept_shape(parts.shape, axis), parts.dtype)
    out = np.empty(_kept_shape(parts.shape, axis), dtype=parts.dtype)
    m, k, r = parts["m"], parts["k"], parts["r"]
    with np.errstate(all="ignore"):
        big = np.max(m, axis=axis, keepdims=True)
        same = m == big
        scaled = (k + r) * _exp_diff(m, big)
        out["m"] = big
        out["k"] = np.sum(np.where(same, k, 0), axis=axis, keepdims=True)
        out["r"] = np.sum(np.where(same, r, scaled), axis=axis, keepdims=True)
        out["d"] = np.sum(parts["d"], axis=axis, keepdims=True)
    return out


def _squeeze(arr, axis, keepdims):
    return arr if keepdims else np.squeeze(arr, axis=axis)


def _lse_aggregate(parts, axis, keepdims=False, out_dtype=None, weighted=False, return_sign=False):
    """Final tree step of logsumexp: merged partials -> result (and sign), in ``out_dtype``."""
    with np.errstate(all="ignore"):
        if not weighted:
            t = _merge(parts, axis)
            m, u = t["m"], t["u"]
            res = np.where(np.isfinite(m), m + np.log1p(u), m).astype(out_dtype)
            sgn = unweighted_sign(res)
        else:
            t = _merge_b(parts, axis)
            res, sgn = lse_combine(t["m"], t["k"], t["r"], t["d"], return_sign, out_dtype)
    res = _squeeze(res, axis, keepdims)
    if not return_sign:
        return res
    sgn = _squeeze(sgn, axis, keepdims)
    both = np.empty(res.shape, dtype=[("res", out_dtype), ("sgn", out_dtype)])
    both["res"] = res
    both["sgn"] = sgn
    return both


def _normalise(x, t, op, axis, threads):
    """Block of softmax / log_softmax from the block itself and the merged partials ``t``."""
    if x.size == 0:
        return np.empty(x.shape, dtype=x.dtype)
    x, axis, perm = _kernel_layout(x, axis)
    if perm is not None:
        t = t.transpose(perm)
    work = t.dtype["m"]
    m, u = t["m"], t["u"]
    with np.errstate(all="ignore"):
        m_blk = np.max(x, axis=axis, keepdims=True).astype(work)
        total_ok = np.isfinite(m)
        if op == "softmax":
            # softmax(x) = softmax(block) * s_block exp(m_block - M) / s, with s_block = 1 / max(softmax(block))
            y = _np_softmax(x, axis=axis, threads=threads)
            p_max = np.max(y, axis=axis, keepdims=True).astype(work)
            factor = _exp_diff(m_blk, m) / (p_max * (1 + u))
            # In the data dtype: a float32 array times a float64 column would go through a
            # buffered cast at many times the cost, for less than half an ulp.
            y *= np.where(total_ok, factor, np.nan).astype(y.dtype)
            # A block whose slice is all -inf holds zeros when the whole slice has a finite max.
            zero = total_ok & (m_blk == -np.inf)
            if zero.any():
                np.copyto(y, 0, where=zero)
        else:
            # log_softmax(x) = log_softmax(block) + (m_block - M) + (log s_block - log s), both terms <= 0
            y = _np_log_softmax(x, axis=axis, threads=threads)
            log_s_blk = -np.max(y, axis=axis, keepdims=True).astype(work)
            corr = (m_blk - m) + (log_s_blk - np.log1p(u))
            y += corr.astype(y.dtype)
            # NumPy semantics where the block max or the slice max is not finite: x - shift - log(sum)
            # with shift 0, i.e. x - M for M = +inf, -inf or nan, and x - 0 = -inf for a -inf block.
            bad = ~(total_ok & np.isfinite(m_blk))
            if bad.any():
                np.subtract(x, np.where(total_ok, 0, m), out=y, where=bad, casting="unsafe")
    return _undo(y, perm)


def _kernel_block(x, op, axis, threads):
    fn = _np_softmax if op == "softmax" else _np_log_softmax
    x, axis, perm = _kernel_layout(x, axis)
    return _undo(fn(x, axis=axis, threads=threads), perm)


def _lse_block(a, b=None, axis=None, return_sign=False, threads=1):
    perm = None
    if b is None:
        a, axis, perm = _kernel_layout(a, axis)
    res = _np_logsumexp(a, axis=axis, b=b, keepdims=True, return_sign=return_sign, threads=threads)
    if not return_sign:
        return _undo(np.asarray(res), perm)
    res, sgn = res
    both = np.empty(np.shape(res), dtype=[("res", res.dtype), ("sgn", res.dtype)])
    both["res"] = res
    both["sgn"] = sgn
    return _undo(both, perm)


def _field(block, name):
    return block[name]


# ---------------------------------------------------------------------------------------------
# public functions
# ---------------------------------------------------------------------------------------------

def _elementwise(op, x, axis, threads, split_every):
    nt = _task_threads(threads)
    x = _as_dask(x)
    dt = elementwise_dtype(x.dtype, op)
    if x.dtype != dt:
        x = x.astype(dt)
    axes = reduced_axes(axis, x.ndim)
    _check_chunks(x, axes, op)
    if math.prod(x.shape[ax] for ax in axes) == 0:
        raise ValueError(_EMPTY_REDUCTION)
    meta = _meta(x.ndim, dt)
    kernel_axis = None if axis is None else axes
    if _single_chunk(x, axes):
        return x.map_blocks(_kernel_block, op=op, axis=kernel_axis, threads=nt,
                            dtype=dt, meta=meta, token=f"fastsoftmax-{op}")
    _no_complex(dt, op)
    pdt = _partial_dtype(dt)
    totals = da.reduction(
        x, functools.partial(_chunk_partial, op=op, threads=nt), _merge, axis=axes, keepdims=True,
        dtype=pdt, split_every=split_every, combine=_merge, meta=_meta(x.ndim, pdt),
        name=f"fastsoftmax-{op}-partials")
    return da.map_blocks(_normalise, x, totals, op=op, axis=axes, threads=nt,
                         dtype=dt, meta=meta, token=f"fastsoftmax-{op}")


def softmax(x, axis=None, *, threads=None, split_every=None):
    """Softmax of a Dask array along ``axis``, lazily: ``fastsoftmax.softmax`` on the whole array.

    Parameters
    ----------
    x : dask.array.Array (or array_like, wrapped with ``dask.array.asarray``)
        Input; integers are converted to float64, boolean input raises ``TypeError``.
    axis : int, tuple of ints or None, optional
        Axis or axes of the softmax; None (default) means the whole array. The reduced axes may
        span several chunks: they are never rechunked.
    threads : int or None, optional
        Threads of the kernel inside one task; None (default) means 1.
    split_every : int or dict, optional
        Fan-in of the tree that merges the per-chunk partials (as in ``dask.array.reduction``).

    Returns
    -------
    dask.array.Array
        Same shape and chunks as ``x``, dtype float64 for integer input, else that of ``x``.
    """
    return _elementwise("softmax", x, axis, threads, split_every)


def log_softmax(x, axis=None, *, threads=None, split_every=None):
    """Log-softmax of a Dask array along ``axis``, lazily: ``fastsoftmax.log_softmax`` on the whole array.

    Same parameters as :func:`softmax`.
    """
    return _elementwise("log_softmax", x, axis, threads, split_every)


def _broadcast_weights(a, b):
    """a and b broadcast to one shape, b rechunked to a's chunks (a's chunks are kept)."""
    shape = np.broadcast_shapes(a.shape, b.shape)
    if a.shape != shape:
        a = da.broadcast_to(a, shape)
    b = da.broadcast_to(b, shape)
    if b.chunks != a.chunks:
        b = b.rechunk(a.chunks)
    return a, b


def logsumexp(a, axis=None, b=None, keepdims=False, return_sign=False, *, threads=None, split_every=None):
    """``log(sum(b * exp(a)))`` of a Dask array along ``axis``, lazily: ``fastsoftmax.logsumexp``.

    Parameters
    ----------
    a : dask.array.Array (or array_like)
        Input; integers and booleans are converted to float64.
    axis : int, tuple of ints or None, optional
        Axis or axes to reduce; None (default) means all. They may span several chunks.
    b : dask.array.Array or array_like, optional
        Weights broadcast against ``a`` (zero removes an element, negative ones are allowed).
    keepdims : bool, optional
        Keep the reduced axes with size 1.
    return_sign : bool, optional
        Also return the sign of the sum (then the result is ``log(abs(sum))``).
    threads : int or None, optional
        Threads of the kernel inside one task; None (default) means 1.
    split_every : int or dict, optional
        Fan-in of the merge tree (as in ``dask.array.reduction``).

    Returns
    -------
    res : dask.array.Array
    sgn : dask.array.Array, only if ``return_sign``
    """
    nt = _task_threads(threads)
    a = _as_dask(a)
    if b is not None:
        b = _as_dask(b)
    dt = lse_dtype(a.dtype, None if b is None else b.dtype)
    if b is not None:
        a, b = _broadcast_weights(a, b)
        b = b.astype(dt)
    a = a.astype(dt)
    if a.ndim == 0:
        a = a[None]
        b = None if b is None else b[None]
    axes = reduced_axes(axis, a.ndim)
    _check_chunks(a, axes, "logsumexp")
    kept_shape = _kept_shape(a.shape, axes)
    out_shape = kept_shape if keepdims else tuple(n for i, n in enumerate(a.shape) if i not in axes)

    if a.size == 0:  # as NumPy: -inf (sign -1) over an empty reduction
        res = da.full(out_shape, -np.inf, dtype=dt)
        return (res, da.full(out_shape, -1, dtype=dt)) if return_sign else res

    rdt = np.dtype([("res", dt), ("sgn", dt)]) if return_sign else dt
    if _single_chunk(a, axes):
        args = (a,) if b is None else (a, b)
        kept_chunks = tuple((1,) if i in axes else c for i, c in enumerate(a.chunks))
        out = da.map_blocks(_lse_block, *args, axis=axes, return_sign=return_sign, threads=nt,
                            chunks=kept_chunks, dtype=rdt, meta=_meta(a.ndim, rdt),
                            token="fastsoftmax-logsumexp")
        if not keepdims:
            out = out.squeeze(axis=axes)
    else:
        _no_complex(dt, "logsumexp")
        aggregate = functools.partial(_lse_aggregate, out_dtype=dt, weighted=b is not None,
                                      return_sign=return_sign)
        if b is None:
            chunk, combine, pdt = functools.partial(_chunk_partial, op="logsumexp", threads=nt), _merge, _partial_dtype(dt)
        else:
            chunk, combine, pdt = _chunk_partial_b, _merge_b, _weighted_partial_dtype(dt)
        # dtype: that of the partials (chunk and combine steps); meta: that of the result.
        out = da.reduction(
            a, chunk, aggregate, axis=axes, keepdims=keepdims, dtype=pdt,
            split_every=split_every, combine=combine, weights=b,
            meta=_meta(len(out_shape), rdt), name="fastsoftmax-logsumexp")
    if not return_sign:
        return out
    meta = _meta(out.ndim, dt)
    res = out.map_blocks(_field, "res", dtype=dt, meta=meta)
    sgn = out.map_blocks(_field, "sgn", dtype=dt, meta=meta)
    return res, sgn

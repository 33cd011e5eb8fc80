# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Thin wrapper: validate, pick the C kernel or the NumPy fallback, release the GIL, call C."""
from libc.stdint cimport int64_t
cimport numpy as cnp
import numpy as np

from . import _fallback
from ._checks import check_out, check_threads, is_same_memory, reduced_axes

cnp.import_array()

cdef extern from "fastsoftmax.h" nogil:
    ctypedef enum fsm_op:
        FSM_SOFTMAX, FSM_LOG_SOFTMAX, FSM_LOGSUMEXP
    ctypedef enum fsm_dtype:
        FSM_F32, FSM_F64
    ctypedef struct fsm_kernels:
        const char *name
        const char *algorithm
    int fsm_isa_compiled(const char *name)
    int fsm_isa_supported(const char *name)
    int fsm_set_isa(const char *name)
    const fsm_kernels *fsm_active()
    int fsm_openmp_enabled()
    int fsm_default_threads()
    int fsm_compute(fsm_op op, fsm_dtype dtype, const void *x, void *y,
                    int64_t outer, int64_t n, int64_t inner, int threads)

cdef extern from "numpy/arrayobject.h":
    object PyArray_NewLikeArray(cnp.ndarray prototype, cnp.NPY_ORDER order, void *descr, int subok)

ISAS = ("portable", "avx2", "avx512")

cdef enum:
    MAX_DIMS = 64


def available_isas():
    """The ISAs this build and this CPU can run, lowest first."""
    return tuple(name for name in ISAS if fsm_isa_supported(name.encode()))


def compiled_isas():
    """The ISAs whose kernels this build contains (whether or not this CPU can run them)."""
    return tuple(name for name in ISAS if fsm_isa_compiled(name.encode()))


def set_isa(name):
    """Use the kernels of ISA ``name`` ("auto" = the best this CPU supports). Returns the ISA now in use."""
    if not isinstance(name, str):
        raise TypeError(f"ISA name must be a str, got {type(name).__name__}")
    if "\x00" in name or fsm_set_isa(name.encode()) != 0:
        raise ValueError(f"ISA {name!r} is not available here; available: {available_isas()}")
    return current_isa()


def current_isa():
    return fsm_active().name.decode()


def isa_algorithm():
    return fsm_active().algorithm.decode()


def openmp_enabled():
    return bool(fsm_openmp_enabled())


def default_threads():
    return fsm_default_threads()


cdef int _compute(fsm_op op, fsm_dtype dt, const void *px, void *py,
                  int64_t outer, int64_t n, int64_t inner, int nt) noexcept:
    """Run the C driver, without the GIL unless the call is tiny (releasing it costs more than the work)."""
    cdef int rc
    if outer * n * inner < 4096:
        return fsm_compute(op, dt, px, py, outer, n, inner, nt)
    with nogil:
        rc = fsm_compute(op, dt, px, py, outer, n, inner, nt)
    return rc


cdef inline int _threads(object threads) except -2:
    if threads is None:
        return -1
    if type(threads) is int and 0 < threads <= 65536:
        return threads
    return check_threads(threads)


cdef int _layout(cnp.ndarray a, bint *reduced, int64_t *outer, int64_t *n, int64_t *inner):
    """Describe a as (outer, n, inner) rows in memory; 0 if the reduced axes are not one contiguous band."""
    cdef int nd = cnp.PyArray_NDIM(a), k, j, cnt = 0
    cdef cnp.npy_intp *shape = cnp.PyArray_DIMS(a)
    cdef cnp.npy_intp *strides = cnp.PyArray_STRIDES(a)
    cdef cnp.npy_intp st[MAX_DIMS], sz[MAX_DIMS], expected
    cdef bint red[MAX_DIMS]
    for k in range(nd):
        if shape[k] == 1:
            continue
        # insertion sort by stride, largest first: memory order from outermost to innermost
        j = cnt
        while j > 0 and st[j - 1] < strides[k]:
            st[j] = st[j - 1]; sz[j] = sz[j - 1]; red[j] = red[j - 1]
            j -= 1
        st[j] = strides[k]; sz[j] = shape[k]; red[j] = reduced[k]
        cnt += 1
    expected = cnp.PyArray_ITEMSIZE(a)
    for k in range(cnt - 1, -1, -1):
        if st[k] != expected:
            return 0
        expected *= sz[k]
    outer[0] = 1; n[0] = 1; inner[0] = 1
    k = 0
    while k < cnt and not red[k]:
        outer[0] *= sz[k]; k += 1
    while k < cnt and red[k]:
        n[0] *= sz[k]; k += 1
    while k < cnt and not red[k]:
        inner[0] *= sz[k]; k += 1
    return k == cnt


cdef int _axes_mask(object axis, int nd, bint *reduced) except -1:
    cdef int k, ax
    if axis is None:
        for k in range(nd):
            reduced[k] = True
        return 0
    for k in range(nd):
        reduced[k] = False
    if type(axis) is int and -nd <= axis < nd:
        ax = axis
        reduced[ax + nd if ax < 0 else ax] = True
        return 0
    for ax in reduced_axes(axis, nd):
        reduced[ax] = True
    return 0


cdef inline bint _same_layout(cnp.ndarray a, cnp.ndarray b):
    cdef int k
    for k in range(cnp.PyArray_NDIM(a)):
        if cnp.PyArray_DIMS(a)[k] > 1 and cnp.PyArray_STRIDES(a)[k] != cnp.PyArray_STRIDES(b)[k]:
            return False
    return True


cdef void _extent(cnp.ndarray a, char **lo, char **hi):
    """The byte range [lo, hi) that a's elements occupy."""
    cdef int k
    cdef char *p = <char *>cnp.PyArray_DATA(a)
    lo[0] = p
    hi[0] = p + cnp.PyArray_ITEMSIZE(a)
    for k in range(cnp.PyArray_NDIM(a)):
        if cnp.PyArray_STRIDES(a)[k] < 0:
            lo[0] += cnp.PyArray_STRIDES(a)[k] * (cnp.PyArray_DIMS(a)[k] - 1)
        else:
            hi[0] += cnp.PyArray_STRIDES(a)[k] * (cnp.PyArray_DIMS(a)[k] - 1)


cdef bint _out_ok_fast(cnp.ndarray a, object out):
    """True when out is certainly valid for the kernel: same shape, dtype and layout as a, writeable,
    and either a itself or disjoint from it. Anything else goes to the full check (clear errors)."""
    cdef cnp.ndarray o
    cdef int k
    cdef char *alo
    cdef char *ahi
    cdef char *olo
    cdef char *ohi
    if not cnp.PyArray_CheckExact(out):
        return False
    o = out
    if cnp.PyArray_NDIM(o) != cnp.PyArray_NDIM(a) or cnp.PyArray_TYPE(o) != cnp.PyArray_TYPE(a):
        return False
    if not cnp.PyArray_ISWRITEABLE(o) or not cnp.PyArray_ISNOTSWAPPED(o) or not cnp.PyArray_ISALIGNED(o):
        return False
    for k in range(cnp.PyArray_NDIM(a)):
        if cnp.PyArray_DIMS(o)[k] != cnp.PyArray_DIMS(a)[k]:
            return False
    if not _same_layout(a, o):
        return False
    if cnp.PyArray_DATA(o) == cnp.PyArray_DATA(a):
        return True
    _extent(a, &alo, &ahi)
    _extent(o, &olo, &ohi)
    return ohi <= alo or ahi <= olo


cdef object _kernel_input(object x, bint allow_bool):
    """x as an ndarray of float32/float64 for the kernel (possibly byte-swapped), or None: fallback."""
    cdef cnp.ndarray a = x if cnp.PyArray_CheckExact(x) else np.asarray(x)
    cdef int t = cnp.PyArray_TYPE(a)
    if t == cnp.NPY_FLOAT or t == cnp.NPY_DOUBLE:
        return a
    kind = a.dtype.kind
    if kind in "iu" or (allow_bool and kind == "b"):
        return a.astype(np.float64)
    return None


cdef object _band_copy(cnp.ndarray a, bint *reduced):
    """One native C-ordered copy of a with the reduced axes moved last, and the axis order used."""
    cdef int k, nd = cnp.PyArray_NDIM(a)
    order = [k for k in range(nd) if not reduced[k]] + [k for k in range(nd) if reduced[k]]
    return np.array(a.transpose(order), dtype=a.dtype.newbyteorder("="), order="C"), order


cdef bint _direct(cnp.ndarray a, bint *reduced, int64_t *outer, int64_t *n, int64_t *inner):
    """True when the kernel can read a in place (native order, reduced axes one band in memory)."""
    return cnp.PyArray_ISNOTSWAPPED(a) and cnp.PyArray_ISALIGNED(a) and _layout(a, reduced, outer, n, inner)


cdef object _elementwise(fsm_op op, object x, object axis, object out, object threads):
    cdef int nt = _threads(threads), nd, nred
    cdef bint reduced[MAX_DIMS]
    cdef int64_t outer, n, inner
    cdef cnp.ndarray a, y
    cdef int rc
    fallback = _fallback.softmax if op == FSM_SOFTMAX else _fallback.log_softmax
    ak = _kernel_input(x, False)
    if ak is None:
        return fallback(x, axis, out=out, threads=threads)
    a = ak
    if cnp.PyArray_NDIM(a) == 0 or cnp.PyArray_NDIM(a) > MAX_DIMS:
        return fallback(a, axis, out=out, threads=threads)
    _axes_mask(axis, cnp.PyArray_NDIM(a), reduced)
    if cnp.PyArray_SIZE(a) == 0:
        return fallback(a, axis, out=out, threads=threads)
    if not _direct(a, reduced, &outer, &n, &inner):
        # strided, reversed, byte-swapped or reduced axes not one band: one copy, then the kernel
        if out is not None:
            check_out(out, (<object>a).shape, a.dtype.newbyteorder("="), a)
        c, order = _band_copy(a, reduced)
        nd = len(order)
        nred = sum(reduced[k] for k in range(nd))
        y = _elementwise(op, c, tuple(range(nd - nred, nd)), None, threads).transpose(np.argsort(order))
        if out is None:
            return y
        np.copyto(out, y)
        return out
    if out is None:
        y = PyArray_NewLikeArray(a, cnp.NPY_KEEPORDER, NULL, 0)
    elif _out_ok_fast(a, out):
        y = out
    else:
        check_out(out, (<object>a).shape, a.dtype, a)
        if not _same_layout(a, out) or not cnp.PyArray_ISALIGNED(out):
            np.copyto(out, _elementwise(op, a, axis, None, threads))
            return out
        y = out
    cdef const void *px = cnp.PyArray_DATA(a)
    cdef void *py = cnp.PyArray_DATA(y)
    cdef fsm_dtype dt = FSM_F32 if cnp.PyArray_TYPE(a) == cnp.NPY_FLOAT else FSM_F64
    rc = _compute(op, dt, px, py, outer, n, inner, nt)
    if rc != 0:
        raise MemoryError("fastsoftmax: out of memory for per-block scratch")
    return y


def _kernel_route(x, axis=None, bint allow_bool=False):
    """How softmax(x, axis) is computed: "direct" (the kernel reads x in place), "copy" (one copy into
    the kernel's layout, then the kernel) or "fallback" (NumPy)."""
    cdef bint reduced[MAX_DIMS]
    cdef int64_t outer, n, inner
    ak = _kernel_input(x, allow_bool)
    if ak is None or np.ndim(ak) == 0 or np.ndim(ak) > MAX_DIMS or np.size(ak) == 0:
        return "fallback"
    _axes_mask(axis, np.ndim(ak), reduced)
    return "direct" if _direct(ak, reduced, &outer, &n, &inner) else "copy"


def softmax(x, axis=None, *, out=None, threads=None):
    """Softmax along ``axis``: ``exp(x - max(x)) / sum(exp(x - max(x)))``.

    Same signature and results as ``scipy.special.softmax``, computed by a SIMD C kernel for
    float32/float64 arrays whose reduced axes are contiguous; other inputs use a NumPy fallback.

    Parameters
    ----------
    x : array_like
        Input. Integers are converted to float64; float16, longdouble and complex are supported
        by the fallback. Boolean input raises ``TypeError`` (as in scipy).
    axis : int, tuple of ints or None, optional
        Axis or axes over which the softmax is taken; None (default) means the whole array.
    out : ndarray, optional
        Where to write the result: same shape and dtype as the result. May be ``x`` itself.
    threads : int or None, optional
        Upper bound on the threads used; None uses the default policy (see ``show_config()``).

    Returns
    -------
    ndarray
        Same shape as ``x``; every slice along ``axis`` sums to 1.

    Examples
    --------
    >>> import numpy as np
    >>> from fastsoftmax import softmax
    >>> scores = np.array([4.1, 1.0, 2.3, -0.5, 0.2])   # beach, mountains, city, forest, indoors
    >>> np.round(softmax(scores) * 100, 1)
    array([80.6,  3.6, 13.3,  0.8,  1.6])
    >>> float(softmax(scores).sum())
    1.0
    """
    return _elementwise(FSM_SOFTMAX, x, axis, out, threads)


def log_softmax(x, axis=None, *, out=None, threads=None):
    """Logarithm of the softmax along ``axis``: ``x - max(x) - log(sum(exp(x - max(x))))``.

    Same signature and results as ``scipy.special.log_softmax``; accurate to about 1 ulp even
    for the dominant class, where ``log(softmax(x))`` would give 0.

    Parameters
    ----------
    x : array_like
        Input (see ``softmax`` for the accepted dtypes).
    axis : int, tuple of ints or None, optional
        Axis or axes to reduce; None (default) means the whole array.
    out : ndarray, optional
        Where to write the result; may be ``x`` itself.
    threads : int or None, optional
        Upper bound on the threads used.

    Returns
    -------
    ndarray
        Same shape as ``x``.

    Examples
    --------
    >>> import numpy as np
    >>> from fastsoftmax import log_softmax
    >>> y = log_softmax(np.array([0.0, 40.0]))
    >>> float(y[1])        # -exp(-40), not 0
    -4.248354255291589e-18
    """
    return _elementwise(FSM_LOG_SOFTMAX, x, axis, out, threads)


def logsumexp(a, axis=None, b=None, keepdims=False, return_sign=False, *, threads=None):
    """``log(sum(b * exp(a)))`` along ``axis``, without overflow.

    Same signature and results as ``scipy.special.logsumexp``. Without ``b`` the C kernel reads
    the data once; with ``b`` (weights, possibly zero or negative) the NumPy fallback is used.

    Parameters
    ----------
    a : array_like
        Input. Integers and booleans are converted to float64.
    axis : int, tuple of ints or None, optional
        Axis or axes to reduce; None (default) means all.
    b : array_like, optional
        Weights broadcast against ``a``.
    keepdims : bool, optional
        Keep the reduced axes with size 1.
    return_sign : bool, optional
        Also return the sign of the sum (then the result is ``log(abs(sum))``).
    threads : int or None, optional
        Upper bound on the threads used.

    Returns
    -------
    res : ndarray or scalar
    sgn : ndarray or scalar, only if ``return_sign``

    Examples
    --------
    >>> import numpy as np
    >>> from fastsoftmax import logsumexp
    >>> float(logsumexp(np.array([1000.0, 1000.0])))
    1000.6931471805599
    """
    cdef int nt = _threads(threads)
    cdef bint reduced[MAX_DIMS]
    cdef int64_t outer, n, inner
    cdef cnp.ndarray arr, res
    cdef int nd, k, rc
    ak = None if b is not None else _kernel_input(a, True)
    if ak is None:
        return _fallback.logsumexp(a, axis, b, keepdims, return_sign, threads=threads)
    arr = ak
    nd = cnp.PyArray_NDIM(arr)
    if nd == 0 or nd > MAX_DIMS:
        return _fallback.logsumexp(arr, axis, None, keepdims, return_sign, threads=threads)
    _axes_mask(axis, nd, reduced)
    if cnp.PyArray_SIZE(arr) == 0:
        return _fallback.logsumexp(arr, axis, None, keepdims, return_sign, threads=threads)
    if not _direct(arr, reduced, &outer, &n, &inner):
        c, order = _band_copy(arr, reduced)
        nred = sum(reduced[k] for k in range(nd))
        out = np.asarray(logsumexp(c, tuple(range(nd - nred, nd)), None, False, False, threads=threads))
        return _lse_result(out, tuple(k for k in range(nd) if reduced[k]), keepdims, return_sign)
    kept = [k for k in range(nd) if not reduced[k]]
    strides = arr.strides
    mem_order = sorted(kept, key=lambda ax: -strides[ax])   # outer axes, then inner axes
    res = np.empty([(<object>arr).shape[ax] for ax in mem_order], dtype=arr.dtype)
    cdef const void *px = cnp.PyArray_DATA(arr)
    cdef void *py = cnp.PyArray_DATA(res)
    cdef fsm_dtype dt = FSM_F32 if cnp.PyArray_TYPE(arr) == cnp.NPY_FLOAT else FSM_F64
    rc = _compute(FSM_LOGSUMEXP, dt, px, py, outer, n, inner, nt)
    if rc != 0:
        raise MemoryError("fastsoftmax: out of memory for per-block scratch")
    out = res.transpose(np.argsort(mem_order)) if mem_order != kept else res
    return _lse_result(out, tuple(k for k in range(nd) if reduced[k]), keepdims, return_sign)


def _lse_result(out, reduced_axes, keepdims, return_sign):
    """scipy's shape and sign conventions for a logsumexp result over the kept axes."""
    if keepdims:
        out = np.expand_dims(out, reduced_axes)
    if return_sign:  # without b the sum is positive: sign 1, 0 for log(0) = -inf, nan for nan
        sgn = np.where(np.isnan(out), np.nan, np.where(out == -np.inf, 0.0, 1.0)).astype(out.dtype)
        return (out[()] if out.ndim == 0 else out), (sgn[()] if sgn.ndim == 0 else sgn)
    return out[()] if out.ndim == 0 else out

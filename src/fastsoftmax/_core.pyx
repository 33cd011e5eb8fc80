# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The extension's front: the C core's declarations, the ISA switch, and one ``_run(plan)``.

What a call does (kernel in place, one copy then the kernel, or the NumPy fallback) is decided by
``_plan.make_plan``; this module only carries it out, with the GIL released around the C call.
"""
from libc.stdint cimport int64_t
cimport numpy as cnp
import numpy as np

from . import _fallback, _weighted
from ._plan import OPS as _OPS
from ._plan cimport ROUTE_COPY, ROUTE_DIRECT, Plan, check_threads, make_plan, op_reduces

cnp.import_array()

cdef extern from "fastsoftmax.h" nogil:
    ctypedef enum fsm_op:
        FSM_SOFTMAX, FSM_LOG_SOFTMAX, FSM_LOGSUMEXP
    ctypedef enum fsm_dtype:
        FSM_F32, FSM_F64, FSM_F16, FSM_BF16
    ctypedef struct fsm_kernels:
        const char *name
        const char *algorithm
        int lanes_f32, lanes_f64
        void (*widen_half)(const unsigned short *h, float *f, int64_t n, int bf16)
        void (*narrow_half)(const float *f, unsigned short *h, int64_t n, int bf16)
    const fsm_kernels *fsm_isa_kernels(const char *name)
    int fsm_isa_compiled(const char *name)
    int fsm_isa_supported(const char *name)
    int fsm_set_isa(const char *name)
    const fsm_kernels *fsm_active()
    int fsm_openmp_enabled()
    int fsm_default_threads()
    int64_t fsm_llc_detected()
    int64_t fsm_llc_bytes()
    void fsm_set_llc_bytes(int64_t nbytes)
    int fsm_subnormals_free()
    int fsm_subnormals_measured()
    void fsm_set_subnormals(int mode)
    int fsm_bf16cvt()
    int fsm_bf16cvt_supported()
    void fsm_set_bf16cvt(int mode)
    int64_t fsm_stream_calls()
    int64_t fsm_prefetch_calls()
    void fsm_set_prefetch_above(int64_t nbytes)
    int fsm_isa_count()
    const char *fsm_isa_name(int i)
    int fsm_compute(fsm_op op, fsm_dtype dtype, const void *x, void *y,
                    int64_t outer, int64_t n, int64_t inner, int threads)
    int64_t fsm_lse_weighted(fsm_dtype dtype, const void *a, const void *b, int64_t rows, int64_t n, void *out,
                             void *sgn, unsigned char *redo, int return_sign, int threads)

cdef extern from "threads.h" nogil:
    ctypedef struct fsm_thread_state:
        int64_t calls_parallel, calls_alone, tasks_caller, tasks_helper, steered
        int busy, helpers, helpers_busy, helpers_held, callers_held
    int FSM_HOOK_HOLD_HELPERS, FSM_HOOK_WAIT_HELPER
    void fsm_thread_hooks(int flags, unsigned hold_got_mask, int cpu_cap)
    void fsm_thread_state_get(fsm_thread_state *s)
    const char *fsm_thread_mechanism()

cdef extern from "select.h" nogil:
    int FSM_SEL_OK, FSM_SEL_NOMEM, FSM_SEL_NAN, FSM_SEL_ALL_NEG_INF, FSM_SEL_POS_INF
    int fsm_topk_softmax(fsm_dtype dtype, const void *z, int64_t rows, int64_t n, int64_t k, void *probs,
                         int64_t *idx, int64_t *bad_row, int threads)
    int fsm_sample(fsm_dtype dtype, const void *p, int64_t rows, int64_t n, int64_t top_k, double top_p,
                   double min_p, const double *u, int64_t *out, int threads)

cdef extern from "numpy/arrayobject.h":
    object PyArray_NewLikeArray(cnp.ndarray prototype, cnp.NPY_ORDER order, void *descr, int subok)

ISAS = tuple(fsm_isa_name(i).decode() for i in range(fsm_isa_count()))  # kernels.inc, lowest first


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


def kernel_lanes(name):
    """(float32, float64) lanes a vector of ISA ``name``'s kernels (ValueError if not compiled in)."""
    if not isinstance(name, str):
        raise TypeError(f"ISA name must be a str, got {type(name).__name__}")
    cdef const fsm_kernels *k = fsm_isa_kernels(name.encode()) if "\x00" not in name else NULL
    if k == NULL:
        raise ValueError(f"ISA {name!r} is not compiled in; compiled: {compiled_isas()}")
    return (k.lanes_f32, k.lanes_f64)


def _widen_half(object h, bint bf16):
    """The active ISA's float16 / bfloat16 -> float32 conversion of a contiguous uint16 array (tests)."""
    cdef cnp.ndarray hh = np.ascontiguousarray(h, dtype=np.uint16)
    cdef cnp.ndarray f = np.empty(np.shape(hh), np.float32)
    fsm_active().widen_half(<const unsigned short *>cnp.PyArray_DATA(hh), <float *>cnp.PyArray_DATA(f),
                            cnp.PyArray_SIZE(hh), bf16)
    return f


def _narrow_half(object f, bint bf16):
    """The active ISA's float32 -> float16 / bfloat16 rounding of a contiguous float32 array, as uint16 (tests)."""
    cdef cnp.ndarray ff = np.ascontiguousarray(f, dtype=np.float32)
    cdef cnp.ndarray h = np.empty(np.shape(ff), np.uint16)
    fsm_active().narrow_half(<const float *>cnp.PyArray_DATA(ff), <unsigned short *>cnp.PyArray_DATA(h),
                             cnp.PyArray_SIZE(ff), bf16)
    return h


def openmp_enabled():
    return bool(fsm_openmp_enabled())


def default_threads():
    return fsm_default_threads()


def thread_mechanism():
    """How parallel calls run: "helper" (caller + a helper's OpenMP team), "team" (a plain OpenMP team) or "none"."""
    return fsm_thread_mechanism().decode()


def _thread_state():
    """The thread runner's counters and gauges (csrc/threads.h), for tests and benchmarks."""
    cdef fsm_thread_state s
    fsm_thread_state_get(&s)
    return dict(calls_parallel=s.calls_parallel, calls_alone=s.calls_alone, tasks_caller=s.tasks_caller,
                tasks_helper=s.tasks_helper, steered=s.steered, busy=s.busy, helpers=s.helpers, helpers_busy=s.helpers_busy,
                helpers_held=s.helpers_held, callers_held=s.callers_held)


def _thread_hooks(*, hold_helpers=False, wait_for_helper=False, hold_callers_granted=(), cpu_cap=0):
    """Test hooks of the thread runner; call with no arguments to clear them all (they do not survive fork).

    hold_helpers: helper-team threads stop before their first task until cleared.
    wait_for_helper: a caller that got a helper waits (up to 10 s) until one has claimed a task.
    hold_callers_granted: calls granted one of these thread counts (< 32) stop after the grant until cleared.
    cpu_cap: use this many CPUs instead of the machine's (0: the machine's), to start bigger teams.
    """
    cdef unsigned mask = 0
    for g in hold_callers_granted:
        if not 0 < g < 32:
            raise ValueError(f"granted thread count out of range: {g}")
        mask |= 1u << g
    fsm_thread_hooks((FSM_HOOK_HOLD_HELPERS if hold_helpers else 0) | (FSM_HOOK_WAIT_HELPER if wait_for_helper else 0),
                     mask, cpu_cap)


def _llc_bytes():
    """(in use, detected): the cache size in bytes outputs are compared with (-1: the out-of-cache
    path is off), and the detected last-level cache."""
    return int(fsm_llc_bytes()), int(fsm_llc_detected())


def _set_llc_bytes(nbytes):
    """Tests and benchmarks: nbytes > 0 turns the out-of-cache path on for outputs larger than nbytes,
    nbytes < 0 turns it off, 0 restores the default (csrc/cpu.c: off on AMD, else the detected cache)."""
    fsm_set_llc_bytes(int(nbytes))


def _subnormals():
    """(in use, measured): whether the float32 scale pass lets the multiply round subnormal outputs
    (the CPU computes with subnormals at full speed; csrc/cpu.c measures it once) or builds them
    with integer operations. Both give the same bits."""
    return bool(fsm_subnormals_free()), bool(fsm_subnormals_measured())


def _set_subnormals(mode):
    """Tests and benchmarks: mode 1 forces the multiply, -1 the integer form, 0 the measured default."""
    fsm_set_subnormals(int(mode))


def _bf16cvt():
    """(in use, supported): whether the AVX-512 kernels round bfloat16 results with AVX512_BF16's
    conversion instruction (the CPU has it) or with integer operations. Both give the same bits."""
    supported = bool(fsm_bf16cvt_supported())
    return bool(fsm_bf16cvt()), supported


def _set_bf16cvt(mode):
    """Tests and benchmarks: mode -1 turns AVX512_BF16's conversion off, 0 restores the default."""
    fsm_set_bf16cvt(int(mode))


def _set_prefetch_above(nbytes):
    """Tests and benchmarks: long rows prefetch their next block when x and y together exceed nbytes
    (> 0); nbytes < 0 never, 0 restores the default (the detected last-level cache)."""
    fsm_set_prefetch_above(int(nbytes))


def _prefetch_calls():
    """How many calls on long rows prefetched each next block so far."""
    return int(fsm_prefetch_calls())


def _stream_calls():
    """How many calls took the out-of-cache path so far (non-temporal stores from a scratch)."""
    return int(fsm_stream_calls())


cdef int _compute(int op, cnp.ndarray a, cnp.ndarray y, int64_t outer, int64_t n, int64_t inner,
                  int nt) except -1:
    """Run the C driver, without the GIL unless the call is tiny (releasing it costs more than the work)."""
    cdef int rc
    cdef const void *px = cnp.PyArray_DATA(a)
    cdef void *py = cnp.PyArray_DATA(y)
    cdef int t = cnp.PyArray_TYPE(a)
    cdef fsm_dtype dt = (FSM_F32 if t == cnp.NPY_FLOAT else FSM_F64 if t == cnp.NPY_DOUBLE
                         else FSM_F16 if t == cnp.NPY_FLOAT16 else FSM_BF16)  # the plan admits no other
    if outer * n * inner < 4096:
        rc = fsm_compute(<fsm_op>op, dt, px, py, outer, n, inner, nt)
    else:
        with nogil:
            rc = fsm_compute(<fsm_op>op, dt, px, py, outer, n, inner, nt)
    if rc != 0:
        raise MemoryError("fastsoftmax: out of memory for per-block scratch")
    return 0


cdef object _run(Plan p, object out, int nt):
    """Carry out a kernel plan (direct or copy route). softmax / log_softmax: the result (``out``
    when given); logsumexp: the values over the kept axes in their order, before scipy's shaping."""
    cdef cnp.ndarray y
    if p.route == ROUTE_COPY:
        nd = p.ndim
        c = p.band_copy()
        y = _run(make_plan(p.op, c, tuple(range(p.nkept, nd)), None, None), None, nt)
        if op_reduces(p.op):
            return y                      # the kept axes are first in the copy, in their order
        y = y.transpose(np.argsort(p.order))
        if out is None:
            return y
        np.copyto(out, y)
        return out
    a = p.a
    if op_reduces(p.op):
        y = np.empty(p.kept_shape(), dtype=a.dtype)
        _compute(p.op, a, y, p.outer, p.n, p.inner, nt)
        unsort = p.kept_unsort()
        return y if unsort is None else y.transpose(unsort)
    if out is not None and p.out_direct:
        y = out
    else:
        y = PyArray_NewLikeArray(a, cnp.NPY_KEEPORDER, NULL, 0)
    _compute(p.op, a, y, p.outer, p.n, p.inner, nt)
    if out is not None and not p.out_direct:
        np.copyto(out, y)
        return out
    return y


cdef object _elementwise(int op, object x, object axis, object out, object threads):
    cdef int nt = check_threads(threads)
    cdef Plan p = make_plan(op, x, axis, out, None)
    if p.route == ROUTE_DIRECT or p.route == ROUTE_COPY:
        return _run(p, out, nt)
    fallback = getattr(_fallback, _OPS[op])
    return fallback(x if p.a is None else p.a, axis, out=out, threads=threads)


def softmax(x, axis=None, *, out=None, threads=None):
    """Softmax along ``axis``: ``exp(x - max(x)) / sum(exp(x - max(x)))``.

    Same signature and results as ``scipy.special.softmax``, computed by a SIMD C kernel for
    float32/float64 (and float16/bfloat16, widened inside it) arrays; other inputs use a NumPy fallback.

    Parameters
    ----------
    x : array_like
        Input. Integers are converted to float64; float16 and bfloat16 (ml_dtypes) are computed in
        float32 by the kernel and rounded once; longdouble and complex are supported by the
        fallback. Boolean input raises ``TypeError`` (as in scipy).
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
    the data once; with ``b`` (weights, possibly zero or negative) it reads the data and the weights
    once (float32/float64 after scipy's dtype rules), and the rows with special values are
    recomputed by the NumPy fallback (see the semantics page).

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
    cdef int nt = check_threads(threads)
    cdef Plan p
    if b is not None:
        lay = _weighted.layout(a, axis, b)
        if lay is not None:
            return _weighted.finish(lay, _weighted_rows(lay, return_sign, nt), keepdims, return_sign)
        return _fallback.logsumexp(a, axis, b, keepdims, return_sign, threads=threads)
    p = make_plan(FSM_LOGSUMEXP, a, axis, None, b)
    if p.route == ROUTE_DIRECT or p.route == ROUTE_COPY:
        return _fallback.shape_lse_result(_run(p, None, nt), p.axes, keepdims, return_sign)
    return _fallback.logsumexp(a if p.a is None else p.a, axis, b, keepdims, return_sign, threads=threads)


cdef int64_t _weighted_rows(tuple lay, bint return_sign, int threads) except -1:
    """The weighted logsumexp kernel on the layout of _weighted.layout: the C-contiguous (rows, n)
    float32/float64 pair a2, b2 of one dtype, and out, sgn, redo per row (csrc/fastsoftmax.h,
    fsm_lse_weighted). Returns how many rows it marked redo."""
    cdef cnp.ndarray a = lay[0], b = lay[1], out = lay[4], sgn = lay[5], redo = lay[6]
    cdef int64_t rows = cnp.PyArray_DIMS(a)[0], n = cnp.PyArray_DIMS(a)[1], nredo
    cdef fsm_dtype fd = FSM_F32 if cnp.PyArray_TYPE(a) == cnp.NPY_FLOAT else FSM_F64
    cdef const void *pa = cnp.PyArray_DATA(a)
    cdef const void *pb = cnp.PyArray_DATA(b)
    cdef void *po = cnp.PyArray_DATA(out)
    cdef void *ps = cnp.PyArray_DATA(sgn)
    cdef unsigned char *pr = <unsigned char *>cnp.PyArray_DATA(redo)
    with nogil:
        nredo = fsm_lse_weighted(fd, pa, pb, rows, n, po, ps, pr, return_sign, threads)
    if nredo < 0:
        raise MemoryError("fastsoftmax: out of memory for per-block scratch")
    return nredo


# ---- selection (select.c): the kernel side of fastsoftmax.topk_softmax and fastsoftmax.sample ----


def _topk_rows(cnp.ndarray z, int64_t k, int threads=-1):
    """(probs, indices) of the k largest of each row of the C-contiguous float32/float64 2-D array z.
    A row that has no softmax raises ValueError naming the row and why (the caller words it)."""
    cdef int64_t rows = z.shape[0], n = z.shape[1], bad = -1
    cdef fsm_dtype dt = FSM_F32 if cnp.PyArray_TYPE(z) == cnp.NPY_FLOAT else FSM_F64
    cdef cnp.ndarray probs = np.empty((rows, k), dtype=z.dtype)
    cdef cnp.ndarray idx = np.empty((rows, k), dtype=np.int64)
    cdef int rc
    cdef const void *pz = cnp.PyArray_DATA(z)
    cdef void *pp = cnp.PyArray_DATA(probs)
    cdef int64_t *pi = <int64_t *>cnp.PyArray_DATA(idx)
    with nogil:
        rc = fsm_topk_softmax(dt, pz, rows, n, k, pp, pi, &bad, threads)
    _selection_rc(rc, bad)
    return probs, idx


def _sample_rows(cnp.ndarray p, int64_t top_k, double top_p, double min_p, cnp.ndarray u, int threads=-1):
    """One index per row of the C-contiguous float32/float64 2-D probabilities p (see select.h)."""
    cdef int64_t rows = p.shape[0], n = p.shape[1]
    cdef fsm_dtype dt = FSM_F32 if cnp.PyArray_TYPE(p) == cnp.NPY_FLOAT else FSM_F64
    cdef cnp.ndarray out = np.empty(rows, dtype=np.int64)
    cdef cnp.ndarray uu = np.ascontiguousarray(u, dtype=np.float64)
    cdef int rc
    cdef const void *pp = cnp.PyArray_DATA(p)
    cdef const double *pu = <const double *>cnp.PyArray_DATA(uu)
    cdef int64_t *po = <int64_t *>cnp.PyArray_DATA(out)
    with nogil:
        rc = fsm_sample(dt, pp, rows, n, top_k, top_p, min_p, pu, po, threads)
    _selection_rc(rc, -1)
    return out


cdef int _selection_rc(int rc, int64_t bad) except -1:
    if rc == FSM_SEL_OK:
        return 0
    if rc == FSM_SEL_NOMEM:
        raise MemoryError("fastsoftmax: out of memory for selection scratch")
    why = {FSM_SEL_NAN: "nan", FSM_SEL_POS_INF: "posinf", FSM_SEL_ALL_NEG_INF: "neginf"}[rc]
    raise ValueError(why, bad)

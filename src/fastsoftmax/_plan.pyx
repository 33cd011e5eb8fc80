# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""How a call is computed, decided once for every caller: the argument checks and the plan.

The kernel wrapper (_core), fastsoftmax.dask and the fuzz harness all ask ``plan()`` instead of
restating its rules, and the NumPy fallback uses the same checks, so an argument is judged the
same way on every route and an invalid call never writes to ``out``.

A plan says, for (op, x, axis, out, b):
  route   "direct": the kernel reads x in place: float32/float64, float16 and ml_dtypes' bfloat16
          (widened to float32 inside the kernel; integers, and booleans for logsumexp, become
          float64), native byte order, aligned, and the reduced axes one
          contiguous band in memory, so the data is (outer, n, inner) rows (see fastsoftmax.h);
          "copy": one C-ordered copy with the kept axes first and the reduced axes last
          (``order``), then the kernel; "fallback": _fallback.py (other dtypes, 0-d, empty, b=:
          logsumexp with weights is routed by _core._weighted, which takes the kernel for
          float32/float64 data and weights and the fallback otherwise).
  axes    the reduced axes; ``kept_order`` the kept axes in memory order (the order in which the
          logsumexp kernel writes its results);
  out     whether the kernel may write ``out`` itself (same layout as x, aligned), else the result
          is copied into it.
The checks are written once, each with a fast first test for the common case (a plain int, an
``out`` with x's own layout) that returns before the general one; the general test gives the error.
"""
import operator

cimport cython
cimport numpy as cnp
import numpy as np

cnp.import_array()

MAX_THREADS = 1 << 16
cdef extern from *:
    """
    #define FSM_OPS_TABLE 1
    #include "ops.h"
    """
    ctypedef struct fsm_op_passes:
        int one_output_per_row
    int FSM_N_OPS
    const fsm_op_passes *fsm_ops
    const char **fsm_op_names

OPS = tuple(fsm_op_names[i].decode() for i in range(FSM_N_OPS))  # csrc/ops.h, in fsm_op order
ROUTES = ("fallback", "direct", "copy")


# ---- the argument checks (the fallback uses them too) ----

cpdef int check_threads(object threads) except -2:
    """-1 for the default policy, else the positive int cap; ValueError otherwise."""
    if threads is None:
        return -1
    if type(threads) is int and 0 < threads <= MAX_THREADS:
        return threads
    if isinstance(threads, (bool, np.bool_)) or not isinstance(threads, (int, np.integer)) or threads < 1:
        raise ValueError(f"threads must be None or a positive integer, got {threads!r}")
    return int(min(threads, MAX_THREADS))  # a cap: more than the machine has means no cap


cdef int _axis_index(object a, int ndim) except -1:
    if isinstance(a, (bool, np.bool_)):
        raise TypeError(f"axis must be None, an int or a tuple of ints, got {a!r}")
    a = operator.index(a)  # TypeError for floats, strings, ...
    if not -ndim <= a < ndim:
        raise np.exceptions.AxisError(a, ndim)
    return a % ndim


cpdef tuple reduced_axes(object axis, int ndim):
    """Normalise ``axis`` (None, int or tuple) to a sorted tuple of non-negative axes."""
    cdef int ax
    if axis is None:
        return tuple(range(ndim))
    if type(axis) is int and -ndim <= axis < ndim:
        ax = axis
        return (ax + ndim if ax < 0 else ax,)
    if isinstance(axis, tuple):
        axes = [_axis_index(a, ndim) for a in axis]
        if len(set(axes)) != len(axes):
            raise ValueError(f"duplicate value in 'axis': {axis!r}")
        return tuple(sorted(axes))
    return (_axis_index(axis, ndim),)


cdef bint _same_layout(cnp.ndarray a, cnp.ndarray b):
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


cdef bint _out_fits(object out, object dtype, object x):
    """True when out certainly passes check_out and has x's layout: an ndarray of x's shape, dtype
    and strides, writeable and aligned, that is x itself or disjoint from it."""
    cdef cnp.ndarray o, a
    cdef int k
    cdef char *alo
    cdef char *ahi
    cdef char *olo
    cdef char *ohi
    if not cnp.PyArray_CheckExact(out) or not cnp.PyArray_CheckExact(x):
        return False
    o = out
    a = x
    if cnp.PyArray_NDIM(o) != cnp.PyArray_NDIM(a) or o.dtype is not dtype and o.dtype != dtype:
        return False
    if not cnp.PyArray_ISWRITEABLE(o) or not cnp.PyArray_ISALIGNED(o):
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


def _is_same_memory(a, b):
    """True when a and b are the same elements in the same order (an in-place call)."""
    return (a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
            and a.shape == b.shape and a.strides == b.strides and a.dtype == b.dtype)


cpdef bint check_out(object out, object dtype, object x) except -1:
    """Validate a caller's ``out`` for a result of x's shape and of ``dtype`` computed from the
    array ``x`` (TypeError / ValueError). Returns whether out has x's layout and is aligned, i.e.
    whether a kernel reading x may write out directly."""
    if _out_fits(out, dtype, x):
        return True
    shape = x.shape
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a numpy.ndarray, got {type(out).__name__}")
    if out.shape != tuple(shape):
        raise ValueError(f"out has shape {out.shape}, expected {tuple(shape)}")
    if out.dtype != dtype:
        raise TypeError(f"out has dtype {out.dtype}, expected {np.dtype(dtype)}")
    if not out.flags.writeable:
        raise ValueError("out is read-only")
    if not (_is_same_memory(out, x) or not np.may_share_memory(out, x)):
        try:
            overlaps = np.shares_memory(out, x, max_work=10_000)
        except np.exceptions.TooHardError if hasattr(np, "exceptions") else Exception:
            overlaps = True
        if overlaps:
            raise ValueError("out partially overlaps the input: pass the input itself (in place) or a separate array")
    return (out.ndim == x.ndim and out.flags.aligned
            and _same_layout(x, out))


# ---- the plan ----

cdef bint op_reduces(int op):
    """True for an op with one output per row (the reduced axes vanish from the result: logsumexp).
    Reductions take booleans (as scipy's logsumexp does), the elementwise ops do not."""
    return fsm_ops[op].one_output_per_row != 0


# User-defined dtypes already classified by is_bfloat16, by type number (NumPy assigns one per registered
# type, for the life of the process): dtype.name of such a type is computed in Python, 0.8 us a call,
# which was half the time of a small bfloat16 softmax.
cdef dict _userdef_is_bf16 = {}

cpdef bint is_bfloat16(object dtype):
    """True for ml_dtypes' bfloat16 (a user-defined NumPy dtype; ml_dtypes is never imported here)."""
    if not isinstance(dtype, np.dtype):
        return False
    cdef int t = (<cnp.dtype>dtype).type_num
    if t < 256:  # NPY_USERDEF: types registered by other packages start here
        return False
    known = _userdef_is_bf16.get(t)
    if known is None:
        known = dtype.name == "bfloat16" and dtype.itemsize == 2
        _userdef_is_bf16[t] = known
    return known

cdef int _layout(cnp.ndarray a, bint *reduced, int64_t *outer, int64_t *n, int64_t *inner):
    """Describe a as (outer, n, inner) rows in memory; 0 if the reduced axes are not one contiguous band."""
    cdef int nd = cnp.PyArray_NDIM(a), k, j, cnt = 0
    cdef cnp.npy_intp *shape = cnp.PyArray_DIMS(a)
    cdef cnp.npy_intp *strides = cnp.PyArray_STRIDES(a)
    cdef cnp.npy_intp st[MAX_DIMS]
    cdef cnp.npy_intp sz[MAX_DIMS]
    cdef cnp.npy_intp expected
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


@cython.auto_pickle(False)
@cython.freelist(16)
cdef class Plan:
    """How one call is computed (see the module docstring); made by ``plan()``."""

    @property
    def route_name(self):
        return ROUTES[self.route]

    @property
    def op_name(self):
        return OPS[self.op]

    @property
    def axes(self):
        """The reduced axes, sorted (None where the plan did not get that far: fallback)."""
        if self.ndim < 0:
            return None
        return tuple([k for k in range(self.ndim) if self.reduced[k]])

    @property
    def order(self):
        """Copy route: the axis order of the copy, the kept axes then the reduced ones (else None)."""
        if self.route != ROUTE_COPY:
            return None
        return tuple([self.kept[k] for k in range(self.nkept)]) + self.axes

    @property
    def kept_order(self):
        """Direct logsumexp: the kept axes in memory order, the order of the kernel's results (else None)."""
        if self.route != ROUTE_DIRECT or not op_reduces(self.op):
            return None
        return tuple([self.kept[k] for k in range(self.nkept)])

    @property
    def layout(self):
        """(outer, n, inner) of the kernel's rows (of the copy, on the copy route)."""
        return (self.outer, self.n, self.inner)

    cdef tuple kept_shape(self):
        """The shape of the kernel's logsumexp results: the kept axes' sizes in ``kept`` order."""
        cdef cnp.npy_intp *dims = cnp.PyArray_DIMS(self.a)
        return tuple([dims[self.kept[k]] for k in range(self.nkept)])

    cdef object kept_unsort(self):
        """The transpose that puts results in ``kept`` order back in axis order; None if they are."""
        cdef int k
        for k in range(1, self.nkept):
            if self.kept[k] < self.kept[k - 1]:
                return np.argsort([self.kept[j] for j in range(self.nkept)])
        return None

    def band_copy(self):
        """The copy-route layout: a native C-ordered copy of a, axes in ``order``."""
        return np.array(self.a.transpose(self.order), dtype=self.a.dtype.newbyteorder("="), order="C")

    def __repr__(self):
        return (f"Plan({self.op_name}, route={self.route_name}, axes={self.axes}, "
                f"layout={self.layout}, order={self.order}, out_direct={self.out_direct})")


cdef int _reduced_mask(object axis, int nd, bint *reduced) except -1:
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


cdef void _kept_in_memory_order(Plan p, cnp.ndarray a):
    """p.kept = the kept axes sorted by stride, largest first (stable: ties keep axis order)."""
    cdef cnp.npy_intp *strides = cnp.PyArray_STRIDES(a)
    cdef int k, j, ax
    p.nkept = 0
    for ax in range(p.ndim):
        if p.reduced[ax]:
            continue
        j = p.nkept
        while j > 0 and strides[p.kept[j - 1]] < strides[ax]:
            p.kept[j] = p.kept[j - 1]
            j -= 1
        p.kept[j] = ax
        p.nkept += 1


cdef Plan make_plan(int op, object x, object axis, object out, object b):
    cdef Plan p = Plan.__new__(Plan)
    cdef cnp.ndarray a
    cdef int nd, k, t
    cdef int64_t cols, rows, inner
    p.op = op
    p.route = ROUTE_FALLBACK
    p.ndim = -1
    if b is not None:
        return p
    a = x if cnp.PyArray_CheckExact(x) else np.asarray(x)
    t = cnp.PyArray_TYPE(a)
    if t != cnp.NPY_FLOAT and t != cnp.NPY_DOUBLE and t != cnp.NPY_FLOAT16 and not is_bfloat16(a.dtype):
        kind = a.dtype.kind
        if not (kind in "iu" or (op_reduces(op) and kind == "b")):
            return p
        a = a.astype(np.float64)
    p.a = a
    nd = cnp.PyArray_NDIM(a)
    if nd == 0 or nd > MAX_DIMS:
        return p
    _reduced_mask(axis, nd, p.reduced)
    p.ndim = nd
    if cnp.PyArray_SIZE(a) == 0:
        return p
    if (cnp.PyArray_ISNOTSWAPPED(a) and cnp.PyArray_ISALIGNED(a)
            and _layout(a, p.reduced, &rows, &cols, &inner)):
        p.route = ROUTE_DIRECT
        p.outer, p.n, p.inner = rows, cols, inner
        if op_reduces(op):
            _kept_in_memory_order(p, a)
        elif out is not None:
            p.out_direct = check_out(out, a.dtype, a)
        return p
    p.route = ROUTE_COPY
    p.nkept = 0
    for k in range(nd):
        if not p.reduced[k]:
            p.kept[p.nkept] = k
            p.nkept += 1
    if not op_reduces(op) and out is not None:
        check_out(out, a.dtype.newbyteorder("="), a)
    return p


def plan(op, x, axis=None, out=None, b=None):
    """The Plan of ``op(x, axis, out=out)`` (logsumexp: ``b``), op one of OPS. Raises what the call
    would raise for an invalid axis or out on a kernel route."""
    return make_plan(OPS.index(op), x, axis, out, b)

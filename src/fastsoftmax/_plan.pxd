# The planning step shared by the kernel wrapper (_core), fastsoftmax.dask and the fuzz harness.
from libc.stdint cimport int64_t

cdef enum:
    ROUTE_FALLBACK = 0   # NumPy (_fallback.py)
    ROUTE_DIRECT = 1     # the kernel reads the input in place
    ROUTE_COPY = 2       # one copy into the kernel's layout, then the kernel

cdef enum:
    MAX_DIMS = 64        # the kernel route takes at most this many dimensions

cdef class Plan:
    cdef readonly int op               # an fsm_op of csrc/ops.h
    cdef readonly int route
    cdef readonly object a              # the kernel's input: float32/float64/float16/bfloat16 ndarray (None: not array-like
                                        # for the kernel's dtypes)
    cdef readonly int64_t outer, n, inner
    cdef readonly bint out_direct       # the kernel may write the caller's `out` itself
    cdef int ndim                       # -1 until the reduced axes are known
    cdef bint reduced[MAX_DIMS]
    cdef int nkept
    cdef int kept[MAX_DIMS]             # kept axes: in memory order (outermost first) for a direct
                                        # logsumexp, else ascending
    cdef tuple kept_shape(self)
    cdef object kept_unsort(self)
cpdef int check_threads(object threads) except -2
cpdef tuple reduced_axes(object axis, int ndim)
cpdef bint check_out(object out, object dtype, object x) except -1
cpdef bint is_bfloat16(object dtype)
cdef bint op_reduces(int op)  # one output per row (logsumexp), from csrc/ops.h
cdef Plan make_plan(int op, object x, object axis, object out, object b)

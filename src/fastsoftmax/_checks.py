"""Argument checks shared by the fast path and the NumPy fallback.

They run before any work is done, so an invalid call never writes to ``out``.
"""
import operator

import numpy as np


def check_threads(threads):
    """Return -1 for the default policy, else the positive int cap; ValueError otherwise."""
    if threads is None:
        return -1
    if isinstance(threads, (bool, np.bool_)) or not isinstance(threads, (int, np.integer)) or threads < 1:
        raise ValueError(f"threads must be None or a positive integer, got {threads!r}")
    return int(min(threads, MAX_THREADS))  # a cap: more than the machine has means no cap


MAX_THREADS = 1 << 16


def check_out(out, shape, dtype, x):
    """Validate a caller-provided ``out`` for a result of ``shape`` and ``dtype`` computed from ``x``."""
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a numpy.ndarray, got {type(out).__name__}")
    if out.shape != tuple(shape):
        raise ValueError(f"out has shape {out.shape}, expected {tuple(shape)}")
    if out.dtype != dtype:
        raise TypeError(f"out has dtype {out.dtype}, expected {np.dtype(dtype)}")
    if not out.flags.writeable:
        raise ValueError("out is read-only")
    if is_same_memory(out, x) or not np.may_share_memory(out, x):
        return
    try:
        overlaps = np.shares_memory(out, x, max_work=10_000)
    except np.exceptions.TooHardError if hasattr(np, "exceptions") else Exception:
        overlaps = True
    if overlaps:
        raise ValueError("out partially overlaps the input: pass the input itself (in place) or a separate array")


def is_same_memory(a, b):
    """True when a and b are the same elements in the same order (an in-place call)."""
    return (a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
            and a.shape == b.shape and a.strides == b.strides and a.dtype == b.dtype)


def _axis_index(a, ndim):
    if isinstance(a, (bool, np.bool_)):
        raise TypeError(f"axis must be None, an int or a tuple of ints, got {a!r}")
    a = operator.index(a)  # TypeError for floats, strings, ...
    if not -ndim <= a < ndim:
        raise np.exceptions.AxisError(a, ndim)
    return a % ndim


def reduced_axes(axis, ndim):
    """Normalise ``axis`` (None, int or tuple) to a sorted tuple of non-negative axes."""
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, tuple):
        axes = [_axis_index(a, ndim) for a in axis]
        if len(set(axes)) != len(axes):
            raise ValueError(f"duplicate value in 'axis': {axis!r}")
        return tuple(sorted(axes))
    return (_axis_index(axis, ndim),)

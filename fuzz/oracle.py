"""The test oracle shared by the fuzz target and tests/test_properties.py.

``check_call(op, x, **kwargs)`` calls ``fastsoftmax.<op>`` and ``fastsoftmax._fallback.<op>`` (the
executable specification) with the same arguments and asserts the documented contract:

* both raise, with the same exception class, or both return results of the same structure
  (scalar or array, shape, dtype; a tuple for ``return_sign``);
* where the C kernel runs (float32/float64 data of any layout, integers; see ``kernel_route``),
  every value is within 2 ulp of the specification evaluated in wider
  precision (float64 for float32 data, long double for float64 data) -- the documented accuracy;
  logsumexp in ulp of max(|result|, |row max|); NaN and +-inf exactly where the specification has
  them; outputs below the normal range (not covered by the documented bound) within the smallest
  normal number of the reference;
* logsumexp with ``b`` where the kernel runs (data and weights float32/float64 after scipy's dtype
  rules, at least one dimension, not empty; see ``weighted_route``): NaN and +-inf exactly where the
  specification has them, finite values within 2 ulp of the specification evaluated in the wide
  dtype, in ulp of max(|result|, |max|, the cancellation among the weights; see
  ``_reference.weighted_logsumexp``), and signs the specification's where that cancellation leaves
  the sign determined;
* everywhere else (float16, long double, complex, 0-d, empty) the result is the fallback's, value
  for value;
* the input is not modified (unless it is ``out``), an ``out`` that is accepted is returned, and a
  call that raises leaves ``out`` untouched.

The reference, its unit of error and the tolerance are those of ``fastsoftmax._reference`` (shared
with the tests and the benchmark): x - max carried exactly, log1p for the log-sum, rows with a NaN
or an infinite maximum taken from the fallback itself evaluated in the wider dtype.

Any violation raises ``OracleError`` (an AssertionError) with a message that names the input.
"""
import numpy as np

import fastsoftmax
from fastsoftmax import _fallback, _plan, _reference

OPS = _plan.OPS

#: Exceptions the public functions document for invalid arguments (docs/errors.md; AxisError is a
#: ValueError).
DOCUMENTED_ERRORS = (TypeError, ValueError)

# Outputs below the normal range are outside the documented 2 ulp (docs/accuracy.md); they
# must still be tiny: within this absolute error of the reference.
SUBNORMAL_ABS = {np.float16: float(np.finfo(np.float16).smallest_normal),
                 np.float32: float(np.finfo(np.float32).smallest_normal),
                 np.float64: float(np.finfo(np.float64).smallest_normal)}
# The half types are computed in float32 and rounded once: within 1 ulp of the half type (docs/semantics.md).
HALF_TOL = 1.0


class OracleError(AssertionError):
    pass


def _fail(msg, op, x, kwargs):
    raise OracleError(f"{msg}\n  op={op} {describe(x)} kwargs={_short(kwargs)}")


def describe(x):
    """A one-line description of an input: type, dtype, shape, strides, flags, a few values."""
    if not isinstance(x, np.ndarray):
        return f"x={_short(x)}"
    flags = "".join(c for c, f in (("C", x.flags.c_contiguous), ("F", x.flags.f_contiguous),
                                   ("W", x.flags.writeable), ("A", x.flags.aligned)) if f)
    with np.printoptions(precision=17, threshold=20, edgeitems=4):
        vals = repr(x.ravel()[:8]) if x.size else "[]"
    return f"x: dtype={x.dtype.str} shape={x.shape} strides={x.strides} flags={flags} values={vals}"


def _short(obj, n=300):
    if isinstance(obj, dict):
        return "{" + ", ".join(f"{k}={_short(v, 80)}" for k, v in obj.items()) + "}"
    if isinstance(obj, np.ndarray):
        s = f"ndarray(dtype={obj.dtype.str}, shape={obj.shape}, strides={obj.strides})"
    else:
        s = repr(obj)
    return s if len(s) <= n else s[:n] + "..."


# ---------------------------------------------------------------------------------------------
# Which calls reach the C kernel (an independent restatement of the routing rule in docs/semantics.md)


def normalize_axes(axis, ndim):
    """Sorted non-negative reduced axes, or None when ``axis`` is not a valid axis spec."""
    try:
        return _plan.reduced_axes(axis, ndim)
    except (TypeError, ValueError, OverflowError):  # AxisError is a ValueError
        return None


def plan_of(op, x, axis=None, b=None):
    """fastsoftmax's own plan for the call (docs/semantics.md, "Where the C kernel runs"), or None when the
    call raises while planning (an invalid axis or out on a kernel route, x not array-like)."""
    try:
        return _plan.plan(op, x, axis, b=b)
    except Exception:
        return None


def kernel_input(op, x):
    """The float32/float64 array the kernel computes on (integers, and booleans for logsumexp,
    become float64; any byte order), or None when the call goes to the NumPy fallback."""
    p = plan_of(op, x)
    return None if p is None else p.a


def kernel_route(op, x, axis=None, b=None):
    """True when fastsoftmax computes this call with the C kernel: float32/float64 data of any
    layout and byte order (other layouts are copied once), integers as float64, at least one
    dimension, not empty, no ``b``."""
    p = plan_of(op, x, axis, b)
    return p is not None and p.route_name != "fallback"


def weighted_route(op, x, b):
    """True when logsumexp with weights ``b`` runs on the kernel (_core._weighted): x and b
    numeric, float32 or float64 after scipy's dtype rules, broadcast to at least one dimension and
    not empty (an invalid axis or shape raises on the fallback)."""
    if op != "logsumexp" or b is None:
        return False
    try:
        xa, ba = np.asarray(x), np.asarray(b)
        if xa.dtype.kind not in "biuf" or ba.dtype.kind not in "biuf":
            return False
        shape = np.broadcast_shapes(xa.shape, ba.shape)
    except Exception:
        return False
    return _fallback.lse_dtype(xa.dtype, ba.dtype) in (np.float32, np.float64) and len(shape) > 0 \
        and 0 not in shape


def direct_route(op, x, axis=None, b=None):
    """True when the kernel reads the data in place: native byte order and the reduced axes one
    contiguous band in memory (no copy)."""
    p = plan_of(op, x, axis, b)
    return p is not None and p.route_name == "direct"


# ---------------------------------------------------------------------------------------------
# Calling both implementations


def _snapshot(obj):
    if isinstance(obj, np.ndarray):
        return obj.copy(order="K")
    return None


def _restore(obj, snap):
    if snap is not None and obj.flags.writeable:
        np.copyto(obj, snap, casting="no")


def _copy(v):
    return v.copy() if isinstance(v, np.ndarray) else v


def _same_bits(a, b):
    if a.dtype.hasobject:
        return True
    return a.shape == b.shape and a.tobytes() == b.tobytes()


def _call(fn, x, kwargs):
    try:
        return fn(x, **kwargs), None
    except Exception as e:  # noqa: BLE001 - compared below
        return None, e


def _parts(res, op, kwargs):
    if op == "logsumexp" and kwargs.get("return_sign"):
        if not (isinstance(res, tuple) and len(res) == 2):
            return None
        return list(res)
    return [res]


def _equal_values(a, b):
    a = np.asarray(a)
    b = np.asarray(b)
    if a.dtype.kind in "fc" and b.dtype.kind in "fc":
        return np.array_equal(a, b, equal_nan=True)
    return np.array_equal(a, b)


def check_call(op, x, **kwargs):
    """Run fastsoftmax.<op>(x, **kwargs) and the fallback; assert the contract. Returns the result.

    If the call raises (in both implementations, with the same exception class) the exception is
    re-raised after the checks, so callers can assert on it.
    """
    fast = getattr(fastsoftmax, op)
    spec = getattr(_fallback, op)
    out = kwargs.get("out")
    in_place = out is not None and out is x
    axis = kwargs.get("axis")
    route = kernel_route(op, x, axis, kwargs.get("b"))
    x_snap = _snapshot(x)
    out_snap = _snapshot(out) if isinstance(out, np.ndarray) and not in_place else None

    # The specification first, then undo whatever it wrote (out, or x itself in place).
    exp_res, exp_err = _call(spec, x, kwargs)
    if exp_err is None:
        exp_res = tuple(_copy(p) for p in exp_res) if isinstance(exp_res, tuple) else _copy(exp_res)
    if isinstance(x, np.ndarray) and not _same_bits(x, x_snap):
        _restore(x, x_snap)
    if out_snap is not None and not _same_bits(out, out_snap):
        _restore(out, out_snap)

    got_res, got_err = _call(fast, x, kwargs)

    # Raised?
    if exp_err is not None or got_err is not None:
        if exp_err is None:
            _fail(f"fastsoftmax raised {type(got_err).__name__}: {got_err} but the specification returns", op, x, kwargs)
        if got_err is None:
            _fail(f"the specification raises {type(exp_err).__name__}: {exp_err} but fastsoftmax returns", op, x, kwargs)
        # A call with several faults may report any one of them: the class must agree unless
        # both are documented argument errors.
        both_documented = isinstance(got_err, DOCUMENTED_ERRORS) and isinstance(exp_err, DOCUMENTED_ERRORS)
        if type(got_err) is not type(exp_err) and not both_documented:
            _fail(f"fastsoftmax raised {type(got_err).__name__}: {got_err}; the specification raises "
                  f"{type(exp_err).__name__}: {exp_err}", op, x, kwargs)
        if isinstance(x, np.ndarray) and not _same_bits(x, x_snap):
            _fail("a call that raised modified the input", op, x, kwargs)
        if out_snap is not None and not _same_bits(out, out_snap):
            _fail("a call that raised wrote to out", op, x, kwargs)
        raise got_err

    # Input untouched (unless it is the output).
    if isinstance(x, np.ndarray) and not in_place and not _same_bits(x, x_snap):
        _fail("the input was modified", op, x, kwargs)
    if out is not None and got_res is not out:
        _fail("the result is not the out array", op, x, kwargs)

    got_parts, exp_parts = _parts(got_res, op, kwargs), _parts(exp_res, op, kwargs)
    if got_parts is None:
        _fail(f"return_sign=True must return (result, sign), got {type(got_res).__name__}", op, x, kwargs)
    for g, e in zip(got_parts, exp_parts):
        if isinstance(g, np.ndarray) != isinstance(e, np.ndarray):
            _fail(f"result type {type(g).__name__}, specification {type(e).__name__}", op, x, kwargs)
        g_a, e_a = np.asarray(g), np.asarray(e)
        if g_a.shape != e_a.shape or g_a.dtype != e_a.dtype:
            _fail(f"result {g_a.dtype}{g_a.shape}, specification {e_a.dtype}{e_a.shape}", op, x, kwargs)

    b = kwargs.get("b")
    if weighted_route(op, x, b) and normalize_axes(axis, max(np.ndim(x), np.ndim(b))) is not None:
        _check_weighted(op, x, kwargs, got_parts, exp_parts)
        return got_res
    if not route:
        for g, e in zip(got_parts, exp_parts):
            if not _equal_values(g, e):
                _fail("fallback-routed call differs from the specification:\n  got  "
                      f"{np.asarray(g)!r}\n  spec {np.asarray(e)!r}", op, x, kwargs)
        return got_res
    a = kernel_input(op, x_snap if x_snap is not None else x)
    _check_accuracy(op, x, kwargs, a.astype(a.dtype.newbyteorder("=")), got_parts, exp_parts)
    return got_res


def _check_accuracy(op, x, kwargs, a, got_parts, exp_parts):
    """Kernel route: every value within the documented ulp of the wide reference."""
    axes = normalize_axes(kwargs.get("axis"), a.ndim)
    if op == "logsumexp":
        keepdims = bool(kwargs.get("keepdims"))
        ref = _reference.logsumexp(a, axes, keepdims=keepdims)
        scale = _reference.logsumexp_scale(a, ref, axes, keepdims=keepdims)
    else:
        ref = scale = _reference.REF[op](a, axes)
    got = np.asarray(got_parts[0])
    ref, scale = np.broadcast_to(ref, got.shape), np.broadcast_to(scale, got.shape)
    err = _reference.ulp_errors(got, ref, scale, a.dtype, subnormal_abs=SUBNORMAL_ABS.get(a.dtype.type))
    tol = HALF_TOL if a.dtype.itemsize == 2 else _reference.tolerance(a.dtype)
    if err.size and not np.all(err <= tol):
        i = np.unravel_index(np.argmax(err), err.shape)
        _fail(f"{op} off by {float(err[i]):.3g} ulp (> {tol}) at {tuple(int(j) for j in i)}: got "
              f"{got[i]!r}, reference {ref[i]!r}", op, x, kwargs)
    if op == "logsumexp" and kwargs.get("return_sign"):
        if not _equal_values(got_parts[1], exp_parts[1]):
            _fail(f"sign {got_parts[1]!r}, specification {exp_parts[1]!r}", op, x, kwargs)


def _check_weighted(op, x, kwargs, got_parts, exp_parts):
    """logsumexp with b on the kernel: the specification's NaN / +-inf, finite values within the
    documented ulp of the wide reference (its unit: _reference.weighted_logsumexp's scale), and the
    specification's signs where the sum's sign is determined (cancellation below 2^-20 / eps)."""
    a, b = np.asarray(x), np.asarray(kwargs["b"])
    dt = _fallback.lse_dtype(a.dtype, b.dtype)
    ref, _, scale, cond = _reference.weighted_logsumexp(a.astype(dt), b.astype(dt), kwargs.get("axis"),
                                                         keepdims=bool(kwargs.get("keepdims")))
    got, spec = np.asarray(got_parts[0]), np.asarray(exp_parts[0])
    special = ~np.isfinite(spec) | ~np.isfinite(got)
    if not np.array_equal(np.where(special, got, 0), np.where(special, spec, 0), equal_nan=True):
        _fail(f"NaN / inf differ from the specification:\n  got  {got!r}\n  spec {spec!r}", op, x, kwargs)
    ref = np.where(special, spec, np.broadcast_to(ref, got.shape))
    err = _reference.ulp_errors(got, ref, np.broadcast_to(scale, got.shape), dt, subnormal_abs=SUBNORMAL_ABS[dt.type])
    tol = _reference.tolerance(dt)
    if err.size and not np.all(err <= tol):
        i = np.unravel_index(np.argmax(err), err.shape)
        _fail(f"weighted logsumexp off by {float(err[i]):.3g} ulp (> {tol}) at {tuple(int(j) for j in i)}: got "
              f"{got[i]!r}, reference {ref[i]!r}", op, x, kwargs)
    if kwargs.get("return_sign"):
        gs, es = np.asarray(got_parts[1]), np.asarray(exp_parts[1])
        determined = special | (np.broadcast_to(cond, gs.shape) < 2.0 ** -20 / np.finfo(dt).eps)
        if not np.array_equal(np.where(determined, gs, 0), np.where(determined, es, 0), equal_nan=True):
            _fail(f"sign {gs!r}, specification {es!r}", op, x, kwargs)

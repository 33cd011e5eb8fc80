"""topk_softmax and sample: the argument checks and layout here, the O(n) selection in csrc/select.c.

float32 and float64 logits go to the kernel; float16 and bfloat16 are widened first (exactly),
integers become float64, longdouble takes the NumPy specification (_fallback.topk_softmax_rows /
sample_rows), which the kernel is tested against.
"""
import numbers
import operator

import numpy as np

from . import _core, _fallback
from ._plan import check_threads, is_bfloat16

try:  # NumPy >= 2
    from numpy.lib.array_utils import normalize_axis_index
except ImportError:  # NumPy 1.26
    from numpy.core.multiarray import normalize_axis_index


def _logits(x, name):
    """x as an array of a float dtype the selection computes in, and that dtype of the results."""
    x = np.asarray(x)
    dt = x.dtype
    if dt.kind == "b":
        raise TypeError(f"{name} does not accept boolean arrays; convert to a float dtype first")
    if dt.kind in "iu":
        return x.astype(np.float64), np.dtype(np.float64)
    if dt.kind == "c":
        raise TypeError(f"{name} needs real logits, got dtype {dt}")
    if dt.kind != "f" and not is_bfloat16(dt):
        raise TypeError(f"{name} expects a real numeric array, got dtype {dt}")
    if x.ndim == 0:
        raise ValueError(f"{name} needs at least one axis of logits, got a 0-d array")
    return x, dt.newbyteorder("=")


def _number(v, name):
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(v).__name__}")
    v = float(v)
    if not np.isfinite(v):
        raise ValueError(f"{name} must be finite, got {v}")
    return v


def _integer(v, name):
    if isinstance(v, (bool, np.bool_)):
        raise TypeError(f"{name} must be an integer, got bool")
    try:
        return operator.index(v)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {type(v).__name__}") from None


def _temperature(temperature, zero_ok):
    t = _number(temperature, "temperature")
    if t < 0 or (t == 0 and not zero_ok):
        raise ValueError(f"temperature must be {'>= 0' if zero_ok else '> 0'}, got {t}")
    return t


def _compute_dtype(dt):
    """The dtype the selection computes in: float32/float64 as given, halves in float64 (then one
    rounding to the half), longdouble as itself (the NumPy specification)."""
    if dt.kind == "f" and dt.itemsize in (4, 8):
        return dt
    if dt.itemsize == 2:
        return np.dtype(np.float64)
    return dt


def _scaled_rows(x, dt, temperature):
    """The rows (rows, n) of x / temperature in the compute dtype, C-contiguous."""
    cdt = _compute_dtype(dt)
    z = x.reshape(-1, x.shape[-1]).astype(cdt, copy=False)
    if temperature != 1.0:
        with np.errstate(over="ignore"):
            z = np.divide(z, cdt.type(temperature))
    return np.ascontiguousarray(z)


def _bad_row(name, z, row, lead, why=None):
    """The ValueError for a row of logits that has no softmax."""
    where = f"row {tuple(int(i) for i in np.unravel_index(row, lead)) if len(lead) > 1 else row} of the logits"
    r = z[row]
    if why == "nan" or (why is None and np.isnan(r).any()):
        return ValueError(f"{name}: {where} holds NaN")
    if why == "posinf" or (why is None and np.isposinf(r).any()):
        return ValueError(f"{name}: {where} holds +inf (after dividing by the temperature): it has no softmax")
    return ValueError(f"{name}: {where} is all -inf: it has no softmax")


def topk_softmax(x, k, axis=-1, *, temperature=1.0, threads=None):
    """The ``k`` largest probabilities of ``softmax(x / temperature)`` along ``axis``, with their indices.

    The probabilities are normalised over the whole slice (they are the softmax's, not a softmax of
    the k). One max-and-sum pass over the data plus a selection: the full softmax is never formed,
    and nothing is sorted but the k results.

    Parameters
    ----------
    x : array_like
        Logits: float32, float64, float16, bfloat16 (ml_dtypes), integers (as float64) or longdouble.
        NaN, +inf, or a slice that is all -inf raises ``ValueError``.
    k : int
        How many, ``1 <= k <= x.shape[axis]``.
    axis : int, optional
        The axis of the classes (default the last).
    temperature : float, optional
        ``> 0``; the logits are divided by it (in their dtype) first.
    threads : int or None, optional
        Upper bound on the threads used (rows are shared among them); None uses the default policy.

    Returns
    -------
    probs : ndarray
        ``x``'s shape with ``axis`` of length k, in ``x``'s float dtype (float64 for integers); along
        ``axis`` in descending order, each within 1 ulp of the correctly rounded softmax value.
    indices : ndarray of int64
        Where along ``axis`` each one is; ties are broken by the lower index.

    Examples
    --------
    >>> import numpy as np
    >>> from fastsoftmax import topk_softmax
    >>> p, i = topk_softmax(np.array([4.1, 1.0, 2.3, -0.5, 0.2]), 2)
    >>> i
    array([0, 2])
    >>> np.round(p, 3)
    array([0.806, 0.133])
    """
    nt = check_threads(threads)
    x, dt = _logits(x, "topk_softmax")
    axis = normalize_axis_index(_integer(axis, "axis"), x.ndim)
    k = _integer(k, "k")
    n = x.shape[axis]
    if not 1 <= k <= n:
        raise ValueError(f"k must be in [1, {n}] (the length of axis {axis}), got {k}")
    t = _temperature(temperature, zero_ok=False)
    last = axis == x.ndim - 1
    if not last:
        x = np.moveaxis(x, axis, -1)
    lead = x.shape[:-1]
    z = _scaled_rows(x, dt, t)
    if z.dtype.itemsize in (4, 8) and z.shape[0] > 0:
        try:
            probs, idx = _core._topk_rows(z, k, nt)
        except ValueError as e:
            raise _bad_row("topk_softmax", z, e.args[1], lead, e.args[0]) from None
    else:  # longdouble, or no rows (np.max propagates NaN: a row whose max is not finite is bad)
        bad = np.nonzero(~np.isfinite(z.max(axis=-1)))[0] if z.shape[0] else ()
        if len(bad):
            raise _bad_row("topk_softmax", z, bad[0], lead)
        probs, idx = _fallback.topk_softmax_rows(z, k)
    with np.errstate(under="ignore"):
        probs = probs.astype(dt, copy=False)
    probs, idx = probs.reshape(lead + (k,)), idx.reshape(lead + (k,))
    if last:
        return probs, idx
    return np.moveaxis(probs, -1, axis), np.moveaxis(idx, -1, axis)


def _generator(rng):
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or (isinstance(rng, (numbers.Integral, np.random.SeedSequence)) and not isinstance(rng, bool)):
        return np.random.default_rng(rng)
    raise TypeError(f"rng must be a numpy.random.Generator, a seed or None, got {type(rng).__name__}")


def sample(logits, *, temperature=1.0, top_k=None, top_p=None, min_p=None, rng=None, threads=None):
    """Draw one index per row of ``logits`` (last axis) from the filtered softmax distribution.

    The distribution is ``softmax(logits / temperature)``, filtered in the order top_k, top_p,
    min_p as in Hugging Face ``generate`` and vLLM, renormalised over what is kept. Every filter
    keeps the elements at or above a threshold, so elements tied at a cut are all kept. No sort of
    the row: each threshold is found by a radix selection, O(n).

    Parameters
    ----------
    logits : array_like
        Shape ``(..., n)``: float32, float64, float16, bfloat16 (widened to float32), integers (as
        float64) or longdouble. A row holding NaN or +inf, or all -inf, raises ``ValueError``.
    temperature : float, optional
        ``>= 0``. 0 means greedy: the index of the largest logit (the lowest such index), no draw.
    top_k : int, optional
        Keep the ``top_k`` most likely elements (and any tied with the last of them); ``>= 1``, a
        value above n keeps all (as Hugging Face clamps it).
    top_p : float, optional
        In (0, 1]: keep the smallest set of most likely elements whose probability reaches
        ``top_p`` of what top_k kept (always at least the most likely one).
    min_p : float, optional
        In [0, 1]: keep the elements whose probability is at least ``min_p`` times the largest.
    rng : numpy.random.Generator, int, SeedSequence or None
        Source of the draws: one ``rng.random()`` per row, in row order. A seed gives the same
        indices on every ISA and for any thread count.
    threads : int or None, optional
        Upper bound on the threads used (the softmax pass, then rows shared among them).

    Returns
    -------
    ndarray of int64, shape ``logits.shape[:-1]`` (a NumPy integer for 1-D logits)

    Examples
    --------
    >>> import numpy as np
    >>> from fastsoftmax import sample
    >>> logits = np.array([[2.0, 1.0, 0.1, -3.0], [0.0, 5.0, 0.0, 0.0]])
    >>> sample(logits, temperature=0)
    array([0, 1])
    >>> int(sample(logits[1], top_k=1, rng=0))
    1
    """
    nt = check_threads(threads)
    x, dt = _logits(logits, "sample")
    t = _temperature(temperature, zero_ok=True)
    k = 0
    if top_k is not None:
        k = _integer(top_k, "top_k")
        if k < 1:
            raise ValueError(f"top_k must be >= 1 (or None for no top-k filter), got {k}")
    p_top = 1.0
    if top_p is not None:
        p_top = _number(top_p, "top_p")
        if not 0.0 < p_top <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {p_top}")
    p_min = 0.0
    if min_p is not None:
        p_min = _number(min_p, "min_p")
        if not 0.0 <= p_min <= 1.0:
            raise ValueError(f"min_p must be in [0, 1], got {p_min}")
    gen = _generator(rng)
    n = x.shape[-1]
    if n == 0:
        raise ValueError("sample needs at least one logit per row, got an empty last axis")
    lead = x.shape[:-1]
    rows = x.reshape(-1, n)
    if t == 0.0:  # greedy: the argmax of each row (np.max propagates NaN: a row whose max is not finite is bad)
        bad = np.nonzero(~np.isfinite(rows.max(axis=-1)))[0] if rows.shape[0] else ()
        if len(bad):
            raise _bad_row("sample", rows, bad[0], lead)
        return np.argmax(rows, axis=-1).astype(np.int64).reshape(lead)[()]
    z = _scaled_rows(x, np.dtype(np.float32) if dt.itemsize == 2 else dt, t)
    if z.dtype.itemsize in (4, 8):
        p = _core.softmax(z, axis=-1, threads=threads) if z.size else z
    else:
        p = _fallback.softmax(z, axis=-1)
    bad = np.nonzero(np.isnan(p[:, 0]))[0] if z.size else ()
    if len(bad):
        raise _bad_row("sample", z, bad[0], lead)
    u = gen.random(z.shape[0])
    if p.dtype.itemsize in (4, 8):
        out = _core._sample_rows(p, k if k < n else 0, p_top, p_min, u, nt)
    else:
        out = _fallback.sample_rows(p, k if k < n else 0, p_top, p_min, u)
    return out.reshape(lead)[()]

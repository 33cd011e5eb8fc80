"""Property tests (hypothesis): fastsoftmax against its executable specification, _fallback.

Random shapes (0-4 dims, zero-size included), dtypes, axes (int, negative, tuple, empty tuple,
None), layouts (C, F, steps, negative steps, transposes, byte-swapped, read-only, unaligned,
stride-0 broadcasts) and out= variants (none, fresh, strided, in place, wrong). The oracle
(fuzz/oracle.py, shared with the fuzz target) asserts: same exceptions as the fallback; on the C
kernel's route every value within the documented 2 ulp of the specification evaluated in wider
precision; elsewhere the fallback's answer exactly; input unchanged; out returned / untouched on
error. On top of that: softmax rows sum to 1, softmax and log_softmax are invariant to adding a
constant per row (logsumexp shifts by it), log_softmax == log(softmax) where representable, and
results do not depend on the thread count.

Profiles: the default run is short (about 10 s). For a nightly-style run:
    FASTSOFTMAX_HYPOTHESIS_PROFILE=nightly python -m pytest tests/test_properties.py
(FASTSOFTMAX_HYPOTHESIS_PROFILE=ci-sanitize is the reduced profile scripts/sanitize.sh uses).
"""
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fastsoftmax
from fastsoftmax import _reference

FUZZ_DIR = Path(__file__).resolve().parents[1] / "fuzz"
sys.path.insert(0, str(FUZZ_DIR))
import oracle  # noqa: E402  (fuzz/oracle.py)

_COMMON = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                    HealthCheck.filter_too_much], derandomize=False)
settings.register_profile("fastsoftmax-default", max_examples=60, **_COMMON)
settings.register_profile("fastsoftmax-nightly", max_examples=3000, **_COMMON)
settings.register_profile("fastsoftmax-ci-sanitize", max_examples=25, **_COMMON)
_PROFILE = "fastsoftmax-" + os.environ.get("FASTSOFTMAX_HYPOTHESIS_PROFILE", "default")
PROFILE = settings.get_profile(_PROFILE)


def scaled(factor):
    """The active profile with max_examples scaled (cheap tests get more, costly ones fewer)."""
    return settings(PROFILE, max_examples=max(1, int(PROFILE.max_examples * factor)))


# ---------------------------------------------------------------------------------------------
# Strategies

FLOAT_DTYPES = [np.float32, np.float64]
OTHER_DTYPES = [np.float16, np.longdouble, np.int8, np.int32, np.int64, np.uint8, np.uint64,
                np.bool_, np.complex64, np.complex128]
SPECIALS = [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-30, 1e30, -1e30, 88.7, -103.9, 709.7, -745.1]


def elements(dtype, wide=True):
    dt = np.dtype(dtype)
    if dt.kind == "f":
        width = min(dt.itemsize * 8, 64)
        narrow = st.floats(-40, 40, width=width)
        if not wide:
            return narrow
        return st.one_of(narrow, narrow, st.floats(width=width),
                         st.sampled_from(SPECIALS).map(lambda v: dt.type(v)))
    if dt.kind == "c":
        return st.complex_numbers(max_magnitude=50, allow_nan=False, allow_infinity=False, width=dt.itemsize * 8)
    return hnp.from_dtype(dt)


@st.composite
def layouts(draw, ndim):
    """A memory layout for an ndim array: permutation, per-axis steps, order and flags."""
    perm = draw(st.permutations(range(ndim))) if ndim > 1 else list(range(ndim))
    steps = draw(st.lists(st.sampled_from([1, 1, 1, 2, 3, -1, -2]), min_size=ndim, max_size=ndim))
    return dict(perm=list(perm), steps=steps,
                order=draw(st.sampled_from(["C", "F"])),
                byteswap=draw(st.integers(0, 7)) == 0,
                readonly=draw(st.integers(0, 5)) == 0,
                unaligned=draw(st.integers(0, 7)) == 0,
                broadcast=draw(st.integers(0, 9)) == 0 and ndim > 0)


def realize(vals, lay):
    """An array equal to vals, stored with layout lay (a view into a bigger/odd buffer)."""
    dt = vals.dtype.newbyteorder() if lay["byteswap"] and vals.dtype.itemsize > 1 else vals.dtype
    ndim = vals.ndim
    perm, steps = lay["perm"], lay["steps"]
    pshape = [vals.shape[p] * abs(steps[p]) for p in perm]
    if lay["unaligned"] and dt.itemsize > 1:
        nbytes = max(int(np.prod(pshape)), 1) * dt.itemsize
        flat = np.zeros(nbytes + 1, np.uint8)[1:].view(dt)
        base = flat[:int(np.prod(pshape))].reshape(pshape)
        assert base.size == 0 or not base.flags.aligned
    else:
        base = np.zeros(pshape, dtype=dt, order=lay["order"])
    x = base.transpose(np.argsort(perm)) if ndim > 1 else base
    if ndim:
        x = x[tuple(slice(None, None, s) for s in steps)]
    x[...] = vals
    if lay["broadcast"] and vals.shape[0] > 1:
        x = np.broadcast_to(x[:1], x.shape)  # stride 0 along axis 0 (values: row 0 repeated)
    if lay["readonly"] and x.flags.writeable:
        x.flags.writeable = False
    return x


@st.composite
def axes_for(draw, ndim):
    if ndim == 0:
        return draw(st.sampled_from([None, ()]))
    kind = draw(st.integers(0, 3))
    if kind == 0:
        return None
    if kind == 1:
        return draw(st.integers(-ndim, ndim - 1))
    chosen = draw(st.lists(st.integers(0, ndim - 1), unique=True, max_size=ndim))
    return tuple(a - ndim if draw(st.booleans()) else a for a in chosen)


@st.composite
def inputs(draw, dtypes, max_dims=4, max_side=5, wide=True):
    dtype = draw(st.sampled_from(dtypes))
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=max_dims, min_side=0, max_side=max_side)
                 .filter(lambda s: int(np.prod(s)) <= 300))
    vals = draw(hnp.arrays(dtype, shape, elements=elements(dtype, wide)))
    lay = draw(layouts(len(shape)))
    return realize(vals, lay)


def result_dtype(x):
    """The dtype of the result, and so of out: float64 for integers, else x's dtype in native order."""
    return np.dtype(np.float64) if x.dtype.kind in "iub" else x.dtype.newbyteorder("=")


@st.composite
def out_for(draw, x):
    """(kind, out) with kind in none/fresh/in-place/wrong."""
    kind = draw(st.sampled_from(["none", "none", "fresh-C", "fresh-F", "strided", "unaligned", "in-place",
                                 "wrong-shape", "wrong-dtype", "read-only", "overlap", "list"]))
    rdt = result_dtype(x)
    if kind == "none":
        return kind, None
    if kind == "fresh-C":
        return kind, np.full(x.shape, 7, rdt)
    if kind == "fresh-F":
        return kind, np.full(x.shape, 7, rdt, order="F")
    if kind == "strided":
        big = np.full(tuple(2 * s for s in x.shape), 7, rdt)
        return kind, big[tuple(slice(None, None, -2) for _ in x.shape)] if x.ndim else big
    if kind == "unaligned":
        if rdt.itemsize == 1:
            return "none", None
        flat = np.zeros(x.size * rdt.itemsize + 1, np.uint8)[1:].view(rdt)
        return kind, flat.reshape(x.shape)
    if kind == "in-place":
        if x.flags.writeable and x.dtype == rdt:
            return kind, x
        return "none", None
    if kind == "wrong-shape":
        return kind, np.zeros(x.shape + (2,), rdt)
    if kind == "wrong-dtype":
        return kind, np.zeros(x.shape, np.float16 if rdt != np.float16 else np.float32)
    if kind == "read-only":
        o = np.zeros(x.shape, rdt)
        o.flags.writeable = False
        return kind, o
    if kind == "overlap":
        if x.ndim and x.shape[0] > 1 and x.size > 1 and x.flags.writeable and x.dtype == rdt:
            return kind, x[::-1]
        return "none", None
    return ("list", x.tolist()) if x.size < 50 else ("none", None)


isas = st.sampled_from(fastsoftmax.available_isas())
threads_st = st.sampled_from([None, None, 1, 2, 3])


class use_isa:
    def __init__(self, name):
        self.name = name

    def __enter__(self):
        self.previous = fastsoftmax._core.current_isa()
        fastsoftmax.set_isa(self.name)

    def __exit__(self, *exc):
        fastsoftmax.set_isa(self.previous)


def kernel(op, x, axis):
    return oracle.kernel_route(op, x, axis)


# ---------------------------------------------------------------------------------------------
# Agreement with the specification


@given(data=st.data())
@scaled(2.0)
def test_elementwise_agrees_with_spec(data):
    op = data.draw(st.sampled_from(["softmax", "log_softmax"]))
    x = data.draw(inputs(FLOAT_DTYPES * 3 + OTHER_DTYPES))
    axis = data.draw(axes_for(x.ndim))
    kind, out = data.draw(out_for(x))
    kwargs = {"axis": axis, "threads": data.draw(threads_st)}
    if out is not None:
        kwargs["out"] = out
    with use_isa(data.draw(isas)):
        try:
            res = oracle.check_call(op, x, **kwargs)
        except oracle.DOCUMENTED_ERRORS as e:
            # Legitimate failures: boolean input, reductions over zero-size axes, a wrong out.
            assert kind in ("wrong-shape", "wrong-dtype", "read-only", "overlap", "list") or \
                x.dtype.kind == "b" or x.size == 0, f"unexpected {type(e).__name__}: {e}"
            return
    assert kind not in ("wrong-shape", "wrong-dtype", "read-only", "overlap", "list"), f"out={kind} accepted"
    assert res.shape == x.shape


@given(data=st.data())
@scaled(2.0)
def test_logsumexp_agrees_with_spec(data):
    x = data.draw(inputs(FLOAT_DTYPES * 3 + OTHER_DTYPES))
    axis = data.draw(axes_for(x.ndim))
    kwargs = {"axis": axis, "threads": data.draw(threads_st),
              "keepdims": data.draw(st.booleans()), "return_sign": data.draw(st.booleans())}
    if data.draw(st.integers(0, 3)) == 0:
        kwargs["b"] = data.draw(st.sampled_from([
            np.float64(2.0), np.float64(-1.0), np.float64(0.0),
            np.where(np.arange(x.size).reshape(x.shape) % 3 == 0, -1.0, 0.5)]))
    with use_isa(data.draw(isas)):
        try:
            oracle.check_call("logsumexp", x, **kwargs)
        except oracle.DOCUMENTED_ERRORS as e:
            assert x.dtype.kind == "c" and "b" in kwargs, f"unexpected {type(e).__name__}: {e}"


# ---------------------------------------------------------------------------------------------
# Mathematical properties (float32/float64 data)


def _row_sums(y, axes):
    w = _reference.wide_dtype(y.dtype)
    return np.sum(y.astype(w), axis=axes, keepdims=True)


@given(x=inputs(FLOAT_DTYPES), data=st.data())
@scaled(1.0)
def test_softmax_rows_sum_to_one(x, data):
    assume(x.size > 0)
    axis = data.draw(axes_for(x.ndim))
    with use_isa(data.draw(isas)):
        y = fastsoftmax.softmax(x, axis=axis, threads=data.draw(threads_st))
    axes = oracle.normalize_axes(axis, x.ndim)
    finite = np.all(np.isfinite(y), axis=axes, keepdims=True)
    n = int(np.prod([x.shape[a] for a in axes])) if axes else 1
    fi = np.finfo(y.dtype)
    if kernel("softmax", x, axis):   # 2 ulp per element => |sum - 1| <= 2 eps (+ subnormal ulps)
        tol = 2 * fi.eps * 1.001 + n * 2 * float(fi.smallest_subnormal)
    else:                            # the fallback's own accuracy (NumPy exp, pairwise sum)
        tol = (4 + n) * fi.eps
    dev = np.abs(_row_sums(y, axes) - 1)
    assert np.all(dev[finite] <= tol), f"row sums off by {dev[finite].max()} > {tol}: {oracle.describe(x)}"
    # A row is all-finite exactly when its input's maximum is finite (no NaN, no +-inf maximum).
    m = np.max(x.astype(np.float64), axis=axes, keepdims=True)
    assert np.array_equal(finite, np.isfinite(m)), oracle.describe(x)


@st.composite
def grid_inputs(draw):
    """Values k/16 with |k| <= 16000 and an integer shift per row: x + c is exact in float32."""
    dtype = draw(st.sampled_from(FLOAT_DTYPES))
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=5)
                 .filter(lambda s: int(np.prod(s)) <= 300))
    k = draw(hnp.arrays(np.int32, shape, elements=st.integers(-16000, 16000)))
    vals = (k / 16).astype(dtype)
    axis = draw(axes_for(len(shape)))
    axes = oracle.normalize_axes(axis, len(shape))
    cshape = tuple(1 if i in axes else s for i, s in enumerate(shape))
    c = draw(hnp.arrays(np.int32, cshape, elements=st.integers(-10000, 10000))).astype(dtype)
    lay = dict(draw(layouts(len(shape))), broadcast=False)
    x, xc = realize(vals, lay), realize(vals + c, lay)   # x + c is exact: same grid, |x + c| < 2^15
    assert np.array_equal(xc.astype(dtype) - c, x.astype(dtype))
    return x, xc, axis, axes, c


@given(case=grid_inputs(), isa=isas, threads=threads_st)
@scaled(1.0)
def test_shift_invariance(case, isa, threads):
    x, xc, axis, axes, c = case
    dt = np.dtype(x.dtype.type)
    # Both sides within the documented bound of the same value (on the fallback route, with the
    # same layout for x and x + c, x - max is the same and so are the results).
    tol = 2 * _reference.tolerance(dt)
    with use_isa(isa):
        for op in ("softmax", "log_softmax"):
            f = getattr(fastsoftmax, op)
            a, b = f(x, axis=axis, threads=threads), f(xc, axis=axis, threads=threads)
            err = _reference.ulp_errors(b, a.astype(_reference.wide_dtype(dt)), a, dt)
            assert np.all(err <= tol), f"{op} not shift-invariant ({err.max()} ulp): {oracle.describe(x)}"
        l0 = fastsoftmax.logsumexp(x, axis=axis, keepdims=True, threads=threads)
        l1 = fastsoftmax.logsumexp(xc, axis=axis, keepdims=True, threads=threads)
    w = _reference.wide_dtype(dt)
    m0 = np.max(x, axis=axes, keepdims=True)
    shifted = np.asarray(l0, w) + np.asarray(c, w)
    ulp = _reference.ulp
    allowed = _reference.tolerance(dt) * (ulp(np.maximum(np.abs(np.asarray(l0, w)), np.abs(m0.astype(w))), dt)
                                          + ulp(np.maximum(np.abs(np.asarray(l1, w)), np.abs(m0.astype(w) + c)), dt))
    assert np.all(np.abs(np.asarray(l1, w) - shifted) <= allowed), "logsumexp(x + c) != logsumexp(x) + c"


@given(x=inputs(FLOAT_DTYPES, wide=False), data=st.data())
@scaled(1.0)
def test_log_softmax_is_log_of_softmax(x, data):
    assume(x.size > 0)
    axis = data.draw(axes_for(x.ndim))
    with use_isa(data.draw(isas)):
        y = fastsoftmax.softmax(x, axis=axis)
        ly = fastsoftmax.log_softmax(x, axis=axis)
    fi = np.finfo(y.dtype)
    w = _reference.wide_dtype(y.dtype)
    ok = y >= fi.smallest_normal          # where log(softmax) is representable to full precision
    lw = np.log(y.astype(w))
    # |log(y(1+d)) - l(1+e)| <= |d| + |l e|: 2 ulp of y is at most 2 eps relative.
    if kernel("softmax", x, axis):
        tol = 2 * fi.eps * 1.001 + _reference.tolerance(y.dtype) * _reference.ulp(ly.astype(w), y.dtype)
    else:
        tol = 6 * fi.eps + 4 * _reference.ulp(ly.astype(w), y.dtype)
    dev = np.abs(lw - ly.astype(w))
    assert np.all(dev[ok] <= tol[ok]), f"log(softmax) - log_softmax = {dev[ok].max()}: {oracle.describe(x)}"


# ---------------------------------------------------------------------------------------------
# Long rows and wide column blocks: the block-parallel and column-chunk paths of the C driver


@st.composite
def long_cases(draw):
    dtype = draw(st.sampled_from(FLOAT_DTYPES))
    kind = draw(st.sampled_from(["row", "rows", "columns"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if kind == "row":
        shape, axis = (draw(st.sampled_from([16383, 16385, 32769, 50001])),), -1
    elif kind == "rows":
        shape, axis = (draw(st.integers(2, 3)), draw(st.sampled_from([16385, 20001]))), -1
    else:
        shape, axis = (draw(st.sampled_from([3, 64, 130])), draw(st.sampled_from([255, 257, 520, 1031]))), 0
    x = (rng.standard_normal(shape) * draw(st.sampled_from([1.0, 10.0, 300.0]))).astype(dtype)
    for _ in range(draw(st.integers(0, 4))):   # a few special values
        idx = tuple(int(rng.integers(0, s)) for s in shape)
        x[idx] = draw(st.sampled_from([np.inf, -np.inf, np.nan, 1e4, -1e4]))
    return x, axis


@given(case=long_cases(), isa=isas, op=st.sampled_from(oracle.OPS))
@scaled(0.2)
def test_long_rows_and_column_blocks(case, isa, op):
    x, axis = case
    with use_isa(isa):
        oracle.check_call(op, x, axis=axis)
        f = getattr(fastsoftmax, op)
        one, two = f(x, axis=axis, threads=1), f(x, axis=axis, threads=2)
    assert np.asarray(one).tobytes() == np.asarray(two).tobytes(), "result depends on the thread count"


# ---------------------------------------------------------------------------------------------
# Regressions


def test_fuzz_corpus_replays():
    """Every committed fuzz input (fuzz/corpus) passes the oracle; about 1 s."""
    corpus = FUZZ_DIR / "corpus"
    files = sorted(corpus.iterdir()) if corpus.is_dir() else []
    if not files:
        pytest.skip("no fuzz corpus")
    import fuzz_target
    for f in files:
        fuzz_target.one_input(f.read_bytes())


# Found by the fuzzer and fixed: float64 log ops sum the exps before their final 2^-54 scaling.


@pytest.mark.parametrize("isa", fastsoftmax.available_isas())
@pytest.mark.parametrize("x", [
    pytest.param(np.array([709.78, 0, 0, 0, 0, 1e-8, 0, 1e-8]), id="fuzz-709.78"),
    pytest.param(np.array([0.0] + [-713.0] * 1000), id="0-and-1000x-713"),
])
def test_float64_log_softmax_with_subnormal_exponentials(x, isa):
    with use_isa(isa):
        oracle.check_call("log_softmax", x)


# Found by these tests and fixed: each stays as a regression test.


@pytest.mark.parametrize("isa", fastsoftmax.available_isas())
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_log_softmax_single_element_is_plus_zero(isa, dtype):
    """Was -0.0 for AVX2 float32 (scipy, the fallback, portable and float64 give +0.0)."""
    with use_isa(isa):
        for x, axis in ((np.array([3.0], dtype), None), (np.ones((1, 9), dtype), 0), (np.ones((9, 1), dtype), 1)):
            y = fastsoftmax.log_softmax(x, axis=axis)
            assert not np.any(np.signbit(y)), f"{isa} {np.dtype(dtype)} {x.shape} axis={axis}: {y}"


@pytest.mark.parametrize("isa", fastsoftmax.available_isas())
@pytest.mark.parametrize("n", [2, 16383, 100_000])
def test_dominant_class_far_above_the_rest_gives_exact_zero(isa, n):
    """Was about -2.8e-44 (20 subnormal ulps) for float32: each element below the exp clamp
    (x - max < -110) added exp(-110) to the sum instead of nothing."""
    x = np.full(n, -200.0, np.float32)
    x[0] = 0.0
    # true values: log_softmax[0] = -log1p((n-1) e^-200) ~ -1e-82, logsumexp ~ +1e-82: both round to 0
    with use_isa(isa):
        assert fastsoftmax.log_softmax(x)[0] == 0.0
        assert fastsoftmax.logsumexp(x) == 0.0
        assert fastsoftmax.softmax(x)[0] == 1.0


@pytest.mark.parametrize("layout", ["strided", "byteswapped", "reversed"])
def test_log_softmax_dominant_class_accurate_for_any_layout(layout):
    """Was 0.0 instead of -4.25e-18 when a strided or byte-swapped array went to NumPy's log(sum)."""
    base = np.array([0.0, 0.0, 40.0, 0.0])
    # each holds [0, 40]; "reversed" reads base's last two elements back to front (a negative stride)
    x = {"strided": base[::2], "byteswapped": base[::2].astype(">f8"), "reversed": base[::-1][:2]}[layout]
    assert x.tolist() == [0.0, 40.0] and (x.strides[0] < 0) == (layout == "reversed")
    y = fastsoftmax.log_softmax(x)
    assert y[1] == pytest.approx(-np.exp(-40.0), rel=1e-15, abs=0)


@pytest.mark.parametrize("isa", fastsoftmax.available_isas())
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("op", oracle.OPS)
def test_unaligned_input_and_out(op, dtype, isa):
    """Data and out that are not aligned to their itemsize (views at an odd byte offset).

    Correct on x86 either way; under scripts/sanitize.sh (UBSan) this is the deterministic check
    that the kernels never load or store through a misaligned float pointer.
    """
    rng = np.random.default_rng(3)
    for shape, axis in (((5, 37), -1), ((37, 6), 0), ((3, 20000), -1)):
        vals = (rng.standard_normal(shape) * 5).astype(dtype)
        x = np.zeros(vals.size * vals.itemsize + 1, np.uint8)[1:].view(dtype).reshape(shape)
        x[...] = vals
        assert not x.flags.aligned
        with use_isa(isa):
            oracle.check_call(op, x, axis=axis)
            if op != "logsumexp":
                out = np.zeros(vals.size * vals.itemsize + 1, np.uint8)[1:].view(dtype).reshape(shape)
                assert oracle.check_call(op, x, axis=axis, out=out) is out
                assert oracle.check_call(op, vals.copy(), axis=axis, out=out) is out


# ---------------------------------------------------------------------------------------------
# Selection: topk_softmax and sample against the specification (_fallback.topk_softmax_rows / sample_rows)

_SPECIAL = st.sampled_from([0.0, -0.0, -np.inf, 1e30, -1e30, 88.0, -88.0, 1e-40, 3.0, 3.0])


@st.composite
def logit_rows(draw):
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    rows, n = draw(st.integers(1, 4)), draw(st.integers(1, 300))
    scale = draw(st.sampled_from([0.0, 0.01, 1.0, 10.0, 100.0]))
    seed = draw(st.integers(0, 2**32 - 1))
    x = (np.random.default_rng(seed).standard_normal((rows, n)) * scale).astype(dtype)
    for _ in range(draw(st.integers(0, 6))):
        x[draw(st.integers(0, rows - 1)), draw(st.integers(0, n - 1))] = draw(_SPECIAL)
    if draw(st.booleans()):  # coarse values: many ties
        x = np.round(x)
    return x


@scaled(1.0)
@given(x=logit_rows(), data=st.data())
def test_selection_matches_specification(x, data):
    from fastsoftmax import _fallback
    rows, n = x.shape
    finite = np.isfinite(x.max(axis=-1)).all()
    k = data.draw(st.integers(1, n))
    if not finite:
        with pytest.raises(ValueError):
            fastsoftmax.topk_softmax(x, k)
        with pytest.raises(ValueError):
            fastsoftmax.sample(x, rng=0)
        return
    p, i = fastsoftmax.topk_softmax(x, k)
    pe, ie = _fallback.topk_softmax_rows(x, k)
    np.testing.assert_array_equal(i, ie)
    assert _reference.ulp_error(p, pe.astype(np.longdouble)) <= 1.0
    top_k = data.draw(st.one_of(st.none(), st.integers(1, n + 3)))
    top_p = data.draw(st.one_of(st.none(), st.floats(0.01, 1.0)))
    min_p = data.draw(st.one_of(st.none(), st.floats(0.0, 1.0)))
    t = data.draw(st.sampled_from([0.0, 0.5, 1.0, 2.0]))
    got = fastsoftmax.sample(x, temperature=t, top_k=top_k, top_p=top_p, min_p=min_p, rng=11)
    if t == 0:
        np.testing.assert_array_equal(got, np.argmax(x, axis=-1))
        return
    z = x / x.dtype.type(t) if t != 1 else x
    if not np.isfinite(z.max(axis=-1)).all():
        return  # x / t overflowed: sample raised for that (checked by test_select)
    probs = fastsoftmax.softmax(z, axis=-1)
    u = np.random.default_rng(11).random(rows)
    kk = top_k if top_k is not None and top_k < n else 0
    want = _fallback.sample_rows(probs, kk, 1.0 if top_p is None else top_p, 0.0 if min_p is None else min_p, u)
    np.testing.assert_array_equal(got, want)

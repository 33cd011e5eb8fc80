"""topk_softmax and sample: against exact references (longdouble softmax, the NumPy specification
in _fallback), the sampled distribution by a chi-square test, determinism, and every error path.
Every test that reaches the kernel runs once per ISA (the softmax pass and the statistics are the
ISA's kernels; the selection itself is the same code everywhere)."""
import numpy as np
import pytest

import fastsoftmax
from fastsoftmax import _core, _fallback, sample, topk_softmax
from fastsoftmax._reference import ulp_error

try:
    import ml_dtypes
    ml_dtypes.finfo(ml_dtypes.bfloat16)
    BF16 = [np.dtype(ml_dtypes.bfloat16)]
except Exception:  # not installed, or built for another NumPy
    BF16 = []


def exact_softmax(z):
    """softmax of the rows of z in longdouble (z already divided by the temperature)."""
    w = np.asarray(z, dtype=np.longdouble)
    m = w.max(axis=-1, keepdims=True)
    e = np.exp(w - m)
    return e / e.sum(axis=-1, keepdims=True)


def expected_order(z, k):
    """indices of the k largest along the last axis: descending, ties by the lower index"""
    return np.argsort(-np.asarray(z, np.float64), axis=-1, kind="stable")[..., :k]


# ---- topk_softmax ------------------------------------------------------------------------------

# n and k around the selection's switches: the buffer (k <= 64) and the radix cut (k > 64, its
# candidate sets small (<= 64) or histogrammed), chunks of 16 and their tails
TOPK_CASES = [(1, 1), (5, 1), (5, 5), (15, 3), (16, 16), (17, 4), (64, 64), (65, 65), (100, 64), (100, 65),
              (1000, 5), (1000, 200), (4099, 7), (5000, 1000), (40000, 50), (40000, 3000), (128256, 5)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n,k", TOPK_CASES)
def test_topk_softmax_matches_exact(isa, dtype, n, k):
    rng = np.random.default_rng(n * 31 + k)
    x = (rng.standard_normal((3, n)) * 4).astype(dtype)
    p, i = topk_softmax(x, k)
    assert p.dtype == dtype and i.dtype == np.int64 and p.shape == i.shape == (3, k)
    np.testing.assert_array_equal(i, expected_order(x, k))
    ref = np.take_along_axis(exact_softmax(x), i, -1)
    assert ulp_error(p, ref) <= 1.0
    assert np.all(np.diff(p.astype(np.float64), axis=-1) <= 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_topk_softmax_ties_by_lower_index(isa, dtype):
    x = np.array([[1.0, 3.0, 3.0, 0.0, 3.0, -0.0, 0.0, 3.0]], dtype=dtype)
    p, i = topk_softmax(x, 8)
    np.testing.assert_array_equal(i, [[1, 2, 4, 7, 0, 3, 5, 6]])  # -0.0 ties with 0.0
    assert p[0, 0] == p[0, 1] == p[0, 2] == p[0, 3]
    # many equal values, on both selection paths
    for k in (3, 70, 300):
        y = np.zeros((2, 1000), dtype)
        y[:, ::7] = 1.0
        _, j = topk_softmax(y, k)
        np.testing.assert_array_equal(j, expected_order(y, k))
    z = np.ones(500, dtype)  # every element equal: one radix bucket, split by the next digits
    p, j = topk_softmax(z, 100)
    np.testing.assert_array_equal(j, np.arange(100))
    np.testing.assert_allclose(p, 1 / 500, rtol=2e-7 if dtype == np.float32 else 1e-15)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_topk_softmax_temperature_and_special_values(isa, dtype):
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((4, 300)) * 3).astype(dtype)
    for t in (0.25, 0.8, 3.0):
        p, i = topk_softmax(x, 10, temperature=t)
        z = x / dtype(t)  # the logits are divided in their dtype, as softmax(x / t) would
        np.testing.assert_array_equal(i, expected_order(z, 10))
        assert ulp_error(p, np.take_along_axis(exact_softmax(z), i, -1)) <= 1.0
    y = x.copy()
    y[:, ::3] = -np.inf  # -inf entries: probability exactly 0, taken last, by index
    p, i = topk_softmax(y, 250)
    np.testing.assert_array_equal(i, expected_order(y, 250))
    assert np.all(p[:, 200:] == 0) and np.all(p[:, :200] > 0)
    big = np.array([1e30, 1e30 - 1e24, -1e30, 0.0], dtype=np.float64).astype(dtype)  # the shift is exact
    p, i = topk_softmax(big, 2)
    np.testing.assert_array_equal(i, [0, 1])
    assert p[0] == 1 or p[0] == 0.5


def test_topk_softmax_dominant_class_keeps_relative_accuracy(isa):
    x = np.array([0.0, -30.0, -60.0, -90.0, 10.0], dtype=np.float32)
    p, i = topk_softmax(x, 5)
    np.testing.assert_array_equal(i, [4, 0, 1, 2, 3])
    ref = exact_softmax(x)[i]
    assert ulp_error(p, ref) <= 1.0  # p ~ 1e-44 is a subnormal, and still right
    assert p[-1] > 0


@pytest.mark.parametrize("axis", [0, 1, 2, -1, -2])
def test_topk_softmax_axes_and_layouts(isa, axis):
    rng = np.random.default_rng(4)
    x = (rng.standard_normal((6, 7, 40)) * 2).astype(np.float32)
    for arr in (x, np.asfortranarray(x), x[:, :, ::2], x.astype(x.dtype.newbyteorder())):
        n = arr.shape[axis]
        p, i = topk_softmax(arr, 3, axis=axis)
        moved = np.moveaxis(np.asarray(arr, np.float32), axis, -1)
        pe, ie = _fallback.topk_softmax_rows(np.ascontiguousarray(moved.reshape(-1, n)), 3)
        shape = moved.shape[:-1] + (3,)
        np.testing.assert_array_equal(i, np.moveaxis(ie.reshape(shape), -1, axis))
        assert ulp_error(p, np.moveaxis(pe.reshape(shape), -1, axis)) <= 1.0


def test_topk_softmax_dtypes():
    x = np.array([[2.0, 1.0, 0.5, 3.0]])
    for dt in [np.float16, np.int64, np.int8, np.longdouble] + BF16:
        a = x.astype(dt)
        p, i = topk_softmax(a, 2)
        np.testing.assert_array_equal(i, [[3, 0]])
        want = np.float64 if np.dtype(dt).kind == "i" else dt
        assert p.dtype == want
        ref = exact_softmax(a.astype(np.float64))[:, [3, 0]]
        if np.dtype(dt) in BF16:  # np.finfo knows bfloat16 only on NumPy 2: |err| <= 2^-8 |ref| is within 1 ulp
            assert np.all(np.abs(p.astype(np.float64) - ref) <= 2.0**-8 * np.abs(ref))
        else:
            assert ulp_error(p, ref) <= 1.0  # rounded once to the half type
    p, i = topk_softmax([[1, 2, 3]], 1)  # a list
    assert i.tolist() == [[2]]


def test_topk_softmax_does_not_modify_input(isa):
    x = np.random.default_rng(5).standard_normal((3, 200)).astype(np.float32)
    before = x.copy()
    topk_softmax(x, 70, temperature=0.5)
    np.testing.assert_array_equal(x, before)


def test_topk_softmax_errors():
    x = np.array([[1.0, 2.0, 3.0]])
    with pytest.raises(ValueError, match="k must be in"):
        topk_softmax(x, 0)
    with pytest.raises(ValueError, match="k must be in"):
        topk_softmax(x, 4)
    with pytest.raises(TypeError, match="k must be an integer"):
        topk_softmax(x, 1.5)
    with pytest.raises(TypeError, match="k must be an integer"):
        topk_softmax(x, True)
    with pytest.raises(ValueError, match="0-d"):
        topk_softmax(np.float32(1.0), 1)
    with pytest.raises(np.exceptions.AxisError if hasattr(np, "exceptions") else np.AxisError):
        topk_softmax(x, 1, axis=2)
    with pytest.raises(TypeError, match="axis must be an integer"):
        topk_softmax(x, 1, axis=(0, 1))
    with pytest.raises(ValueError, match="temperature must be > 0"):
        topk_softmax(x, 1, temperature=0)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        topk_softmax(x, 1, temperature=-1.0)
    with pytest.raises(ValueError, match="finite"):
        topk_softmax(x, 1, temperature=np.inf)
    with pytest.raises(TypeError, match="boolean"):
        topk_softmax(np.array([True, False]), 1)
    with pytest.raises(TypeError, match="real logits"):
        topk_softmax(np.array([1j, 2]), 1)
    for dt in (np.float32, np.float64, np.longdouble):
        bad = np.zeros((3, 5), dt)
        bad[1, 2] = np.nan
        with pytest.raises(ValueError, match=r"row 1 of the logits holds NaN"):
            topk_softmax(bad, 2)
        bad[1, 2] = np.inf
        with pytest.raises(ValueError, match=r"row 1 of the logits holds \+inf"):
            topk_softmax(bad, 2)
        bad[1] = -np.inf
        with pytest.raises(ValueError, match=r"row 1 of the logits is all -inf"):
            topk_softmax(bad, 2)
    with pytest.raises(ValueError, match=r"row \(1, 0\)"):  # rows of a 3-D array by their index
        topk_softmax(np.array([[[0.0, 1.0]], [[np.nan, 1.0]]]), 1)
    with pytest.raises(ValueError, match=r"\+inf \(after dividing by the temperature\)"):
        topk_softmax(np.array([1e38, 0.0], np.float32), 1, temperature=1e-3)


# ---- sample: the kernel against the specification ----------------------------------------------

FILTERS = [dict(), dict(top_k=1), dict(top_k=3), dict(top_k=80), dict(top_p=0.9), dict(top_p=0.3),
           dict(min_p=0.1), dict(top_k=70, top_p=0.8), dict(top_k=5, top_p=0.5, min_p=0.2),
           dict(top_p=0.95, min_p=0.05), dict(top_k=100000, top_p=1.0)]


def spec_sample(x, temperature, top_k=None, top_p=None, min_p=None, seed=0):
    """The specification's indices for the same inputs and seed: the probabilities from the same
    softmax (the kernel's float32 / float64 values), the filters and the draw in NumPy."""
    z = np.asarray(x).reshape(-1, np.shape(x)[-1])
    z = np.ascontiguousarray(z / z.dtype.type(temperature)) if temperature != 1 else np.ascontiguousarray(z)
    p = fastsoftmax.softmax(z, axis=-1)
    n = z.shape[-1]
    k = top_k if top_k is not None and top_k < n else 0
    u = np.random.default_rng(seed).random(z.shape[0])
    return _fallback.sample_rows(p, k, 1.0 if top_p is None else top_p, 0.0 if min_p is None else min_p, u)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 2, 7, 16, 63, 64, 65, 200, 1023, 1025, 5000, 40000])
def test_sample_matches_specification(isa, dtype, n):
    rng = np.random.default_rng(n)
    for scale in (0.3, 3.0, 30.0):
        x = (rng.standard_normal((6, n)) * scale).astype(dtype)
        for f in FILTERS:
            got = sample(x, temperature=0.8, rng=7, **f)
            np.testing.assert_array_equal(got, spec_sample(x, 0.8, seed=7, **f), err_msg=str(f))


def test_sample_specification_filters_by_hand():
    p = np.array([[0.4, 0.1, 0.2, 0.2, 0.05, 0.05]])
    # u just below 1 draws the last kept element in index order
    last = lambda k, tp, mp: int(_fallback.sample_rows(p, k, tp, mp, np.array([0.999999]))[0])
    assert last(1, 1.0, 0.0) == 0
    assert last(2, 1.0, 0.0) == 3  # the 2nd largest is 0.2: both 0.2s are kept
    assert last(0, 0.5, 0.0) == 3  # 0.4 + 0.2 reaches 0.5: both 0.2s kept (tied at the cut)
    assert last(0, 0.4, 0.0) == 0  # 0.4 alone reaches 0.4
    assert last(0, 1.0, 0.5) == 3  # p >= 0.2
    assert last(0, 1.0, 0.51) == 0  # p >= 0.204
    assert last(0, 0.99, 0.0) == 5
    for u in np.linspace(0, 0.999, 50):
        got = _core._sample_rows(p.astype(np.float64), 0, 0.5, 0.0, np.array([u]))
        assert got[0] == _fallback.sample_rows(p, 0, 0.5, 0.0, np.array([u]))[0]


# ---- sample: the distribution -------------------------------------------------------------------

def filtered_distribution(z, top_k=None, top_p=None, min_p=None):
    """The exact filtered and renormalised distribution of one row of logits, by sorting (float64)."""
    p = exact_softmax(z).astype(np.float64)
    keep = np.ones(p.size, bool)
    if top_k is not None and top_k < p.size:
        keep &= p >= np.sort(p)[::-1][top_k - 1]
    if top_p is not None:
        q = np.where(keep, p, 0) / p[keep].sum()
        order = np.argsort(-q, kind="stable")
        before = np.cumsum(q[order]) - q[order]  # mass strictly before each, in descending order
        cut = q[order][before < top_p].min()
        keep &= q >= cut
    if min_p is not None:
        keep &= p >= min_p * p.max()
    w = np.where(keep, p, 0)
    return w / w.sum()


def chi_square_p(counts, probs):
    from scipy import stats
    m = probs > 0
    assert counts[~m].sum() == 0, "drew an element of probability 0"
    exp = probs[m] * counts.sum()
    return stats.chisquare(counts[m], exp).pvalue


LOGITS = np.array([2.0, 1.5, 1.5, 0.2, -0.5, -1.0, 0.9, -np.inf, 0.0, -2.0])


@pytest.mark.parametrize("f", [dict(), dict(top_k=3), dict(top_k=2), dict(top_p=0.8), dict(top_p=0.55),
                               dict(min_p=0.2), dict(top_k=6, top_p=0.7), dict(top_p=0.9, min_p=0.15),
                               dict(top_k=5, top_p=0.9, min_p=0.3)], ids=str)
@pytest.mark.parametrize("temperature", [1.0, 0.7, 2.5])
def test_sample_distribution_chi_square(isa, f, temperature):
    """10^5 draws (one row repeated) against the exact filtered distribution."""
    draws = 100_000
    x = np.tile(LOGITS.astype(np.float32), (draws, 1))
    idx = sample(x, temperature=temperature, rng=12345, **f)
    counts = np.bincount(idx, minlength=LOGITS.size)
    probs = filtered_distribution(LOGITS.astype(np.float32) / np.float32(temperature), **f)
    assert chi_square_p(counts, probs) > 1e-4
    assert counts[7] == 0  # the -inf logit


def test_sample_temperature_zero_is_argmax(isa):
    x = np.array([[0.5, 2.0, 2.0, -1.0], [-np.inf, -np.inf, 3.0, 3.0], [1.0, 0.0, 0.0, 0.0]], np.float32)
    np.testing.assert_array_equal(sample(x, temperature=0, top_p=0.1, top_k=2, rng=0), [1, 2, 0])
    assert sample(np.array([3, 9, 9]), temperature=0) == 1
    g = np.random.default_rng(1)
    state = g.bit_generator.state
    sample(x, temperature=0, rng=g)
    assert g.bit_generator.state == state  # greedy draws nothing


def test_sample_ties_and_neg_inf_never_drawn(isa):
    x = np.full((20000, 8), -np.inf, np.float32)
    x[:, [1, 4, 6]] = 0.5  # three equal logits, the rest -inf
    idx = sample(x, rng=3)
    counts = np.bincount(idx, minlength=8)
    assert set(np.nonzero(counts)[0]) == {1, 4, 6}
    assert chi_square_p(counts, np.array([0, 1, 0, 0, 1, 0, 1, 0]) / 3) > 1e-4
    # top_k=1 with a tie at the top keeps both
    y = np.array([[1.0, 3.0, 3.0, 2.0]] * 20000)
    counts = np.bincount(sample(y, top_k=1, rng=4), minlength=4)
    assert counts[0] == counts[3] == 0 and min(counts[1], counts[2]) > 9000
    # probabilities that underflow to 0 are never drawn
    z = np.array([[0.0, -200.0, -200.0]] * 1000, np.float32)
    assert np.all(sample(z, rng=5) == 0)


def test_sample_determinism_across_isas_and_threads():
    rng = np.random.default_rng(9)
    x = (rng.standard_normal((16, 50000)) * 3).astype(np.float32)
    want = None
    try:
        for isa in fastsoftmax.available_isas():
            fastsoftmax.set_isa(isa)
            for threads in (1, 2, 3):
                got = sample(x, temperature=0.9, top_p=0.9, min_p=0.01, rng=42, threads=threads)
                if want is None:
                    want = got
                np.testing.assert_array_equal(got, want, err_msg=f"{isa} threads={threads}")
    finally:
        fastsoftmax.set_isa("auto")
    assert not np.array_equal(sample(x, rng=43), sample(x, rng=44))  # the seed matters
    # top-k over many short rows, shared among threads: the same as on one
    y = (rng.standard_normal((3000, 300)) * 3).astype(np.float32)
    p1, i1 = topk_softmax(y, 70, threads=1)
    for threads in (2, 4):
        p2, i2 = topk_softmax(y, 70, threads=threads)
        np.testing.assert_array_equal(i1, i2)
        np.testing.assert_array_equal(p1, p2)
        np.testing.assert_array_equal(sample(y, top_p=0.9, rng=1, threads=threads), sample(y, top_p=0.9, rng=1, threads=1))
    bad = y.copy()
    bad[2500, 3] = np.nan  # the first bad row is named, whichever thread found it
    bad[2900, 3] = np.inf
    with pytest.raises(ValueError, match="row 2500 of the logits holds NaN"):
        topk_softmax(bad, 3, threads=2)
    g1, g2 = np.random.default_rng(5), np.random.default_rng(5)
    np.testing.assert_array_equal(sample(x, rng=g1), sample(x, rng=g2))
    np.testing.assert_array_equal(sample(x, rng=g1), sample(x, rng=g2))  # and the generator advances alike
    np.testing.assert_array_equal(sample(x, rng=np.random.SeedSequence(8)), sample(x, rng=8))


def test_sample_shapes_dtypes_and_layouts(isa):
    rng = np.random.default_rng(10)
    x = (rng.standard_normal((3, 4, 50)) * 2).astype(np.float32)
    out = sample(x, top_k=10, rng=1)
    assert out.shape == (3, 4) and out.dtype == np.int64
    np.testing.assert_array_equal(sample(np.asfortranarray(x), top_k=10, rng=1), out)
    np.testing.assert_array_equal(sample(x.astype(x.dtype.newbyteorder()), top_k=10, rng=1), out)
    s = sample(x[0, 0], rng=1)
    assert isinstance(s, np.integer) and 0 <= s < 50
    assert sample(x[:, :, ::2], rng=1).max() < 25
    assert sample(np.zeros((0, 5)), rng=1).shape == (0,)
    for dt in [np.float16, np.int32, np.longdouble] + BF16:
        a = (x * 4).astype(dt)
        got = sample(a, top_p=0.8, rng=2)
        assert got.shape == (3, 4)
        if dt is np.float16 or dt in BF16:  # widened to float32 exactly: as float32 logits
            np.testing.assert_array_equal(got, sample(a.astype(np.float32), top_p=0.8, rng=2))
        if dt is np.longdouble:  # the NumPy specification; its float64 probabilities give the same draws here
            np.testing.assert_array_equal(got, sample(a.astype(np.float64), top_p=0.8, rng=2))
    before = x.copy()
    sample(x, temperature=0.5, top_p=0.5, rng=0)
    np.testing.assert_array_equal(x, before)


def test_sample_errors():
    x = np.array([[1.0, 2.0, 3.0]])
    for kw, exc, msg in [
        (dict(top_k=0), ValueError, "top_k must be >= 1"),
        (dict(top_k=-3), ValueError, "top_k must be >= 1"),
        (dict(top_k=2.0), TypeError, "top_k must be an integer"),
        (dict(top_p=0.0), ValueError, r"top_p must be in \(0, 1\]"),
        (dict(top_p=1.5), ValueError, r"top_p must be in \(0, 1\]"),
        (dict(top_p=np.nan), ValueError, "finite"),
        (dict(top_p="0.5"), TypeError, "top_p must be a real number"),
        (dict(min_p=-0.1), ValueError, r"min_p must be in \[0, 1\]"),
        (dict(min_p=2.0), ValueError, r"min_p must be in \[0, 1\]"),
        (dict(temperature=-0.5), ValueError, "temperature must be >= 0"),
        (dict(temperature=np.inf), ValueError, "finite"),
        (dict(temperature=None), TypeError, "temperature must be a real number"),
        (dict(rng="seed"), TypeError, "rng must be"),
        (dict(rng=np.random.RandomState(0)), TypeError, "rng must be"),
        (dict(rng=True), TypeError, "rng must be"),
        (dict(threads=0), ValueError, "threads"),
    ]:
        with pytest.raises(exc, match=msg):
            sample(x, **kw)
    with pytest.raises(ValueError, match="0-d"):
        sample(np.float64(1.0))
    with pytest.raises(ValueError, match="empty last axis"):
        sample(np.zeros((2, 0)))
    with pytest.raises(TypeError, match="boolean"):
        sample(np.array([True, False]))
    for t in (1.0, 0.5, 0.0):
        for dt in (np.float32, np.float64, np.longdouble):
            bad = np.zeros((3, 5), dt)
            bad[2, 1] = np.nan
            with pytest.raises(ValueError, match="row 2 of the logits holds NaN"):
                sample(bad, temperature=t, rng=0)
            bad[2, 1] = np.inf
            with pytest.raises(ValueError, match=r"row 2 of the logits holds \+inf"):
                sample(bad, temperature=t, rng=0)
            bad[2] = -np.inf
            with pytest.raises(ValueError, match="row 2 of the logits is all -inf"):
                sample(bad, temperature=t, rng=0)

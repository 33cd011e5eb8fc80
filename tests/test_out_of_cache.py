"""The out-of-cache path (issue 15): outputs larger than the last-level cache are computed into a
per-thread scratch and copied to the output with non-temporal stores. It must give the same bits as
the in-cache path. The tests force it on small arrays with the hidden _core._set_llc_bytes switch
(1 byte: every elementwise call takes it) and check with _core._stream_calls() that it was taken."""
import numpy as np
import pytest

import fastsoftmax
from fastsoftmax import _core


@pytest.fixture
def forced():
    """The path forced on for every output above 1 byte; restored to the default afterwards."""
    _core._set_llc_bytes(1)
    yield
    _core._set_llc_bytes(0)


SHAPES = [(1, 1), (3, 7), (37, 1000), (300, 17), (5, 16384), (3, 16385), (4, 40000), (2, 100_003)]


def _data(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape) * 4
    if x.size > 10:
        x.flat[3] = -np.inf
        x.flat[x.size // 2] = 30.0
    return x.astype(dtype)


def _baseline(f, x, threads):
    _core._set_llc_bytes(-1)
    try:
        return f(x, axis=-1, threads=threads)
    finally:
        _core._set_llc_bytes(1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("f", [fastsoftmax.softmax, fastsoftmax.log_softmax], ids=lambda f: f.__name__)
def test_same_bits_as_in_cache(isa, forced, f, shape, dtype):
    x = _data(shape, dtype)
    want = _baseline(f, x, 1)
    for threads in (1, 2):
        before = _core._stream_calls()
        got = f(x, axis=-1, threads=threads)
        assert _core._stream_calls() > before, "the out-of-cache path was not taken"
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_in_place_and_out(isa, forced, dtype):
    x = _data((64, 3000), dtype, seed=1)
    want = _baseline(fastsoftmax.softmax, x, 1)
    y = np.empty_like(x)
    assert fastsoftmax.softmax(x, axis=-1, out=y) is y
    np.testing.assert_array_equal(y, want)
    z = x.copy()
    fastsoftmax.softmax(z, axis=-1, out=z)
    np.testing.assert_array_equal(z, want)
    # an output that starts 4 bytes past a vector boundary: plain stores before the first aligned one
    buf = np.empty(x.size + 16, dtype)
    off = np.ndarray(x.shape, dtype, buf, offset=x.itemsize)
    fastsoftmax.log_softmax(x, axis=-1, out=off)
    np.testing.assert_array_equal(off, _baseline(fastsoftmax.log_softmax, x, 1))


def test_specials_and_reductions(isa, forced):
    x = np.array([[np.nan, 1.0, 2.0], [np.inf, 0.0, 1.0], [-np.inf, -np.inf, -np.inf], [1.0, 1.0, 1.0]], np.float32)
    for f in (fastsoftmax.softmax, fastsoftmax.log_softmax):
        np.testing.assert_array_equal(f(x, axis=-1), _baseline(f, x, 1))
    before = _core._stream_calls()
    fastsoftmax.logsumexp(x, axis=-1)  # one output per row: never the out-of-cache path
    assert _core._stream_calls() == before


def test_switch_and_threshold():
    used, detected = _core._llc_bytes()
    assert detected >= 1 << 20  # CPUID, sysconf or the 32 MiB default: never a silly size
    try:
        _core._set_llc_bytes(-1)
        assert _core._llc_bytes()[0] == -1
        before = _core._stream_calls()
        fastsoftmax.softmax(np.ones((4, 1000), np.float32), axis=-1)
        assert _core._stream_calls() == before
        _core._set_llc_bytes(4 * 4 * 1000)  # the output is exactly this size: not above it
        fastsoftmax.softmax(np.ones((4, 1000), np.float32), axis=-1)
        assert _core._stream_calls() == before
        fastsoftmax.softmax(np.ones((5, 1000), np.float32), axis=-1)
        assert _core._stream_calls() == before + 1
    finally:
        _core._set_llc_bytes(0)
    assert _core._llc_bytes() == (used, detected)


@pytest.fixture
def prefetching():
    """Long rows prefetch their next block in every call above 1 byte; restored to the default afterwards."""
    _core._set_prefetch_above(1)
    yield
    _core._set_prefetch_above(0)


def _no_prefetch(f, x, threads, **kw):
    _core._set_prefetch_above(-1)
    try:
        return f(x, threads=threads, **kw)
    finally:
        _core._set_prefetch_above(1)


# long rows: one block + a tail, two blocks, blocks + tails, one row alone (it has no next row)
PREFETCH_SHAPES = [(3, 16385), (4, 32768), (5, 40000), (1, 50_001), (2, 100_003)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", PREFETCH_SHAPES, ids=str)
@pytest.mark.parametrize(
    "f", [fastsoftmax.softmax, fastsoftmax.log_softmax, fastsoftmax.logsumexp], ids=lambda f: f.__name__
)
def test_prefetching_rows_same_bits(isa, prefetching, f, shape, dtype):
    """The prefetch is a hint: each row's bits are those of the call without it, for any thread count,
    also where the out-of-cache stores take the call (the hint rides in its passes too)."""
    x = _data(shape, dtype, seed=2)
    want = _no_prefetch(f, x, 1, axis=-1)
    for threads in (1, 2):
        before = _core._prefetch_calls()
        got = f(x, axis=-1, threads=threads)
        # whole rows, each on one thread (with fewer rows than threads the blocks are shared instead)
        if shape[0] >= threads:
            assert _core._prefetch_calls() > before, "the rows did not prefetch"
        np.testing.assert_array_equal(got, want)
    _core._set_llc_bytes(1)
    try:
        np.testing.assert_array_equal(f(x, axis=-1, threads=1), want)
    finally:
        _core._set_llc_bytes(0)


# short rows through the fused float32 softmax: groups of a vector's rows (8 or 16) and batches of
# min(256, 8192 // n) rows, so rows that end a group, a batch and the call in every way; a NaN row
SHORT_PREFETCH_SHAPES = [(1, 128), (9, 128), (17, 100), (64, 128), (65, 128), (200, 1000), (100, 33), (300, 256)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHORT_PREFETCH_SHAPES, ids=str)
@pytest.mark.parametrize(
    "f", [fastsoftmax.softmax, fastsoftmax.log_softmax, fastsoftmax.logsumexp], ids=lambda f: f.__name__
)
def test_prefetching_short_rows_same_bits(isa, prefetching, f, shape, dtype):
    """Short rows prefetch as they go (the fused float32 softmax each next group, the other passes
    each next batch; none past the call's rows): the bits are those of the call without it, for any
    thread count."""
    x = _data(shape, dtype, seed=3)
    if shape[0] > 1:
        x[shape[0] // 2, 1] = np.nan
    want = _no_prefetch(f, x, 1, axis=-1)
    for threads in (1, 2):
        before = _core._prefetch_calls()
        got = f(x, axis=-1, threads=threads)
        assert _core._prefetch_calls() == before + 1, "the short rows were not told to prefetch"
        np.testing.assert_array_equal(got, want)


def test_prefetch_threshold():
    """x and y together above the threshold prefetch, short rows above an eighth of it; at it, or
    columns, do not."""
    x = np.ones((2, 20000), np.float32)
    short = np.ones((8, 1000), np.float32)
    try:
        _core._set_prefetch_above(x.nbytes * 2)  # x and y are exactly this size: not above it
        before = _core._prefetch_calls()
        fastsoftmax.softmax(x, axis=-1, threads=1)
        assert _core._prefetch_calls() == before
        _core._set_prefetch_above(x.nbytes * 2 - 1)
        fastsoftmax.softmax(x, axis=-1, threads=1)
        assert _core._prefetch_calls() == before + 1
        fastsoftmax.softmax(x.T.copy(), axis=0, threads=1)  # columns
        assert _core._prefetch_calls() == before + 1
        _core._set_prefetch_above(short.nbytes * 2 * 8)  # short rows: x and y at an eighth
        fastsoftmax.softmax(short, axis=-1, threads=1)
        assert _core._prefetch_calls() == before + 1
        _core._set_prefetch_above(short.nbytes * 2 * 8 - 8)
        fastsoftmax.softmax(short, axis=-1, threads=1)
        assert _core._prefetch_calls() == before + 2
        _core._set_prefetch_above(-1)  # never
        fastsoftmax.softmax(np.ones((64, 20000), np.float32), axis=-1, threads=1)
        fastsoftmax.softmax(np.ones((4096, 128), np.float32), axis=-1, threads=1)
        assert _core._prefetch_calls() == before + 2
    finally:
        _core._set_prefetch_above(0)
    before = _core._prefetch_calls()
    fastsoftmax.softmax(x, axis=-1, threads=1)  # the default: far below any last-level cache
    assert _core._prefetch_calls() == before

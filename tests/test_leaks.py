"""Leaks: 10^5 calls over mixed shapes, with and without out=, with errors raised on purpose.

Resident memory must stay flat (measured from /proc/self/statm after a warm-up; bound below) and
the reference counts of every argument (input, out, b, axis tuple) must be unchanged afterwards.
Run with -s to see the measurements.
"""
import gc
import os
import sys

import numpy as np
import pytest

from fastsoftmax import log_softmax, logsumexp, softmax

AxisError = np.exceptions.AxisError if hasattr(np, "exceptions") else np.AxisError

CALLS = 100_000
RSS_BOUND = 4 * 2**20     # growth allowed over the measured calls, bytes


def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def make_workload():
    rng = np.random.default_rng(7)
    f32 = rng.standard_normal((7, 33)).astype(np.float32)
    f64 = rng.standard_normal((4, 5, 6))
    fort = np.asfortranarray(rng.standard_normal((9, 10)).astype(np.float32))
    strided = rng.standard_normal((6, 20))[:, ::3]                  # copy route: copied, then the kernel
    ints = rng.integers(-5, 5, (3, 17))
    # two blocks of 16384, whose statistics each call mallocs and frees; one thread even with threads=2
    # (a team needs 2 * 65536 elements)
    long_row = rng.standard_normal(20_000).astype(np.float32)
    inplace = rng.standard_normal((5, 8))
    out32 = np.empty_like(f32)
    out64 = np.empty((4, 5, 6))
    bad_out = np.empty((2, 2), np.float32)
    wrong_dtype_out = np.empty((7, 33), np.float64)
    axis_t = (0, 2)
    b = rng.random((5, 6))
    args = dict(f32=f32, f64=f64, fort=fort, strided=strided, ints=ints, long_row=long_row, inplace=inplace,
                out32=out32, out64=out64, bad_out=bad_out, wrong_dtype_out=wrong_dtype_out, axis_t=axis_t, b=b)

    def expect(exc, fn, *a, **k):
        try:
            fn(*a, **k)
        except exc:
            return
        raise AssertionError("expected an exception")

    calls = [
        lambda: softmax(f32, axis=1),
        lambda: log_softmax(f32, axis=0),
        lambda: logsumexp(f32, axis=-1),
        lambda: softmax(f32, axis=1, out=out32),
        lambda: log_softmax(f64, axis=axis_t, threads=1),
        lambda: logsumexp(f64, axis=axis_t, keepdims=True, return_sign=True),
        lambda: softmax(f64, out=out64),
        lambda: softmax(fort, axis=0),
        lambda: logsumexp(fort),
        lambda: softmax(strided, axis=1),
        lambda: log_softmax(ints, axis=-1),
        lambda: logsumexp(ints, axis=0),
        lambda: logsumexp(f64, axis=1, b=b),
        lambda: softmax(inplace, axis=1, out=inplace),
        lambda: logsumexp([1.0, 2.0, 3.0]),
        lambda: softmax(3.0),
        lambda: expect(ValueError, softmax, f32, out=bad_out),
        lambda: expect(TypeError, log_softmax, f32, out=wrong_dtype_out),
        lambda: expect(AxisError, logsumexp, f64, axis=5),
        lambda: expect(ValueError, softmax, f64, axis=(1, 1)),
        lambda: expect(ValueError, log_softmax, f32, threads=0),
        lambda: expect(TypeError, softmax, np.array([True, False])),
        lambda: expect(TypeError, logsumexp, np.array([1.0], dtype=object)),
        lambda: expect(ValueError, softmax, [[1.0, 2.0], [3.0]]),
    ]
    rare = [lambda: logsumexp(long_row, threads=2), lambda: softmax(long_row, threads=2)]
    return calls, rare, args


def run(calls, rare, n):
    k = len(calls)
    for i in range(n):
        calls[i % k]()
        if i % 500 == 0:
            rare[(i // 500) % 2]()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm")
def test_memory_flat_and_refcounts_unchanged():
    calls, rare, args = make_workload()
    run(calls, rare, 5_000)                                  # warm-up: caches, allocator pools
    gc.collect()
    refs = {k: sys.getrefcount(v) for k, v in args.items()}
    objects = len(gc.get_objects())
    samples = [rss()]
    for _ in range(4):
        run(calls, rare, CALLS // 4)
        gc.collect()
        samples.append(rss())
    growth = max(samples) - samples[0]
    print(f"\nRSS over {CALLS} calls (MiB): " + ", ".join(f"{s / 2**20:.2f}" for s in samples)
          + f"; growth {growth / 2**10:.0f} KiB; gc objects {objects} -> {len(gc.get_objects())}")
    assert growth < RSS_BOUND, f"resident memory grew by {growth} bytes over {CALLS} calls: {samples}"
    after = {k: sys.getrefcount(v) for k, v in args.items()}
    assert after == refs, f"reference counts changed: {refs} -> {after}"
    assert len(gc.get_objects()) - objects < 1000


def test_refcounts_of_results_and_inputs():
    """Results hold exactly the expected references; inputs get none added or dropped."""
    x = np.random.default_rng(1).standard_normal((16, 16)).astype(np.float32)
    out = np.empty_like(x)
    base = sys.getrefcount(x), sys.getrefcount(out)
    for _ in range(1000):
        y = softmax(x, axis=1)
        assert sys.getrefcount(y) == 2           # the local name + getrefcount's argument
        assert softmax(x, axis=1, out=out) is out
        assert log_softmax(x, out=x.copy()) is not None
        r = logsumexp(x, axis=0)
        assert sys.getrefcount(r) == 2
    del y, r
    assert (sys.getrefcount(x), sys.getrefcount(out)) == base

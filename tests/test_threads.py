"""Threads: identical results for any thread count, threadpoolctl, fork, concurrent callers."""
import multiprocessing
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import fastsoftmax

FUNCS = [fastsoftmax.softmax, fastsoftmax.log_softmax, fastsoftmax.logsumexp]


def _long_rows(dtype):
    rng = np.random.default_rng(99)
    ramp = (rng.standard_normal((2, 200_003)) * 3 + np.linspace(0, 30, 200_003)).astype(dtype)
    special = ramp.copy()
    special[0, 20_000:40_000] = -np.inf      # an all -inf block inside a finite row
    special[1, 100_000] = np.inf
    yield "ramp (1,200003)", ramp[:1], -1
    yield "ramp (2,200003)", ramp, -1
    yield "specials", special, -1
    nan_row = ramp[:1].copy()
    nan_row[0, 150_000] = np.nan
    yield "nan in a late block", nan_row, -1
    yield "many rows", (rng.standard_normal((300, 1000)) * 4).astype(dtype), -1
    # column blocks: large enough (over 2 * 65536 elements) that threads > 1 starts a team
    yield "NCHW axis=1", (rng.standard_normal((16, 21, 32, 33)) * 4).astype(dtype), 1
    yield "one long row, axis=None", ramp[0], None


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bitwise_identical_for_any_thread_count(isa, dtype):
    for label, x, axis in _long_rows(dtype):
        for f in FUNCS:
            ref = f(x, axis=axis, threads=1)
            for t in (2, 3, 4, 7, 16):
                got = f(x, axis=axis, threads=t)
                np.testing.assert_array_equal(got, ref, err_msg=f"{label} {f.__name__} threads={t}")


def test_long_rows_special_blocks_as_scipy():
    import scipy.special as sps
    for label, x, axis in _long_rows(np.float64):
        for name in ("softmax", "log_softmax", "logsumexp"):
            got = getattr(fastsoftmax, name)(x, axis=axis, threads=2)
            with np.errstate(all="ignore"):
                want = getattr(sps, name)(x, axis=axis)
            np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=label)
            np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-300, err_msg=f"{label} {name}")


def test_threadpoolctl_limits_fastsoftmax():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    if not fastsoftmax.get_config()["openmp"]:
        pytest.skip("built without OpenMP")
    info = threadpoolctl.threadpool_info()
    assert any(lib["user_api"] == "openmp" for lib in info)
    with threadpoolctl.threadpool_limits(1):
        assert fastsoftmax.get_config()["default_threads"] == 1
    with threadpoolctl.threadpool_limits(1, user_api="openmp"):
        assert fastsoftmax.get_config()["default_threads"] == 1
    x = np.random.default_rng(0).standard_normal((1, 1 << 20)).astype(np.float32)
    with threadpoolctl.threadpool_limits(1):
        y = fastsoftmax.softmax(x, axis=-1)
    np.testing.assert_array_equal(y, fastsoftmax.softmax(x, axis=-1, threads=1))


def _child(q):
    x = np.random.default_rng(1).standard_normal((1, 1 << 20)).astype(np.float32)
    y = fastsoftmax.softmax(x, axis=-1)
    q.put(float(y.sum()))


def test_fork_after_parallel_call_does_not_hang():
    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("no fork on this platform")
    x = np.random.default_rng(2).standard_normal((4, 1 << 20)).astype(np.float32)
    fastsoftmax.softmax(x, axis=-1, threads=2)  # the parent has used a team
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=_child, args=(q,))
    p.start()
    p.join(timeout=60)
    if p.is_alive():
        p.kill()
        pytest.fail("child process hung after fork")
    assert p.exitcode == 0
    assert abs(q.get(timeout=5) - 1) < 1e-5


def test_many_concurrent_callers():
    rng = np.random.default_rng(3)
    shapes = [(1, 10), (16, 1000), (3, 40000), (2, 7, 65), (1, 200_000)]
    inputs = [(rng.standard_normal(s) * 3).astype(dt) for s in shapes for dt in (np.float32, np.float64)]
    expected = [[f(x, axis=-1) for f in FUNCS] for x in inputs]
    errors = []

    def worker(seed):
        r = np.random.default_rng(seed)
        try:
            for _ in range(300):
                i = int(r.integers(len(inputs)))
                j = int(r.integers(3))
                got = FUNCS[j](inputs[i], axis=-1)
                if not np.array_equal(got, expected[i][j]):
                    errors.append((i, j))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=worker, args=(s,)) for s in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads)
    assert errors == []


def _config_in_subprocess(env):
    code = "import fastsoftmax; print(fastsoftmax.get_config()['default_threads'])"
    full = {k: v for k, v in os.environ.items() if k not in ("FASTSOFTMAX_NUM_THREADS", "OMP_NUM_THREADS")}
    full.update(env)
    return int(subprocess.check_output([sys.executable, "-c", code], env=full, text=True).strip())


def test_default_thread_count_sources():
    if not fastsoftmax.get_config()["openmp"]:
        assert _config_in_subprocess({"FASTSOFTMAX_NUM_THREADS": "3"}) in (1, 3)
        return
    assert _config_in_subprocess({"FASTSOFTMAX_NUM_THREADS": "3"}) == 3
    assert _config_in_subprocess({"FASTSOFTMAX_NUM_THREADS": "3", "OMP_NUM_THREADS": "1"}) == 3
    assert _config_in_subprocess({"OMP_NUM_THREADS": "1"}) == 1
    assert _config_in_subprocess({}) == len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else True

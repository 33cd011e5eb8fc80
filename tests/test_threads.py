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


# --- The runner's mechanism (csrc/threads.c), observed through its test hooks and counters ---------

from fastsoftmax import _core  # noqa: E402

needs_helpers = pytest.mark.skipif(_core.thread_mechanism() != "helper",
                                   reason="the helper-thread runner needs OpenMP and pthreads")


def _poll(pred, what, timeout=20.0):
    """Wait (not timed: a bound against hangs) until pred() holds."""
    import time
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            pytest.fail(f"timed out waiting for {what}: {_core._thread_state()}")
        time.sleep(0.002)


def _helpers_idle():
    _poll(lambda: _core._thread_state()["helpers_busy"] == 0, "the helpers to finish")


def _in_thread(fn, *args, **kw):
    """Run fn in a Python thread; returns (thread, box): box[0] is the result once the thread ends."""
    box = []
    t = threading.Thread(target=lambda: box.append(fn(*args, **kw)), daemon=True)
    t.start()
    return t, box


@pytest.fixture
def hooks():
    _helpers_idle()
    yield _core._thread_hooks
    _core._thread_hooks()
    _helpers_idle()


def _same_bits(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def _big(dtype=np.float32):
    return (np.random.default_rng(5).standard_normal((64, 32000)) * 3).astype(dtype)


@needs_helpers
@pytest.mark.parametrize("threads", [2, 4])
def test_held_helpers_cannot_hold_the_call(hooks, threads):
    """Helper threads stopped before their first task: the call still returns, computed by the
    caller alone, and the helpers, once let go, find nothing left to take."""
    x = _big()
    row = x.reshape(-1)[:300_000].reshape(1, -1)
    inputs = [(x, -1), (row, -1), (x.reshape(64, 8, 4000), 1)]  # rows, one long row in blocks, columns
    refs = {f: [f(a, axis=ax, threads=1) for a, ax in inputs] for f in FUNCS}
    hooks(hold_helpers=True, cpu_cap=threads)
    before = _core._thread_state()
    for f in FUNCS:
        for (a, ax), ref in zip(inputs, refs[f]):
            t, box = _in_thread(f, a, axis=ax, threads=threads)
            t.join(timeout=60)
            assert not t.is_alive(), f"{f.__name__} was held by a helper that never started"
            assert _same_bits(box[0], ref), f.__name__
    mid = _core._thread_state()
    assert mid["calls_parallel"] - before["calls_parallel"] == 3 * len(inputs)
    assert mid["calls_alone"] - before["calls_alone"] < 3 * len(inputs), "no call ever posted to a helper"
    _poll(lambda: _core._thread_state()["helpers_held"] >= 1, "a helper to reach the hold")
    hooks()
    _helpers_idle()
    after = _core._thread_state()
    assert after["tasks_helper"] == before["tasks_helper"], "a released helper ran a task of a finished call"


@needs_helpers
@pytest.mark.parametrize("threads", [2, 3, 5])
def test_helpers_take_tasks(hooks, threads):
    """The other side of the test above: with the caller made to wait for a helper, helpers do run
    tasks, and the result is the caller-alone one, bit for bit."""
    x = _big()
    ref = fastsoftmax.softmax(x, axis=-1, threads=1)
    hooks(wait_for_helper=True, cpu_cap=threads)
    before = _core._thread_state()
    y = fastsoftmax.softmax(x, axis=-1, threads=threads)
    _helpers_idle()
    after = _core._thread_state()
    assert after["tasks_helper"] > before["tasks_helper"], after
    assert _same_bits(y, ref)


@needs_helpers
def test_budget_grants_what_is_left_and_takes_back_what_it_granted(hooks):
    """Calls stopped right after their grant: A gets the budget of 2, B then only its own thread,
    and once A has finished, what B holds (1) is what is in use: C is granted the remaining one."""
    x = _big()
    ref = fastsoftmax.softmax(x, axis=-1, threads=1)
    hooks(hold_callers_granted=(1, 2), cpu_cap=2)
    state = _core._thread_state
    a, ra = _in_thread(fastsoftmax.softmax, x, axis=-1, threads=2)
    _poll(lambda: state()["callers_held"] == 1, "A to be granted")
    assert state()["busy"] == 2
    b, rb = _in_thread(fastsoftmax.softmax, x, axis=-1, threads=2)
    _poll(lambda: state()["callers_held"] == 2, "B to be granted")
    assert state()["busy"] == 3, "B runs on its own thread: 2 + 1 in use"
    hooks(hold_callers_granted=(1,), cpu_cap=2)  # lets A go (it was granted 2)
    a.join(timeout=60)
    assert not a.is_alive()
    _poll(lambda: state()["busy"] == 1, "A to give back what it was granted")
    c, rc = _in_thread(fastsoftmax.softmax, x, axis=-1, threads=2)
    _poll(lambda: state()["callers_held"] == 2, "C to be granted")
    assert state()["busy"] == 2, "C was granted the one thread left"
    hooks()
    for t in (b, c):
        t.join(timeout=60)
        assert not t.is_alive()
    assert state()["busy"] == 0
    for box in (ra, rb, rc):
        assert _same_bits(box[0], ref)


@needs_helpers
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bitwise_identical_with_real_teams(hooks, dtype):
    """Teams of up to 15 threads (the CPU cap lifted), and the two extreme splits of the work:
    helpers held (the caller does everything) and the caller waiting for a helper."""
    hooks(cpu_cap=16)
    cases = list(_long_rows(dtype))
    refs = [[f(x, axis=axis, threads=1) for f in FUNCS] for _, x, axis in cases]
    for setting in ({"cpu_cap": 16}, {"cpu_cap": 16, "hold_helpers": True}, {"cpu_cap": 16, "wait_for_helper": True}):
        hooks(**setting)
        for (label, x, axis), ref in zip(cases, refs):
            for f, r in zip(FUNCS, ref):
                for t in (2, 3, 16):
                    got = f(x, axis=axis, threads=t)
                    assert _same_bits(got, r), f"{label} {f.__name__} threads={t} {setting}"
        hooks(cpu_cap=16)
        _helpers_idle()


def _child_after_fork(q):
    try:
        x = _big()
        ref = fastsoftmax.softmax(x, axis=-1, threads=1)
        s0 = _core._thread_state()
        _core._thread_hooks(wait_for_helper=True, cpu_cap=2)  # the parent's hooks did not survive fork
        y = fastsoftmax.softmax(x, axis=-1, threads=2)
        _core._thread_hooks()
        _helpers_idle()
        s1 = _core._thread_state()
        q.put((_same_bits(y, ref), s0["busy"], s0["helpers"], s1["tasks_helper"] - s0["tasks_helper"]))
    except BaseException as e:  # pragma: no cover - reported by the parent
        q.put(repr(e))


@needs_helpers
def test_fork_while_a_helper_is_busy_child_gets_new_helpers(hooks):
    """fork() while the parent's helper is held mid-call: the child starts with no helper and an
    empty budget, creates its own helper and uses it."""
    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("no fork on this platform")
    x = _big()
    hooks(hold_helpers=True, cpu_cap=2)
    fastsoftmax.softmax(x, axis=-1, threads=2)
    _poll(lambda: _core._thread_state()["helpers_held"] >= 1, "the parent's helper to be held")
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=_child_after_fork, args=(q,))
    p.start()
    p.join(timeout=120)
    if p.is_alive():
        p.kill()
        pytest.fail("child process hung after fork")
    got = q.get(timeout=5)
    assert p.exitcode == 0, got
    assert got == (True, 0, 0, got[3]) and got[3] > 0, f"(equal, busy, helpers at start, helper tasks): {got}"


def test_threadpoolctl_one_thread_means_no_helper():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    if not fastsoftmax.get_config()["openmp"]:
        pytest.skip("built without OpenMP")
    x = _big()
    before = _core._thread_state()
    with threadpoolctl.threadpool_limits(1):
        y = fastsoftmax.softmax(x, axis=-1)
    assert _core._thread_state()["calls_parallel"] == before["calls_parallel"]
    assert _same_bits(y, fastsoftmax.softmax(x, axis=-1, threads=1))


def _task_masks():
    """{tid: the set of CPUs in its Cpus_allowed_list} for every thread of this process (Linux)."""
    masks = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/status") as f:
                line = next(li for li in f if li.startswith("Cpus_allowed_list:"))
        except (OSError, StopIteration):
            continue
        cpus = set()
        for part in line.split(":", 1)[1].strip().split(","):
            lo, _, hi = part.partition("-")
            cpus.update(range(int(lo), int(hi or lo) + 1))
        masks[int(tid)] = cpus
    return masks


@needs_helpers
@pytest.mark.skipif(not sys.platform.startswith("linux") or len(os.sched_getaffinity(0)) < 2,
                    reason="steering needs Linux and two CPUs")
def test_helper_is_steered_off_the_callers_cpu(hooks):
    """Before a call is posted, the helper's affinity leaves out the caller's CPU (threads.c: a woken
    SCHED_BATCH helper placed on the caller's busy CPU can wait there for milliseconds while another
    CPU idles). The caller is pinned to one CPU here so that the CPU it posts from is known; the
    helper then runs on the others, and the result is the caller-alone one."""
    allowed = os.sched_getaffinity(0)
    x = _big()
    ref = fastsoftmax.softmax(x, axis=-1, threads=1)
    hooks(wait_for_helper=True, cpu_cap=2)
    fastsoftmax.softmax(x, axis=-1, threads=2)  # a helper exists, created with the whole mask
    _helpers_idle()
    for cpu in sorted(allowed)[:2]:
        os.sched_setaffinity(0, {cpu})  # this (calling) thread only
        try:
            before = _core._thread_state()
            y = fastsoftmax.softmax(x, axis=-1, threads=2)
            _helpers_idle()
            after = _core._thread_state()
        finally:
            os.sched_setaffinity(0, allowed)
        assert _same_bits(y, ref)
        assert after["tasks_helper"] > before["tasks_helper"], after
        assert after["steered"] > 0, after  # (this call's helper may have been steered off cpu before)
        steered = [tid for tid, m in _task_masks().items() if m == allowed - {cpu}]
        assert steered, (cpu, _task_masks())


@needs_helpers
@pytest.mark.skipif(not sys.platform.startswith("linux") or len(os.sched_getaffinity(0)) < 2,
                    reason="steering needs Linux and two CPUs")
def test_no_steering_when_openmp_binds_threads():
    """OMP_PROC_BIND asks the OpenMP runtime to own the threads' affinities: the helper is left as is."""
    code = ("import numpy as np, fastsoftmax\n"
            "from fastsoftmax import _core\n"
            "_core._thread_hooks(wait_for_helper=True, cpu_cap=2)\n"
            "x = np.random.default_rng(0).standard_normal((64, 32000)).astype(np.float32)\n"
            "for _ in range(3): fastsoftmax.softmax(x, axis=-1, threads=2)\n"
            "s = _core._thread_state()\n"
            "print(s['tasks_helper'] > 0, s['steered'])\n")
    env = dict(os.environ, OMP_PROC_BIND="true")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "0"], out.stdout

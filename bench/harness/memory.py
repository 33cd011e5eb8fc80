"""Peak extra memory of one call on a ~100 MB input, each candidate in a fresh process.

Method (Linux): the child process makes and touches the input, warms the candidate up on two
rows (library initialisation, thread pools, ONNX session), then for the full-size call:

* RSS: writes ``5`` to ``/proc/self/clear_refs``, which resets the peak-RSS counter VmHWM to the
  current RSS, makes the call, and reads VmHWM. *Peak extra* = VmHWM - RSS before the call - the
  bytes of the result it returns, i.e. the memory the call needed beyond its own output. This
  sees every allocation (NumPy, torch's allocator, onnxruntime's arena, C scratch buffers).
  The first full-size call is reported; the later calls' minimum is kept as *steady*, and
  *held* is what stayed resident after the result was freed (onnxruntime's arena keeps its
  blocks).
* tracemalloc (candidates whose buffers are NumPy allocations, which NumPy reports to it): the
  traced peak during a call minus the result's bytes.

The child runs with a fixed glibc mmap threshold (128 KiB), so every large buffer is a mapping
of its own that is unmapped when freed, and all calls start from the same baseline.
Where clear_refs is not available the RSS columns are reported as unavailable.
"""
import gc
import json
import os
import subprocess
import sys
import time
import tracemalloc

import numpy as np

MIB = 2 ** 20


def _status_kb(field):
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _nbytes(y):
    return int(getattr(y, "nbytes", 0)) if not np.isscalar(y) else 0


def worker(spec):
    """Runs in the child process; prints one JSON line."""
    from . import candidates
    name, op, dtype, shape, axis = spec["name"], spec["op"], np.dtype(spec["dtype"]), spec["shape"], spec["axis"]
    avail, skipped = candidates.load([name])
    if not avail:
        return {"skipped": skipped.get(name, "unavailable")}
    cand = avail[0]
    cand.set_threads(1)
    rng = np.random.default_rng(7)
    x = rng.standard_normal(tuple(shape), dtype=dtype)
    x *= 3
    small = np.ascontiguousarray(x[:2])
    with candidates.ThreadLimits(1):
        warm = cand.fresh(op, small, axis, 1)
        if warm is None:
            return {"skipped": "op/dtype not supported"}
        warm()
        warm()
        fn = cand.fresh(op, x, axis, 1)
        res = {"input_bytes": int(x.nbytes)}
        runs = []
        for _ in range(3):
            gc.collect()
            time.sleep(0.05)
            before = _status_kb("VmRSS")
            if before is None or not _reset_peak():
                break
            y = fn()
            peak = _status_kb("VmHWM")
            out_bytes = _nbytes(y)
            del y
            gc.collect()
            after = _status_kb("VmRSS")
            runs.append({"peak_extra": peak - before - out_bytes, "held": after - before,
                         "out_bytes": out_bytes})
        if runs:
            res["rss_first_extra"] = runs[0]["peak_extra"]
            res["rss_steady_extra"] = min(r["peak_extra"] for r in runs[1:]) if len(runs) > 1 else None
            res["rss_held"] = runs[0]["held"]
            res["out_bytes"] = runs[0]["out_bytes"]
        if cand.numpy_allocations:
            gc.collect()
            tracemalloc.start()
            y = fn()
            _, tpeak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            res["tracemalloc_extra"] = tpeak - _nbytes(y)
            del y
    return res


def run_all(cands, ops, dtype, shape, axis, run_py, log=print):
    """One child process per (candidate, op). Returns a list of result rows."""
    rows = []
    for op in ops:
        for cand in cands:
            spec = {"name": cand.name, "op": op, "dtype": np.dtype(dtype).name, "shape": list(shape), "axis": axis}
            # a fixed mmap threshold: every large buffer is its own mapping, returned to the OS when
            # freed, so each call's peak is measured from the same baseline (glibc otherwise raises the
            # threshold after the first free and later calls reuse already-resident heap memory)
            env = dict(os.environ, OMP_NUM_THREADS="1", MALLOC_MMAP_THRESHOLD_="131072",
                       MALLOC_TRIM_THRESHOLD_="131072")
            try:
                proc = subprocess.run([sys.executable, run_py, "--memory-worker", json.dumps(spec)],
                                      capture_output=True, text=True, timeout=300, env=env)
                line = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
                res = json.loads(line) if proc.returncode == 0 and line else {
                    "error": (proc.stderr.strip().splitlines() or ["no output"])[-1][:200]}
            except subprocess.TimeoutExpired:
                res = {"error": "timed out"}
            row = {"candidate": cand.name, "op": op, "dtype": spec["dtype"], "shape": list(shape), **res}
            rows.append(row)
            if "rss_first_extra" in res:
                log(f"  memory {op:<11} {cand.name:<12} peak extra {res['rss_first_extra'] / MIB:8.1f} MiB "
                    f"(steady {_mib(res.get('rss_steady_extra'))}, held {_mib(res.get('rss_held'))}, "
                    f"tracemalloc {_mib(res.get('tracemalloc_extra'))})")
            else:
                log(f"  memory {op:<11} {cand.name:<12} {res}")
    return rows


def _mib(v):
    return "—" if v is None else f"{v / MIB:.1f} MiB"

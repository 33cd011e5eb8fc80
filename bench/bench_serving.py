"""Serving benchmark (issue 16): tail latency when other processes load the cores, and calls/s
from several Python threads.

    python bench/bench_serving.py            # both tables, about 2 minutes on 2 cores
    python bench/bench_serving.py --quick    # a smoke run (seconds)
    python bench/bench_serving.py --json out.json

Table 1: softmax (256, 1000) float32, `threads=1` against the default policy, median and p99 of
single-call latencies, with 0, 1 and all cores busy. The load is separate Python processes that
spin for a bounded time (they end by themselves even if this process dies). The two settings are
measured interleaved, in blocks of calls that alternate, in the same process and under the same load.

Table 2: calls/s with T Python threads each calling softmax on its own (64, 32000) float32 array
in a loop for a fixed time; fastsoftmax (default policy), onnxruntime (one session shared by the
threads, default intra-op threads), torch (default threads) and the NumPy expression. Libraries
take turns round by round; the table shows the median round. Results are dropped at once.

Nothing here is asserted: the targets are printed with the numbers measured against them.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import threading
import time

# NumPy's OpenBLAS starts a server thread that polls a core for work; no candidate here calls BLAS,
# and with two cores that thread took 4-12 % of the perf samples of single-thread runs (one core of
# two for a thread-count 2 run). One BLAS thread has no server thread. Set before NumPy loads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

import fastsoftmax

SPIN = "import time, sys\nend = time.monotonic() + float(sys.argv[1])\nwhile time.monotonic() < end: pass\n"


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def usable_cpus():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def loadavg():
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


class Load:
    """k processes that each keep one core busy for at most `seconds`."""

    def __init__(self, k, seconds):
        self.procs = [subprocess.Popen([sys.executable, "-c", SPIN, str(seconds)]) for _ in range(k)]
        time.sleep(0.3 if k else 0)  # let them start spinning

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            p.wait()


def latency_table(calls, block):
    x = (np.random.default_rng(0).standard_normal((256, 1000)) * 3).astype(np.float32)
    ncpu = usable_cpus()
    settings = [("threads=1", 1), ("default", None)]
    rows = []
    # the last condition: a pause before each call, as a server between requests has (an idle core's
    # helper is asleep then; threads.c's steering is about waking it on the right CPU)
    conditions = [("quiet", 0, 0.0), ("one core busy", 1, 0.0), (f"all cores busy ({ncpu})", ncpu, 0.0),
                  ("quiet, 5 ms pause before each call", 0, 0.005)]
    for label, busy, pause in conditions:
        times = {name: [] for name, _ in settings}
        n_calls = calls if not pause else max(block, calls // 4)
        with Load(busy, seconds=60):
            for name, t in settings:  # warm-up (the default starts its helper here)
                for _ in range(20):
                    fastsoftmax.softmax(x, axis=-1, threads=t)
            for r in range(0, n_calls, block):
                order = settings if (r // block) % 2 == 0 else settings[::-1]
                for name, t in order:
                    ts = times[name]
                    for _ in range(block):
                        if pause:
                            time.sleep(pause)
                        t0 = time.perf_counter()
                        fastsoftmax.softmax(x, axis=-1, threads=t)
                        ts.append(time.perf_counter() - t0)
        row = {"condition": label, "busy": busy, "pause_s": pause}
        for name, _ in settings:
            a = np.array(times[name]) * 1e6
            row[name] = {"median_us": float(np.median(a)), "p99_us": float(np.percentile(a, 99)), "calls": len(a)}
        rows.append(row)
        print(f"  {label}: " + ", ".join(f"{n} {row[n]['median_us']:.0f} / {row[n]['p99_us']:.0f} us"
                                         for n, _ in settings), flush=True)
    return rows


def candidates():
    """name -> (setup(x) -> call) for the libraries that are installed."""
    out = {"fastsoftmax": lambda x: (lambda: fastsoftmax.softmax(x, axis=-1))}
    try:
        import onnx
        from onnx import TensorProto, helper
        import onnxruntime as ort

        node = helper.make_node("Softmax", ["x"], ["y"], axis=-1)
        graph = helper.make_graph([node], "softmax", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["r", "c"])],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["r", "c"])])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
        model.ir_version = min(model.ir_version, 9)
        sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        onnx.checker.check_model(model)
        out["onnxruntime"] = lambda x: (lambda: sess.run(None, {"x": x}))
    except Exception as e:  # noqa: BLE001 - reported, the candidate is skipped
        print(f"  onnxruntime skipped: {e!r}")
    try:
        import torch

        out["torch"] = lambda x: (lambda t=torch.from_numpy(x): torch.softmax(t, dim=-1))
    except Exception as e:  # noqa: BLE001
        print(f"  torch skipped: {e!r}")

    def numpy_softmax(x):
        def call():
            e = np.exp(x - x.max(axis=-1, keepdims=True))
            return e / e.sum(axis=-1, keepdims=True)
        return call

    out["numpy"] = numpy_softmax
    return out


def calls_per_second(make, nthreads, seconds, arrays):
    counts = [0] * nthreads
    start = threading.Barrier(nthreads + 1)
    stop = [False]

    def worker(i):
        call = make(arrays[i])
        call()
        start.wait()
        n = 0
        while not stop[0]:
            call()
            n += 1
        counts[i] = n

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(nthreads)]
    for t in ts:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    time.sleep(seconds)
    stop[0] = True
    for t in ts:
        t.join()
    return sum(counts) / (time.perf_counter() - t0)


def throughput_table(thread_counts, seconds, rounds):
    cands = candidates()
    rng = np.random.default_rng(1)
    arrays = [(rng.standard_normal((64, 32000)) * 3).astype(np.float32) for _ in range(max(thread_counts))]
    rows = []
    for T in thread_counts:
        samples = {name: [] for name in cands}
        names = list(cands)
        for r in range(rounds):
            for name in names[r % len(names):] + names[:r % len(names)]:
                samples[name].append(calls_per_second(cands[name], T, seconds, arrays))
        row = {"T": T}
        for name in names:
            row[name] = {"median": float(np.median(samples[name])), "min": float(np.min(samples[name])),
                         "max": float(np.max(samples[name]))}
        rows.append(row)
        print(f"  T={T}: " + ", ".join(f"{n} {row[n]['median']:.0f}" for n in names), flush=True)
    return rows


def markdown(result):
    lat, thr = result["latency"], result["throughput"]
    paused = [row for row in lat if row.get("pause_s")]
    each = f"{lat[0]['threads=1']['calls']} calls each" + (f" ({paused[0]['threads=1']['calls']} in the pause row)" if paused else "")
    out = [f"softmax (256, 1000) float32, {each}, median / p99 (µs):", "",
           "| condition | threads=1 | default | p99 default ÷ threads=1 (target ≤ 1.5) | median default ÷ threads=1 (target ≤ 1) |",
           "|---|---|---|---|---|"]
    for row in lat:
        a, b = row["threads=1"], row["default"]
        out.append(f"| {row['condition']} | {a['median_us']:.0f} / {a['p99_us']:.0f} | {b['median_us']:.0f} / "
                   f"{b['p99_us']:.0f} | {b['p99_us'] / a['p99_us']:.2f} | {b['median_us'] / a['median_us']:.2f} |")
    names = [k for k in thr[0] if k != "T"]
    out += ["", "softmax (64, 32000) float32, calls/s summed over T Python threads (median of the rounds):", "",
            "| T | " + " | ".join(names) + " | ÷ onnxruntime (target ≥ 1) | ÷ torch (target ≥ 1.5) |",
            "|---" * (len(names) + 3) + "|"]
    for row in thr:
        f = row["fastsoftmax"]["median"]
        cells = " | ".join(f"{row[n]['median']:.0f}" for n in names)
        r_ort = f"{f / row['onnxruntime']['median']:.2f}" if "onnxruntime" in row else "-"
        r_torch = f"{f / row['torch']['median']:.2f}" if "torch" in row else "-"
        out.append(f"| {row['T']} | {cells} | {r_ort} | {r_torch} |")
    m = result["machine"]
    out += ["", f"Machine: {m['cpu']}, {m['cpus']} usable CPUs, fastsoftmax {m['version']} ISA {m['isa']}, "
            f"thread mechanism {m['mechanism']}; load average {m['load_start']:.2f} at start, {m['load_end']:.2f} at end."]
    return "\n".join(out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a smoke run: few calls, short rounds")
    ap.add_argument("--json", help="also write the numbers to this file")
    args = ap.parse_args(argv)
    from fastsoftmax import _core
    machine = {"cpu": cpu_name(), "cpus": usable_cpus(), "version": fastsoftmax.__version__,
               "isa": _core.current_isa(), "mechanism": _core.thread_mechanism(), "load_start": loadavg()}
    print(f"{machine['cpu']}, {machine['cpus']} CPUs, load {machine['load_start']:.2f}", flush=True)
    print("latency:", flush=True)
    lat = latency_table(calls=40 if args.quick else 400, block=10 if args.quick else 20)
    print("calls/s:", flush=True)
    thr = throughput_table([1, 2, 8], seconds=0.1 if args.quick else 1.0, rounds=1 if args.quick else 3)
    machine["load_end"] = loadavg()
    result = {"machine": machine, "latency": lat, "throughput": thr}
    print()
    print(markdown(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""fastsoftmax benchmark: speed, memory and accuracy against every alternative.

    python bench/run.py             # full suite -> bench/results/ (JSON, markdown, PNG plots)
    python bench/run.py --quick     # smoke test, < 1 minute -> bench/results/quick/
    python bench/run.py --targets   # only the core issue's speed targets, printed as a table
    python bench/run.py --report-from bench/results/results.json   # redo markdown + plots

Candidates: fastsoftmax, the NumPy expression, scipy.special, torch and onnxruntime (each when
installed), plus two physical references on the same array: np.copyto (one read + one write)
and np.exp(x, out=) (one exp pass). See bench/README-section.md for the method.
"""
import argparse
import gc
import json
import os
import platform
import sys
import time

# NumPy's OpenBLAS starts a server thread that polls a core for work; no candidate here calls BLAS,
# and with two cores that thread took 4-12 % of the perf samples of single-thread runs (one core of
# two for a thread-count 2 run). One BLAS thread has no server thread. Set before NumPy loads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from harness import accuracy, candidates, cases, memory, reference, report, timing  # noqa: E402
from harness import half, issue15, machine, sampling, weighted  # noqa: E402

OPS = candidates.OPS
NORMAL_TWIN = "fastsoftmax-normal3"  # fastsoftmax on normal*3 data of a non-normal case's shape
DTYPES = ("float32", "float64")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="small smoke test (< 1 minute), for CI")
    mode.add_argument("--targets", action="store_true", help="measure only the core issue's speed targets")
    mode.add_argument("--report-from", metavar="JSON", help="rewrite markdown and plots from a results JSON")
    p.add_argument("--out", help="output folder (default bench/results, bench/results/quick, bench/results/targets)")
    p.add_argument("--cases", help="comma-separated case names (see --list)")
    p.add_argument("--ops", help=f"comma-separated subset of {','.join(OPS)}")
    p.add_argument("--dtypes", help="comma-separated subset of float32,float64")
    p.add_argument("--threads", help="comma-separated thread counts; 'all' = every usable CPU (default 1,all)")
    p.add_argument("--candidates", help=f"comma-separated subset of {','.join(candidates.NAMES)}")
    p.add_argument("--repeats", type=int, help="samples per candidate and configuration (default 9; quick 3)")
    p.add_argument("--sample-ms", type=float, help="length of one sample in ms (default 5; quick 2)")
    p.add_argument("--budget-s", type=float, help="time budget per configuration round-set before repeats "
                                                  "are cut down to 3 (default 8; quick 0.5)")
    p.add_argument("--gap-ms", type=float, default=0.0,
                   help="pause before each sample when threads > 1, so that thread pools left spinning by the "
                        "previous candidate are asleep (default 0: on a loaded machine the pause itself lets other processes in)")
    p.add_argument("--reuse-s", type=float, default=0.5,
                   help="at threads > 1, reuse the threads=1 numbers of the thread-less candidates (NumPy, scipy, "
                        "references) when one call of them all costs more than this many seconds (default 0.5)")
    p.add_argument("--cap-s", type=float, default=6.0,
                   help="a candidate whose single call takes longer than this gets fewer samples: "
                        "ceil(cap / call time), at least 1 (default 6; fastsoftmax always gets at least 3)")
    p.add_argument("--stat", choices=("median", "min"), default="median",
                   help="statistic for the tables and ratios (both are always in the JSON; default median)")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory section")
    p.add_argument("--no-accuracy", action="store_true", help="skip the accuracy section")
    p.add_argument("--no-plot", action="store_true", help="skip the PNG plots")
    p.add_argument("--list", action="store_true", help="list cases and candidates and exit")
    p.add_argument("--no-avx2-run", action="store_true",
                   help="--targets: skip the second run with the AVX2 kernel and torch held to AVX2")
    p.add_argument("--no-sampling", action="store_true",
                   help="--targets: skip the sampling and top-k rows (the AVX2 run skips them: they measure the "
                        "selection, which is the same code on every ISA)")
    p.add_argument("--memory-worker", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def _split(s):
    return [v.strip() for v in s.split(",") if v.strip()] if s else None


def _log(msg=""):
    print(msg, flush=True)


def versions():
    v = {"python": platform.python_version(), "numpy": np.__version__}
    for mod in ("fastsoftmax", "scipy", "torch", "onnxruntime", "onnx", "threadpoolctl", "matplotlib"):
        try:
            v[mod] = __import__(mod).__version__
        except Exception:
            v[mod] = None
    return v


def make_input(shape, dtype, seed=0, data="normal3"):
    rng = np.random.default_rng(seed)
    dt = np.float32 if dtype == "float32" else np.float64
    if data == "uniform80":
        return rng.uniform(-80, 80, shape).astype(dt)
    x = rng.standard_normal(shape, dtype=dt)
    x *= 3  # logits-like spread
    return x


def _validation_rows(n0):
    return sorted({i for i in (0, 1, n0 - 2, n0 - 1) if 0 <= i < n0})


def time_config(cands, case, dtype, op, threads, x, out, out_red, ref_cache, opts, single_thread_cfg=None):
    """Warm up, validate and time every candidate on one configuration.

    ``single_thread_cfg``: the same configuration at threads=1. Where one round of the candidates
    that use no threads (NumPy, scipy, the references) costs more than ``opts.reuse_s``, their
    threads=1 numbers are reused instead of measured again (marked ``reused_from_threads``).
    """
    reused = {}
    if single_thread_cfg is not None and threads != 1:
        st = {c.name: single_thread_cfg["results"][c.name] for c in cands
              if not c.multithreaded and c.name in single_thread_cfg["results"]}
        if sum(r["median_s"] for r in st.values()) > opts.reuse_s:
            reused = st
    rows = _validation_rows(x.shape[0])
    key = (case.name, dtype, op)
    if key not in ref_cache:  # the high-precision reference on a few rows, once per case/dtype/op
        from fastsoftmax import _reference  # not at import: the memory workers load only their candidate
        ref_cache.clear()
        ref_cache[key] = _reference.REF[op](x[rows], case.axis)
    ref = ref_cache[key]
    fns, first, invalid, unsupported, inaccurate = {}, {}, {}, {}, {}
    with candidates.ThreadLimits(threads):
        for c in cands:
            c.set_threads(threads)
        for c in cands:
            if c.name in reused:
                continue
            try:
                fn = c.timed(op, x, case.axis, out, out_red, threads)
                if fn is None:
                    unsupported[c.name] = "op/dtype not supported"
                    continue
                t0 = time.perf_counter()
                y = fn()
                first[c.name] = time.perf_counter() - t0
            except Exception as exc:
                unsupported[c.name] = f"{type(exc).__name__}: {str(exc)[:160]}"
                continue
            if c.kind == "library":
                err, msg = reference.check(op, np.asarray(y)[rows], ref, dtype)
                del y
                if not err <= reference.GROSS[dtype]:
                    invalid[c.name] = msg
                    _log(f"    !! {c.name} gives a wrong result on {case.name} {dtype} {op}: {msg} (not timed)")
                    continue
                if err > reference.STRICT[dtype]:
                    inaccurate[c.name] = msg
                    _log(f"    ! {c.name} is inaccurate on {case.name} {dtype} {op}: {msg}")
            fns[c.name] = fn
        if case.data != "normal3" and "fastsoftmax" in fns:
            # the same call on logits-like data of the same shape, interleaved with this one, so that
            # the ratio of the two (a speed target) is taken side by side
            fs = next(c for c in cands if c.name == "fastsoftmax")
            xn = make_input(case.shape, dtype)
            fns[NORMAL_TWIN] = fs.timed(op, xn, case.axis, np.empty_like(xn), np.empty_like(out_red), threads)
            fns[NORMAL_TWIN]()
        res = timing.measure(fns, repeats=opts.repeats, sample_s=opts.sample_s, budget_s=opts.budget_s,
                             first_times=first, gap_s=opts.gap_s if threads > 1 else 0.0,
                             cap_s=opts.cap_s)
    n = x.size
    op_bytes = x.nbytes + (out_red.nbytes if op == "logsumexp" else out.nbytes)
    results = {}
    kinds = {c.name: c.kind for c in cands}
    for name, r in res.items():
        nbytes = 2 * x.nbytes if kinds.get(name) == "reference" else op_bytes
        med = r["median"]
        results[name] = {
            "median_s": med, "q1_s": r["q1"], "q3_s": r["q3"], "min_s": r["min"], "calls_per_sample": r["k"],
            "samples_s": r["samples"], "bytes_moved": nbytes,
            "ns_per_element": med / n * 1e9, "gb_per_s": nbytes / med / 1e9,
        }
    for name, r in reused.items():
        results[name] = dict(r, reused_from_threads=1)
    f = results.get("fastsoftmax")
    for r in results.values():
        r["ratio_to_fastsoftmax"] = r["median_s"] / f["median_s"] if f else None
        r["ratio_to_fastsoftmax_min"] = r["min_s"] / f["min_s"] if f else None
    results = {n: results[n] for n in [c.name for c in cands] + [NORMAL_TWIN] if n in results}
    return {"case": case.name, "label": case.label, "what": case.what, "shape": list(case.shape),
            "axis": case.axis, "dtype": dtype, "op": op, "threads": threads, "elements": n,
            "bytes_moved": op_bytes, "results": results, "invalid": invalid, "inaccurate": inaccurate,
            "unsupported": unsupported}


def _progress_line(cfg, order):
    r = cfg["results"]
    fast = r.get("fastsoftmax")
    head = (f"  {cfg['op']:<11} {cfg['dtype']} {cfg['label']:<24} t={cfg['threads']}: ")
    if fast:
        head += f"fastsoftmax {timing.fmt_time(fast['median_s']):>9} ({fast['ns_per_element']:.3g} ns/el, " \
                f"{fast['gb_per_s']:.3g} GB/s)"
    parts = [f"{n} {r[n]['ratio_to_fastsoftmax']:.2f}x" for n in order
             if n in r and n != "fastsoftmax" and r[n]["ratio_to_fastsoftmax"]]
    return head + (" | " + ", ".join(parts) if parts else "")


def run_timing(cands, case_list, dtypes, ops, thread_list, opts, only=None):
    configs = []
    order = [c.name for c in cands]
    for case in case_list:
        for dtype in dtypes:
            wanted = [(op, t) for op in ops for t in thread_list
                      if only is None or (case.name, dtype, op, t) in only]
            if not wanted:
                continue
            x = make_input(case.shape, dtype, data=case.data)
            out = np.empty_like(x)
            out.fill(0)  # touch the pages once, outside the timings
            red_shape = tuple(s for i, s in enumerate(x.shape) if i != case.axis % x.ndim)
            out_red = np.zeros(red_shape, dtype=x.dtype)
            ref_cache, at_one = {}, {}
            for op, t in wanted:
                cfg = time_config(cands, case, dtype, op, t, x, out, out_red, ref_cache, opts, at_one.get(op))
                if t == 1:
                    at_one[op] = cfg
                configs.append(cfg)
                _log(_progress_line(cfg, order))
            del x, out, out_red, ref_cache
            gc.collect()
    return configs


def _has_avx512():
    import fastsoftmax
    return fastsoftmax.get_config()["isa"] == "avx512"


def _avx2_run(args, out_dir):
    """The --targets rows again in a child process with the AVX2 kernel and torch held to AVX2
    (ATEN_CPU_CAPABILITY must be set before torch is imported); returns its results."""
    import subprocess
    child_out = os.path.join(out_dir, "avx2")
    env = dict(os.environ, FASTSOFTMAX_ISA="avx2", ATEN_CPU_CAPABILITY="avx2")
    cmd = [sys.executable, os.path.abspath(__file__), "--targets", "--no-avx2-run", "--no-plot", "--no-sampling",
           "--candidates", "fastsoftmax,torch,copyto", "--out", child_out, "--stat", args.stat]
    for opt in ("repeats", "sample_ms", "budget_s"):
        if getattr(args, opt) is not None:
            cmd += [f"--{opt.replace('_', '-')}", str(getattr(args, opt))]
    _log("AVX2 run (FASTSOFTMAX_ISA=avx2, ATEN_CPU_CAPABILITY=avx2): " + " ".join(cmd[1:]))
    if subprocess.run(cmd, env=env).returncode not in (0, 3):
        _log("  the AVX2 run failed; its column is left out")
        return None
    with open(os.path.join(child_out, "results.json")) as fh:
        return json.load(fh)


def main(argv=None):
    args = parse_args(argv)
    if args.memory_worker:
        print(json.dumps(memory.worker(json.loads(args.memory_worker))))
        return 0
    if args.list:
        for c in cases.FULL + cases.QUICK[2:]:
            print(f"{c.name:<18} {c.label:<26} {c.what}")
        print("candidates:", ", ".join(candidates.NAMES))
        return 0
    if args.report_from:
        with open(args.report_from) as fh:
            data = json.load(fh)
        out_dir = args.out or os.path.dirname(os.path.abspath(args.report_from))
        written = report.write_all(data, out_dir, plots=not args.no_plot, stat=args.stat)
        for w in written:
            _log(f"wrote {w}")
        return 0

    t_start = time.time()
    mode = "quick" if args.quick else "targets" if args.targets else "full"
    opts = argparse.Namespace(
        repeats=args.repeats or (3 if args.quick else 9),
        sample_s=(args.sample_ms or (2 if args.quick else 5)) / 1e3,
        budget_s=args.budget_s or (0.5 if args.quick else 8.0),
        gap_s=args.gap_ms / 1e3,
        reuse_s=args.reuse_s,
        cap_s=args.cap_s,
    )
    out_dir = args.out or os.path.join(HERE, "results", "" if mode == "full" else mode)
    os.makedirs(out_dir, exist_ok=True)

    n_all = candidates.all_threads()
    thread_list = []
    for t in _split(args.threads) or ["1", "all"]:
        v = n_all if t == "all" else int(t)
        if v not in thread_list:
            thread_list.append(v)
    ops = _split(args.ops) or list(OPS)
    dtypes = _split(args.dtypes) or list(DTYPES)
    only = None
    if args.targets:
        only = set(cases.target_configs())
        case_list = [cases.BY_NAME[n] for n in dict.fromkeys(c for c, _, _, _ in only)]
        case_list.sort(key=lambda c: cases.FULL.index(c))
    elif args.cases:
        case_list = [cases.BY_NAME[n] for n in _split(args.cases)]
    else:
        case_list = cases.QUICK if args.quick else cases.FULL

    cands, skipped = candidates.load(_split(args.candidates))
    if not any(c.name == "fastsoftmax" for c in cands):
        raise SystemExit("fastsoftmax must be among the candidates (the ratios are relative to it)")
    meta = machine.describe(versions())
    cmd_args = sys.argv[1:] if argv is None else list(argv)
    meta.update(mode=mode, stat=args.stat, command=" ".join(["python bench/run.py"] + cmd_args),
                threads_all=n_all, thread_settings=thread_list, thread_pinning=candidates.threadpoolctl_note(),
                repeats=opts.repeats, sample_ms=opts.sample_s * 1e3, budget_s=opts.budget_s,
                skipped_candidates=skipped, candidates=[{"name": c.name, "label": c.label, "kind": c.kind,
                                                          "version": c.version} for c in cands])
    _log(f"fastsoftmax benchmark ({mode}) on {machine.one_line(meta)}")
    _log(f"candidates: {', '.join(c.name for c in cands)}" +
         "".join(f"\n  skipped {k}: {v}" for k, v in skipped.items()))
    data = {"meta": meta, "timing": [], "memory": [], "accuracy": []}

    if not args.no_accuracy and mode != "targets":
        _log("accuracy (threads=1):")
        data["accuracy"] = accuracy.run_all(cands, ops, dtypes, quick=args.quick, log=_log)
    if not args.no_memory and mode != "targets":
        mem_shape = (256, 10240) if args.quick else (2560, 10240)  # float32: 10 MiB / 100 MiB
        mem_ops = ["softmax"] if args.quick else ops
        _log(f"memory: one call on a float32 {mem_shape} input ({np.prod(mem_shape) * 4 / 2**20:.0f} MiB), "
             "each candidate in a fresh process:")
        data["memory"] = memory.run_all(cands, mem_ops, "float32", mem_shape, -1, os.path.abspath(__file__), log=_log)
        meta["memory_input"] = {"shape": list(mem_shape), "dtype": "float32",
                                "bytes": int(np.prod(mem_shape)) * 4}
    _log(f"timing ({opts.repeats} samples of ~{opts.sample_s * 1e3:g} ms per candidate, interleaved; "
         f"threads {thread_list}):")
    data["timing"] = run_timing(cands, case_list, dtypes, ops, thread_list, opts, only)
    if mode == "targets":
        _log("half-precision targets (float16 / bfloat16 softmax, 1 thread, interleaved in one process):")
        data["half_targets"] = half.run(rounds=opts.repeats, sample_s=max(opts.sample_s, 0.02), log=_log)
        _log("issue 15 targets (float64 vs torch / onnxruntime; float32 (4096, 32000) vs np.copyto):")
        data["issue15_targets"] = issue15.run(rounds=opts.repeats, sample_s=max(opts.sample_s, 0.02), log=_log,
                                              names=[c.name for c in cands])
        _log("weighted logsumexp targets (b= against no b on the same array, 1 thread, interleaved in one process):")
        data["weighted_targets"] = weighted.run(rounds=opts.repeats, sample_s=max(opts.sample_s, 0.02), log=_log)
        if not args.no_sampling:
            _log("sampling and top-k targets (1 thread, interleaved in one process):")
            data["sampling_targets"] = sampling.run(rounds=opts.repeats, sample_s=max(opts.sample_s, 0.05), log=_log)

    ort = next((c for c in cands if c.name == "onnxruntime"), None)
    if ort is not None and ort.unsupported:
        meta["onnxruntime_unsupported"] = ort.unsupported
    try:
        meta["loadavg_end"] = list(os.getloadavg())
    except OSError:
        pass
    if mode == "targets" and not args.no_avx2_run and _has_avx512():
        data["avx2_run"] = _avx2_run(args, out_dir)
    meta["wall_s"] = round(time.time() - t_start, 1)
    for w in report.write_all(data, out_dir, plots=not args.no_plot, stat=args.stat):
        _log(f"wrote {w}")
    _log()
    _log(report.targets_markdown(data))
    _log(f"done in {meta['wall_s']:.0f} s")
    bad = [f"{c['case']} {c['dtype']} {c['op']} t={c['threads']}" for c in data["timing"]
           if "fastsoftmax" in c["invalid"] or "fastsoftmax" in c["inaccurate"]]
    if bad:
        _log("fastsoftmax gave wrong or inaccurate results on: " + "; ".join(bad))
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())

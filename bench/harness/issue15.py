"""Issue 15's speed targets: float64 at 1.5x torch (softmax, log_softmax; logsumexp at 2x), and float32
rows whose output is far larger than the last-level cache, softmax / log_softmax (4096, 32000), against
np.copyto (one read and one write of the array, the memory floor): at most 1.5x copy on one thread,
1.1x on all threads.

Every candidate of a row is timed in the same process, interleaved: each round runs every candidate for
about sample_s (at least one call), in an order that rotates from round to round, with a 50 ms pause
before each sample of the multi-threaded rows, and the row reports the median over rounds of each
candidate's time per call. Results go to preallocated outputs (fastsoftmax out=, torch out=, ORT io binding, np.copyto
into the same buffer), so no call pays for a fresh 500 MB allocation; each call's result is dropped.
The out-of-cache rows time fastsoftmax three ways: as it runs by default, with the out-of-cache path
(scratch + non-temporal stores) forced on, and forced off (_core._set_llc_bytes).
"""
import numpy as np

from .half import _per_call

F64_SHAPE = (256, 1000)
F64_ROWS = [("softmax", 1.5), ("log_softmax", 1.5), ("logsumexp", 2.0)]  # torch time / fastsoftmax time, at least
OOC_SHAPE = (4096, 32000)
OOC_TARGET = {1: 1.5, "all": 1.1}  # fastsoftmax time / np.copyto time, at most


def _interleaved(fns, rounds, sample_s, gap_s=0.0):
    """Median seconds per call of each candidate over `rounds` rounds. The order rotates from round to
    round, and gap_s (multi-threaded rows) is a pause before each sample: onnxruntime's pool threads spin
    after a call, and whoever came right after it lost a core to them (2 threads, Zen 5: fastsoftmax
    softmax (4096, 32000) 37.1 ms behind onnxruntime, 31.9 ms without it in the process)."""
    import time
    names = list(fns)
    samples = {k: [] for k in names}
    for r in range(rounds):
        shift = r % len(names)
        for k in names[shift:] + names[:shift]:
            if gap_s:
                time.sleep(gap_s)
            samples[k].append(_per_call(fns[k], sample_s))
    return {k: float(np.median(v)) for k, v in samples.items()}, {k: [float(s) for s in v] for k, v in samples.items()}


def _peers(op, x, out, out_red, threads, names):
    """torch and onnxruntime callables (those installed and in `names`), with their threads set to `threads`."""
    from . import candidates
    fns = {}
    for cls in (candidates.Torch, candidates.OnnxRuntime):
        c = cls()
        if not c.ok or c.name not in names:
            continue
        c.set_threads(threads)
        f = c.timed(op, x, -1, out, out_red, threads)
        if f is not None:
            fns[c.name] = f
    return fns


def _fs(op, x, out, out_red, threads):
    import fastsoftmax
    if op == "logsumexp":
        return lambda: fastsoftmax.logsumexp(x, axis=-1, threads=threads)
    f = getattr(fastsoftmax, op)
    return lambda: f(x, axis=-1, out=out, threads=threads)


def run(rounds=9, sample_s=0.05, log=print, names=("torch", "onnxruntime", "scipy")):
    """Measure every row; `names`: the peers to time (the AVX2 child run times torch only)."""
    import fastsoftmax
    from fastsoftmax import _core
    from . import candidates
    result = {"f64": [], "ooc": [], "llc": list(_core._llc_bytes())}
    x = np.random.default_rng(0).standard_normal(F64_SHAPE) * 3
    out, out_red = np.empty_like(x), np.empty(x.shape[0])
    for op, target in F64_ROWS:
        fns = {"fastsoftmax": _fs(op, x, out, out_red, 1)}
        fns.update(_peers(op, x, out, out_red, 1, names))
        if op == "logsumexp" and "scipy" in names:
            import scipy.special
            fns["scipy"] = lambda: scipy.special.logsumexp(x, axis=-1)
        med, samples = _interleaved(fns, rounds, sample_s)
        result["f64"].append({"op": op, "shape": list(F64_SHAPE), "target": target, "median_s": med,
                              "samples_s": samples})
        log(f"  {op} float64 {F64_SHAPE}: " + ", ".join(f"{k} {v * 1e6:.0f} us" for k, v in med.items()))
    xb = (np.random.default_rng(1).standard_normal(OOC_SHAPE) * 3).astype(np.float32)
    yb = np.empty_like(xb)
    n_all = candidates.all_threads()
    detected = _core._llc_bytes()[1]
    for op in ("softmax", "log_softmax"):
        for threads in dict.fromkeys([1, n_all]):
            fs = _fs(op, xb, yb, None, threads)

            def forced(mode, fs=fs):
                def f():
                    _core._set_llc_bytes(mode)
                    try:
                        fs()
                    finally:
                        _core._set_llc_bytes(0)
                return f
            fns = {"fastsoftmax": fs, "fastsoftmax streaming": forced(detected), "fastsoftmax plain": forced(-1),
                   "np.copyto": lambda: np.copyto(yb, xb)}
            fns.update(_peers(op, xb, yb, None, threads, names))
            med, samples = _interleaved(fns, max(3, rounds // 2), sample_s, gap_s=0.05 if threads > 1 else 0.0)
            key = 1 if threads == 1 else "all"
            result["ooc"].append({"op": op, "shape": list(OOC_SHAPE), "threads": threads, "target": OOC_TARGET[key],
                                  "median_s": med, "samples_s": samples})
            log(f"  {op} float32 {OOC_SHAPE} threads={threads}: " +
                ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in med.items()))
    return result


def markdown(res, isa, res_avx2=None):
    """The two tables; res_avx2: the same rows from the run with the AVX2 kernel and torch held to AVX2."""
    def f64_cells(r):
        m = r["median_s"]
        f, t = m["fastsoftmax"], m.get("torch")
        ratio = None if t is None else round(t / f, 2)
        verdict = "—" if ratio is None else f"{ratio:.2f} ({'met' if ratio >= r['target'] else 'missed'}, ≥ {r['target']})"
        others = ", ".join(f"{k} {v * 1e6:.0f} µs" for k, v in m.items() if k not in ("fastsoftmax",))
        return [f"{f * 1e6:.0f} µs", others, verdict]
    head = ["float64, 1 thread", f"fastsoftmax ({isa})", "peers", "torch ÷ fastsoftmax"]
    if res_avx2:
        head += ["fastsoftmax (avx2)", "peers (torch avx2)", "torch ÷ fastsoftmax"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i, r in enumerate(res["f64"]):
        c = [f"{r['op']} {tuple(r['shape'])}"] + f64_cells(r)
        if res_avx2:
            c += f64_cells(res_avx2["f64"][i]) if i < len(res_avx2["f64"]) else ["—"] * 3
        lines.append("| " + " | ".join(c) + " |")
    text = ("### Speed targets (float64, issue 15)\n\nmedians of interleaved samples in one process, each call's "
            "result dropped at once (written to a preallocated output)\n\n" + "\n".join(lines))

    def ooc_cells(r):
        m = r["median_s"]
        c = m["np.copyto"]
        ratio = round(m["fastsoftmax"] / c, 2)
        verdict = f"{ratio:.2f} ({'met' if ratio <= r['target'] else 'missed'}, ≤ {r['target']})"
        ways = (f"streaming {m['fastsoftmax streaming'] / c:.2f}, plain {m['fastsoftmax plain'] / c:.2f}")
        peers = ", ".join(f"{k} {v * 1e3:.0f} ms" for k, v in m.items() if k in ("torch", "onnxruntime"))
        return [f"{m['fastsoftmax'] * 1e3:.1f} ms", f"{c * 1e3:.1f} ms", verdict, ways, peers or "—"]
    head = ["float32 (4096, 32000)", f"fastsoftmax ({isa})", "np.copyto", "÷ copy (target)",
            "÷ copy: streaming / plain stores", "peers"]
    if res_avx2:
        head += ["fastsoftmax (avx2)", "÷ copy (target)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i, r in enumerate(res["ooc"]):
        c = [f"{r['op']}, {r['threads']} thread{'s' if r['threads'] > 1 else ''}"] + ooc_cells(r)
        if res_avx2:
            c += ooc_cells(res_avx2["ooc"][i])[0:3:2] if i < len(res_avx2["ooc"]) else ["—"] * 2
        lines.append("| " + " | ".join(c) + " |")
    used, detected = res.get("llc", [None, None])
    text += ("\n\n### Speed targets (float32 out of cache, issue 15)\n\n"
             f"last-level cache detected: {detected / 2**20:.0f} MiB; out-of-cache path by default: "
             f"{'on' if used and used > 0 else 'off'}. \"streaming\": the path forced on (a cache-resident "
             "scratch copied with non-temporal stores), \"plain\": forced off; medians of interleaved samples\n\n"
             + "\n".join(lines))
    return text

"""The weighted logsumexp targets: fastsoftmax.logsumexp(a, axis=-1, b=b) against the same call
without b on the same array, one thread (b is a second stream to read: the target is at most 2x).

Both calls of a row are timed in the same process, interleaved: each round runs each for about
sample_s, and the row reports the median over rounds of each one's time per call. Each call's
result is dropped at once. Weights: uniform in [0, 1), the data normal * 3.
"""
import numpy as np

from .half import _per_call

SHAPES = [(256, 1000), (4096, 1000)]
DTYPES = ("float32", "float64")
TARGET = 2.0  # with b / without b, at most


def run(rounds=9, sample_s=0.05, log=print, threads=1):
    """Measure every row; returns a list of row dicts."""
    import fastsoftmax
    rows = []
    for dtype in DTYPES:
        for shape in SHAPES:
            rng = np.random.default_rng(0)
            a = (rng.standard_normal(shape) * 3).astype(dtype)
            b = rng.random(shape).astype(dtype)
            fns = {"with b": lambda: fastsoftmax.logsumexp(a, axis=-1, b=b, threads=threads),
                   "without b": lambda: fastsoftmax.logsumexp(a, axis=-1, threads=threads)}
            samples = {k: [] for k in fns}
            for _ in range(rounds):
                for k, fn in fns.items():
                    samples[k].append(_per_call(fn, sample_s))
            med = {k: float(np.median(v)) for k, v in samples.items()}
            rows.append({"shape": list(shape), "dtype": dtype, "threads": threads, "median_s": med,
                         "samples_s": {k: [float(s) for s in v] for k, v in samples.items()}})
            log(f"  logsumexp b= {shape} {dtype}: with b {med['with b'] * 1e6:.0f} us, without {med['without b'] * 1e6:.0f} us, "
                f"ratio {med['with b'] / med['without b']:.2f}")
    return rows


def markdown(rows, isa):
    lines = ["| case, 1 thread | with b | without b | with ÷ without (target) |", "|---|---|---|---|"]
    for r in rows:
        m = r["median_s"]
        ratio = m["with b"] / m["without b"]
        verdict = "met" if round(ratio, 2) <= TARGET else "missed"
        lines.append(f"| logsumexp b= {tuple(r['shape'])} {r['dtype']} | {m['with b'] * 1e6:.0f} µs "
                     f"| {m['without b'] * 1e6:.0f} µs | {ratio:.2f}× ({verdict}, ≤ {TARGET:g}×) |")
    return (f"### Speed targets (logsumexp with weights, {isa} kernels)\n\n"
            "medians of interleaved samples in one process, each call's result dropped at once\n\n" + "\n".join(lines))

"""The selection speed targets: fastsoftmax.sample (top_p) against the usual torch and NumPy recipes,
and fastsoftmax.topk_softmax against torch.topk(torch.softmax(x)), one thread.

The recipes are what people write today: divide by the temperature, sort the whole row, softmax,
cumulative sum, mask the tail past top_p, renormalise, draw (torch.multinomial; NumPy: a uniform
against the cumulative sum). Every candidate of a row is timed in the same process, interleaved:
each round runs every candidate for about sample_s, and the row reports the median over rounds of
each candidate's time per call. Each call's result is dropped at once.
"""
import numpy as np

from .half import _per_call

TEMPERATURE, TOP_P = 0.8, 0.9
SAMPLE_SHAPES = [(1, 128256), (32, 128256)]
TOPK_SHAPES = [(1, 128256), (256, 1000)]
TOPK = 5
SAMPLE_TARGETS = {"torch recipe": 20.0, "NumPy recipe": 5.0}  # their time / fastsoftmax time, at least
TOPK_TARGET = 3.0


def numpy_recipe(x, rng, temperature=TEMPERATURE, top_p=TOP_P):
    """Sort-based top-p sampling in NumPy, one index per row."""
    z = x / np.float32(temperature)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    p = e / e.sum(axis=-1, keepdims=True)
    order = np.argsort(-p, axis=-1)
    ps = np.take_along_axis(p, order, -1)
    c = np.cumsum(ps, axis=-1)
    ps = np.where(c - ps < top_p, ps, 0)
    c = np.cumsum(ps, axis=-1)
    u = rng.random((x.shape[0], 1)) * c[:, -1:]
    j = np.minimum((c <= u).sum(axis=-1), x.shape[1] - 1)
    return order[np.arange(x.shape[0]), j]


def _torch_recipe(torch):
    def recipe(t, temperature=TEMPERATURE, top_p=TOP_P):
        s, idx = torch.sort(t / temperature, descending=True)
        p = torch.softmax(s, -1)
        c = p.cumsum(-1)
        s = s.masked_fill(c - p > top_p, float("-inf"))
        choice = torch.multinomial(torch.softmax(s, -1), 1)
        return idx.gather(-1, choice)
    return recipe


def _torch():
    try:
        import torch
        torch.set_num_threads(1)
        return torch
    except ImportError:
        return None


def _measure(fns, rounds, sample_s):
    samples = {k: [] for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            samples[k].append(_per_call(fn, sample_s))
    return {k: float(np.median(v)) for k, v in samples.items()}, {k: [float(s) for s in v] for k, v in samples.items()}


def run(rounds=9, sample_s=0.05, log=print):
    """Measure every row; returns {"sample": [...], "topk": [...]} of row dicts."""
    import fastsoftmax
    torch = _torch()
    out = {"sample": [], "topk": []}
    for shape in SAMPLE_SHAPES:
        x = (np.random.default_rng(0).standard_normal(shape) * 3).astype(np.float32)
        g1, g2 = np.random.default_rng(1), np.random.default_rng(2)
        fns = {"fastsoftmax": lambda: fastsoftmax.sample(x, temperature=TEMPERATURE, top_p=TOP_P, rng=g1, threads=1),
               "NumPy recipe": lambda: numpy_recipe(x, g2)}
        if torch is not None:
            t, recipe = torch.from_numpy(x), _torch_recipe(torch)
            fns["torch recipe"] = lambda: recipe(t)
        med, samples = _measure(fns, rounds, sample_s)
        out["sample"].append({"shape": list(shape), "median_s": med, "samples_s": samples})
        log(f"  sample top_p={TOP_P} T={TEMPERATURE} {shape}: " + ", ".join(f"{k} {v * 1e6:.0f} us" for k, v in med.items()))
    for shape in TOPK_SHAPES:
        x = (np.random.default_rng(0).standard_normal(shape) * 3).astype(np.float32)
        fns = {"fastsoftmax": lambda: fastsoftmax.topk_softmax(x, TOPK)}
        if torch is not None:
            t = torch.from_numpy(x)
            fns["torch"] = lambda: torch.topk(torch.softmax(t, -1), TOPK)
        med, samples = _measure(fns, rounds, sample_s)
        out["topk"].append({"shape": list(shape), "median_s": med, "samples_s": samples})
        log(f"  topk_softmax k={TOPK} {shape}: " + ", ".join(f"{k} {v * 1e6:.0f} us" for k, v in med.items()))
    return out


def markdown(res, isa):
    def verdict(ratio, target):
        r = round(ratio, 1)
        return f"{r:.1f}× ({'met' if r >= target else 'missed'}, ≥ {target:g}×)"
    lines = ["| case, float32, 1 thread | fastsoftmax | against | their time ÷ ours (target) |", "|---|---|---|---|"]
    for r in res.get("sample", []):
        m = r["median_s"]
        for peer, target in SAMPLE_TARGETS.items():
            if peer in m:
                lines.append(f"| sample top_p={TOP_P}, T={TEMPERATURE} {tuple(r['shape'])} | {m['fastsoftmax'] * 1e6:.0f} µs "
                             f"| {peer} {m[peer] * 1e6:.0f} µs | {verdict(m[peer] / m['fastsoftmax'], target)} |")
    for r in res.get("topk", []):
        m = r["median_s"]
        if "torch" in m:
            lines.append(f"| topk_softmax k={TOPK} {tuple(r['shape'])} | {m['fastsoftmax'] * 1e6:.0f} µs "
                         f"| torch.topk(softmax) {m['torch'] * 1e6:.0f} µs | {verdict(m['torch'] / m['fastsoftmax'], TOPK_TARGET)} |")
    return (f"### Speed targets (sampling and top-k, {isa} kernels for the softmax pass)\n\n"
            "medians of interleaved samples in one process, each call's result dropped at once\n\n" + "\n".join(lines))

"""The half-precision speed targets: float16 and bfloat16 softmax, one thread, against torch.softmax on
the same dtype (a minimum ratio) and against fastsoftmax's own float32 kernel on the same shape (a
maximum: the widening must ride inside the passes).

Every candidate of a row is timed in the same process, interleaved: each round runs every candidate
for about sample_s, and the row reports the median over rounds of each candidate's time per call. Each
call's result is dropped at once. torch gets a tensor of the same values (bfloat16 through float32).
"""
import time

import numpy as np

SHAPES = [(64, 32000), (1, 128256)]
TORCH_TARGET = 1.0   # torch time / fastsoftmax time, at least
F32_TARGET = 1.1     # fastsoftmax half time / fastsoftmax float32 time, at most


def _per_call(fn, sample_s):
    fn()
    n, t0 = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        t = time.perf_counter() - t0
        if t >= sample_s:
            return t / n


def _row(shape, dtype_name, rounds, sample_s):
    import fastsoftmax
    x32 = (np.random.default_rng(0).standard_normal(shape) * 3).astype(np.float32)
    if dtype_name == "float16":
        xh = x32.astype(np.float16)
    else:
        import ml_dtypes
        xh = x32.astype(ml_dtypes.bfloat16)
    fns = {"fastsoftmax": lambda: fastsoftmax.softmax(xh, axis=-1, threads=1),
           "fastsoftmax float32": lambda: fastsoftmax.softmax(x32, axis=-1, threads=1)}
    try:
        import torch
        torch.set_num_threads(1)
        t = torch.from_numpy(xh.astype(np.float32)).to(torch.float16 if dtype_name == "float16" else torch.bfloat16)
        fns["torch"] = lambda: torch.softmax(t, -1)
    except ImportError:
        pass
    samples = {k: [] for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            samples[k].append(_per_call(fn, sample_s))
    med = {k: float(np.median(v)) for k, v in samples.items()}
    return {"shape": list(shape), "dtype": dtype_name, "median_s": med,
            "samples_s": {k: [float(s) for s in v] for k, v in samples.items()}}


def run(rounds=9, sample_s=0.05, log=print):
    """Measure every row; returns a list of row dicts (see _row)."""
    rows = []
    dtypes = ["float16"]
    try:
        import ml_dtypes  # noqa: F401
        dtypes.append("bfloat16")
    except Exception:  # not installed, or built for another NumPy
        log("  ml_dtypes is not installed: no bfloat16 rows")
    for dtype_name in dtypes:
        for shape in SHAPES:
            rows.append(_row(shape, dtype_name, rounds, sample_s))
            m = rows[-1]["median_s"]
            log(f"  softmax {dtype_name} {shape}: " + ", ".join(f"{k} {v * 1e6:.0f} us" for k, v in m.items()))
    return rows


def markdown(rows, isa, rows_avx2=None):
    """The targets table; rows_avx2: the same rows from the run with the AVX2 kernel and torch held to AVX2."""
    def cells(r):
        m = r["median_s"]
        f, f32, t = m["fastsoftmax"], m["fastsoftmax float32"], m.get("torch")
        r_t, r_32 = (None if t is None else round(t / f, 2)), round(f / f32, 2)  # judged as printed
        vs_t = "—" if t is None else f"{r_t:.2f} ({'met' if r_t >= TORCH_TARGET else 'missed'}, ≥ {TORCH_TARGET})"
        vs_32 = f"{r_32:.2f} ({'met' if r_32 <= F32_TARGET else 'missed'}, ≤ {F32_TARGET})"
        return [f"{f * 1e6:.0f} µs", vs_t, vs_32]
    head = ["softmax, 1 thread", f"fastsoftmax ({isa})", "torch ÷ fastsoftmax", "÷ fastsoftmax float32"]
    if rows_avx2:
        head += ["fastsoftmax (avx2)", "torch (avx2) ÷ fastsoftmax", "÷ fastsoftmax float32"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i, r in enumerate(rows):
        c = [f"{r['dtype']} {tuple(r['shape'])}"] + cells(r)
        if rows_avx2:
            c += cells(rows_avx2[i]) if i < len(rows_avx2) else ["—"] * 3
        lines.append("| " + " | ".join(c) + " |")
    return ("### Speed targets (float16 / bfloat16, 1 thread)\n\n"
            "medians of interleaved samples in one process, each call's result dropped at once; torch on a tensor "
            "of the same dtype\n\n" + "\n".join(lines))

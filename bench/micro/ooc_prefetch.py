"""Out-of-cache float32 rows with and without the next-block prefetch (rows_dtype.h prefetch_wanted),
interleaved in one process against np.copyto of the same bytes; medians, each result dropped.

    python bench/micro/ooc_prefetch.py [rows,n [samples]]     (default 4096,32000 and 15)
"""
import sys
import time

import numpy as np

import fastsoftmax as fs
from fastsoftmax import _core

shape = tuple(int(v) for v in sys.argv[1].split(",")) if len(sys.argv) > 1 else (4096, 32000)
samples = int(sys.argv[2]) if len(sys.argv) > 2 else 15
x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
y = np.empty_like(x)
cases = {}
for op in ("softmax", "log_softmax"):
    for th in (1, 2):
        for pf in (-1, 0):  # -1: never prefetch; 0: the default threshold (the detected last-level cache)
            def call(op=op, th=th, pf=pf):
                _core._set_prefetch_above(pf)
                getattr(fs, op)(x, axis=-1, out=y, threads=th)
            cases[(op, th, pf)] = call
cases["copy"] = lambda: np.copyto(y, x)
times = {k: [] for k in cases}
try:
    for _ in range(samples):
        for k, f in cases.items():
            t0 = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t0)
finally:
    _core._set_prefetch_above(0)
med = {k: float(np.median(v)) * 1e3 for k, v in times.items()}
c = med["copy"]
print(f"{shape} float32, np.copyto {c:.1f} ms, {samples} samples")
for op in ("softmax", "log_softmax"):
    for th in (1, 2):
        a, b = med[(op, th, -1)], med[(op, th, 0)]
        print(f"  {op:11s} threads={th}: no prefetch {a:6.1f} ms ({a / c:.2f}x copy), "
              f"prefetch {b:6.1f} ms ({b / c:.2f}x copy), ratio {b / a:.3f}")

"""Interleaved, repeated timing of several callables on the same data.

One *sample* of a candidate is ``k`` back-to-back calls timed together (``k`` chosen so a sample
lasts about ``sample_s``), preceded by one untimed call so that the candidate's data is in cache
and its thread pool awake, as it would be in a loop of calls. Candidates take turns sample by
sample, in an order that rotates each round, so machine noise (other processes on a shared
host, frequency changes) spreads over all of them instead of hitting one. The statistic is the
median sample; the inter-quartile range is kept as the noise estimate.
"""
import gc
import math
import statistics
import time

_clock = time.perf_counter


def measure(fns, *, repeats, sample_s, budget_s, min_repeats=3, first_times=None, gap_s=0.0, slow_s=0.5,
            cap_s=None, keep="fastsoftmax"):
    """Time each callable in ``fns`` (name -> callable, already warmed up once).

    ``first_times`` (name -> seconds of the warm-up call) lets slow callables skip the
    calibration call, and a warm-up call longer than ``slow_s`` counts as the first sample
    (for out-of-cache sizes a call leaves nothing warm for the next). ``gap_s``: a pause before each sample, so that the worker threads a
    multi-threaded candidate leaves spinning have gone to sleep before the next one is timed.
    ``cap_s``: a candidate (other than ``keep``) whose call is that slow gets only
    ceil(cap_s / call time) samples, at least one: a 10 s call does not need three.
    Returns name -> dict(median, q1, q3, min, samples, k).
    """
    first_times = first_times or {}
    gc_was = gc.isenabled()
    gc.disable()
    try:
        ks, single = {}, {}
        for name, fn in fns.items():
            t = first_times.get(name)
            if t is None or t < 0.05:
                # calibrate: double the count until a loop lasts a quarter of a sample
                n = 1
                while True:
                    t0 = _clock()
                    for _ in range(n):
                        fn()
                    elapsed = _clock() - t0
                    if elapsed >= sample_s / 4 or n >= 1 << 20:
                        break
                    n *= 2
                t = elapsed / n
            single[name] = t
            ks[name] = max(1, int(round(sample_s / max(t, 1e-9))))
        round_cost = sum(single[n] * ks[n] for n in fns)
        rounds = max(min_repeats, min(repeats, int(budget_s / max(round_cost, 1e-9))))
        names = list(fns)
        samples = {n: ([first_times[n]] if first_times.get(n, 0) >= slow_s else []) for n in names}
        wanted = {n: rounds if (cap_s is None or n == keep) else
                  min(rounds, max(1, math.ceil(cap_s / max(single[n], 1e-9)))) for n in names}
        for r in range(rounds):
            shift = r % len(names)
            for name in names[shift:] + names[:shift]:
                if len(samples[name]) >= wanted[name]:
                    continue
                fn, k = fns[name], ks[name]
                if gap_s:
                    time.sleep(gap_s)
                if single[name] < 0.02:
                    fn()  # untimed: caches and thread pool as in a loop of calls
                t0 = _clock()
                for _ in range(k):
                    fn()
                samples[name].append((_clock() - t0) / k)
    finally:
        if gc_was:
            gc.enable()
    out = {}
    for name, s in samples.items():
        q = statistics.quantiles(s, n=4, method="inclusive") if len(s) > 1 else [s[0]] * 3
        out[name] = {"median": statistics.median(s), "q1": q[0], "q3": q[2], "min": min(s),
                     "samples": s, "k": ks[name]}
    return out


def fmt_time(seconds):
    if seconds is None or not math.isfinite(seconds):
        return "—"
    if seconds < 1e-6:
        return f"{seconds * 1e9:.0f} ns"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.3g} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds:.3g} s"

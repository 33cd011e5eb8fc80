"""One float32 row of 2^31 + 17 elements (8 GiB): logsumexp, then softmax in place.

Marked slow (deselected by default); run by hand:
    python -m pytest -m slow tests/test_big.py -s
It needs about 8.2 GiB of free memory and is skipped with less. Nothing of the row's size is ever
copied: the data is written in place, the checks read it in chunks.

The row is a period-7 pattern of values (-1.5 ... 1.5) with three planted values beyond index 2^31
(a unique maximum, -inf, a value whose exponential underflows) so that 32-bit index arithmetic, a
lost block or a wrong maximum would show. logsumexp is checked against the exact count-weighted sum
(2 ulp of max(|result|, |row max|)) and for bit-identity between threads=1 and the default; the
softmax against exp(x - max) / sum for each of the pattern's values (2 ulp), element by element,
and for its sum.
"""
import math
import time

import numpy as np
import pytest

import fastsoftmax

N = 2**31 + 17
PERIOD = np.array([-1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5])
PLANTED = {2**31 + 5: 6.0, 2**31 + 11: -np.inf, 2**31 + 13: -200.0}
CHUNK = 7 * 2**22


def mem_available():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def ulp32(v):
    v = abs(float(v))
    if v < 2.0**-126:
        return 2.0**-149
    return 2.0 ** (math.floor(math.log2(v)) - 23)


@pytest.mark.slow
@pytest.mark.skipif(mem_available() < 9 * 2**30, reason="needs about 9 GiB of free memory")
def test_row_longer_than_2_31():
    t = {}
    t0 = time.perf_counter()
    x = np.empty(N, dtype=np.float32)
    block = np.tile(PERIOD.astype(np.float32), CHUNK // 7)            # starts at residue 0
    for s in range(0, N, CHUNK):
        e = min(s + CHUNK, N)
        x[s:e] = block[:e - s]
    for i, v in PLANTED.items():
        x[i] = v
    t["fill"] = time.perf_counter() - t0

    # The exact sum of exp(x - m), m = 6: counts of each residue, planted ones removed.
    counts = np.array([len(range(r, N, 7)) for r in range(7)], dtype=np.float64)
    for i in PLANTED:
        counts[i % 7] -= 1
    m = 6.0
    s_ref = math.fsum(c * math.exp(v - m) for c, v in zip(counts, PERIOD)) + 1.0 + math.exp(-206.0)
    lse_ref = m + math.log(s_ref)

    t0 = time.perf_counter()
    lse = fastsoftmax.logsumexp(x)
    t["logsumexp"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    lse1 = fastsoftmax.logsumexp(x, threads=1)
    t["logsumexp threads=1"] = time.perf_counter() - t0
    assert isinstance(lse, np.float32)
    lse_err = abs(float(lse) - lse_ref) / ulp32(max(abs(lse_ref), m))
    assert lse_err <= 2.0, f"logsumexp {lse!r}, reference {lse_ref!r}: {lse_err:.2f} ulp"
    assert np.float32(lse).tobytes() == np.float32(lse1).tobytes(), "depends on the thread count"

    t0 = time.perf_counter()
    y = fastsoftmax.softmax(x, out=x)
    t["softmax in place"] = time.perf_counter() - t0
    assert y is x

    t0 = time.perf_counter()
    expected = [math.exp(v - m) / s_ref for v in PERIOD]
    # Every element within 2 ulp of exp(x - m) / sum; a chunk at a time, one residue at a time.
    # (Equal inputs need not give equal outputs: blocks are rescaled to the row maximum.)
    sm_err = 0.0
    for i, v in PLANTED.items():
        want = math.exp(v - m) / s_ref
        err = abs(float(x[i]) - want) / ulp32(want)
        assert err <= 2.0, f"softmax at {i} (x = {v}): {x[i]!r} vs {want!r} ({err:.2f} ulp)"
        sm_err = max(sm_err, err)
    planted = np.array(sorted(PLANTED))
    total = 0.0
    for s in range(0, N, CHUNK):
        e = min(s + CHUNK, N)
        c = x[s:e]
        total += float(np.sum(c, dtype=np.float64))
        for r in range(7):
            k0 = (r - s) % 7
            part = c[k0::7].astype(np.float64)
            idx = planted[(planted >= s) & (planted < e) & ((planted - s) % 7 == k0)]
            if idx.size:   # planted elements are checked above
                part[(idx - s - k0) // 7] = expected[r]
            err = float(np.max(np.abs(part - expected[r]))) / ulp32(expected[r])
            assert err <= 2.0, f"chunk at {s}: softmax of {PERIOD[r]} off by {err:.2f} ulp"
            sm_err = max(sm_err, err)
    # 2 ulp per element => |sum - 1| <= 2 eps.
    assert abs(total - 1.0) <= 2 * 2.0**-23, f"softmax sums to {total!r}"
    t["checks"] = time.perf_counter() - t0
    print("\n2^31+17 float32 row: " + ", ".join(f"{k} {v:.2f} s" for k, v in t.items())
          + f"; logsumexp {float(lse)!r} (reference {lse_ref!r}, {lse_err:.2f} ulp); softmax max error "
          f"{sm_err:.2f} ulp, sum(softmax) - 1 = {total - 1:.3g}")
    del x, y, block

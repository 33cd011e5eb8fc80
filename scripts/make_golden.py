#!/usr/bin/env python
"""Write tests/data/golden.json: softmax, log_softmax and logsumexp of a few dozen float32 and
float64 rows, computed with mpmath, for tests/test_golden.py.

    pip install mpmath numpy && python scripts/make_golden.py

Each value is computed at 60 significant digits and again at 90; the two must agree to 40 digits
(at least 18 more than stored).
Inputs are stored as float.hex strings (the exact float32 / float64 values). Outputs are decimal
strings of DIGITS significant digits (the true value to under 2^-20 ulp of the row's dtype, read
exactly by fractions.Fraction); "-inf" where the true value is -inf, "0" where it is below 2^-1200
(far under half the smallest float64 subnormal). Rows longer than FULL_ROW store their outputs at
every STEP-th index and at the extremes ("at"), which keeps the file under 100 kB.

The rows are fixed lists or drawn from seeded NumPy generators: rerunning gives the same file.
"""
import json
import os
import sys

import mpmath
import numpy as np

OUT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "golden.json"))
DIGITS = {"float32": 15, "float64": 22}
FULL_ROW = 128
STEP = 8
FLOOR = mpmath.mpf(2) ** -1200


def rows(dtype):
    """(name, values) of the rows for ``dtype``: each kind of input the kernels treat specially."""
    fi = np.finfo(dtype)
    big = float(fi.max)
    rng = np.random.default_rng(2027 if dtype == np.float32 else 2028)

    def normal(n, scale):
        return list(rng.standard_normal(n) * scale)

    def below(top, n, scale):
        """top and n values under it, |normal| * scale below."""
        return [top] + list(top - np.abs(rng.standard_normal(n)) * scale)

    yield "1, 2, 3", [1.0, 2.0, 3.0]
    yield "one element", [3.7]
    yield "two elements 1e-8 apart", [1e-8, 0.0]
    yield "ties: three maxima of four", [2.5, 2.5, 2.5, -1.0]
    yield "ties: 37 equal values", [5.1] * 37
    yield "ties: two maxima, the rest far below", [7.25, 7.25, -200.0]
    yield "dominant logit, the rest 40 below", [0.0, -40.0, -41.5, -45.0, -60.0]
    yield "dominant logit, 30 above 6 others", list(rng.standard_normal(7) + np.array([0, 0, 0, 30, 0, 0, 0]))
    yield "dominant logit, the rest 700 below", [0.0, -700.0, -701.0, -705.5]
    yield "max 240.5 (rows are shifted by the max above 240)", below(240.5, 16, 10.0)
    yield "max -241", below(-241.0, 16, 10.0)
    yield "max 1000, 33 elements", below(1000.0, 32, 10.0)
    yield "max -3e4", below(-3e4, 16, 10.0)
    yield "max 1e6", below(1e6, 16, 10.0)
    yield "huge spread, underflowing terms", [0.0, -1e30, -200.0, -90.0, 1e-30, -1e-30, -3.0]
    yield "exact zeros and -inf", [0.0, -104.5, -120.0, -121.0, -1e30, -np.inf, -3.0]
    yield "exps of -88 to -104 (subnormal in float32)", [0.0, -88.0, -95.0, -100.0, -103.0, -103.9, -104.0]
    yield "exps of -708 to -745 (subnormal in float64)", [0.0, -708.0, -720.0, -740.0, -744.0, -745.0]
    yield "largest finite, twice", [big, big, 0.0]
    yield "largest and most negative finite", [big, big / 2, -big, 0.0]
    yield "most negative finite, three times", [-big, -big, -big]
    yield "subnormal and zero inputs", [float(fi.smallest_subnormal), 0.0, -float(fi.smallest_subnormal), 1e-40]
    yield "logsumexp near zero", [-0.6931471805599453, -0.6931471805599453]
    yield "a 709.78 logit among zeros (fuzz)", [709.78, 0.0, 0.0, 0.0, 0.0, 1e-8, 0.0, 1e-8]
    yield "17 elements, normal*8", normal(17, 8.0)
    yield "65 elements, uniform(-80, 80)", list(rng.uniform(-80, 80, 65))
    if dtype == np.float64:
        yield "200 elements, uniform(-700, 700)", list(rng.uniform(-700, 700, 200))
    yield "1000 elements, normal*5 rounded to 2^-12", list(np.round(rng.standard_normal(1000) * 5 * 4096) / 4096)


def exact(xs):
    """lse, softmax, log_softmax of the row at mpmath's current precision.

    log(sum) is log1p of the terms other than the maxima (plus their count - 1): log(1 + tiny) at
    any fixed precision loses tiny (a dominant class 700 below the max has log_softmax -1e-304).
    """
    x = [mpmath.mpf(v) for v in xs]
    m = max(x)
    d = [v - m for v in x]
    rest = mpmath.fsum(mpmath.exp(t) for t in d if t != 0) + (sum(t == 0 for t in d) - 1)
    log_s = mpmath.log1p(rest)
    ls = [t - log_s for t in d]
    return m + log_s, [mpmath.exp(t) for t in ls], ls


def computed(xs):
    """The row's values at 90 digits, checked against the same at 60 digits."""
    results = []
    for dps in (60, 90):
        with mpmath.workdps(dps):
            lse, sm, ls = exact(xs)
            results.append([lse] + sm + ls)
    with mpmath.workdps(90):
        for lo, hi in zip(*results):
            if mpmath.isfinite(hi) and abs(hi) > FLOOR:
                assert abs(lo - hi) <= abs(hi) * mpmath.mpf(10) ** -40, (xs, lo, hi)
            else:
                assert lo == hi or (abs(hi) <= FLOOR and abs(lo) <= FLOOR), (xs, lo, hi)
    n = len(xs)
    top = results[1]
    return top[0], top[1:1 + n], top[1 + n:]


def hex_text(v):
    """float.hex without the mantissa's trailing zeros (float.fromhex reads it back exactly)."""
    h = v.hex()
    if "p" not in h:
        return h
    mant, exp = h.split("p")
    return (mant.rstrip("0").rstrip(".") if "." in mant else mant) + "p" + exp


def text(v, digits):
    if mpmath.isinf(v):
        return "-inf" if v < 0 else "inf"
    if abs(v) <= FLOOR:
        return "0"
    return mpmath.nstr(v, digits, min_fixed=0, max_fixed=0)


def golden_rows(dtype):
    name = np.dtype(dtype).name
    digits = DIGITS[name]
    out = []
    for label, values in rows(dtype):
        x = np.asarray(values, dtype=dtype)
        assert np.all(np.isfinite(x) | (x == -np.inf)), label
        xs = [float(v) for v in x]
        lse, sm, ls = computed(xs)
        row = {"name": label, "x": [hex_text(v) for v in xs]}
        at = list(range(len(xs)))
        if len(xs) > FULL_ROW:
            at = sorted(set(range(0, len(xs), STEP)) | {int(np.argmax(x)), int(np.argmin(x)), len(xs) - 1})
            row["at"] = at
        row["logsumexp"] = text(lse, digits)
        row["softmax"] = [text(sm[i], digits) for i in at]
        row["log_softmax"] = [text(ls[i], digits) for i in at]
        out.append(row)
    return out


def main():
    data = {"about": f"written by scripts/make_golden.py (mpmath {mpmath.__version__})",
            "float32": golden_rows(np.float32), "float64": golden_rows(np.float64)}
    # one row a line: the file reads and diffs row by row
    parts = [f' "about": {json.dumps(data["about"])}']
    for dt in ("float32", "float64"):
        rows_text = ",\n".join("  " + json.dumps(r, separators=(",", ":")) for r in data[dt])
        parts.append(f' "{dt}": [\n{rows_text}\n ]')
    doc = "{\n" + ",\n".join(parts) + "\n}\n"
    assert json.loads(doc) == data
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as fh:
        fh.write(doc)
    print(f"{OUT}: {len(data['float32']) + len(data['float64'])} rows, {len(doc.encode())} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())

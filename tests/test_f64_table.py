"""The float64 kernels x_rr2_t16_p7 and x_rr2_t8_p8 (AVX2) (issue 15), path by path: the fast path
(row minimum within 707 of the max), the careful path (clamp, subnormal and zero outputs), the shift
above |m| = 2^40, the max elements (unit as a double-double), long rows of several blocks and
columns, on every ISA.
Errors are against mpmath, exactly rounded, in ulp of the correctly rounded result (subnormal
results: in units of 2^-1074)."""
import mpmath as mp
import numpy as np
import pytest

import fastsoftmax
from fastsoftmax._reference import log_softmax as ref_log_softmax, softmax as ref_softmax, ulp_error

mp.mp.prec = 200
TINY = 2.0 ** -1074


def _exact_softmax(row):
    m = max(mp.mpf(float(v)) for v in row if np.isfinite(v))
    terms = [mp.exp(mp.mpf(float(v)) - m) if np.isfinite(v) else mp.mpf(0) for v in row]
    s = mp.fsum(terms)
    return [t / s for t in terms]


def _err_units(got, exact):
    """|got - exact| in ulp of the correctly rounded value (subnormal range: units of 2^-1074)."""
    r = float(exact)
    unit = max(np.spacing(abs(r)), TINY) if r != 0 else TINY
    return float(abs(mp.mpf(float(got)) - exact) / unit)


@pytest.mark.parametrize("row", [
    [0.0, -700.0, -708.0, -720.0, -730.0, -740.0, -744.0, -745.0, -745.2, -746.0, -800.0, -np.inf],
    [5.0, 5.0 - 709.5, 5.0 - 1e-9, 4.0, 5.0 - 745.13, 5.0 - 744.44],
    [-1e300, 0.0, -1e-300],
], ids=["below m", "clamp boundary", "huge gap"])
def test_subnormal_and_zero_outputs(isa, row):
    x = np.array(row)
    got = fastsoftmax.softmax(x)
    exact = _exact_softmax(x)
    for g, e in zip(got, exact):
        if e < mp.mpf(2) ** -1075.5:
            assert g == 0.0, (g, e)  # below half the smallest subnormal: exactly +0
        else:
            assert _err_units(g, e) <= 2.0, (g, e)


@pytest.mark.parametrize("m", [0.0, 3.0, -700.0, 2.0 ** 39, 2.0 ** 40, 2.0 ** 40 + 2.0 ** -12, 2.0 ** 41,
                               -2.0 ** 45, 1e300, -1e300, 1.7e308])
def test_shift_and_large_max(isa, m):
    rng = np.random.default_rng(int(abs(m)) % 1000)
    spacing = np.spacing(abs(m)) if m != 0 else 1.0
    x = m + np.concatenate([[0.0], -rng.integers(0, 200, 40) * max(spacing, 2.0 ** -20)])
    x = x[np.isfinite(x)]
    exact = _exact_softmax(x)
    got = fastsoftmax.softmax(x)
    assert max(_err_units(g, e) for g, e in zip(got, exact)) <= 2.0
    assert ulp_error(fastsoftmax.log_softmax(x[None]), ref_log_softmax(x[None])) <= 2.0


@pytest.mark.parametrize("k", [1, 2, 3, 7, 10, 31])
@pytest.mark.parametrize("extra", ["none", "-inf", "far"])
def test_equal_maxima_exact(isa, k, extra):
    """k equal maxima and nothing else: exactly 1/k, on the fast path (none) and the careful one."""
    for m in (0.0, 1.5, -300.0, 2.0 ** 41):
        x = [m] * k + ({"none": [], "-inf": [-np.inf] * 3, "far": [m - 2000.0]}[extra])
        got = fastsoftmax.softmax(np.array(x))
        assert np.all(got[:k] == 1.0 / k), (m, got)
        assert np.all(got[k:] == 0.0)
        assert fastsoftmax.log_softmax(np.array([m]))[0] == 0.0


def test_fast_careful_boundary(isa):
    """Rows whose minimum sits just inside / outside m - 707: both paths, <= 2 ulp."""
    rng = np.random.default_rng(7)
    rows = []
    for d in (706.999999, 707.0, 707.000001, 707.5, 708.5):
        r = rng.uniform(-5, 0, 200)
        r[0] = 0.0
        r[1] = -d
        rows.append(r + rng.uniform(-50, 50))
    x = np.array(rows)
    assert ulp_error(fastsoftmax.softmax(x, axis=-1), ref_softmax(x)) <= 2.0
    assert ulp_error(fastsoftmax.log_softmax(x, axis=-1), ref_log_softmax(x)) <= 2.0


@pytest.mark.parametrize("layout", ["rows", "long rows", "columns"])
def test_dominant_and_tails(isa, layout):
    rng = np.random.default_rng(11)
    if layout == "long rows":
        x = rng.standard_normal((3, 50_001)) * 3
        x[:, 40_000] = 60.0  # the max in the last block: the merge scales the first blocks by unit
        x[1] = x[1] * 100
    else:
        x = np.concatenate([rng.standard_normal((64, 37)) * 5, 35 + rng.standard_normal((64, 1))], axis=1)
    for f, ref in ((fastsoftmax.softmax, ref_softmax), (fastsoftmax.log_softmax, ref_log_softmax)):
        if layout == "columns":
            got = f(np.ascontiguousarray(x.T), axis=0).T
        else:
            got = f(x, axis=-1)
        assert ulp_error(got, ref(x)) <= 2.0, f.__name__


def test_threads_bitwise(isa):
    x = np.random.default_rng(5).standard_normal((4, 70_000)) * 20
    for f in (fastsoftmax.softmax, fastsoftmax.log_softmax, fastsoftmax.logsumexp):
        a = f(x, axis=-1, threads=1)
        np.testing.assert_array_equal(a, f(x, axis=-1, threads=2))
        np.testing.assert_array_equal(a[:1], f(x[:1], axis=-1, threads=2))


def test_tables_are_two_to_the_j_over_n():
    """The hi + lo tables in csrc/kernels/template.h (16 entries; AVX2's 8) are 2^(j/N) rounded: hi to
    double, lo the rest rounded, checked against mpmath."""
    import pathlib
    import re
    src = (pathlib.Path(__file__).resolve().parents[1] / "csrc" / "kernels" / "template.h").read_text()
    tables = re.findall(r"static const double f64_t_hi\[(\d+)\] = \{(.*?)\};\s*"
                        r"static const double f64_t_lo\[\d+\] = \{(.*?)\};", src, re.S)
    assert sorted(int(n) for n, _, _ in tables) == [8, 16]
    for n, hi_text, lo_text in tables:
        n = int(n)
        hi, lo = ([float.fromhex(v) for v in re.findall(r"-?0x[0-9a-f.]+p[-+]\d+", t)] for t in (hi_text, lo_text))
        assert len(hi) == len(lo) == n
        for j in range(n):
            v = mp.mpf(2) ** (mp.mpf(j) / n)
            assert hi[j] == float(v) and lo[j] == float(v - mp.mpf(hi[j])), (n, j)

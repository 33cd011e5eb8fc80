"""The float32 kernels' own cases (csrc/kernels/template.h, "x_rr2_p6_c2s"), on every ISA.

They reduce x itself rather than x - max, shift by the max only when |max| > 240, keep every
intermediate normal (stored exps carry 2^64), build subnormal outputs as integers on a careful path,
and give the max elements unit / sum exactly. Each test targets one of those mechanisms.
"""
import numpy as np
import pytest

import fastsoftmax
from fastsoftmax._reference import (log_softmax as ref_log_softmax, logsumexp as ref_logsumexp, logsumexp_scale,
                                  softmax as ref_softmax, ulp_error)

TINY = float(np.finfo(np.float32).tiny)          # 2^-126
UNIT = float(np.finfo(np.float32).smallest_subnormal)  # 2^-149


def _softmax_rows(x):
    return fastsoftmax.softmax(x, axis=-1).astype(np.float64)


def test_subnormal_outputs_within_two_units(isa):
    """Wide rows: a tenth of the outputs are subnormal (careful scale loop); each is within 2 units
    of 2^-149 of the exact value, the normal ones within 2 ulp, and nothing is flushed."""
    rng = np.random.default_rng(80)
    x = rng.uniform(-80, 80, (64, 1000)).astype(np.float32)
    y, ref = _softmax_rows(x), ref_softmax(x)
    sub = (ref < TINY) & (ref >= UNIT)
    assert sub.sum() > 1000
    assert np.max(np.abs(y[sub] - ref[sub])) <= 2 * UNIT
    assert np.all(y[sub] > 0)
    assert ulp_error(y.astype(np.float32), ref) <= 2.0


def test_exact_zeros_below_the_range(isa):
    """Outputs that round to zero are +0: inputs 104 below the max and far beyond, and -inf."""
    x = np.array([[0.0, -104.5, -120.0, -121.0, -1e30, -np.inf, -3.0] * 3], np.float32)
    y = fastsoftmax.softmax(x, axis=-1)
    zero = ref_softmax(x) < UNIT / 2
    assert np.all(y[zero] == 0) and not np.any(np.signbit(y))
    np.testing.assert_array_equal(fastsoftmax.softmax(x.T.copy(), axis=0).T, y)  # column kernels agree


@pytest.mark.parametrize("center", [240.5, -241.0, 1000.0, -3e4, 1e6])
def test_rows_with_a_large_max_are_shifted_exactly(isa, center):
    """|max| > 240 reduces x - max (exact for every x that is not clamped): still within 2 ulp."""
    rng = np.random.default_rng(int(abs(center)))
    x = (center + rng.standard_normal((16, 700)) * 10).astype(np.float32)
    assert ulp_error(fastsoftmax.softmax(x, axis=-1), ref_softmax(x)) <= 2.0
    assert ulp_error(fastsoftmax.log_softmax(x, axis=-1), ref_log_softmax(x)) <= 2.0
    lse, rl = fastsoftmax.logsumexp(x, axis=-1), ref_logsumexp(x)
    assert ulp_error(lse, rl, logsumexp_scale(x, rl)) <= 2.0


def test_max_elements_are_exact(isa):
    """The max elements' outputs are unit / sum rounded once: exact 1, 1/2, 1/k where they should be."""
    assert fastsoftmax.softmax(np.float32(3.7)) == 1
    np.testing.assert_array_equal(fastsoftmax.softmax(np.array([0.3, -np.inf], np.float32)), [1, 0])
    np.testing.assert_array_equal(fastsoftmax.softmax(np.full(37, 5.1, np.float32)), np.float32(1 / 37))
    x = np.array([[7.25, 7.25, -200.0]] * 5, np.float32)
    np.testing.assert_array_equal(fastsoftmax.softmax(x, axis=-1), [[0.5, 0.5, 0.0]] * 5)
    np.testing.assert_array_equal(fastsoftmax.softmax(x.T.copy(), axis=0).T, [[0.5, 0.5, 0.0]] * 5)


@pytest.mark.parametrize("n", [3, 40, 41, 1000, 1003])
@pytest.mark.parametrize("top", [0.0, -0.0])
def test_max_elements_that_are_zeros_of_both_signs(isa, n, top):
    """A max of +0 or -0 with zeros of both signs: the AVX2 exp pass counts the max elements by
    their bits, which tell -0 from +0; for a zero max the count does not enter the sum (the max's exp
    is exact), so k zeros still give exactly 1/k, and the log ops count by value: -log(k)."""
    x = np.full((4, n), -200.0, np.float32)
    k = 0
    for j in range(0, n, 3):
        x[:, j] = -0.0 if (j // 3) % 2 else 0.0
        k += 1
    x[:, 0] = top
    y = fastsoftmax.softmax(x, axis=-1)
    np.testing.assert_array_equal(y[:, ::3], np.float32(1 / k))
    assert np.all(y[:, 1::3] == 0)
    np.testing.assert_array_equal(fastsoftmax.log_softmax(x, axis=-1)[:, ::3], np.float32(-np.log(k)))
    np.testing.assert_array_equal(fastsoftmax.logsumexp(x, axis=-1), np.float32(np.log(k)))


def test_dominant_logit_does_not_scale_the_row(isa):
    """One logit far above the rest: the others' outputs stay within 2 ulp (the stored exp of the
    max is rounded; the sum uses its unrounded value)."""
    rng = np.random.default_rng(40)
    x = rng.standard_normal((2000, 7)).astype(np.float32)
    x[:, 3] += 30
    assert ulp_error(fastsoftmax.softmax(x, axis=-1), ref_softmax(x)) <= 2.0
    assert ulp_error(fastsoftmax.log_softmax(x, axis=-1), ref_log_softmax(x)) <= 1.0


def test_long_row_with_a_far_block(isa):
    """A row of two blocks whose second block is ~100 below the first: that block's factor is tiny,
    its products take the careful loop; subnormal and zero outputs as in one block."""
    x = np.zeros(20000, np.float32)
    x[16384:] = np.linspace(-80, -110, 20000 - 16384, dtype=np.float32)
    y, ref = fastsoftmax.softmax(x).astype(np.float64), ref_softmax(x)
    assert ulp_error(y.astype(np.float32), ref) <= 2.0
    sub = ref < TINY
    assert np.max(np.abs(y[sub] - ref[sub])) <= 2 * UNIT


def test_floating_point_state_is_left_alone(isa):
    """No flush-to-zero or denormals-are-zero left behind (the kernels never touch MXCSR)."""
    x = np.random.default_rng(1).uniform(-80, 80, (8, 4096)).astype(np.float32)
    fastsoftmax.softmax(x, axis=-1)
    fastsoftmax.log_softmax(x, axis=0)
    assert np.float32(1e-38) * np.float32(1e-3) != 0           # a subnormal result is produced
    assert np.float32(1e-40) * np.float32(1) == np.float32(1e-40)  # a subnormal operand is read


@pytest.mark.parametrize("n", [1, 3, 17, 21])
@pytest.mark.parametrize("special", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("wide", [False, True])
def test_column_sweep_matches_the_general_passes(isa, n, special, wide):
    """The one-sweep column softmax (col_softmax_f32) against the general column passes, bit for bit:
    a vector of columns with a non-finite max takes the general passes, so inserting such a column in
    front moves the next columns of the vector from one path to the other. The data has columns that
    need the careful scale (uniform(-80, 80): subnormal outputs), normal*3 columns and ties."""
    rng = np.random.default_rng(n)
    x = (rng.standard_normal((n, 48)) * 3).astype(np.float32)
    if wide:
        x[:, ::5] = rng.uniform(-80, 80, (n, 10)).astype(np.float32)
    x[:, 7] = 5.0  # ties: exactly 1/n
    fused = fastsoftmax.softmax(x, axis=0)
    col = np.full((n, 1), -np.inf if special == -np.inf else 0.0, np.float32)
    col[0, 0] = special
    x2 = np.concatenate([col, x], axis=1)
    general = fastsoftmax.softmax(x2, axis=0)
    assert general[:, 1:].tobytes() == fused.tobytes()
    assert np.all(np.isnan(general[:, 0]))
    assert np.all(fused[:, 7] == np.float32(1.0 / n))
    assert ((fused > 0) & (fused < np.finfo(np.float32).tiny)).any() or n < 3 or not wide

"""Issue 3's accuracy table, for every ISA: <= 2 ulp against a high-precision reference.

ulp are those of the correctly rounded result (logsumexp: of max(|result|, |row max|)), over
outputs in the normal range; float32 is checked against float64, float64 against long double.
"""
import numpy as np
import pytest

import fastsoftmax
from fastsoftmax._reference import (ULP_BOUND as MAX_ULP, log_softmax as ref_log_softmax, logsumexp as ref_logsumexp,
                                  logsumexp_scale, softmax as ref_softmax, ulp_error)


def _cases():
    rng = np.random.default_rng(2026)
    yield "normal*3 (256,1000)", rng.standard_normal((256, 1000)) * 3, None
    yield "uniform(-80,80) (64,4096)", rng.uniform(-80, 80, (64, 4096)), rng.uniform(-700, 700, (64, 4096))
    yield "normal*5 rows of 128256", rng.standard_normal((3, 128256)) * 5, None
    top = np.concatenate([rng.standard_normal((512, 999)), 40 + rng.standard_normal((512, 1))], axis=1)
    yield "one logit 40 above (512,1000)", top, None
    yield "7 classes, wide", rng.uniform(-60, 60, (20000, 7)), rng.uniform(-600, 600, (20000, 7))
    yield "2 classes", rng.standard_normal((20000, 2)) * 10, None
    yield "ties and -inf", np.where(rng.random((300, 64)) < 0.3, -np.inf, np.round(rng.standard_normal((300, 64)))), None


CASES = list(_cases())


def check_all(x, axis=-1):
    """Max ulp error of softmax, log_softmax and logsumexp on rows along `axis`."""
    rows = np.moveaxis(x, axis, -1)
    errs = {
        "softmax": ulp_error(np.moveaxis(fastsoftmax.softmax(x, axis=axis), axis, -1), ref_softmax(rows)),
        "log_softmax": ulp_error(np.moveaxis(fastsoftmax.log_softmax(x, axis=axis), axis, -1), ref_log_softmax(rows)),
    }
    rl = ref_logsumexp(rows)
    errs["logsumexp"] = ulp_error(fastsoftmax.logsumexp(x, axis=axis), rl, logsumexp_scale(rows, rl))
    return errs


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_accuracy_table(isa, case, dtype):
    name, x32, x64 = case
    x = (x64 if (dtype == np.float64 and x64 is not None) else x32).astype(dtype)
    errs = check_all(x)
    assert max(errs.values()) <= MAX_ULP, errs
    # the same data reduced over a non-last axis (column kernels)
    if x.shape[0] <= 4096:
        errs = check_all(np.ascontiguousarray(x[:64].T), axis=0)
        assert max(errs.values()) <= MAX_ULP, errs


@pytest.mark.parametrize("n", [128256, 2 ** 24])
def test_row_sums_float32(isa, n):
    x = (np.random.default_rng(n).standard_normal((1, n)) * 5).astype(np.float32)
    s = fastsoftmax.softmax(x, axis=-1).astype(np.float64).sum(axis=-1)
    assert np.max(np.abs(s - 1)) <= 3e-7


SIZES = list(range(1, 18)) + [31, 32, 33, 63, 64, 65, 97, 1000, 4097, 16384, 16385, 40000]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_row_lengths_around_the_vector_width(isa, dtype):
    rng = np.random.default_rng(7)
    for n in SIZES:
        x = (rng.standard_normal((3, n)) * 8).astype(dtype)
        errs = check_all(x)
        assert max(errs.values()) <= MAX_ULP, (n, errs)
        # column layout: n rows, 19 columns (a vector body and a portable tail)
        xc = (rng.standard_normal((n, 19)) * 8).astype(dtype)
        errs = check_all(xc, axis=0)
        assert max(errs.values()) <= MAX_ULP, (n, errs)


def test_subnormal_outputs_are_produced(isa):
    x = np.array([0.0, -95.0, -200.0], np.float32)  # exp(-95) ~ 5.5e-42 is subnormal in float32
    y = fastsoftmax.softmax(x)
    assert 0 < y[1] < np.finfo(np.float32).tiny and y[2] == 0
    np.testing.assert_allclose(y[1], np.exp(-95.0), rtol=1e-3)
    x64 = np.array([0.0, -720.0, -800.0])
    y64 = fastsoftmax.softmax(x64)
    assert 0 < y64[1] < np.finfo(np.float64).tiny and y64[2] == 0

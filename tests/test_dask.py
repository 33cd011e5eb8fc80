"""fastsoftmax.dask on a real dask.distributed LocalCluster (2 worker processes, 1 thread each).

Every result is compared with fastsoftmax on the computed NumPy array: same shape and dtype, NaN
and infinities at the same places with the same signs, finite values within a few ulp.
"""
import numpy as np
import pytest

pytest.importorskip("dask")
pytest.importorskip("distributed")

import dask  # noqa: E402
import dask.array as da  # noqa: E402
from distributed import Client, LocalCluster  # noqa: E402

import fastsoftmax  # noqa: E402
import fastsoftmax.dask as fsd  # noqa: E402

NP_FUNCS = {"softmax": fastsoftmax.softmax, "log_softmax": fastsoftmax.log_softmax,
            "logsumexp": fastsoftmax.logsumexp}
DASK_FUNCS = {"softmax": fsd.softmax, "log_softmax": fsd.log_softmax, "logsumexp": fsd.logsumexp}
# Allowed distance to fastsoftmax on the whole array, in ulp of the result (of max(|lse|, |max|)
# for logsumexp). The kernels are within about 1 ulp of the exact result; the chunked path adds
# the merge of the partials and one rounding.
ULPS = {("softmax", "float32"): 5, ("softmax", "float64"): 8,
        ("log_softmax", "float32"): 3, ("log_softmax", "float64"): 4,
        ("logsumexp", "float32"): 2, ("logsumexp", "float64"): 4}
inf, nan = np.inf, np.nan


@pytest.fixture(scope="module", autouse=True)
def client():
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None, silence_logs=40) as cluster, Client(cluster) as c:
        yield c


def compute(*arrays):
    assert all(isinstance(a, da.Array) for a in arrays)
    return dask.compute(*arrays)


def assert_matches(got, exp, ulps, scale=None):
    got, exp = np.asarray(got), np.asarray(exp)
    assert got.dtype == exp.dtype
    assert got.shape == exp.shape
    np.testing.assert_array_equal(np.isnan(got), np.isnan(exp), err_msg="NaN positions differ")
    np.testing.assert_array_equal(got[np.isinf(exp)], exp[np.isinf(exp)], err_msg="infinities differ")
    fin = np.isfinite(exp)
    assert np.all(np.isfinite(got[fin])), "finite expected values came out non-finite"
    if not np.any(fin):
        return
    mag = np.abs(exp[fin]) if scale is None else np.maximum(np.abs(exp[fin]), np.abs(scale[fin]))
    info = np.finfo(exp.dtype)
    with np.errstate(over="ignore"):   # the spacing of the largest float is inf: any error fits
        unit = np.spacing(np.clip(mag, info.tiny, info.max).astype(exp.dtype)).astype(np.float64)
    err = np.abs(got[fin].astype(np.float64) - exp[fin].astype(np.float64)) / unit
    assert err.max() <= ulps, f"max error {err.max():.2f} ulp > {ulps}"


def lse_scale(x, axis, keepdims=False):
    """|max| of each slice, logsumexp's error scale (NaN-free)."""
    with np.errstate(all="ignore"):
        a = np.atleast_1d(x).astype(np.float64)
        m = np.max(np.where(np.isnan(a), 0, a), axis=axis, keepdims=keepdims, initial=-np.inf)
    return np.where(np.isfinite(m), np.abs(m), 0)


def expected(op, x, axis, **kw):
    """fastsoftmax on the whole NumPy array.

    Reduced axes with a kept axis between them, e.g. (0, 2) of a 3-d array, are not one band in
    memory; the Dask functions give the kernels such blocks with the reduced axes moved last, so
    the comparison is with fastsoftmax on the array laid out the same way (independent of how
    fastsoftmax treats other layouts: builds before 94b1fbe took their NumPy fallback).
    """
    fn = NP_FUNCS[op]
    x = np.asarray(x)
    if isinstance(axis, tuple) and x.ndim > 1:
        axes = sorted(a % x.ndim for a in axis)
        if axes[-1] - axes[0] != len(axes) - 1:
            perm = [i for i in range(x.ndim) if i not in axes] + axes
            moved = np.ascontiguousarray(x.transpose(perm))
            last = tuple(range(x.ndim - len(axes), x.ndim))
            res = fn(moved, axis=last, **kw)
            if op != "logsumexp" or kw.get("keepdims"):
                back = np.argsort(perm)
                res = tuple(r.transpose(back) for r in res) if isinstance(res, tuple) else res.transpose(back)
            return res
    return fn(x, axis=axis, **kw)


def check(op, x_np, x_da, axis, dtype_name=None, **kw):
    """Compute op lazily on x_da, compare with fastsoftmax on x_np."""
    exp = expected(op, x_np, axis, **kw)
    res = DASK_FUNCS[op](x_da, axis=axis, **kw)
    ulps = ULPS[(op, dtype_name or np.asarray(exp).dtype.name)]
    return res, exp, ulps


def run_checks(cases):
    """cases: list of (op, x_np, axis, kwargs, dask result, expected, ulps); one compute for all."""
    got = compute(*[c[4] for c in cases])
    for (op, x_np, axis, kw, _, exp, ulps), g in zip(cases, got):
        scale = lse_scale(x_np, axis, kw.get("keepdims", False)) if op == "logsumexp" else None
        try:
            assert_matches(g, exp, ulps, scale)
        except AssertionError as e:
            raise AssertionError(f"{op} axis={axis} {kw}: {e}") from None


def make_cases(op, x_np, x_da, axes, **kw):
    cases = []
    for axis in axes:
        res, exp, ulps = check(op, x_np, x_da, axis, **kw)
        cases.append((op, x_np, axis, kw, res, exp, ulps))
    return cases


# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("op", ["softmax", "log_softmax", "logsumexp"])
def test_axes_within_and_across_chunks(op, dtype):
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((4, 30, 4)) * 4).astype(dtype)
    xd = da.from_array(x, chunks=(2, 11, 4))     # axis 2 lies in one chunk, 0 and 1 span several
    axes = [-1, -2, 0, (0, 1), (1, 2), (2, 0), None]
    run_checks(make_cases(op, x, xd, axes))


@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
def test_result_is_lazy_same_chunks_no_rechunk(op):
    x = np.random.default_rng(2).standard_normal((6, 50))
    xd = da.from_array(x, chunks=(3, 10))
    y = DASK_FUNCS[op](xd, axis=1)
    assert isinstance(y, da.Array)
    assert y.chunks == xd.chunks and y.dtype == x.dtype
    layers = list(y.__dask_graph__().layers)
    assert not any("rechunk" in name for name in layers)
    assert any("partials" in name for name in layers)      # the tree reduction of the partials
    # A reduced axis in one chunk: the kernel on each block, nothing more.
    xd1 = da.from_array(x, chunks=(6, 10))
    y1 = DASK_FUNCS[op](xd1, axis=0)
    assert len(y1.__dask_graph__().layers) == 2 and y1.chunks == xd1.chunks
    g, g1 = compute(y, y1)
    assert_matches(g, NP_FUNCS[op](x, axis=1), 6)
    assert_matches(g1, NP_FUNCS[op](x, axis=0), 1)


def test_single_chunk_logsumexp_is_blockwise():
    x = np.random.default_rng(3).standard_normal((6, 50))
    xd = da.from_array(x, chunks=(2, 50))
    r = fsd.logsumexp(xd, axis=1)
    assert not any("partials" in n or "aggregate" in n for n in r.__dask_graph__().layers)
    assert r.chunks == ((2, 2, 2),)
    cases = make_cases("logsumexp", x, xd, [1, -1])
    cases += make_cases("logsumexp", x, xd, [1], keepdims=True)
    cases += make_cases("logsumexp", x, xd, [1], return_sign=True)
    got = compute(*[c[4][0] if isinstance(c[4], tuple) else c[4] for c in cases])
    for c, g in zip(cases, got):
        exp = c[5][0] if isinstance(c[5], tuple) else c[5]
        assert_matches(g, exp, 2, lse_scale(x, c[2], c[3].get("keepdims", False)))


def special_rows(dtype):
    """Rows of 12 split in chunks of 4 (3 chunks per row), each a special-value scenario."""
    rng = np.random.default_rng(4)
    base = rng.standard_normal((16, 12)) * 3
    rows = base.copy()
    rows[1, 9] = nan                        # NaN in the last chunk
    rows[2, 5] = inf                        # +inf in the middle chunk
    rows[3, 1], rows[3, 10] = inf, -inf     # +inf and -inf in different chunks
    rows[4, 0:4] = -inf                     # a whole chunk of -inf, the rest finite
    rows[5, :] = -inf                       # everything -inf
    rows[6, 0:8] = -inf                     # two chunks of -inf, one finite
    rows[7, 2], rows[7, 11] = inf, nan      # +inf and NaN
    rows[8, 0:4], rows[8, 6] = -inf, inf    # a -inf chunk and +inf
    rows[9, 3], rows[9, 5], rows[9, 8] = 7.0, 7.0, 7.0    # ties for the max in three chunks
    rows[10, :] = -40.0
    rows[10, 9] = 0.0                       # one dominant element: log_softmax there is -exp(-40)
    rows[11, 4:8] = np.finfo(dtype).max     # huge values: logsumexp overflows to +inf
    rows[12, 2], rows[12, 7] = inf, inf     # +inf twice
    rows[13, 0:4], rows[13, 4] = -inf, nan  # a -inf chunk and NaN
    rows[14, :] = 5.0                       # all equal
    rows[15, 0:4] = -inf
    rows[15, 4:8] = -1000.0                 # a -inf chunk, a far-below chunk and a normal one
    return rows.astype(dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("op", ["softmax", "log_softmax", "logsumexp"])
def test_special_values(op, dtype):
    x = special_rows(dtype)
    cases = []
    # Slices along rows (axis 1) and, transposed, along columns (axis 0); also one slice per
    # block pair with axis=None on sub-arrays holding each scenario.
    cases += make_cases(op, x, da.from_array(x, chunks=(8, 4)), [1])
    xt = np.ascontiguousarray(x.T)
    cases += make_cases(op, xt, da.from_array(xt, chunks=(4, 8)), [0])
    # Each scenario as a (3, 4) slice reduced over both axes, split across chunks in both.
    x3 = x.reshape(16, 3, 4)
    cases += make_cases(op, x3, da.from_array(x3, chunks=(8, 2, 2)), [(1, 2)])
    for i in (3, 5, 10):
        row = x[i:i + 1]
        cases += make_cases(op, row, da.from_array(row, chunks=(1, 4)), [None])
    if op == "logsumexp":
        cases += make_cases(op, x, da.from_array(x, chunks=(8, 4)), [1], keepdims=True)
    run_checks(cases)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_logsumexp_return_sign_special(dtype):
    x = special_rows(dtype)
    xd = da.from_array(x, chunks=(8, 4))
    res, sgn = fsd.logsumexp(xd, axis=1, return_sign=True)
    eres, esgn = fastsoftmax.logsumexp(x, axis=1, return_sign=True)
    gres, gsgn = compute(res, sgn)
    assert_matches(gres, eres, ULPS[("logsumexp", dtype)], lse_scale(x, 1))
    np.testing.assert_array_equal(gsgn, esgn)
    assert gsgn.dtype == esgn.dtype


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dominant_element_keeps_relative_precision(dtype):
    x = np.full((2, 40), -40.0, dtype=dtype)
    x[0, 33] = 0.0
    x[1, 2] = 1000.0
    x[1, 3:] = 960.0
    xd = da.from_array(x, chunks=(1, 8))
    y = compute(fsd.log_softmax(xd, axis=1))[0]
    exp = fastsoftmax.log_softmax(x, axis=1)
    assert y[0, 33] != 0 and y[1, 2] != 0
    assert_matches(y, exp, 2)
    l = compute(fsd.logsumexp(xd - x.max(axis=1, keepdims=True), axis=1))[0]
    assert_matches(l, fastsoftmax.logsumexp(x - x.max(axis=1, keepdims=True), axis=1), 2)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_accuracy_on_larger_slices(dtype):
    """Float32 stays within a few ulp of fastsoftmax on the whole array (float64 too)."""
    rng = np.random.default_rng(5)
    x = (rng.standard_normal((6, 6000)) * 3).astype(dtype)
    xd = da.from_array(x, chunks=(3, 700))
    cases = []
    for op in ("softmax", "log_softmax", "logsumexp"):
        cases += make_cases(op, x, xd, [1, None])
    run_checks(cases)


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("return_sign", [False, True])
def test_logsumexp_keepdims_return_sign(keepdims, return_sign):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((4, 9, 10)) * 3
    xd = da.from_array(x, chunks=(2, 4, 5))
    kw = dict(keepdims=keepdims, return_sign=return_sign)
    outs, exps, axes = [], [], [0, 1, 2, (0, 2), (1, 2), None]
    for axis in axes:
        r = fsd.logsumexp(xd, axis=axis, **kw)
        e = expected("logsumexp", x, axis, **kw)
        outs += list(r) if return_sign else [r]
        exps += list(e) if return_sign else [e]
    got = compute(*outs)
    step = 2 if return_sign else 1
    for i, axis in enumerate(axes):
        assert_matches(got[i * step], np.asarray(exps[i * step]), 4, lse_scale(x, axis, keepdims))
        if return_sign:
            np.testing.assert_array_equal(got[i * step + 1], exps[i * step + 1])


def weighted_cases():
    rng = np.random.default_rng(7)
    a = rng.standard_normal((6, 12)) * 3
    b = rng.uniform(0.1, 2.0, (6, 12))
    a[0, 5], b[0, 5] = inf, 0.0            # a zero weight removes +inf
    a[1, 7], b[1, 7] = nan, 0.0            # ... and NaN
    b[2, :] = -b[2, :]                     # negative sum: NaN, or sign -1 with return_sign
    a[3, 1], a[3, 9] = 2.0, 2.0
    b[3, 1], b[3, 9] = 1.0, -1.0           # the maxima cancel: k = 0
    a[4, 0:4] = -inf                       # a -inf chunk
    b[5, 4:8] = 0.0                        # a chunk of zero weights
    return a, b


@pytest.mark.parametrize("return_sign", [False, True])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_logsumexp_weights(dtype, return_sign):
    a, b = weighted_cases()
    a, b = a.astype(dtype), b.astype(dtype)
    ad, bd = da.from_array(a, chunks=(3, 4)), da.from_array(b, chunks=(2, 6))   # b chunked differently
    variants = [(ad, bd, a, b, 1), (ad, bd, a, b, None), (ad, bd, a, b, (0, 1)), (ad, bd, a, b, 0),
                (ad, b[0], a, b[0], 1),          # b broadcast along rows, given as NumPy
                (ad, 0.5, a, 0.5, 1),            # scalar weight
                (a[0], bd, a[0], b, 1)]          # a broadcast against b
    outs, exps = [], []
    for ax_, bx_, an, bn, axis in variants:
        r = fsd.logsumexp(ax_, axis=axis, b=bx_, return_sign=return_sign)
        e = fastsoftmax.logsumexp(an, axis=axis, b=bn, return_sign=return_sign)
        outs.append(r)
        exps.append((e, an, bn, axis))
    flat = [o for r in outs for o in (r if return_sign else (r,))]
    got = iter(compute(*flat))
    for e, an, bn, axis in exps:
        e_res = e[0] if return_sign else e
        g_res = next(got)
        scale = lse_scale(np.broadcast_arrays(an, bn)[0], axis)
        assert_matches(g_res, np.asarray(e_res), 8, scale)
        if return_sign:
            np.testing.assert_array_equal(next(got), e[1])


def test_integer_and_boolean_inputs():
    x = np.arange(24).reshape(4, 6) % 7
    xd = da.from_array(x, chunks=(2, 4))
    cases = make_cases("softmax", x, xd, [1, None]) + make_cases("log_softmax", x, xd, [0])
    cases += make_cases("logsumexp", x, xd, [1])
    xb = x > 3
    cases += make_cases("logsumexp", xb, da.from_array(xb, chunks=(2, 4)), [1, None])
    run_checks(cases)
    assert fsd.softmax(xd, axis=1).dtype == np.float64
    with pytest.raises(TypeError):
        fsd.softmax(da.from_array(xb, chunks=2), axis=1)
    with pytest.raises(TypeError):
        fsd.log_softmax(da.from_array(np.array(["a", "b"]), chunks=1))


def test_empty_reductions_and_empty_blocks():
    with pytest.raises(ValueError, match="zero-size"):
        fsd.softmax(da.zeros((3, 0), chunks=2), axis=1)
    with pytest.raises(ValueError, match="zero-size"):
        fsd.log_softmax(da.zeros((0,)), axis=None)
    x = np.random.default_rng(8).standard_normal((4, 10))
    # Blocks of size 0 along the reduced axis and along the kept axis.
    xd = da.from_array(x, chunks=((2, 0, 2), (3, 0, 4, 0, 3)))
    cases = []
    for op in ("softmax", "log_softmax", "logsumexp"):
        cases += make_cases(op, x, xd, [1, 0, None])
    # A kept axis of length 0 with a reduced axis across chunks: an empty result.
    e = np.zeros((0, 10))
    ed = da.from_array(e, chunks=(1, 4))
    for op in ("softmax", "log_softmax", "logsumexp"):
        cases += make_cases(op, e, ed, [1])
    # logsumexp of nothing: -inf (sign -1), as NumPy.
    z = np.zeros((3, 0))
    cases += make_cases("logsumexp", z, da.from_array(z, chunks=2), [1, None])
    run_checks(cases)
    r, s = fsd.logsumexp(da.zeros((3, 0), chunks=2), axis=1, return_sign=True)
    er, es = fastsoftmax.logsumexp(np.zeros((3, 0)), axis=1, return_sign=True)
    gr, gs = compute(r, s)
    np.testing.assert_array_equal(gr, er)
    np.testing.assert_array_equal(gs, es)


def test_other_dtypes_and_inputs():
    rng = np.random.default_rng(9)
    x16 = (rng.standard_normal((4, 12)) * 2).astype(np.float16)
    xd16 = da.from_array(x16, chunks=(2, 5))
    x0 = np.float64(3.0)
    outs = [fsd.softmax(xd16, axis=1), fsd.log_softmax(xd16, axis=1), fsd.logsumexp(xd16, axis=1),
            fsd.logsumexp(da.from_array(x0)), fsd.softmax(da.from_array(x0)),
            fsd.softmax(x16.astype(np.float64), axis=1)]          # a NumPy array is wrapped
    got = compute(*outs)
    for g, e in zip(got[:3], [fastsoftmax.softmax(x16, axis=1), fastsoftmax.log_softmax(x16, axis=1),
                              fastsoftmax.logsumexp(x16, axis=1)]):
        assert g.dtype == np.float16
        np.testing.assert_allclose(g.astype(np.float64), e.astype(np.float64), rtol=4e-3, atol=1e-4)
    assert got[3] == fastsoftmax.logsumexp(x0) and got[4] == 1.0
    assert_matches(got[5], fastsoftmax.softmax(x16.astype(np.float64), axis=1), 6)
    xc = x16.astype(np.complex128)
    with pytest.raises(NotImplementedError):
        fsd.softmax(da.from_array(xc, chunks=(2, 5)), axis=1)
    yc = compute(fsd.softmax(da.from_array(xc, chunks=(2, 12)), axis=1))[0]   # one chunk: fine
    np.testing.assert_allclose(yc, fastsoftmax.softmax(xc, axis=1), rtol=1e-14)
    with pytest.raises(ValueError):
        fsd.softmax(xd16, axis=1, threads=0)
    with pytest.raises(np.exceptions.AxisError if hasattr(np, "exceptions") else Exception):
        fsd.softmax(xd16, axis=2)
    with pytest.raises(ValueError):
        fsd.logsumexp(xd16, axis=(1, 1))


def test_split_every_and_threads():
    x = np.random.default_rng(10).standard_normal((3, 64))
    xd = da.from_array(x, chunks=(3, 4))          # 16 chunks along the reduced axis
    cases = []
    for split in (2, 16):
        for op in ("softmax", "log_softmax", "logsumexp"):
            r = DASK_FUNCS[op](xd, axis=1, split_every=split, threads=2)
            cases.append((op, x, 1, {}, r, NP_FUNCS[op](x, axis=1), ULPS[(op, "float64")]))
    run_checks(cases)


def test_documented_example_runs():
    """The example of the documentation's Dask page (docs/dask.md) runs."""
    import pathlib
    import re
    root = pathlib.Path(__file__).resolve().parent.parent
    for name in ("docs/dask.md",):
        path = root / name
        if path.exists():
            blocks = re.findall(r"```python\n(# fastsoftmax\.dask example\n.*?)```", path.read_text(), re.S)
            if blocks:
                break
    else:
        pytest.skip("no source tree with the documented example")
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # e.g. "Port 8787 is already in use" for the dashboard
        exec(compile(blocks[0], "fastsoftmax.dask example", "exec"), {"__name__": "__main__"})

"""The planning step (fastsoftmax._plan): the route, layout and checks every caller shares."""
import re
from pathlib import Path

import numpy as np
import pytest
from numpy.exceptions import AxisError

import fastsoftmax
from fastsoftmax import _core, _plan


@pytest.mark.parametrize("make,axis,route,layout", [
    (lambda: np.zeros((4, 5), np.float32), -1, "direct", (4, 5, 1)),
    (lambda: np.zeros((4, 5), np.float64), 0, "direct", (1, 4, 5)),
    (lambda: np.zeros((2, 3, 4)), (1, 2), "direct", (2, 12, 1)),
    (lambda: np.zeros((2, 3, 4)), None, "direct", (1, 24, 1)),
    (lambda: np.zeros((2, 3, 4)), (0, 2), "copy", None),                 # a kept axis between
    (lambda: np.zeros((4, 6))[:, ::2], -1, "copy", None),                # strided
    (lambda: np.zeros((4, 6))[:, ::-1], -1, "copy", None),               # reversed
    (lambda: np.zeros((4, 5), ">f8"), -1, "copy", None),                 # byte-swapped
    (lambda: np.asfortranarray(np.zeros((4, 5))), 0, "direct", (5, 4, 1)),
    (lambda: np.arange(6).reshape(2, 3), -1, "direct", (2, 3, 1)),      # integers as float64
    (lambda: np.zeros((4, 5), np.float16), -1, "direct", (4, 5, 1)),             # widened in the kernel
    (lambda: np.zeros((4, 5), ">f2"), -1, "copy", None),
    (lambda: np.zeros((4, 5), np.complex64), -1, "fallback", None),
    (lambda: np.zeros((4, 5), np.longdouble), -1, "fallback", None),
    (lambda: np.array(1.0), None, "fallback", None),                      # 0-d
    (lambda: np.zeros((0, 3)), -1, "fallback", None),                     # empty
])
def test_routes_and_layouts(make, axis, route, layout):
    p = _plan.plan("softmax", make(), axis)
    assert p.route_name == route, p
    if layout is not None:
        assert p.layout == layout, p


def test_copy_route_order_puts_the_reduced_axes_last():
    x = np.zeros((2, 3, 4, 5))
    p = _plan.plan("log_softmax", x, (0, 2))
    assert p.route_name == "copy" and p.order == (1, 3, 0, 2)
    c = p.band_copy()
    assert c.shape == (3, 5, 2, 4) and c.flags.c_contiguous
    assert _plan.plan("log_softmax", c, (2, 3)).route_name == "direct"


def test_logsumexp_plan_takes_booleans_and_defers_weights():
    assert _plan.plan("logsumexp", np.ones(4, bool)).route_name == "direct"
    assert _plan.plan("softmax", np.ones(4, bool)).route_name == "fallback"
    assert _plan.plan("logsumexp", np.ones(4), b=np.ones(4)).route_name == "fallback"
    x = np.random.default_rng(1).standard_normal((3, 4, 5)).transpose(2, 0, 1)
    p = _plan.plan("logsumexp", x, 1)
    assert p.route_name == "direct" and p.kept_order == (2, 0)   # kept axes in memory order
    from fastsoftmax import _fallback
    np.testing.assert_allclose(fastsoftmax.logsumexp(x, 1), _fallback.logsumexp(x, 1), rtol=1e-15)


def test_plan_raises_what_the_call_raises():
    x = np.zeros((2, 3), np.float32)
    for axis, exc in [(2, AxisError), (-3, AxisError), ((0, 0), ValueError), (1.0, TypeError), (True, TypeError)]:
        with pytest.raises(exc):
            _plan.plan("softmax", x, axis)
        with pytest.raises(exc):
            fastsoftmax.softmax(x, axis)
    with pytest.raises(ValueError):
        _plan.plan("sigmoid", x)


def test_out_decides_whether_the_kernel_writes_it():
    x = np.random.default_rng(0).standard_normal((4, 6))
    assert _plan.plan("softmax", x, -1, out=np.empty_like(x)).out_direct
    assert _plan.plan("softmax", x, -1, out=x).out_direct                      # in place
    f_out = np.empty_like(x, order="F")
    assert not _plan.plan("softmax", x, -1, out=f_out).out_direct
    assert np.array_equal(fastsoftmax.softmax(x, -1, out=f_out), fastsoftmax.softmax(x, -1))
    with pytest.raises(ValueError, match="partially overlaps"):
        _plan.plan("softmax", x[:, :3], -1, out=x[:, 1:4])
    with pytest.raises(TypeError, match="out has dtype"):
        _plan.plan("softmax", x, -1, out=np.empty_like(x, np.float32))


@pytest.mark.parametrize("threads,want", [(None, -1), (1, 1), (3, 3), (2**70, 1 << 16), (np.int64(2), 2)])
def test_check_threads(threads, want):
    assert _plan.check_threads(threads) == want


@pytest.mark.parametrize("threads", [0, -1, True, 2.0, "2"])
def test_check_threads_rejects(threads):
    with pytest.raises(ValueError, match="threads must be None or a positive integer"):
        _plan.check_threads(threads)


def test_isa_list_is_kernels_inc():
    """The Python side reads the ISA list from the extension, which compiles it from kernels.inc."""
    inc = Path(__file__).resolve().parents[1] / "csrc" / "kernels.inc"
    if not inc.is_file():
        pytest.skip("the C sources are not next to the tests (installed package)")
    names = tuple(re.findall(r"^FSM_ISA\((\w+),", inc.read_text(), flags=re.M))
    assert names and _core.ISAS == names
    for name in _core.compiled_isas():
        f32, f64 = _core.kernel_lanes(name)
        assert f32 == 2 * f64 or f32 == f64 == 1
    with pytest.raises(ValueError):
        _core.kernel_lanes("sse9")


def test_is_bfloat16():
    assert not _plan.is_bfloat16(np.dtype(np.float16)) and not _plan.is_bfloat16(np.float32)
    assert not _plan.is_bfloat16("bfloat16") and not _plan.is_bfloat16(None)
    try:
        import ml_dtypes
    except Exception as exc:  # not installed, or built for another NumPy (it then raises SystemError)
        pytest.skip(f"bfloat16 comes from ml_dtypes, which does not load here: {exc!r}"[:200])
    assert _plan.is_bfloat16(np.dtype(ml_dtypes.bfloat16))
    assert _plan.plan("softmax", np.zeros((2, 3), ml_dtypes.bfloat16), -1).route_name == "direct"
    # user-defined types are classified once and remembered by type number: asked again, in any
    # order, each keeps its answer (another registered two-byte type is not bfloat16)
    others = [np.dtype(ml_dtypes.float8_e4m3fn), np.dtype(ml_dtypes.int4), np.dtype(ml_dtypes.float8_e5m2)]
    for _ in range(3):
        for dt in others:
            assert not _plan.is_bfloat16(dt)
        assert _plan.is_bfloat16(np.dtype(ml_dtypes.bfloat16))
        assert not _plan.is_bfloat16(np.dtype(np.float16))

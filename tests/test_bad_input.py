"""Every invalid argument gives a clear Python exception that says what was expected.

The table below is the one in docs/errors.md ("Invalid arguments"). Each row is run for every function it applies to
and on both routes: float32 C-contiguous data (the C kernel's wrapper) and longdouble data (the NumPy
fallback), so the two paths must agree. A call that raises must leave the input and ``out``
untouched. The bugs these tests found are regression tests at the end of the file.
"""
import gc

import numpy as np
import pytest

import fastsoftmax
from fastsoftmax import log_softmax, logsumexp, softmax

AxisError = np.exceptions.AxisError if hasattr(np, "exceptions") else np.AxisError

ELEMENTWISE = ("softmax", "log_softmax")
ALL = ELEMENTWISE + ("logsumexp",)
ROUTES = {"kernel": np.float32, "fallback": np.longdouble}  # float16 takes the kernel too


def base(dtype):
    return np.arange(6, dtype=dtype).reshape(2, 3) / 4


class Case:
    def __init__(self, name, ops, kwargs, exc, match, x=None):
        self.name, self.ops, self.kwargs, self.exc, self.match, self.x = name, ops, kwargs, exc, match, x


def _view_of_shifted_buffer(x):
    buf = np.zeros(x.size + 3, x.dtype)
    return buf[3:].reshape(x.shape)


CASES = [
    # axis
    Case("axis out of range", ALL, lambda x: {"axis": 2}, AxisError,
         r"axis 2 is out of bounds for array of dimension 2"),
    Case("negative axis out of range", ALL, lambda x: {"axis": -3}, AxisError,
         r"axis -3 is out of bounds for array of dimension 2"),
    Case("axis tuple with an axis out of range", ALL, lambda x: {"axis": (0, 2)}, AxisError,
         r"axis 2 is out of bounds for array of dimension 2"),
    Case("duplicate axes", ALL, lambda x: {"axis": (0, 0)}, ValueError, r"duplicate value in 'axis'"),
    Case("duplicate axes, one negative", ALL, lambda x: {"axis": (1, -1)}, ValueError,
         r"duplicate value in 'axis'"),
    Case("axis a float", ALL, lambda x: {"axis": 1.0}, TypeError,
         r"'float' object cannot be interpreted as an integer"),
    Case("axis a string", ALL, lambda x: {"axis": "1"}, TypeError,
         r"'str' object cannot be interpreted as an integer"),
    Case("axis a list", ALL, lambda x: {"axis": [0, 1]}, TypeError,
         r"'list' object cannot be interpreted as an integer"),
    Case("axis a bool", ALL, lambda x: {"axis": True}, TypeError,
         r"axis must be None, an int or a tuple of ints, got True"),
    Case("axis a bool in a tuple", ALL, lambda x: {"axis": (0, np.True_)}, TypeError,
         r"axis must be None, an int or a tuple of ints, got (np\.)?True_?"),
    Case("axis beyond the C long range", ALL, lambda x: {"axis": 2**70}, AxisError,
         r"axis 1180591620717411303424 is out of bounds for array of dimension 2"),
    Case("axis out of range on an empty array", ALL, lambda x: {"axis": 5}, AxisError,
         r"axis 5 is out of bounds for array of dimension 2", x=lambda dt: np.zeros((0, 3), dt)),
    Case("duplicate axes on an empty array", ALL, lambda x: {"axis": (0, 0)}, ValueError,
         r"duplicate value in 'axis'", x=lambda dt: np.zeros((0, 3), dt)),
    Case("axis 1 on a 0-d input", ALL, lambda x: {"axis": 1}, AxisError,
         r"axis 1 is out of bounds for array of dimension (0|1)", x=lambda dt: np.array(1.5, dt)),
    # threads
    Case("threads=0", ALL, lambda x: {"threads": 0}, ValueError,
         r"threads must be None or a positive integer, got 0"),
    Case("threads=-1", ALL, lambda x: {"threads": -1}, ValueError,
         r"threads must be None or a positive integer, got -1"),
    Case("threads a string", ALL, lambda x: {"threads": "2"}, ValueError,
         r"threads must be None or a positive integer, got '2'"),
    Case("threads a float", ALL, lambda x: {"threads": 2.5}, ValueError,
         r"threads must be None or a positive integer, got 2.5"),
    Case("threads an integral float", ALL, lambda x: {"threads": 2.0}, ValueError,
         r"threads must be None or a positive integer, got 2.0"),
    Case("threads a bool", ALL, lambda x: {"threads": True}, ValueError,
         r"threads must be None or a positive integer, got True"),
    Case("threads a list", ALL, lambda x: {"threads": [2]}, ValueError,
         r"threads must be None or a positive integer, got \[2\]"),
    # out
    Case("out of the wrong shape", ELEMENTWISE, lambda x: {"out": np.empty((3, 2), x.dtype)}, ValueError,
         r"out has shape \(3, 2\), expected \(2, 3\)"),
    Case("out with an extra axis", ELEMENTWISE, lambda x: {"out": np.empty((2, 3, 1), x.dtype)}, ValueError,
         r"out has shape \(2, 3, 1\), expected \(2, 3\)"),
    Case("out of the wrong dtype", ELEMENTWISE, lambda x: {"out": np.empty((2, 3), np.int16)}, TypeError,
         r"out has dtype int16, expected (float32|float64|float96|float128|longdouble)$"),
    Case("out an integer array for integer input", ELEMENTWISE, lambda x: {"out": np.empty((2, 3), np.int64)},
         TypeError, r"out has dtype int64, expected float64", x=lambda: np.arange(6).reshape(2, 3)),
    Case("out read-only", ELEMENTWISE, lambda x: {"out": np.zeros((2, 3), x.dtype)}, ValueError,
         r"out is read-only"),  # made read-only in the test
    Case("out partially overlapping the input", ELEMENTWISE, None, ValueError,
         r"out partially overlaps the input: pass the input itself \(in place\) or a separate array"),
    Case("out the input reversed", ELEMENTWISE, lambda x: {"out": x[::-1]}, ValueError,
         r"out partially overlaps the input"),
    Case("out a list", ELEMENTWISE, lambda x: {"out": [[0.0] * 3] * 2}, TypeError,
         r"out must be a numpy.ndarray, got list"),
    Case("out a memoryview", ELEMENTWISE, lambda x: {"out": memoryview(np.zeros((2, 3), x.dtype))}, TypeError,
         r"out must be a numpy.ndarray, got memoryview"),
    Case("out= given to logsumexp", ("logsumexp",), lambda x: {"out": np.empty(())}, TypeError,
         r"unexpected keyword argument 'out'"),
    # b (logsumexp)
    Case("b of a shape that does not broadcast", ("logsumexp",), lambda x: {"b": np.ones(4)}, ValueError,
         r"shape mismatch: objects cannot be broadcast to a single shape"),
    Case("b an object array", ("logsumexp",), lambda x: {"b": np.ones((2, 3), object)}, TypeError,
         r"logsumexp: b must be a real or complex numeric array, got dtype object"),
    Case("b a string", ("logsumexp",), lambda x: {"b": "1"}, TypeError,
         r"logsumexp: b must be a real or complex numeric array, got dtype <U"),
    Case("b ragged", ("logsumexp",), lambda x: {"b": [[1.0, 2.0], [3.0]]}, ValueError,
         r"inhomogeneous shape"),
    # the input
    Case("an object array", ALL, lambda x: {}, TypeError,
         r"expects a real or complex numeric array, got dtype object",
         x=lambda: np.array([1.0, 2.0], dtype=object)),
    Case("a string", ALL, lambda x: {}, TypeError, r"expects a real or complex numeric array, got dtype <U3",
         x=lambda: "abc"),
    Case("bytes", ALL, lambda x: {}, TypeError, r"expects a real or complex numeric array, got dtype \|S3",
         x=lambda: b"abc"),
    Case("a string array", ALL, lambda x: {}, TypeError,
         r"expects a real or complex numeric array, got dtype <U1", x=lambda: np.array(["1", "2"])),
    Case("None", ALL, lambda x: {}, TypeError, r"expects a real or complex numeric array, got dtype object",
         x=lambda: None),
    Case("a ragged list", ALL, lambda x: {}, ValueError, r"inhomogeneous shape",
         x=lambda: [[1.0, 2.0], [3.0]]),
    Case("a dict", ALL, lambda x: {}, TypeError, r"got dtype object", x=lambda: {"a": 1.0}),
    Case("an arbitrary object", ALL, lambda x: {}, TypeError, r"got dtype object", x=lambda: object()),
    Case("a generator", ALL, lambda x: {}, TypeError, r"got dtype object", x=lambda: (v for v in (1.0, 2.0))),
    Case("datetime64", ALL, lambda x: {}, TypeError, r"got dtype datetime64",
         x=lambda: np.array(["2020-01-01"], "M8[D]")),
    Case("timedelta64", ALL, lambda x: {}, TypeError, r"got dtype timedelta64", x=lambda: np.array([1, 2], "m8[s]")),
    Case("booleans (softmax)", ELEMENTWISE, lambda x: {}, TypeError,
         r"does not accept boolean arrays \(as scipy.special\); convert to a float dtype first",
         x=lambda: np.array([True, False])),
    Case("an object with an __array__ that returns no array", ALL, lambda x: {}, ValueError,
         r"object __array__ method not producing an array", x=lambda: _ArrayReturnsInt()),
    Case("an object with an __array__ that raises", ALL, lambda x: {}, RuntimeError, r"broken __array__",
         x=lambda: _ArrayRaises()),
    Case("an empty reduction (softmax)", ELEMENTWISE, lambda x: {"axis": 1}, ValueError,
         r"zero-size array to reduction operation maximum which has no identity",
         x=lambda dt: np.zeros((3, 0), dt)),
]


class _ArrayReturnsInt:
    def __array__(self, dtype=None, copy=None):
        return 5


class _ArrayRaises:
    def __array__(self, dtype=None, copy=None):
        raise RuntimeError("broken __array__")


def _params():
    for case in CASES:
        for op in case.ops:
            routes = ROUTES if case.x is None or case.x.__code__.co_argcount else {"any": None}
            for route in routes:
                yield pytest.param(case, op, route, id=f"{op}-{route}-{case.name.replace(' ', '_')}")


@pytest.mark.parametrize("case,op,route", list(_params()))
def test_bad_argument(case, op, route):
    dt = ROUTES.get(route, np.float32)
    if case.x is None:
        x = base(dt)
    else:
        x = case.x(dt) if case.x.__code__.co_argcount else case.x()
    if case.kwargs is None:   # partial overlap: input and out are shifted views of one buffer
        buf = np.arange(9, dtype=dt)
        x, kwargs = buf[:6].reshape(2, 3), {"out": buf[3:].reshape(2, 3)}
    else:
        kwargs = case.kwargs(x) if isinstance(x, np.ndarray) else case.kwargs(base(dt))
    if case.name == "out read-only":
        kwargs["out"].flags.writeable = False
    x_before = x.copy() if isinstance(x, np.ndarray) else None
    out = kwargs.get("out")
    out_before = out.copy() if isinstance(out, np.ndarray) else None
    with pytest.raises(case.exc, match=case.match) as info:
        getattr(fastsoftmax, op)(x, **kwargs)
    assert type(info.value) is case.exc or case.exc is ValueError and isinstance(info.value, ValueError)
    if x_before is not None:
        assert x_before.tobytes() == x.tobytes(), "the input was modified by a call that raised"
    if out_before is not None:
        assert out_before.tobytes() == out.tobytes(), "out was written by a call that raised"


def test_table_is_documented():
    """docs/errors.md lists every row of the table (by name)."""
    from pathlib import Path
    page = Path(__file__).resolve().parents[1] / "docs" / "errors.md"
    if not page.exists():
        pytest.skip(f"no {page} (tests run without the documentation beside them)")
    doc = page.read_text(encoding="utf-8").replace("`", "")
    missing = [c.name for c in CASES if c.name not in doc]
    assert not missing, f"docs/errors.md does not list: {missing}"


def test_accepted_odd_inputs():
    """Not errors: lists, scalars, memoryviews, integer/boolean (logsumexp) input, axis=(), numpy ints."""
    assert softmax([1.0, 1.0]).tolist() == [0.5, 0.5]
    assert float(softmax(3)) == 1.0
    assert softmax(memoryview(np.ones(2))).tolist() == [0.5, 0.5]
    assert float(logsumexp([True, False])) == pytest.approx(np.log(1 + np.e))
    assert float(logsumexp([])) == -np.inf
    x = base(np.float32)
    assert np.array_equal(softmax(x, axis=np.int64(1)), softmax(x, axis=1))
    assert np.array_equal(softmax(x, axis=()), np.ones_like(x))
    assert np.array_equal(softmax(x, threads=np.int64(2)), softmax(x))
    y = softmax(x, out=np.empty((2, 3), np.float32, order="F"))
    assert np.allclose(y, softmax(x))


def test_errors_leave_no_reference_behind():
    """A failed call drops its references to the arguments (no leak on the error path)."""
    import sys
    x = base(np.float32)
    out = np.zeros((3, 2), np.float32)
    before = sys.getrefcount(x), sys.getrefcount(out)
    for _ in range(100):
        with pytest.raises(ValueError):
            softmax(x, out=out)
        with pytest.raises(AxisError):
            log_softmax(x, axis=5)
    gc.collect()
    assert (sys.getrefcount(x), sys.getrefcount(out)) == before


# ---------------------------------------------------------------------------------------------
# Found by the fuzzer and fixed: a 0-d input validates its axis like a 1-d one.


@pytest.mark.parametrize("axis", [2**70, (2**63,), -2**70])
@pytest.mark.parametrize("op", ELEMENTWISE)
@pytest.mark.parametrize("route", ROUTES)
def test_huge_axis_on_a_0d_input_is_an_axis_error(op, axis, route):
    with pytest.raises(AxisError):
        getattr(fastsoftmax, op)(np.array(1.5, ROUTES[route]), axis=axis)


# ---------------------------------------------------------------------------------------------
# Found by these tests and the fuzzer, fixed: regression tests


@pytest.mark.parametrize("threads", [2**31, 2**63, 2**70, np.uint64(2**63)])
@pytest.mark.parametrize("op", ALL)
@pytest.mark.parametrize("route", ROUTES)
def test_huge_threads_is_a_cap(op, threads, route):
    """Was OverflowError('value too large to convert to int') on the kernel route only."""
    x = base(ROUTES[route])
    f = getattr(fastsoftmax, op)
    assert np.array_equal(f(x, threads=threads), f(x))


@pytest.mark.parametrize("op", ELEMENTWISE)
def test_byteswapped_input_takes_a_native_out(op):
    """Was TypeError('out has dtype float32, expected >f4') though the result is native float32."""
    x = base(np.float32).astype(">f4")
    f = getattr(fastsoftmax, op)
    assert f(x).dtype == np.float32
    out = np.empty((2, 3), np.float32)
    assert f(x, out=out) is out
    assert np.array_equal(out, f(base(np.float32)))
    with pytest.raises(TypeError, match=r"out has dtype >f4, expected float32"):
        f(x, out=np.empty((2, 3), ">f4"))


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("kwargs,exc", [({"axis": 5}, AxisError), ({"axis": -5}, AxisError),
                                        ({"axis": (0, 0), "keepdims": True}, ValueError),
                                        ({"axis": (1, -1)}, ValueError)])
def test_logsumexp_empty_input_checks_axis(kwargs, exc, route):
    """Was IndexError / no error at all on the fallback route (zero-size input)."""
    with pytest.raises(exc):
        logsumexp(np.zeros((0, 3), ROUTES[route]), **kwargs)

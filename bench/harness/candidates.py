"""The things being compared: fastsoftmax, the alternatives, and two physical references.

Every candidate offers two kinds of callables for an (op, x, axis, threads):

* ``timed(...)``: the fastest fair form, writing into a caller-provided ``out`` where the
  library has an ``out=``-style API (fastsoftmax, torch, onnxruntime via IOBinding, the
  references); the others allocate their result as they always do.
* ``fresh(...)``: returns a newly allocated result (used by the memory and accuracy sections).

A callable is ``None`` when the candidate does not support that op/dtype.
"""
import importlib
import os

import numpy as np

OPS = ("softmax", "log_softmax", "logsumexp")


class Candidate:
    name = "?"
    label = "?"
    kind = "library"          # "library" or "reference"
    numpy_allocations = True  # are its allocations visible to tracemalloc?
    multithreaded = False     # does a thread count change what it does?

    def __init__(self):
        self.ok, self.note = True, ""
        self.version = ""

    def set_threads(self, threads):
        """Pin this library's own thread pool before a measurement (threadpoolctl does the rest)."""

    def timed(self, op, x, axis, out, out_red, threads):
        raise NotImplementedError

    def fresh(self, op, x, axis, threads):
        raise NotImplementedError


def _import(name):
    try:
        return importlib.import_module(name), ""
    except Exception as exc:  # ImportError, or a broken install
        return None, f"{name} not importable ({type(exc).__name__}: {str(exc)[:80]})"


class FastSoftmax(Candidate):
    name, label = "fastsoftmax", "fastsoftmax"
    multithreaded = True

    def __init__(self):
        super().__init__()
        import fastsoftmax
        self.fs = fastsoftmax
        self.version = fastsoftmax.__version__

    def timed(self, op, x, axis, out, out_red, threads):
        fs = self.fs
        if op == "softmax":
            return lambda: fs.softmax(x, axis, out=out, threads=threads)
        if op == "log_softmax":
            return lambda: fs.log_softmax(x, axis, out=out, threads=threads)
        return lambda: fs.logsumexp(x, axis, threads=threads)

    def fresh(self, op, x, axis, threads):
        f = getattr(self.fs, op)
        return lambda: f(x, axis, threads=threads)


class NumpyExpr(Candidate):
    """The expression people write by hand: e = np.exp(x - m); e / e.sum(...)."""
    name, label = "numpy", "NumPy expr"

    def __init__(self):
        super().__init__()
        self.version = np.__version__

    @staticmethod
    def _fn(op, x, axis):
        if op == "softmax":
            def f():
                e = np.exp(x - x.max(axis=axis, keepdims=True))
                return e / e.sum(axis=axis, keepdims=True)
        elif op == "log_softmax":
            def f():
                s = x - x.max(axis=axis, keepdims=True)
                return s - np.log(np.exp(s).sum(axis=axis, keepdims=True))
        else:
            def f():
                m = x.max(axis=axis, keepdims=True)
                return np.log(np.exp(x - m).sum(axis=axis)) + np.squeeze(m, axis=axis)
        return f

    def timed(self, op, x, axis, out, out_red, threads):
        return self._fn(op, x, axis)

    def fresh(self, op, x, axis, threads):
        return self._fn(op, x, axis)


class Scipy(Candidate):
    name, label = "scipy", "scipy.special"

    def __init__(self):
        super().__init__()
        sp, self.note = _import("scipy.special")
        self.ok = sp is not None
        if self.ok:
            import scipy
            self.sp, self.version = sp, scipy.__version__

    def timed(self, op, x, axis, out, out_red, threads):
        f = getattr(self.sp, op)
        return lambda: f(x, axis=axis)

    fresh = lambda self, op, x, axis, threads: self.timed(op, x, axis, None, None, threads)  # noqa: E731


class Torch(Candidate):
    name, label = "torch", "torch"
    numpy_allocations = False
    multithreaded = True

    def __init__(self):
        super().__init__()
        torch, self.note = _import("torch")
        self.ok = torch is not None
        if self.ok:
            self.torch, self.version = torch, torch.__version__

    def set_threads(self, threads):
        self.torch.set_num_threads(threads)

    def timed(self, op, x, axis, out, out_red, threads):
        t = self.torch
        tx = t.from_numpy(x)
        if op == "softmax":
            to = t.from_numpy(out)
            return lambda: t.softmax(tx, axis, out=to)
        if op == "log_softmax":
            to = t.from_numpy(out)
            return lambda: t.log_softmax(tx, axis, out=to)
        tr = t.from_numpy(out_red)
        return lambda: t.logsumexp(tx, axis, out=tr)

    def fresh(self, op, x, axis, threads):
        t = self.torch
        tx = t.from_numpy(x)
        f = {"softmax": t.softmax, "log_softmax": t.log_softmax, "logsumexp": t.logsumexp}[op]
        return lambda: f(tx, axis).numpy()


class OnnxRuntime(Candidate):
    """A one-node model (Softmax / LogSoftmax / ReduceLogSumExp, opset 13) built in memory."""
    name, label = "onnxruntime", "onnxruntime"
    numpy_allocations = False
    multithreaded = True
    _NODE = {"softmax": "Softmax", "log_softmax": "LogSoftmax", "logsumexp": "ReduceLogSumExp"}

    def __init__(self):
        super().__init__()
        ort, note1 = _import("onnxruntime")
        onnx, note2 = _import("onnx")
        self.ok = ort is not None and onnx is not None
        self.note = "; ".join(n for n in (note1, note2) if n)
        if self.ok:
            self.ort, self.onnx = ort, onnx
            self.version = ort.__version__
            ort.set_default_logger_severity(3)
        self._sessions = {}
        self.unsupported = []

    def _model(self, op, dtype, ndim, axis):
        from onnx import TensorProto, helper
        elem = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.float64): TensorProto.DOUBLE}[np.dtype(dtype)]
        dims = [f"d{i}" for i in range(ndim)]
        if op == "logsumexp":
            node = helper.make_node("ReduceLogSumExp", ["x"], ["y"], axes=[axis], keepdims=0)
            out_dims = [d for i, d in enumerate(dims) if i != axis]
        else:
            node = helper.make_node(self._NODE[op], ["x"], ["y"], axis=axis)
            out_dims = dims
        graph = helper.make_graph([node], f"one_{op}",
                                  [helper.make_tensor_value_info("x", elem, dims)],
                                  [helper.make_tensor_value_info("y", elem, out_dims)])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
        model.ir_version = 8  # old enough for any onnxruntime that knows opset 13
        return model.SerializeToString()

    def session(self, op, dtype, ndim, axis, threads):
        key = (op, np.dtype(dtype).str, ndim, axis, threads)
        if key not in self._sessions:
            so = self.ort.SessionOptions()
            so.intra_op_num_threads = threads
            so.inter_op_num_threads = 1
            so.execution_mode = self.ort.ExecutionMode.ORT_SEQUENTIAL
            so.log_severity_level = 3
            try:
                sess = self.ort.InferenceSession(self._model(op, dtype, ndim, axis % ndim), so,
                                                 providers=["CPUExecutionProvider"])
            except Exception as exc:  # e.g. a dtype without a CPU kernel
                sess = None
                self.unsupported.append(f"{op} {np.dtype(dtype)}: {str(exc)[:160]}")
            self._sessions[key] = sess
        return self._sessions[key]

    def timed(self, op, x, axis, out, out_red, threads):
        sess = self.session(op, x.dtype, x.ndim, axis, threads)
        if sess is None:
            return None
        y = out_red if op == "logsumexp" else out
        io = sess.io_binding()
        io.bind_input("x", "cpu", 0, x.dtype, list(x.shape), x.ctypes.data)
        io.bind_output("y", "cpu", 0, y.dtype, list(y.shape), y.ctypes.data)
        run = sess.run_with_iobinding

        def f():
            run(io)
            return y
        return f

    def fresh(self, op, x, axis, threads):
        sess = self.session(op, x.dtype, x.ndim, axis, threads)
        if sess is None:
            return None
        return lambda: sess.run(None, {"x": x})[0]


class CopyRef(Candidate):
    """np.copyto(out, x): one read and one write of the array, the floor for softmax."""
    name, label, kind = "copyto", "np.copyto (ref)", "reference"

    def __init__(self):
        super().__init__()
        self.version = np.__version__

    def timed(self, op, x, axis, out, out_red, threads):
        return lambda: np.copyto(out, x)

    def fresh(self, op, x, axis, threads):
        return lambda: x.copy()


class ExpRef(Candidate):
    """np.exp(x, out=out): a single exp pass, what a naive 1-pass kernel would cost."""
    name, label, kind = "exp", "np.exp(out=) (ref)", "reference"

    def __init__(self):
        super().__init__()
        self.version = np.__version__

    def timed(self, op, x, axis, out, out_red, threads):
        return lambda: np.exp(x, out=out)

    def fresh(self, op, x, axis, threads):
        return lambda: np.exp(x)


ALL = (FastSoftmax, NumpyExpr, Scipy, Torch, OnnxRuntime, CopyRef, ExpRef)
NAMES = tuple(c.name for c in ALL)


def load(names=None):
    """Instantiate the requested candidates; returns (available list, {name: why skipped})."""
    names = NAMES if names is None else names
    avail, skipped = [], {}
    for cls in ALL:
        if cls.name not in names:
            continue
        c = cls()
        if c.ok:
            avail.append(c)
        else:
            skipped[c.name] = c.note
    return avail, skipped


class ThreadLimits:
    """threadpoolctl limits for every OpenMP/BLAS pool in the process, if threadpoolctl is there."""

    def __init__(self, threads):
        self.threads, self._ctx = threads, None

    def __enter__(self):
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:
            return self
        self._ctx = threadpool_limits(limits=self.threads)
        return self

    def __exit__(self, *exc):
        if self._ctx is not None:
            self._ctx.restore_original_limits()
        return False


def threadpoolctl_note():
    try:
        import threadpoolctl
        return f"threadpoolctl {threadpoolctl.__version__}"
    except ImportError:
        return "threadpoolctl not installed: only fastsoftmax threads=, torch.set_num_threads and ORT options pin threads"


def all_threads():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1

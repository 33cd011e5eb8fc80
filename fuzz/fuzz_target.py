#!/usr/bin/env python3
"""Coverage-guided fuzz target for fastsoftmax (atheris / libFuzzer).

Every input is a byte string that this file decodes into one call: the function (softmax,
log_softmax, logsumexp), the ISA, the dtype, the shape (0-4 dims, zero-size included, sometimes one
long axis to reach the block and column-chunk paths), the values (raw bit patterns, a grid of small
numbers, special values, huge offsets), the memory layout (transposes, steps, negative steps,
Fortran order, byte swapping, read-only, unaligned, stride-0 broadcasts), the axis (valid or not),
out= (fresh, strided, in place, wrong shape/dtype, read-only, overlapping, not an array), threads
(valid or not) and, for logsumexp, b / keepdims / return_sign. ``oracle.check_call`` then compares
fastsoftmax with the NumPy fallback (see oracle.py). A failure is:

* a crash (signal, sanitizer report), or a hang past libFuzzer's -timeout;
* an exception that is not one of the documented ones (TypeError, ValueError incl. AxisError,
  MemoryError);
* any mismatch the oracle reports (different exception class, accuracy beyond 2 ulp on the kernel
  path, a different answer from the fallback elsewhere, the input modified, out written on error).

Run (see fuzz/README.md):  python fuzz/fuzz_target.py [libFuzzer flags] CORPUS_DIR [SEED_DIRS...]
Replay without atheris:    python fuzz/fuzz_target.py --replay fuzz/corpus
"""
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

try:
    import atheris
except ImportError:  # replay mode and the pytest corpus replay do not need it
    atheris = None

if atheris is not None and __name__ == "__main__" and "--replay" not in sys.argv:
    with atheris.instrument_imports(include=["fastsoftmax", "oracle"]):
        import fastsoftmax
        from fastsoftmax import _fallback  # noqa: F401  (instrumented too)
        import oracle
else:
    import fastsoftmax
    import oracle

class Reader:
    """Decodes the fuzzer's bytes; reads past the end give zeros, so every input is valid."""

    def __init__(self, data):
        self.data = bytes(data)
        self.pos = 0

    def byte(self):
        if self.pos >= len(self.data):
            return 0
        b = self.data[self.pos]
        self.pos += 1
        return b

    def take(self, n):
        chunk = self.data[self.pos:self.pos + n]
        self.pos += len(chunk)
        return chunk + bytes(n - len(chunk))

    def int_in(self, lo, hi):
        span = hi - lo + 1
        v = self.byte() if span <= 256 else self.byte() | (self.byte() << 8) | (self.byte() << 16)
        return lo + v % span

    def pick(self, seq):
        return seq[self.int_in(0, len(seq) - 1)]

    def flag(self, one_in=2):
        return self.byte() % one_in == 0

    def rest(self):
        return self.data[self.pos:]


SPECIALS = [0.0, -0.0, 1.0, -1.0, 2.0, 0.5, np.inf, -np.inf, np.nan, 88.72, -87.3, -103.9, 104.0,
            709.78, -745.13, -708.4, 1e-30, -1e-30, 1e30, -1e30, 3.4028235e38, -3.4028235e38,
            1.7976931348623157e308, -1.7976931348623157e308, 1.4e-45, 1.1754944e-38, 5e-324,
            2.2250738585072014e-308, 16.0, -16.0, 40.0, 1e-8]

DTYPES = ["<f4", "<f8", "<f4", "<f8", "<f4", "<f8", ">f4", ">f8", "<f2", "g", "<i4", "<i8", "|i1",
          "|u1", "<u8", "|b1", "<c8", "<c16", "O", "<U3"]

SIZES = [0, 1, 1, 2, 2, 3, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 33]
LONG = [255, 256, 257, 263, 520, 4099, 16383, 16384, 16385, 20011, 40000]


def make_values(r, n):
    """n float64 values chosen by the bytes (the caller casts them to the dtype)."""
    mode = r.int_in(0, 4)
    src = r.rest() or b"\0"
    with np.errstate(all="ignore"):
        return _values(r, n, mode, src)


def _values(r, n, mode, src):
    if mode == 0:  # raw float64 bit patterns (NaN payloads, subnormals, extremes)
        raw = (src * (8 * n // len(src) + 1))[:8 * n]
        vals = np.frombuffer(raw, dtype="<f8").copy()
    elif mode == 1:  # raw float32 bit patterns
        raw = (src * (4 * n // len(src) + 1))[:4 * n]
        vals = np.frombuffer(raw, dtype="<f4").astype(np.float64)
    elif mode == 2:  # small grid: typical logits
        b = np.frombuffer((src * (n // len(src) + 1))[:n], dtype=np.uint8)
        vals = (b.astype(np.float64) - 128.0) / 8.0
    elif mode == 3:  # special values
        b = np.frombuffer((src * (n // len(src) + 1))[:n], dtype=np.uint8)
        vals = np.array(SPECIALS)[b % len(SPECIALS)]
    else:  # a large common offset plus a small grid: cancellation in x - max
        off = r.pick([1e4, -1e4, 1e7, 3e38, -3e38, 1e300, -1e300, 1e-300])
        b = np.frombuffer((src * (n // len(src) + 1))[:n], dtype=np.uint8)
        vals = off + (b.astype(np.float64) - 128.0) * abs(off) * 2.0**-20
    r.pos += min(len(src), 16)
    return vals


def cast(vals, dtype):
    dt = np.dtype(dtype)
    with np.errstate(all="ignore"):
        if dt.kind in "iu":
            info = np.iinfo(dt)
            v = np.nan_to_num(vals, nan=0.0, posinf=info.max, neginf=info.min)
            return np.clip(v, info.min, info.max).astype(dt)
        if dt.kind == "b":
            return (vals > 0)
        if dt.kind == "c":
            return (vals + 1j * vals.ravel()[::-1].reshape(vals.shape)).astype(dt)
        if dt.kind == "O":
            return np.array([float(v) for v in vals.ravel()], dtype=object).reshape(vals.shape)
        if dt.kind == "U":
            return vals.astype("<U3")
        return vals.astype(dt)


def make_array(r):
    dtype = r.pick(DTYPES)
    ndim = r.pick([0, 1, 1, 2, 2, 2, 3, 3, 4])
    shape = [r.pick(SIZES) for _ in range(ndim)]
    if ndim and r.flag(6):
        shape[r.int_in(0, ndim - 1)] = r.pick(LONG)
        if int(np.prod([max(s, 1) for s in shape])) > 80000:  # zero-size too: tolist() would be huge
            shape = [s if s in LONG else min(s, 2) for s in shape]
    shape = tuple(shape)
    n = int(np.prod(shape)) if shape else 1
    vals = cast(make_values(r, n).reshape(shape), dtype)

    # Layout: build storage in another order / with gaps and view it back as `shape`.
    perm = list(range(ndim))
    if ndim > 1 and r.flag(3):
        for i in range(ndim - 1, 0, -1):
            j = r.int_in(0, i)
            perm[i], perm[j] = perm[j], perm[i]
    steps = [r.pick([1, 1, 1, 2, 3, -1, -2]) if ndim and r.flag(3) else 1 for _ in range(ndim)]
    order = "F" if r.flag(4) else "C"
    unaligned = r.flag(8) and dtype not in ("O", "|b1", "|i1", "|u1", "<U3")
    pshape = [shape[p] * abs(steps[p]) for p in perm]
    itemsize = np.dtype(dtype).itemsize
    nbytes = int(np.prod(pshape)) * itemsize if pshape else itemsize
    if unaligned:
        buf = np.zeros(nbytes + 1, dtype=np.uint8)[1:]
        base = buf.view(dtype).reshape(pshape) if order == "C" or ndim < 2 else \
            buf.view(dtype).reshape(pshape[::-1]).T
    else:
        base = np.zeros(pshape, dtype=dtype, order=order)
    view = base.transpose(np.argsort(perm)) if ndim > 1 else base
    if ndim:
        view = view[tuple(slice(None, None, s) for s in steps)]
    view[...] = vals
    x = view
    if ndim and r.flag(10):  # stride-0 axis: a broadcast view (read-only)
        k = r.int_in(0, ndim - 1)
        x = np.broadcast_to(np.take(x, [0], axis=k) if shape[k] else x, shape)
    if r.flag(6) and x.flags.writeable:
        x.flags.writeable = False
    kind = r.int_in(0, 15)
    if kind == 0 and dtype not in ("O",):
        return x.tolist()  # a nested list
    if kind == 1 and ndim == 0:
        return x[()]  # a NumPy scalar
    return x


def make_axis(r, ndim):
    k = r.int_in(0, 9)
    if k <= 2:
        return None
    if k <= 5:
        return r.int_in(-ndim - 1, ndim)
    if k <= 8:
        return tuple(r.int_in(-ndim - 1, ndim) for _ in range(r.int_in(0, ndim + 1)))
    return r.pick([1.0, "0", [0], True, np.int64(ndim - 1), (0, np.int32(-1)), 2**70, (2**63,)])


def make_out(r, x, op):
    if op == "logsumexp" or r.flag(2):
        return None
    a = x if isinstance(x, np.ndarray) else np.asarray(x)
    rdt = np.dtype(np.float64) if a.dtype.kind in "iub" else a.dtype.newbyteorder("=")
    kind = r.int_in(0, 9)
    if kind == 0:
        return np.empty(a.shape, rdt)
    if kind == 1:
        return np.empty(a.shape, rdt, order="F")
    if kind == 2:  # a strided view into a bigger buffer
        big = np.full(tuple(2 * s for s in a.shape), 7, dtype=rdt)
        return big[tuple(slice(None, None, 2) for _ in a.shape)]
    if kind == 3 and isinstance(x, np.ndarray):
        return x  # in place
    if kind == 4:
        return np.empty(a.shape + (1,), rdt)  # wrong shape
    if kind == 5:
        return np.empty(a.shape, np.float16 if rdt != np.float16 else np.float32)  # wrong dtype
    if kind == 6:
        o = np.zeros(a.shape, rdt)
        o.flags.writeable = False
        return o
    if kind == 7 and isinstance(x, np.ndarray) and x.ndim and x.shape[0] > 1:
        return x[::-1]  # overlaps the input, not the same elements
    if kind == 8:
        return a.tolist()
    if kind == 9 and rdt.itemsize > 1 and not rdt.hasobject:  # unaligned
        flat = np.zeros(a.size * np.dtype(rdt).itemsize + 1, np.uint8)[1:].view(rdt)
        return flat.reshape(a.shape)
    return None


def make_call(r):
    op = r.pick(oracle.OPS)
    isa = r.pick(fastsoftmax.available_isas())
    x = make_array(r)
    ndim = np.ndim(x) if not isinstance(x, list) else np.asarray(x).ndim
    kwargs = {}
    axis = make_axis(r, ndim)
    if axis is not None or r.flag(2):
        kwargs["axis"] = axis
    threads = r.pick([None, None, None, 1, 2, 3, 0, -1, "2", 2.5, True, np.int64(2), 2**31, 2**63])
    if threads is not None:
        kwargs["threads"] = threads
    if op == "logsumexp":
        if r.flag(2):
            kwargs["keepdims"] = True
        if r.flag(3):
            kwargs["return_sign"] = True
        if r.flag(4):
            a = np.asarray(x)
            kwargs["b"] = r.pick([
                2.0, -1.0, 0.0,
                np.ones(a.shape[-1:] if a.ndim else (), np.float64) * -0.5,
                np.arange(a.size, dtype=np.float64).reshape(a.shape) - 1.0,
                np.ones((2,) + a.shape), np.ones((3,)), np.ones(a.shape, dtype=object),
                [1.0, 2.0]])
    else:
        out = make_out(r, x, op)
        if out is not None:
            kwargs["out"] = out
    return op, isa, x, kwargs


def path_hint(op, isa, x, kwargs):
    """Branch on the C driver's cases (rows.c) so that libFuzzer's Python coverage sees them.

    The extension itself is not instrumented (gcc has no libFuzzer coverage); these branches
    restate its dispatch (row / long row in parallel blocks / column chunks, vector tails) so
    that an input reaching a new native case counts as new coverage and is kept.
    """
    p = oracle.plan_of(op, x, kwargs.get("axis"), kwargs.get("b"))
    if p is None or p.route_name == "fallback":
        return 0
    if p.route_name == "copy":
        return 2048                      # one copy into the kernel's layout first
    a = p.a
    outer, n, inner = p.layout
    lanes = fastsoftmax._core.kernel_lanes(isa)[1]
    f32 = a.dtype == np.float32
    code = 1
    if inner == 1:
        if n > 16384:
            code += 2 if outer == 1 else 4
        if n % (2 * lanes):
            code += 8
        if n % (4 * lanes) and f32:
            code += 16
    else:
        code += 32
        if inner % 256:
            code += 64
            if (inner % 256) % lanes:
                code += 128
        if inner > 256:
            code += 256
    if n == 1:
        code += 512
    t = kwargs.get("threads")
    if t is None or (isinstance(t, (int, np.integer)) and t > 1):
        code += 1024
    return code


def one_input(data):
    r = Reader(data)
    op, isa, x, kwargs = make_call(r)
    path_hint(op, isa, x, kwargs)
    previous = fastsoftmax._core.current_isa()
    fastsoftmax.set_isa(isa)
    try:
        oracle.check_call(op, x, **kwargs)
    except oracle.OracleError:
        raise
    except MemoryError:
        pass
    except oracle.DOCUMENTED_ERRORS:
        pass
    finally:
        fastsoftmax.set_isa(previous)


def replay(paths):
    files = []
    for p in paths:
        if os.path.isdir(p):
            files += [os.path.join(p, f) for f in sorted(os.listdir(p))]
        else:
            files.append(p)
    for f in files:
        with open(f, "rb") as fh:
            data = fh.read()
        try:
            one_input(data)
        except Exception:
            print(f"FAILED on {f}", file=sys.stderr)
            raise
    print(f"replayed {len(files)} inputs: all passed")


def main():
    if "--replay" in sys.argv:
        replay([a for a in sys.argv[1:] if a != "--replay"])
        return
    if atheris is None:
        sys.exit("atheris is not installed: pip install atheris (or use --replay)")
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()

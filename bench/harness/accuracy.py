"""Accuracy of every candidate against the high-precision reference (fastsoftmax._reference).

Data per dtype (all C-contiguous):
* "rows": 384 rows of 1000, row scales 0.5, 2, 8, 30 times offsets 0, +80, -300 (softmax of
  flat and of very peaked rows, and the shift by max being non-trivial);
* "vocab": 2 rows of 128256 (standard normal x3 and x10): long sums;
* "axis1": shape (2, 21, 32, 32) x5, reduced over axis 1 (the strided/column code paths).

Reported per candidate, op and dtype: max and mean ulp error over normal-range outputs, the
share of outputs within 1 ulp, and
max |row sum - 1| (softmax: sum of the outputs; log_softmax: sum of exp(outputs); summed in
the wide dtype so the summation itself adds nothing measurable).
"""
import numpy as np

from . import reference
from .candidates import ThreadLimits


def datasets(dtype, quick=False):
    rng = np.random.default_rng(20240601)
    nrows = 96 if quick else 384
    scales = np.tile(np.repeat([0.5, 2.0, 8.0, 30.0], 3), nrows // 12)[:, None]
    offsets = np.tile([0.0, 80.0, -300.0], nrows // 3)[:, None]
    rows = rng.standard_normal((nrows, 1000)) * scales + offsets
    vocab_n = 32000 if quick else 128256
    vocab = rng.standard_normal((2, vocab_n)) * np.array([[3.0], [10.0]])
    axis1 = rng.standard_normal((2, 21, 16 if quick else 32, 32)) * 5
    return [("rows", rows.astype(dtype), -1), ("vocab", vocab.astype(dtype), -1),
            ("axis1", axis1.astype(dtype), 1)]


def run_all(cands, ops, dtypes, quick=False, log=print):
    from fastsoftmax import _reference  # not at import: run.py's memory workers load only their candidate
    rows = []
    for dtype in dtypes:
        data = datasets(dtype, quick)
        refs = {(op, name): _reference.REF[op](x, axis) for op in ops for name, x, axis in data}
        for cand in cands:
            if cand.kind == "reference":
                continue
            cand.set_threads(1)
            for op in ops:
                worst, mean_acc, in1_acc, n_acc, rowsum, failed, note = 0.0, 0.0, 0.0, 0, None, "", ""
                with ThreadLimits(1):
                    for name, x, axis in data:
                        try:
                            fn = cand.fresh(op, x, axis, 1)
                            if fn is None:
                                failed = "not supported"
                                break
                            y = np.asarray(fn())
                        except Exception as exc:  # a library refusing an input is a result too
                            failed = f"error: {type(exc).__name__}: {str(exc)[:100]}"
                            break
                        if y.dtype != np.dtype(dtype):
                            note = f"returns {y.dtype}"
                        mx, mean, in1, n = _reference.ulp_stats(y, refs[(op, name)], dtype)
                        worst = max(worst, mx)
                        mean_acc += mean * n
                        in1_acc += in1 * n
                        n_acc += n
                        if op != "logsumexp":
                            e = reference.row_sum_error(op, y, axis, dtype)
                            rowsum = e if rowsum is None else max(rowsum, e)
                row = {"candidate": cand.name, "op": op, "dtype": np.dtype(dtype).name}
                if not failed and n_acc:
                    row.update(max_ulp=worst, mean_ulp=mean_acc / n_acc, within_1ulp=in1_acc / n_acc,
                               max_row_sum_err=rowsum,
                               outputs=n_acc)
                if failed or note:
                    row["note"] = failed or note
                rows.append(row)
                if "max_ulp" in row:
                    rs = "" if rowsum is None else f", max |row sum - 1| {rowsum:.2e}"
                    log(f"  accuracy {np.dtype(dtype).name} {op:<11} {cand.name:<12} max {worst:7.3f} ulp, "
                        f"mean {mean_acc / n_acc:.3g}, {100 * in1_acc / n_acc:.2f}% within 1 ulp{rs}")
                else:
                    log(f"  accuracy {np.dtype(dtype).name} {op:<11} {cand.name:<12} {row.get('note')}")
    return rows

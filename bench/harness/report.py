"""JSON, markdown tables and PNG plots from the collected numbers."""
import json
import math
import os

from . import cases as cases_mod
from .timing import fmt_time

MIB = 2 ** 20
LABELS = {"fastsoftmax": "fastsoftmax", "numpy": "NumPy expr", "scipy": "scipy.special", "torch": "torch",
          "onnxruntime": "onnxruntime", "copyto": "np.copyto (ref)", "exp": "np.exp out= (ref)",
          "fastsoftmax-normal3": "fastsoftmax on normal·3 data"}
COLORS = {"fastsoftmax": "#d62728", "numpy": "#1f77b4", "scipy": "#9467bd", "torch": "#ff7f0e",
          "onnxruntime": "#2ca02c", "copyto": "#7f7f7f", "exp": "#bcbd22"}
ORDER = list(LABELS)
_STAT = {"name": "median"}  # which statistic the tables show: "median" or "min"


def _t(r):
    return r["min_s"] if _STAT["name"] == "min" else r["median_s"]


def _rel(cfg, name):
    """candidate time / fastsoftmax time, with the chosen statistic."""
    f, r = cfg["results"].get("fastsoftmax"), cfg["results"].get(name)
    return _t(r) / _t(f) if f and r else None


def _ns(cfg, r):
    return _t(r) / cfg["elements"] * 1e9


def _gbps(r):
    return r["bytes_moved"] / _t(r) / 1e9


def _label(name):
    return LABELS.get(name, name)


def _names(data):
    present = {n for cfg in data["timing"] for n in cfg["results"]}
    present |= {c["name"] for c in data["meta"].get("candidates", [])}
    return [n for n in ORDER if n in present] + sorted(present - set(ORDER))


def _ratio(v):
    if v is None or not math.isfinite(v):
        return "—"
    return f"{v:.2f}×" if v < 100 else f"{v:.0f}×"


def _noisy(r):
    """Inter-quartile range over median: a per-cell noise estimate."""
    return (r["q3_s"] - r["q1_s"]) / r["median_s"] if r.get("median_s") else 0.0


def _cell_ratio(cfg, name):
    if name in cfg["results"]:
        r = cfg["results"][name]
        return (_ratio(_rel(cfg, name)) + ("~" if _noisy(r) > 0.15 else "")
                + ("†" if r.get("reused_from_threads") else "")
                + ("!" if name in cfg.get("inaccurate", {}) else ""))
    if name in cfg.get("invalid", {}):
        return "wrong"
    if name in cfg.get("unsupported", {}):
        return "n/a"
    return "—"


def _find(data, case, dtype, op, threads):
    for cfg in data["timing"]:
        if (cfg["case"], cfg["dtype"], cfg["op"], cfg["threads"]) == (case, dtype, op, threads):
            return cfg
    return None


def machine_markdown(data):
    m = data["meta"]
    v = m.get("versions", {})
    fs = m.get("fastsoftmax", {})
    libs = ", ".join(f"{k} {v[k]}" for k in ("numpy", "scipy", "torch", "onnxruntime", "onnx", "threadpoolctl")
                     if v.get(k))
    load = ""
    if m.get("loadavg_start"):
        load = f"{m['loadavg_start'][0]:.2f}"
        if m.get("loadavg_end"):
            load += f" → {m['loadavg_end'][0]:.2f}"
    rows = [
        ("measured", m.get("date_utc", "?")),
        ("CPU", m.get("cpu", "?") + (" (virtual machine)" if m.get("hypervisor") else "")),
        ("SIMD flags", " ".join(m.get("cpu_flags", []))),
        ("cores", f"{m.get('usable_cpus')} usable of {m.get('logical_cpus')} logical; "
                  f"threads 'all' = {m.get('threads_all')}"),
        ("caches", m.get("caches", "")),
        ("memory", m.get("memory", "")),
        ("OS / Python", f"{m.get('os', '')} / Python {m.get('python', '')}"),
        ("fastsoftmax", f"{fs.get('version', '?')}, ISA `{fs.get('isa', '?')}` ({fs.get('isa_algorithm', '')}); "
                        f"available {', '.join(fs.get('isas_available', []))}; OpenMP {fs.get('openmp')}"),
        ("build", ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in m.get("build", {}).items()) or "?"),
        ("other libraries", libs),
        ("thread pinning", m.get("thread_pinning", "")),
        ("1-minute load average (start → end)", load),
        ("command", f"`{m.get('command', 'python bench/run.py')}` ({m.get('mode')}, {m.get('wall_s', '?')} s)"),
        ("method", f"{m.get('stat', 'median')} of {m.get('repeats')} interleaved samples of ~{m.get('sample_ms', 0):g} ms each "
                   f"(at least 3 for the largest cases)"),
    ]
    if m.get("skipped_candidates"):
        rows.append(("skipped", "; ".join(f"{k}: {v}" for k, v in m["skipped_candidates"].items())))
    out = ["| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows]
    return "\n".join(out)


def _target_cell(data, op, case, against, peers):
    """(fastsoftmax time, against label + time, measured ratio) for one target row, or None."""
    cfg = _find(data, case, "float32", op, 1)
    if cfg is None or "fastsoftmax" not in cfg["results"]:
        return None
    fast = _t(cfg["results"]["fastsoftmax"])
    if against == "peer":
        got = [(n, _t(cfg["results"][n])) for n in peers if n in cfg["results"]]
        if not got:
            return fast, "peer not measured", None
        name, t = min(got, key=lambda v: v[1])
        return fast, f"{_label(name)} {fmt_time(t)}", t / fast
    if against == "copyto":
        r = cfg["results"].get("copyto")
        return fast, f"np.copyto {fmt_time(_t(r))}" if r else "np.copyto —", fast / _t(r) if r else None
    twin = cfg["results"].get("fastsoftmax-normal3")
    if twin is not None:  # timed interleaved with this configuration: the side-by-side ratio
        t = _t(twin)
        return fast, f"fastsoftmax {fmt_time(t)} on normal·3 data, same shape, interleaved", fast / t
    other = _find(data, against[5:], "float32", op, 1)
    if other is None or "fastsoftmax" not in other["results"]:
        return fast, "—", None
    t = _t(other["results"]["fastsoftmax"])
    return fast, f"fastsoftmax {fmt_time(t)} on {other['label']}", fast / t


def _verdict(ratio, against, target):
    if ratio is None:
        return "—"
    ok = ratio >= target if against == "peer" else ratio <= target
    return f"{ratio:.2f} ({'≥' if against == 'peer' else '≤'} {target:g} {'met' if ok else 'missed'})"


def targets_markdown(data):
    """The float32 speed targets: the machine's best kernel against the faster of ORT and torch, and
    (data["avx2_run"], a run with FASTSOFTMAX_ISA=avx2 and ATEN_CPU_CAPABILITY=avx2, on AVX-512
    machines) the AVX2 kernel against torch held to AVX2."""
    data_avx2 = data.get("avx2_run")
    isa = data["meta"].get("fastsoftmax", {}).get("isa", "?")
    head = ["target", f"fastsoftmax ({isa})", "against", "ratio (target)"]
    if data_avx2 is not None:
        head += ["fastsoftmax (avx2)", "against (torch avx2)", "ratio (target)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, op, case, against, target, avx2_target, avx2_machine_target in cases_mod.TARGETS:
        if isa != "avx512":
            target = avx2_machine_target
        best = _target_cell(data, op, case, against, ("onnxruntime", "torch"))
        if best is None:
            lines.append(f"| {label} | not measured |" + " |" * (len(head) - 2))
            continue
        cells = [label, fmt_time(best[0]), best[1], _verdict(best[2], against, target)]
        if data_avx2 is not None:
            a2 = _target_cell(data_avx2, op, case, against, ("torch",))
            cells += ([fmt_time(a2[0]), a2[1], _verdict(a2[2], against, avx2_target)] if a2 else ["—"] * 3)
        lines.append("| " + " | ".join(cells) + " |")
    text = ("### Speed targets (float32, 1 thread)\n\n"
            "ratio: peer time ÷ fastsoftmax time (peer = the faster of onnxruntime and torch), or fastsoftmax "
            "time ÷ the reference named; medians of interleaved samples, each call's result dropped at once\n\n"
            + "\n".join(lines))
    if data.get("half_targets"):
        from . import half
        text += "\n\n" + half.markdown(data["half_targets"], isa, (data_avx2 or {}).get("half_targets"))
    if data.get("issue15_targets"):
        from . import issue15
        text += "\n\n" + issue15.markdown(data["issue15_targets"], isa, (data_avx2 or {}).get("issue15_targets"))
    if data.get("weighted_targets"):
        from . import weighted
        text += "\n\n" + weighted.markdown(data["weighted_targets"], isa)
    if data.get("sampling_targets"):
        from . import sampling
        text += "\n\n" + sampling.markdown(data["sampling_targets"], isa)
    return text


def speed_table(data, op, dtype, thread_filter=None):
    names = [n for n in _names(data) if n != "fastsoftmax"]
    cfgs = [c for c in data["timing"] if c["op"] == op and c["dtype"] == dtype
            and (thread_filter is None or c["threads"] in thread_filter)]
    if not cfgs:
        return ""
    head = ["case", "threads", "fastsoftmax", "ns/elem", "GB/s"] + [_label(n) for n in names]
    lines = ["| " + " | ".join(head) + " |", "|---|---:|" + "---:|" * (len(head) - 2)]
    for cfg in cfgs:
        f = cfg["results"].get("fastsoftmax")
        if f:
            fcells = [fmt_time(_t(f)) + ("~" if _noisy(f) > 0.15 else "")
                      + ("!" if "fastsoftmax" in cfg.get("inaccurate", {}) else ""),
                      f"{_ns(cfg, f):.3g}", f"{_gbps(f):.3g}"]
        else:
            fcells = ["wrong" if "fastsoftmax" in cfg.get("invalid", {}) else "—", "—", "—"]
        cells = [cfg["label"], str(cfg["threads"])] + fcells + [_cell_ratio(cfg, n) for n in names]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def detail_table(data):
    names = _names(data)
    head = ["op", "dtype", "case", "threads"] + [_label(n) for n in names]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for cfg in data["timing"]:
        cells = [cfg["op"], cfg["dtype"], cfg["label"], str(cfg["threads"])]
        for n in names:
            r = cfg["results"].get(n)
            cells.append(f"{fmt_time(_t(r))} · {_ns(cfg, r):.3g} ns/el · {_gbps(r):.3g} GB/s"
                         if r else _cell_ratio(cfg, n))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _mib(v):
    # |v| below a page or two is measurement noise; a negative steady value means the call reused
    # memory the library already held (onnxruntime's arena): it needed nothing new
    return "—" if v is None else f"{max(v, 0) / MIB:.1f}"


def memory_table(data):
    rows = data.get("memory") or []
    if not rows:
        return ""
    inp = data["meta"].get("memory_input", {})
    lines = [f"One call on a {inp.get('dtype', 'float32')} {tuple(inp.get('shape', []))} input "
             f"({inp.get('bytes', 0) / MIB:.0f} MiB), threads=1, each candidate in a fresh process. "
             "MiB beyond the input and the returned result: *first* = the first full-size call (after a "
             "2-row warm-up), *steady* = later calls, *held* = still resident after the result was freed "
             "(onnxruntime's arena keeps the output's block), "
             "*tracemalloc* = NumPy-visible allocations only.", "",
             "| candidate | op | peak extra, first call | steady | held | tracemalloc | result |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        if "rss_first_extra" not in r and "tracemalloc_extra" not in r:
            lines.append(f"| {_label(r['candidate'])} | {r['op']} | {r.get('skipped') or r.get('error')} | | | | |")
            continue
        lines.append(f"| {_label(r['candidate'])} | {r['op']} | {_mib(r.get('rss_first_extra'))} | "
                     f"{_mib(r.get('rss_steady_extra'))} | {_mib(r.get('rss_held'))} | "
                     f"{_mib(r.get('tracemalloc_extra'))} | {_mib(r.get('out_bytes'))} |")
    return "\n".join(lines)


def memory_pivot(data):
    """candidate x op: first-call peak extra MiB (and what stays held, where anything does)."""
    rows = data.get("memory") or []
    if not rows:
        return ""
    inp = data["meta"].get("memory_input", {})
    ops = list(dict.fromkeys(r["op"] for r in rows))
    lines = [f"{inp.get('dtype', 'float32')} input of {inp.get('bytes', 0) / MIB:.0f} MiB, threads=1, "
             "peak RSS of the first call (fresh process):", "",
             "| candidate | " + " | ".join(ops) + " |", "|---|" + "---:|" * len(ops)]
    for cand in dict.fromkeys(r["candidate"] for r in rows):
        cells = []
        for op in ops:
            r = next((x for x in rows if x["candidate"] == cand and x["op"] == op), {})
            if "rss_first_extra" in r:
                held = r.get("rss_held") or 0
                cells.append(_mib(r["rss_first_extra"]) + (f" (+{_mib(held)} held)" if held > MIB else ""))
            else:
                cells.append(str(r.get("skipped") or r.get("error") or "—"))
        lines.append(f"| {_label(cand)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _ulp(v):
    if v is None:
        return "—"
    return f"{v:.2f}" if v < 1000 else f"{v:.2e}"


def accuracy_table(data, dtype):
    rows = [r for r in data.get("accuracy") or [] if r["dtype"] == dtype]
    if not rows:
        return ""
    ops = list(dict.fromkeys(r["op"] for r in rows))
    head = ["candidate"]
    for op in ops:
        head += [f"{op} max ulp", f"{op} ≤1 ulp"] + ([f"{op} max \\|Σ−1\\|"] if op != "logsumexp" else [])
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for cand in dict.fromkeys(r["candidate"] for r in rows):
        cells = [_label(cand)]
        for op in ops:
            r = next((x for x in rows if x["candidate"] == cand and x["op"] == op), {})
            if "max_ulp" in r:
                cells += [_ulp(r["max_ulp"]), f"{100 * r.get('within_1ulp', float('nan')):.2f}%"]
                if op != "logsumexp":
                    cells.append(f"{r['max_row_sum_err']:.1e}" if r.get("max_row_sum_err") is not None else "—")
            else:
                cells += [r.get("note", "—"), ""] + ([""] if op != "logsumexp" else [])
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


ACCURACY_NOTE = (
    "ulp = |result − reference| in units of the ulp of the correctly rounded reference, over outputs in "
    "the normal range (max, and the share of outputs within 1 ulp); reference in float64 for float32 data and np.longdouble (80-bit) for float64. "
    "Data: 384 rows of 1000 (scales 0.5–30, offsets 0/+80/−300), 2 rows of 128256, and a (2,21,32,32) "
    "array over axis 1. The huge log_softmax figures of the two-pass formula `x − m − log(Σ)` come from "
    "peaked rows, where the row maximum's output is a tiny negative number that it gets with almost no "
    "correct digits (an absolute error of ~1 ulp of 1).")


def write_markdown(data, path, plot_files):
    m = data["meta"]
    parts = ["# fastsoftmax benchmark results", "",
             f"Generated by `{m.get('command', 'python bench/run.py')}`; every number is in "
             "`results.json` next to this file.", "", machine_markdown(data), "",
             targets_markdown(data), ""]
    for pf in plot_files:
        parts += [f"![throughput]({os.path.basename(pf)})", ""]
    parts += ["## Speed", "",
              f"fastsoftmax: {_STAT['name']} time per call, ns per element, GB/s (bytes read + written); other columns: "
              "candidate time ÷ fastsoftmax time (> 1: fastsoftmax faster). `~` marks a cell whose "
              "inter-quartile range exceeds 15% of its median (noisy); `†` marks a candidate that uses no threads "
              "(NumPy, scipy, the references) whose threads=1 time is reused at threads > 1 because one call "
              "of them costs over half a second; `!` marks a result whose relative error exceeds 1e-4 (float32) / "
              "1e-12 (float64) on the checked rows (see Notes). `n/a`: not supported; `wrong`: "
              "relative error over 5e-2 / 1e-6, not timed.", ""]
    for op in ("softmax", "log_softmax", "logsumexp"):
        for dtype in ("float32", "float64"):
            t = speed_table(data, op, dtype)
            if t:
                parts += [f"### {op}, {dtype}", "", t, ""]
    mt = memory_table(data)
    if mt:
        parts += ["## Peak extra memory", "", mt, ""]
    if data.get("accuracy"):
        parts += ["## Accuracy", "", ACCURACY_NOTE, ""]
        for dtype in ("float32", "float64"):
            t = accuracy_table(data, dtype)
            if t:
                parts += [f"### {dtype}", "", t, ""]
    parts += ["## All timings", "", f"<details><summary>{_STAT['name']} time · ns/element · GB/s for every candidate"
              "</summary>", "", detail_table(data), "", "</details>", ""]
    notes = []
    for cfg in data["timing"]:
        for n, msg in cfg.get("invalid", {}).items():
            notes.append(f"- wrong result: {n} on {cfg['op']} {cfg['dtype']} {cfg['label']}: {msg}")
        for n, msg in cfg.get("inaccurate", {}).items():
            notes.append(f"- inaccurate: {_label(n)} on {cfg['op']} {cfg['dtype']} {cfg['label']}: {msg}")
    for u in m.get("onnxruntime_unsupported", []):
        notes.append(f"- onnxruntime cannot run {u}")
    if notes:
        parts += ["## Notes", ""] + sorted(set(notes)) + [""]
    with open(path, "w") as fh:
        fh.write("\n".join(parts))


def write_readme_snippet(data, path, plot_files, rel_dir="bench/results"):
    m = data["meta"]
    fs = m.get("fastsoftmax", {})
    parts = [f"Measured {m.get('date_utc')} on {m.get('cpu')} ({m.get('usable_cpus')} cores usable, "
             f"fastsoftmax {fs.get('version')} with ISA `{fs.get('isa')}`), by `{m.get('command')}`; "
             f"full tables, memory and accuracy in [{rel_dir}/results.md]({rel_dir}/results.md).", "",
             targets_markdown(data), ""]
    for dtype in ("float32",):
        t = speed_table(data, "softmax", dtype)
        if t:
            parts += [f"### softmax, {dtype} (ratio = candidate time ÷ fastsoftmax time)", "", t, ""]
    for pf in plot_files:
        parts += [f"![throughput]({rel_dir}/{os.path.basename(pf)})", ""]
    mem = memory_pivot(data)
    if mem:
        parts += ["### Peak extra memory of one call (MiB beyond input and result)", "", mem, ""]
    acc = accuracy_table(data, "float32")
    if acc:
        parts += ["### Accuracy, float32 (ulp of the correctly rounded result; row sums in float64)", "", acc, ""]
    with open(path, "w") as fh:
        fh.write("\n".join(parts))


def plot(data, dtype, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cfgs = [c for c in data["timing"] if c["dtype"] == dtype]
    if not cfgs:
        return None
    ops = list(dict.fromkeys(c["op"] for c in cfgs))
    threads = sorted({c["threads"] for c in cfgs})
    case_order = list(dict.fromkeys(c["case"] for c in cfgs))
    labels = {c["case"]: c["label"] for c in cfgs}
    names = [n for n in _names(data) if n != "fastsoftmax-normal3"]  # a twin timing for one target
    fig, axes = plt.subplots(len(ops), len(threads), figsize=(7.5 * len(threads), 3.6 * len(ops) + 0.8),
                             squeeze=False, sharey=True)
    width = 0.8 / len(names)
    for i, op in enumerate(ops):
        for j, t in enumerate(threads):
            ax = axes[i][j]
            for k, name in enumerate(names):
                xs, ys = [], []
                for ci, case in enumerate(case_order):
                    cfg = _find(data, case, dtype, op, t)
                    if cfg and name in cfg["results"]:
                        xs.append(ci + (k - (len(names) - 1) / 2) * width)
                        ys.append(_gbps(cfg["results"][name]))
                ref = name in ("copyto", "exp")
                ax.bar(xs, ys, width, label=_label(name), color=COLORS.get(name, None),
                       hatch="//" if ref else None, alpha=0.6 if ref else 0.95, edgecolor="white", linewidth=0.3)
            ax.set_yscale("log")
            ax.set_axisbelow(True)
            ax.set_xticks(range(len(case_order)))
            ax.set_xticklabels([labels[c] for c in case_order], rotation=30, ha="right", fontsize=7)
            ax.set_title(f"{op}, {dtype}, threads={t}", fontsize=10)
            ax.grid(axis="y", which="both", alpha=0.25)
            if j == 0:
                ax.set_ylabel("GB/s (read + write), higher is better")
    handles, lbls = axes[0][0].get_legend_handles_labels()
    m = data["meta"]
    fig.legend(handles, lbls, loc="upper center", ncol=len(names), fontsize=8, frameon=False,
               bbox_to_anchor=(0.5, 0.985))
    fig.suptitle(f"fastsoftmax vs alternatives, {dtype} — {m.get('cpu', '')}, {m.get('date_utc', '')}",
                 fontsize=10, y=0.998)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_all(data, out_dir, plots=True, stat=None):
    _STAT["name"] = stat or data["meta"].get("stat", "median")
    data["meta"]["stat"] = _STAT["name"]
    os.makedirs(out_dir, exist_ok=True)
    written = []
    jpath = os.path.join(out_dir, "results.json")
    tmp = jpath + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(data, fh, indent=1)
    os.replace(tmp, jpath)
    written.append(jpath)
    plot_files = []
    if plots:
        try:
            for dtype in ("float32", "float64"):
                p = plot(data, dtype, os.path.join(out_dir, f"throughput_{dtype}.png"))
                if p:
                    plot_files.append(p)
        except ImportError:
            data["meta"]["plot_note"] = "matplotlib not installed: no plots"
    written += plot_files
    md = os.path.join(out_dir, "results.md")
    write_markdown(data, md, plot_files)
    written.append(md)
    snip = os.path.join(out_dir, "readme_snippet.md")
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    rel = os.path.relpath(os.path.abspath(out_dir), repo)
    write_readme_snippet(data, snip, plot_files, rel_dir=rel.replace(os.sep, "/"))
    written.append(snip)
    return written

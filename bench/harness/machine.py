"""A description of the machine and the software the numbers were measured with."""
import datetime
import os
import platform
import sys


def _read(path):
    try:
        with open(path) as fh:
            return fh.read()
    except OSError:
        return ""


def _cpuinfo():
    info = {}
    for line in _read("/proc/cpuinfo").splitlines():
        if ":" not in line:
            if info:
                break  # the first processor is enough
            continue
        key, _, value = line.partition(":")
        info.setdefault(key.strip(), value.strip())
    return info


def _caches():
    out = []
    base = "/sys/devices/system/cpu/cpu0/cache"
    try:
        names = sorted(os.listdir(base))
    except OSError:
        return ""
    for name in names:
        if not name.startswith("index"):
            continue
        level = _read(f"{base}/{name}/level").strip()
        kind = _read(f"{base}/{name}/type").strip()
        size = _read(f"{base}/{name}/size").strip()
        shared = _read(f"{base}/{name}/shared_cpu_list").strip()
        if kind == "Instruction":
            continue
        out.append(f"L{level} {size}" + (f" (cpus {shared})" if shared else ""))
    return ", ".join(out)


def _mem_total():
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            return f"{int(line.split()[1]) / 2**20:.1f} GiB"
    return "?"


def cpu_model():
    info = _cpuinfo()
    name = info.get("model name") or platform.processor() or platform.machine()
    fam, model, step = info.get("cpu family"), info.get("model"), info.get("stepping")
    if fam is not None:
        name += f" (family {fam}, model {model}, stepping {step})"
    if info.get("vendor_id") == "AuthenticAMD" and fam == "25":
        name += " [Zen 3/4 family]"
    return name


def usable_cpus():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def build_info():
    """The repository commit (with '+dirty' for local changes) and when the extension was built."""
    import subprocess
    import fastsoftmax
    info = {}
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    try:
        rev = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10)
        if rev.returncode == 0:
            dirty = subprocess.run(["git", "-C", root, "status", "--porcelain", "--untracked-files=no",
                                    "--", "csrc", "src"], capture_output=True, text=True, timeout=10)
            info["git_commit"] = rev.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        pass
    core = getattr(getattr(fastsoftmax, "_core", None), "__file__", None)
    if core:
        mtime = datetime.datetime.fromtimestamp(os.path.getmtime(core), datetime.timezone.utc)
        info["extension_built_utc"] = mtime.strftime("%Y-%m-%d %H:%M UTC")
    return info


def describe(versions):
    """Everything the report prints about where and when it was measured."""
    info = _cpuinfo()
    flags = set(info.get("flags", "").split())
    simd = [f for f in ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_bf16")
            if f in flags]
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as feats
        numpy_simd = [k for k in ("AVX2", "FMA3", "AVX512F", "AVX512_SKX") if feats.get(k)]
    except Exception:  # older NumPy layout
        numpy_simd = []
    import fastsoftmax
    cfg = fastsoftmax.get_config()
    return {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_model(),
        "cpu_flags": simd,
        "logical_cpus": os.cpu_count(),
        "usable_cpus": usable_cpus(),
        "caches": _caches(),
        "memory": _mem_total(),
        "hypervisor": "hypervisor" in flags,
        "os": f"{platform.system()} {platform.release()}",
        "python": sys.version.split()[0],
        "loadavg_start": list(load) if load else None,
        "numpy_simd": numpy_simd,
        "fastsoftmax": {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.items()},
        "build": build_info(),
        "versions": versions,
    }


def one_line(m):
    """A one-line summary for the table headers and the README."""
    isa = m["fastsoftmax"].get("isa", "?")
    return (f"{m['cpu']}, {m['usable_cpus']} usable cores, {m['memory']} RAM; "
            f"fastsoftmax {m['fastsoftmax'].get('version', '?')} using ISA `{isa}`; "
            f"measured {m['date_utc']}")

"""Run-time ISA dispatch: what is compiled, what this CPU can run, and the forcing switch."""
import os
import platform
import subprocess
import sys

import numpy as np
import pytest

import fastsoftmax
from fastsoftmax import _core


def _cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return None


def test_portable_always_available():
    assert "portable" in fastsoftmax.available_isas()
    assert set(fastsoftmax.available_isas()) <= set(_core.compiled_isas())


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="x86-64 only")
def test_x86_kernels_compiled_in():
    compiled = _core.compiled_isas()
    assert "avx2" in compiled
    if sys.platform != "darwin":
        assert "avx512" in compiled  # built here even when this CPU cannot run it


@pytest.mark.skipif(_cpu_flags() is None or platform.machine() != "x86_64", reason="needs /proc/cpuinfo on x86-64")
def test_dispatch_follows_cpu_flags():
    flags = _cpu_flags()
    avail = fastsoftmax.available_isas()
    assert ("avx2" in avail) == ({"avx2", "fma"} <= flags)
    assert ("avx512" in avail) == ("avx512f" in flags and "avx2" in avail and sys.platform != "darwin")
    best = avail[-1]
    fastsoftmax.set_isa("auto")
    assert fastsoftmax.get_config()["isa"] == best


def test_forcing_an_isa():
    for name in fastsoftmax.available_isas():
        assert fastsoftmax.set_isa(name) == name
        assert fastsoftmax.get_config()["isa"] == name
    fastsoftmax.set_isa("auto")
    for name in set(_core.ISAS) - set(fastsoftmax.available_isas()):  # compiled in, not for this CPU
        with pytest.raises(ValueError, match="not available"):
            fastsoftmax.set_isa(name)


def test_set_isa_rejects_bad_names():
    """The set_isa rows of the invalid-arguments table (docs/errors.md); a rejected name leaves the ISA as it was."""
    before = _core.current_isa()
    with pytest.raises(ValueError, match=r"ISA 'sse9' is not available here; available: \("):
        fastsoftmax.set_isa("sse9")
    with pytest.raises(ValueError, match=r"ISA '' is not available here"):
        fastsoftmax.set_isa("")
    for bad, kind in ((3, "int"), (None, "NoneType"), (b"avx2", "bytes")):
        with pytest.raises(TypeError, match=rf"ISA name must be a str, got {kind}"):
            fastsoftmax.set_isa(bad)
    assert _core.current_isa() == before


def test_set_isa_rejects_embedded_nul():
    """Was accepted as the name before the NUL."""
    previous = _core.current_isa()
    try:
        with pytest.raises(ValueError, match=r"is not available here"):
            fastsoftmax.set_isa(previous + "\x00junk")
    finally:
        fastsoftmax.set_isa(previous)


def test_isa_environment_variable():
    env = dict(os.environ, FASTSOFTMAX_ISA="portable")
    out = subprocess.check_output([sys.executable, "-c", "import fastsoftmax; print(fastsoftmax.get_config()['isa'])"],
                                  env=env, text=True)
    assert out.strip() == "portable"
    env["FASTSOFTMAX_ISA"] = "no-such-isa"
    r = subprocess.run([sys.executable, "-c", "import fastsoftmax"], env=env, capture_output=True, text=True)
    assert r.returncode != 0 and "not available" in r.stderr


def test_isas_agree(isa):
    """Every ISA gives results within 2 ulp of the portable kernel (they differ only in sum order)."""
    x = (np.random.default_rng(5).standard_normal((33, 1000)) * 6).astype(np.float32)
    got = fastsoftmax.softmax(x, axis=1)
    fastsoftmax.set_isa("portable")
    ref = fastsoftmax.softmax(x, axis=1)
    fastsoftmax.set_isa(isa)
    assert np.max(np.abs(got - ref) / np.spacing(ref)) <= 2

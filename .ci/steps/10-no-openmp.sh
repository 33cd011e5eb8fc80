#!/usr/bin/env bash
# Build without OpenMP (as on a compiler without it) in a clean copy, and run the core and thread tests.
set -euo pipefail
root="$(pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
git -C "$root" ls-files -z | (cd "$root" && xargs -0 tar cf -) | (cd "$work" && tar xf -)
python -m venv "$work/venv"
# shellcheck disable=SC1091
. "$work/venv/bin/activate"
python -m pip install -q --upgrade pip
cd "$work"
FASTSOFTMAX_NO_OPENMP=1 pip install -q '.[test]'
python -c "import fastsoftmax as f; c = f.get_config(); assert not c['openmp'] and c['default_threads'] == 1, c; print(c)"
python -m pytest -q tests/test_core.py tests/test_threads.py -p no:cacheprovider

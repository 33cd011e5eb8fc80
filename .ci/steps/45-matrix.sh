#!/usr/bin/env bash
# CI: the test matrix (noxfile.py): the README's test command in a fresh venv on Python 3.10 with
# NumPy 1.26, and on 3.12 and 3.13 with the newest NumPy. Python 3.11 with the newest NumPy is the
# README test command that .ci/run has already run (nox -s tests-3.11 is the same session), and the
# NumPy 1.26 + Python 3.10 row replaces the wheel check's second (NumPy 1.26) run.
# The interpreters are found as python3.X on PATH; pyenv's versions are added when present.
set -euo pipefail
cd "$(dirname "$0")/../.."
for bin in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.1[0-9]*/bin; do
    [ -d "$bin" ] && PATH="$PATH:$bin"
done
export PATH
python -m pip install -q "nox>=2024.3"
start=$SECONDS
nox --no-reuse-existing-virtualenvs --envdir "${TMPDIR:-/tmp}/fastsoftmax-nox" -s tests-3.10 tests-3.12 tests-3.13
echo "matrix: $((SECONDS - start)) s"

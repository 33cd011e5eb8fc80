#!/usr/bin/env bash
# CI: the documentation site (docs/): Sphinx HTML with warnings as errors, then every example in the
# pages and in the docstrings run as a doctest. Runs inside CI's venv, where fastsoftmax is installed;
# adds the [docs] extra's packages (read from pyproject.toml, so the package is not rebuilt).
set -euo pipefail
cd "$(dirname "$0")/../.."
python - <<'PY' | xargs python -m pip install -q
import tomllib
print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["docs"]))
PY
out="${TMPDIR:-/tmp}/fastsoftmax-docs"
rm -rf "$out"
python -m sphinx -W --keep-going -q -b html docs "$out/html"
python -m sphinx -W --keep-going -q -b doctest docs "$out/doctest"
grep -A4 "^Doctest summary" "$out/doctest/output.txt"
echo "docs: $out/html/index.html"

#!/usr/bin/env bash
# CI: the benchmark's --quick smoke test (checks that bench/run.py runs end to end; no timing is asserted).
set -euo pipefail
cd "$(dirname "$0")/../.."
python -m pip install -q '.[bench]'
OUT="${TMPDIR:-/tmp}/fastsoftmax-bench-quick"
rm -rf "$OUT"
python bench/run.py --quick --out "$OUT"
for f in results.json results.md readme_snippet.md; do
    test -s "$OUT/$f" || { echo "bench --quick did not write $f" >&2; exit 1; }
done

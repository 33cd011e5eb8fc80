#!/usr/bin/env bash
# Replay the committed fuzz corpus, then fuzz for a fixed time (FASTSOFTMAX_FUZZ_SECONDS, default 50)
# from it with atheris. A crash, an undocumented exception or a mismatch against the fallback fails
# the step; libFuzzer prints the failing input (Base64) and the Python traceback.
set -euo pipefail
python -m pip install -q "atheris>=2.3"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python fuzz/fuzz_target.py --replay fuzz/corpus
mkdir "$work/corpus"
status=0
python fuzz/fuzz_target.py -max_total_time="${FASTSOFTMAX_FUZZ_SECONDS:-50}" -timeout=30 -rss_limit_mb=4096 \
    -artifact_prefix="$work/" -print_final_stats=1 "$work/corpus" fuzz/corpus >"$work/fuzz.log" 2>&1 || status=$?
if [ "$status" -ne 0 ]; then
    tail -n 120 "$work/fuzz.log"
    for f in "$work"/crash-* "$work"/timeout-* "$work"/oom-*; do
        [ -e "$f" ] && echo "failing input $f (base64): $(base64 -w0 "$f")"
    done
    echo "fuzz: FAILED (exit $status)"
    exit "$status"
fi
grep -E '^stat::|DONE' "$work/fuzz.log" || true
echo "fuzz: $(ls "$work/corpus" | wc -l) new corpus entries this run, no failure"

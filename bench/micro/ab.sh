#!/bin/sh
# ab.sh VARIANT_DIR [rows n scale]: A = this checkout's csrc, B = VARIANT_DIR/csrc (see ab_bench.c).
set -e
here=$(cd "$(dirname "$0")" && pwd); tmp=$(mktemp -d)
cc -O3 -ffp-contract=off -I"$here/../../csrc" -c "$here/../../csrc/kernels/avx2.c" -o "$tmp/a.o"
cc -O3 -ffp-contract=off -I"$1/csrc" -Dfsm_kernels_avx2=fsm_kernels_b -c "$1/csrc/kernels/avx2.c" -o "$tmp/b.o"
cc -O3 -I"$here/../../csrc" -I"$here" "$here/ab_bench.c" "$tmp/a.o" "$tmp/b.o" -lm -o "$tmp/ab"
shift; "$tmp/ab" "$@"; rm -rf "$tmp"

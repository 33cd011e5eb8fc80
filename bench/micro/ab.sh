#!/bin/sh
# ab.sh VARIANT_DIR [rows n scale]: A = this checkout's csrc, B = VARIANT_DIR/csrc (see ab_bench.c).
# ISA=avx512 (default avx2) chooses the kernel file; CFLAGS_B (for example -DSOME_VARIANT) is added to B's
# compile line, so B can be this checkout's own csrc with a variant switched on.
set -e
here=$(cd "$(dirname "$0")" && pwd); tmp=$(mktemp -d); isa=${ISA:-avx2}
cc -O3 -ffp-contract=off -I"$here/../../csrc" -Dfsm_kernels_$isa=fsm_kernels_a -c "$here/../../csrc/kernels/$isa.c" -o "$tmp/a.o"
cc -O3 -ffp-contract=off $CFLAGS_B -I"$1/csrc" -Dfsm_kernels_$isa=fsm_kernels_b -c "$1/csrc/kernels/$isa.c" -o "$tmp/b.o"
cc -O3 -I"$here/../../csrc" -I"$here" "$here/ab_bench.c" "$tmp/a.o" "$tmp/b.o" -lm -o "$tmp/ab"
shift; "$tmp/ab" "$@"; rm -rf "$tmp"

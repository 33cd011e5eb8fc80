#!/bin/sh
# short.sh [n [rows [offset [y_offset]]]]: the fused short-row softmax (short.c), two builds of one ISA's kernels
# interleaved in one process: A = this checkout with $A_FLAGS, B = ${B_DIR:-this checkout} with $B_FLAGS.
# ISA=avx512 (default) or avx2 chooses the kernel file. With neither set, A and B are the same build.
set -e
here=$(cd "$(dirname "$0")" && pwd); tmp=$(mktemp -d); isa=${ISA:-avx512}; bdir=${B_DIR:-$here/../..}
cc -O3 -ffp-contract=off $A_FLAGS -I"$here/../../csrc" -Dfsm_kernels_$isa=fsm_kernels_a -c "$here/../../csrc/kernels/$isa.c" -o "$tmp/a.o"
cc -O3 -ffp-contract=off $B_FLAGS -I"$bdir/csrc" -Dfsm_kernels_$isa=fsm_kernels_b -c "$bdir/csrc/kernels/$isa.c" -o "$tmp/b.o"
cc -O3 -I"$here/../../csrc" -I"$here" "$here/short.c" "$tmp/a.o" "$tmp/b.o" -lm -o "$tmp/short"
"$tmp/short" "$@"; rm -rf "$tmp"

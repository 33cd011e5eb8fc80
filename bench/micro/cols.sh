#!/bin/sh
# cols.sh [n cols pitch]: build bench/micro/cols.c against this checkout's kernels and run it (ISA=avx512|avx2|portable).
set -e
here=$(cd "$(dirname "$0")" && pwd); src="$here/../../csrc"; tmp=$(mktemp -d)
for f in "$src/cpu.c" "$src/kernels/portable.c" "$src/kernels/avx2.c" "$src/kernels/avx512.c"; do
    cc -O3 -ffp-contract=off -fno-strict-aliasing $CFLAGS -I"$src" -c "$f" -o "$tmp/$(basename "$f" .c).o"
done
cc -O3 -I"$src" -I"$here" "$here/cols.c" "$tmp"/*.o -lm -o "$tmp/cols"
"$tmp/cols" "$@"; rm -rf "$tmp"

#!/bin/sh
# half.sh [rows n]: build bench/micro/half.c against this checkout's kernels and run it.
# CFLAGS (for example -DSOME_VARIANT) is added to the kernels' compile line, to time a variant.
set -e
here=$(cd "$(dirname "$0")" && pwd); src="$here/../../csrc"; tmp=$(mktemp -d)
for f in "$src/cpu.c" "$src/kernels/portable.c" "$src/kernels/avx2.c" "$src/kernels/avx512.c"; do
    cc -O3 -ffp-contract=off -fno-strict-aliasing $CFLAGS -I"$src" -c "$f" -o "$tmp/$(basename "$f" .c).o"
done
cc -O3 -I"$src" -I"$here" "$here/half.c" "$tmp"/*.o -lm -o "$tmp/half"
"$tmp/half" "$@"; rm -rf "$tmp"

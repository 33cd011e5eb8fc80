/*
 * The float32 one-sweep column softmax (col_softmax_f32) alone, one ISA, one thread, no Python: n rows
 * of `cols` columns at a row pitch of `pitch` floats, as the driver's scratch holds a column block.
 * Reports the best of 2001 runs in ns per element; each run first restores the block (the kernel
 * writes its exps in place, as the driver lets it).
 *
 *   bench/micro/cols.sh 21 752 784    # n = 21 (VOC classes), the driver's block width, its pitch
 *   bench/micro/cols.sh 3 752 784     # n = 3: the per-vector work dominates
 *   ISA=avx2 bench/micro/cols.sh 21 752 784
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "fastsoftmax.h"
#include "clock.h"

int main(int argc, char **argv)
{
    int64_t n = argc > 1 ? atoll(argv[1]) : 21, cols = argc > 2 ? atoll(argv[2]) : 752;
    int64_t pitch = argc > 3 ? atoll(argv[3]) : cols + 32;
    const char *isa = getenv("ISA") ? getenv("ISA") : "avx512";
    if (cols % 16 || pitch < cols) {
        fprintf(stderr, "cols must be a multiple of 16 and pitch >= cols\n");
        return 2;
    }
    if (fsm_set_isa(isa) != 0) {
        fprintf(stderr, "ISA %s not available here\n", isa);
        return 2;
    }
    const fsm_kernels *k = fsm_active();
    size_t bytes = sizeof(float) * (size_t)(n * pitch);
    /* the block and y start S_OFF and Y_OFF bytes past a 64-byte line (default 16, as malloc's blocks) */
    const int s_off = getenv("S_OFF") ? atoi(getenv("S_OFF")) : 16, y_off = getenv("Y_OFF") ? atoi(getenv("Y_OFF")) : 16;
    if (s_off < 0 || s_off > 64 || y_off < 0 || y_off > 64 || s_off % 4 || y_off % 4) {
        fprintf(stderr, "S_OFF and Y_OFF are multiples of 4 in [0, 64]\n");
        return 2;
    }
    const size_t room = (bytes + 128 + 63) / 64 * 64;  /* aligned_alloc takes a multiple of the alignment */
    char *s_mem = aligned_alloc(64, room), *y_mem = aligned_alloc(64, room);
    float *x = malloc(bytes), *s = (float *)(s_mem + s_off), *y = (float *)(y_mem + y_off);
    unsigned char skipped[1024];
    for (int64_t i = 0; i < n * pitch; i++) x[i] = (float)(3.0 * sin((double)i * 0.37) * cos((double)i * 0.011));
    double best = 1e30;
    for (int rep = 0; rep < 2001; rep++) {
        memcpy(s, x, bytes);
        double t0 = now();
        k->col_softmax_f32(s, s, n, pitch, cols, y, pitch, skipped);
        double t = now() - t0;
        best = t < best ? t : best;
    }
    printf("%s col_softmax_f32: n %lld, cols %lld, pitch %lld: %.3f ns/element\n", isa, (long long)n,
           (long long)cols, (long long)pitch, best * 1e9 / (double)(n * cols));
    return 0;
}

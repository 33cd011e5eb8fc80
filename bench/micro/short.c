/*
 * The fused float32 softmax of short rows (softmax_rows_f32) alone, one thread, no Python, as the
 * driver calls it (batches of min(256, 8192 / n) rows), over data that stays in L2: two builds A and
 * B of one ISA's kernels interleaved repetition by repetition (short.sh builds them), so that a
 * variant is compared in one process (this machine's clock drifts 10-30 % between runs).
 *
 *   short [n [rows [offset [y_offset]]]]   default n = 128, rows = 1024, offset = 16 (bytes past a
 *                               64-byte boundary, as NumPy's large arrays are here: glibc malloc),
 *                               y_offset = offset
 *
 * The kernel prefetches each next group of rows, as the driver has it do for calls with more than
 * 4 MB of x and y (rows_dtype.h, FSM_SHORT_PREFETCH_PART); NO_PREFETCH=1 times it without, as the
 * driver calls it below that.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include "fastsoftmax.h"
#include "clock.h"

extern const fsm_kernels *const fsm_kernels_a;
extern const fsm_kernels *const fsm_kernels_b;

/* The kernels ask cpu.c whether subnormal arithmetic is free; no cpu.c is linked: the integer form,
   unless FSM_SUBNORMALS_FREE is set. */
int fsm_subnormals_free(void) { return getenv("FSM_SUBNORMALS_FREE") != NULL; }
/* ... and whether to round bfloat16 with AVX512_BF16 (the half paths only; these rows are float32): no. */
int fsm_bf16cvt(void) { return 0; }

#define REPS 201

int main(int argc, char **argv)
{
    int64_t n = argc > 1 ? atoll(argv[1]) : 128, rows = argc > 2 ? atoll(argv[2]) : 1024;
    int off = argc > 3 ? atoi(argv[3]) : 16, yoff = argc > 4 ? atoi(argv[4]) : off;
    int64_t batch = 8192 / n < 1 ? 1 : 8192 / n > 256 ? 256 : 8192 / n;
    const int nopf = getenv("NO_PREFETCH") != NULL;  /* the driver's small calls: no prefetch (else as out of cache) */
    size_t bytes = ((size_t)(rows * n) * sizeof(float) + 63) / 64 * 64;
    float *x = (float *)((char *)aligned_alloc(64, bytes + 64) + off), *y = (float *)((char *)aligned_alloc(64, bytes + 64) + yoff);
    const fsm_kernels *ks[2] = {fsm_kernels_a, fsm_kernels_b};
    static double t[2][REPS];
    srand(1);
    for (int64_t i = 0; i < rows * n; i++) {
        double u1 = (rand() + 1.0) / (RAND_MAX + 2.0), u2 = rand() / (RAND_MAX + 1.0);
        x[i] = (float)(3.0 * sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2));
    }
    for (int rep = 0; rep < REPS; rep++)
        for (int v = 0; v < 2; v++) {
            double t0 = now();
            for (int64_t r0 = 0; r0 < rows; r0 += batch)
                ks[v]->softmax_rows_f32(x + r0 * n, y + r0 * n, rows - r0 < batch ? rows - r0 : batch, n,
                                        nopf ? -1 : rows - r0 < batch ? 0 : rows - r0 - batch);
            t[v][rep] = now() - t0;
        }
    double med[2];
    for (int v = 0; v < 2; v++) {
        qsort(t[v], REPS, sizeof t[v][0], cmp_double);
        med[v] = t[v][REPS / 2] * 1e9;
    }
    printf("%s softmax_rows_f32, n %lld, rows %lld, offset %d: A %.3f B %.3f ns/element (%.1f, %.1f ns/row), B/A %.3f\n",
           ks[0]->name, (long long)n, (long long)rows, off, med[0] / (double)(rows * n), med[1] / (double)(rows * n),
           med[0] / (double)rows, med[1] / (double)rows, med[1] / med[0]);
    return 0;
}

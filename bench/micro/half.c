/*
 * Pass-by-pass timing of softmax's three passes on float32, float16 and bfloat16 rows, for every ISA
 * this CPU runs, one thread, no Python: where a half call spends the time its float32 twin does not.
 * Build and run with half.sh.
 *
 *   half [rows n]     default 8 x 16384: one (1, 131072) row in the driver's 16384-element blocks
 *
 * float32: max_rows_f32, expsum_store_rows_f32, scale_rows_f32 (in place). Half types: the driver's
 * passes for them (rows.c, pass1_rows_half and block_pass2_half): widen_max_rows without a scratch
 * (the max of the half row), expsum_store_half_rows (widened as it is read, exps into a float32
 * scratch), scale_narrow_rows (scratch to the half output). Data normal * 3, each pass REPS times
 * over the same rows, interleaved type by type; medians in ns per element.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "fastsoftmax.h"
#include "kernels/half.h"
#include "clock.h"

#define REPS 201

static uint16_t to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return (uint16_t)((u + 0x7FFF + ((u >> 16) & 1)) >> 16);
}

int main(int argc, char **argv)
{
    int64_t rows = argc > 1 ? atoll(argv[1]) : 8, n = argc > 2 ? atoll(argv[2]) : 16384, N = rows * n;
    size_t bytes = ((size_t)N * sizeof(float) + 63) / 64 * 64;
    float *x = (float *)((char *)aligned_alloc(64, bytes + 64) + 16), *y = (float *)((char *)aligned_alloc(64, bytes + 64) + 16);
    float *s = aligned_alloc(64, bytes);
    uint16_t *h[2], *hy = (uint16_t *)((char *)aligned_alloc(64, bytes / 2 + 64) + (getenv("HY_OFF") ? atoi(getenv("HY_OFF")) : 16));
    float *m = malloc(sizeof(float) * rows), *mn = malloc(sizeof(float) * rows);
    double *chi = malloc(sizeof(double) * rows), *clo = calloc(rows, sizeof(double));
    fsm_acc *acc = malloc(sizeof(fsm_acc) * rows);
    static double t[3][3][REPS];
    srand(1);
    for (int b = 0; b < 2; b++) h[b] = (uint16_t *)((char *)aligned_alloc(64, bytes / 2 + 64) + 16);
    for (int64_t i = 0; i < N; i++) {
        double u1 = (rand() + 1.0) / (RAND_MAX + 2.0), u2 = rand() / (RAND_MAX + 1.0);
        h[0][i] = fsm_f32_to_f16((float)(3.0 * sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2)));
        x[i] = fsm_f16_to_f32(h[0][i]);  /* the same values in all three types */
        h[1][i] = to_bf16(x[i]);
    }
    printf("softmax passes, %lld rows x %lld, normal*3 data, ns/element (median of %d)\n", (long long)rows,
           (long long)n, REPS);
    printf("%-10s %-9s %9s %9s %9s %9s %9s\n", "isa", "dtype", "max", "exp", "scale", "sum", "/ f32");
    const char *isas[3] = {"portable", "avx2", "avx512"}, *types[3] = {"float32", "float16", "bfloat16"};
    for (int is = 0; is < 3; is++) {
        if (fsm_set_isa(isas[is]) != 0) continue;
        const fsm_kernels *k = fsm_active();
        for (int rep = 0; rep < REPS; rep++) {
            for (int ty = 0; ty < 3; ty++) {
                double t0 = now();
                if (ty == 0) k->max_rows_f32(x, rows, n, m, mn);
                else k->widen_max_rows(h[ty - 1], NULL, rows, n, m, mn, ty == 2);
                double t1 = now();
                if (ty == 0) k->expsum_store_rows_f32(x, y, rows, n, m, mn, acc, 0);
                else k->expsum_store_half_rows(h[ty - 1], s, rows, n, m, mn, acc, ty == 2);
                double t2 = now();
                for (int64_t r = 0; r < rows; r++) chi[r] = 1.0 / acc[r].sum;
                double t3 = now();
                if (ty == 0) k->scale_rows_f32(y, rows, n, chi, clo, acc);
                else k->scale_narrow_rows(s, hy, rows, n, chi, clo, acc, ty == 2);
                double t4 = now();
                t[ty][0][rep] = t1 - t0; t[ty][1][rep] = t2 - t1; t[ty][2][rep] = t4 - t3;
            }
        }
        double f32sum = 0.0;
        for (int ty = 0; ty < 3; ty++) {
            double med[3], sum = 0.0;
            for (int p = 0; p < 3; p++) {
                qsort(t[ty][p], REPS, sizeof(double), cmp_double);
                med[p] = t[ty][p][REPS / 2] * 1e9 / (double)N;
                sum += med[p];
            }
            if (ty == 0) f32sum = sum;
            printf("%-10s %-9s %9.3f %9.3f %9.3f %9.3f %9.3f\n", isas[is], types[ty], med[0], med[1], med[2], sum,
                   sum / f32sum);
        }
    }
    return 0;
}

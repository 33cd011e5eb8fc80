/*
 * Pass-by-pass timing of the float32 row kernels of every ISA this CPU runs, one thread, no Python:
 * where a softmax / log_softmax / logsumexp call spends its time. Build and run with passes.sh.
 *
 *   passes [rows n [data]]     data: normal3 (default, normal * 3) or wide (uniform(-80, 80))
 *
 * Each pass runs REPS times over the same rows (in cache for the default 256 x 1000); the median
 * ns per element is printed. "scale" is the normalisation pass as softmax runs it on this data
 * (the careful, subnormal-safe loop when the data can give subnormal outputs); "scale careful"
 * forces that loop. The sum of max + expsum_store + scale is the kernel part of a softmax call;
 * max + expsum_exclmax + logshift that of log_softmax; max + expsum_exclmax that of logsumexp.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "fastsoftmax.h"
#include "clock.h"


#define REPS 101
#define PASSES 6

int main(int argc, char **argv)
{
    int64_t rows = argc > 1 ? atoll(argv[1]) : 256, n = argc > 2 ? atoll(argv[2]) : 1000;
    int wide = argc > 3 && strcmp(argv[3], "wide") == 0;
    size_t bytes = ((size_t)(rows * n) * sizeof(float) + 63) / 64 * 64;
    /* 16 bytes past a 64-byte boundary, as NumPy's large arrays are here (glibc malloc) */
    float *x = (float *)((char *)aligned_alloc(64, bytes + 64) + 16), *y = (float *)((char *)aligned_alloc(64, bytes + 64) + 16);
    float *m = malloc(sizeof(float) * rows), *mn = malloc(sizeof(float) * rows);
    double *chi = malloc(sizeof(double) * rows), *clo = calloc(rows, sizeof(double));
    fsm_acc *acc = malloc(sizeof(fsm_acc) * rows), *careful = malloc(sizeof(fsm_acc) * rows);
    static double t[PASSES][REPS];
    const char *names[PASSES] = {"max", "expsum_store", "scale", "scale careful", "expsum_exclmax", "logshift"};
    srand(1);
    for (int64_t i = 0; i < rows * n; i++) {
        double u1 = (rand() + 1.0) / (RAND_MAX + 2.0), u2 = rand() / (RAND_MAX + 1.0);
        x[i] = wide ? (float)(160.0 * u2 - 80.0) : (float)(3.0 * sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2));
    }
    printf("float32 rows %lld x %lld, %s data, ns/element (median of %d)\n", (long long)rows, (long long)n,
           wide ? "uniform(-80, 80)" : "normal*3", REPS);
    printf("%-10s", "isa");
    for (int p = 0; p < PASSES; p++) printf(" %14s", names[p]);
    printf(" %9s %9s %9s\n", "softmax", "log_sm", "lse");
    const char *isas[3] = {"portable", "avx2", "avx512"};
    for (int s = 0; s < 3; s++) {
        if (fsm_set_isa(isas[s]) != 0) continue;
        const fsm_kernels *k = fsm_active();
        for (int rep = 0; rep < REPS; rep++) {
            double t0 = now();
            k->max_rows_f32(x, rows, n, m, mn);
            double t1 = now();
            k->expsum_store_rows_f32(x, y, rows, n, m, mn, acc, 0);
            double t2 = now();
            for (int64_t r = 0; r < rows; r++) chi[r] = 1.0 / acc[r].sum, careful[r] = acc[r], careful[r].e_min = 0.0;
            double t3 = now();
            k->scale_rows_f32(y, rows, n, chi, clo, acc);
            double t4 = now();
            k->scale_rows_f32(y, rows, n, chi, clo, careful);  /* e_min = 0 forces the careful loop */
            double t5 = now();
            k->expsum_exclmax_rows_f32(x, rows, n, m, mn, acc, 0);
            double t6 = now();
            for (int64_t r = 0; r < rows; r++) chi[r] = log1p(acc[r].sum / acc[r].unit);
            double t7 = now();
            k->logshift_rows_f32(x, y, rows, n, m, chi, clo);
            double t8 = now();
            t[0][rep] = t1 - t0; t[1][rep] = t2 - t1; t[2][rep] = t4 - t3; t[3][rep] = t5 - t4;
            t[4][rep] = t6 - t5; t[5][rep] = t8 - t7;
        }
        double med[PASSES];
        printf("%-10s", isas[s]);
        for (int p = 0; p < PASSES; p++) {
            qsort(t[p], REPS, sizeof(double), cmp_double);
            med[p] = t[p][REPS / 2] * 1e9 / (double)(rows * n);
            printf(" %14.3f", med[p]);
        }
        printf(" %9.3f %9.3f %9.3f\n", med[0] + med[1] + med[2], med[0] + med[4] + med[5], med[0] + med[4]);
    }
    return 0;
}

/*
 * A/B micro-benchmark of two builds of one ISA's float32 row kernels, interleaved repetition by
 * repetition in one process (this machine's clock drifts too much for separate runs to compare).
 * ab.sh builds both with -Dfsm_kernels_<isa>=fsm_kernels_a / fsm_kernels_b, e.g. for AVX2:
 *
 *   cc -O3 -ffp-contract=off -I../../csrc -Dfsm_kernels_avx2=fsm_kernels_a -c ../../csrc/kernels/avx2.c -o a.o
 *   cc -O3 -ffp-contract=off -I/tmp/variant/csrc -Dfsm_kernels_avx2=fsm_kernels_b \
 *      -c /tmp/variant/csrc/kernels/avx2.c -o b.o
 *   cc -O3 -I../../csrc -I. ab_bench.c a.o b.o -lm -o ab && ./ab 256 1000
 *
 * Reports the median ns per element of each pass for A and B and the ratio B/A. F64=1 in the
 * environment times the float64 kernels instead (the same passes, double data).
 */
#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include <time.h>
#include "fastsoftmax.h"
#include "clock.h"

extern const fsm_kernels *const fsm_kernels_a;
extern const fsm_kernels *const fsm_kernels_b;

/* The kernels ask cpu.c whether subnormal arithmetic is free; ab.sh links no cpu.c: the integer form,
   unless FSM_SUBNORMALS_FREE is set. */
int fsm_subnormals_free(void) { return getenv("FSM_SUBNORMALS_FREE") != NULL; }
/* ... and whether to round bfloat16 with AVX512_BF16 (the half paths only; these passes are float32): no. */
int fsm_bf16cvt(void) { return 0; }


#define REPS 301
static double t[5][2][REPS];

/* The same passes over float64 rows (F64=1). */
static void time_f64(const fsm_kernels *const ks[2], int64_t rows, int64_t n, double scale)
{
    double *x = malloc(sizeof(double) * rows * n), *y = malloc(sizeof(double) * rows * n);
    double *m = malloc(sizeof(double) * rows), *mn = malloc(sizeof(double) * rows);
    double *chi = malloc(sizeof(double) * rows), *clo = calloc(rows, sizeof(double));
    fsm_acc *acc = malloc(sizeof(fsm_acc) * rows);
    srand(1);
    for (int64_t i = 0; i < rows * n; i++) {
        double u1 = (rand() + 1.0) / (RAND_MAX + 2.0), u2 = rand() / (RAND_MAX + 1.0);
        x[i] = scale * sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2);
    }
    for (int rep = 0; rep < REPS; rep++)
        for (int v = 0; v < 2; v++) {
            const fsm_kernels *k = ks[v];
            double t0 = now();
            k->max_rows_f64(x, rows, n, m, mn);
            double t1 = now();
            k->expsum_store_rows_f64(x, y, rows, n, m, mn, acc, 0);
            double t2 = now();
            for (int64_t r = 0; r < rows; r++) chi[r] = 1.0 / acc[r].sum;
            double t3 = now();
            k->scale_rows_f64(y, rows, n, chi, clo, acc);
            double t4 = now();
            k->expsum_exclmax_rows_f64(x, rows, n, m, mn, acc, 0);
            double t5 = now();
            for (int64_t r = 0; r < rows; r++) chi[r] = log1p(acc[r].sum / acc[r].unit);
            double t6 = now();
            k->logshift_rows_f64(x, y, rows, n, m, chi, clo);
            double t7 = now();
            t[0][v][rep] = t1 - t0; t[1][v][rep] = t2 - t1; t[2][v][rep] = t4 - t3; t[3][v][rep] = t5 - t4;
            t[4][v][rep] = t7 - t6;
        }
}

int main(int argc, char **argv)
{
    int64_t rows = argc > 1 ? atoll(argv[1]) : 256, n = argc > 2 ? atoll(argv[2]) : 1000;
    double scale = argc > 3 ? atof(argv[3]) : 3.0;
    const fsm_kernels *const ks[2] = {fsm_kernels_a, fsm_kernels_b};
    float *x = malloc(sizeof(float) * rows * n), *y = malloc(sizeof(float) * rows * n);
    float *m = malloc(sizeof(float) * rows), *mn = malloc(sizeof(float) * rows);
    double *chi = malloc(sizeof(double) * rows), *clo = calloc(rows, sizeof(double));
    fsm_acc *acc = malloc(sizeof(fsm_acc) * rows);
    const char *names[5] = {"max", "expsum_store", "scale", "expsum_exclmax", "logshift"};
    const int f64 = getenv("F64") && atoi(getenv("F64"));
    srand(1);
    for (int64_t i = 0; i < rows * n; i++) {
        double u1 = (rand() + 1.0) / (RAND_MAX + 2.0), u2 = rand() / (RAND_MAX + 1.0);
        x[i] = (float)(scale * sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2));
    }
    if (f64) time_f64(ks, rows, n, scale);
    for (int rep = 0; rep < REPS && !f64; rep++)
        for (int v = 0; v < 2; v++) {
            const fsm_kernels *k = ks[v];
            double t0 = now();
            k->max_rows_f32(x, rows, n, m, mn);
            double t1 = now();
            k->expsum_store_rows_f32(x, y, rows, n, m, mn, acc, 0);
            double t2 = now();
            for (int64_t r = 0; r < rows; r++) chi[r] = 1.0 / acc[r].sum;
            double t3 = now();
            k->scale_rows_f32(y, rows, n, chi, clo, acc);
            double t4 = now();
            k->expsum_exclmax_rows_f32(x, rows, n, m, mn, acc, 0);
            double t5 = now();
            for (int64_t r = 0; r < rows; r++) chi[r] = log1p(acc[r].sum / acc[r].unit);
            double t6 = now();
            k->logshift_rows_f32(x, y, rows, n, m, chi, clo);
            double t7 = now();
            t[0][v][rep] = t1 - t0; t[1][v][rep] = t2 - t1; t[2][v][rep] = t4 - t3; t[3][v][rep] = t5 - t4;
            t[4][v][rep] = t7 - t6;
        }
    printf("%s rows %lld x %lld, A = %s, B = %s\n", f64 ? "float64" : "float32", (long long)rows, (long long)n, ks[0]->algorithm, ks[1]->algorithm);
    for (int p = 0; p < 5; p++) {
        double med[2];
        for (int v = 0; v < 2; v++) {
            qsort(t[p][v], REPS, sizeof(double), cmp_double);
            med[v] = t[p][v][REPS / 2] * 1e9 / (double)(rows * n);
        }
        printf("%-16s A %6.3f  B %6.3f ns/elt  B/A %.3f\n", names[p], med[0], med[1], med[1] / med[0]);
    }
    return 0;
}

/* Shared by the micro-benchmarks: a monotonic clock and the comparison for qsort of timings. */
#ifndef FSM_BENCH_CLOCK_H
#define FSM_BENCH_CLOCK_H
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}
#endif

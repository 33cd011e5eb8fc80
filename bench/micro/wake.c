/*
 * How long a sleeping thread takes to run after a condition-variable signal: the floor under what a
 * woken helper (csrc/threads.c) can contribute to a call. The signaller waits a pause (the helper
 * has gone to sleep), signals, then keeps its own CPU busy for 0.5 ms, as a caller working on its
 * tasks would; the woken thread records the time from the signal to its return from the wait.
 *
 *   cc -O2 -pthread bench/micro/wake.c -o /tmp/wake && /tmp/wake
 *
 * Four settings: the waiter at normal priority or SCHED_BATCH (as the helpers), and free to run on
 * any CPU or pinned to another CPU than the signaller's (as the helpers are steered, Linux). Prints
 * the median, p90 and p99 over 1000 wakes each.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define WAKES 1000

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int posted, acked;  /* the signaller posts wake i + 1 only after wake i was acknowledged */
static double t_signal, latency[WAKES];

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void pin(int cpu)
{
    cpu_set_t s;
    CPU_ZERO(&s);
    CPU_SET(cpu, &s);
    sched_setaffinity(0, sizeof s, &s);
}

typedef struct { int batch, cpu; } waiter_cfg;

static void *waiter(void *arg)
{
    const waiter_cfg *w = (const waiter_cfg *)arg;
    if (w->batch) {
        struct sched_param p = {0};
        sched_setscheduler(0, SCHED_BATCH, &p);
    }
    if (w->cpu >= 0) pin(w->cpu);
    for (int i = 0; i < WAKES; i++) {
        pthread_mutex_lock(&mu);
        while (posted != i + 1) pthread_cond_wait(&cv, &mu);
        latency[i] = now() - t_signal;
        acked = i + 1;
        pthread_cond_broadcast(&cv);
        pthread_mutex_unlock(&mu);
    }
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void run(int batch, int pinned)
{
    waiter_cfg w = {batch, pinned ? 1 : -1};
    pthread_t t;
    cpu_set_t all;
    sched_getaffinity(0, sizeof all, &all);
    if (pinned) pin(0);
    posted = acked = 0;
    pthread_create(&t, NULL, waiter, &w);
    for (int i = 0; i < WAKES; i++) {
        usleep(2000);
        pthread_mutex_lock(&mu);
        t_signal = now();
        posted = i + 1;
        pthread_cond_signal(&cv);
        pthread_mutex_unlock(&mu);
        for (double end = now() + 5e-4; now() < end;) {
        }
        pthread_mutex_lock(&mu);
        while (acked != i + 1) pthread_cond_wait(&cv, &mu);
        pthread_mutex_unlock(&mu);
    }
    pthread_join(t, NULL);
    sched_setaffinity(0, sizeof all, &all);
    qsort(latency, WAKES, sizeof latency[0], cmp_double);
    printf("%-12s %-22s median %7.1f us   p90 %7.1f   p99 %7.1f\n", batch ? "SCHED_BATCH" : "normal",
           pinned ? "pinned to another CPU" : "any CPU", latency[WAKES / 2] * 1e6, latency[WAKES * 9 / 10] * 1e6,
           latency[WAKES * 99 / 100] * 1e6);
}

int main(void)
{
    if (sysconf(_SC_NPROCESSORS_ONLN) < 2) {
        printf("needs two CPUs\n");
        return 0;
    }
    for (int batch = 0; batch < 2; batch++)
        for (int pinned = 0; pinned < 2; pinned++) run(batch, pinned);
    return 0;
}

/*
 * Row / block / column driver: splits the work, calls one kernel per row, block or column chunk.
 * This is the only file that talks to OpenMP (the FSM_* macros below are no-ops without it).
 *
 * Thread policy: threads <= 0 means the default, fsm_default_threads(). A call whose work is below
 * FSM_MIN_WORK elements per thread uses fewer threads, and a call that would use one thread never
 * starts a team. Rows (in batches), blocks of long rows and column blocks are handed out dynamically
 * (results do not depend on which thread computes what): a thread that the OS runs late then does
 * less. The team still joins at the end of each region: on an oversubscribed machine a call can wait
 * for a descheduled worker (measured here with load 6 on 2 cores: 20 ms instead of 0.3 ms for
 * (256, 1000)); threads=1 or FASTSOFTMAX_NUM_THREADS=1 avoids it. In a child process created by fork() after
 * the parent used a team, every call runs on one thread: libgomp's pool does not survive fork()
 * (GCC bug 60035) and a team started there can hang.
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "fastsoftmax.h"
#include "ops.h"

#if defined(FSM_WITH_OPENMP) && defined(_OPENMP)
#include <omp.h>
#define FSM_PRAGMA(x) _Pragma(#x)
#define FSM_PARALLEL(t) FSM_PRAGMA(omp parallel num_threads(t) if ((t) > 1))
#define FSM_PARALLEL_FOR(t) FSM_PRAGMA(omp parallel for schedule(dynamic, 1) num_threads(t) if ((t) > 1))
#define FSM_FOR_DYNAMIC FSM_PRAGMA(omp for schedule(dynamic, 1))
#define FSM_SINGLE FSM_PRAGMA(omp single)
#define FSM_HAVE_OPENMP 1
#else
#define FSM_PARALLEL(t)
#define FSM_PARALLEL_FOR(t)
#define FSM_FOR_DYNAMIC
#define FSM_SINGLE
#define FSM_HAVE_OPENMP 0
#endif

#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#define FSM_HAVE_ATFORK 1
#endif

#define FSM_BLOCK ((int64_t)16384)     /* elements per row block: fixed, so results never depend on threads */
#define FSM_BATCH 256                  /* short rows per kernel call */
#define FSM_BATCH_ELEMS ((int64_t)8192) /* ... and at most this many elements, so the batch stays in L1/L2 */
#define FSM_COLS FSM_COLS_MAX          /* columns per task in the non-last-axis layout */
#define FSM_SCRATCH_BYTES ((int64_t)65536) /* per-thread scratch for column blocks (below malloc's mmap threshold) */
#define FSM_MIN_WORK ((int64_t)65536)  /* elements per thread below which fewer threads are used */

/* Prefetch hint (no effect on results): a read, or a write when `w` is 1, into all cache levels. */
#if defined(__GNUC__) || defined(__clang__)
#define FSM_PREFETCH(p, w) __builtin_prefetch((p), (w), 3)
#else
#define FSM_PREFETCH(p, w) ((void)(p))
#endif

static volatile int in_forked_child;

#ifdef FSM_HAVE_ATFORK
static void on_fork_child(void) { in_forked_child = 1; }
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
static void register_atfork(void) { pthread_atfork(NULL, NULL, on_fork_child); }
#endif

int fsm_openmp_enabled(void) { return FSM_HAVE_OPENMP; }

int fsm_default_threads(void)
{
    const char *env = getenv("FASTSOFTMAX_NUM_THREADS");
    if (env && *env) {
        char *end;
        long v = strtol(env, &end, 10);
        if (*end == '\0' && v > 0) return v > 1024 ? 1024 : (int)v;
    }
#if FSM_HAVE_OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

/*
 * Concurrent callers share one budget of fsm_default_threads() threads (a call that asks for more
 * raises its own budget to that). A call (fsm_compute) adds the t threads it wants to the busy
 * count, runs on what the budget had left before it (`got`: t, fewer, or only its own calling thread
 * when none was left) and subtracts t when done. It charges t, not got: while a call that got fewer
 * runs, later calls see less left than there is and run on fewer threads. So 8 Python threads
 * calling at once use ~the budget (plus one calling thread per call that found it taken), not 8 teams.
 * A call from inside an OpenMP parallel region (a nested caller) gets one thread from OpenMP itself
 * (nested parallelism is off by default).
 */
#if defined(_MSC_VER) && !defined(__clang__)
#include <intrin.h>
static volatile long threads_busy;
static int busy_add(int v) { return (int)_InterlockedExchangeAdd(&threads_busy, v); }
#else
static int threads_busy;
static int busy_add(int v) { return __atomic_fetch_add(&threads_busy, v, __ATOMIC_RELAXED); }
#endif

static int effective_threads(int requested, int64_t work, int64_t tasks)
{
#if FSM_HAVE_OPENMP
    if (in_forked_child || work < 2 * FSM_MIN_WORK || requested == 1) return 1;  /* no team: no need to ask */
    int t = requested > 0 ? requested : fsm_default_threads();
    if (t > omp_get_num_procs()) t = omp_get_num_procs();  /* more threads than CPUs never helps */
    int64_t by_work = work / FSM_MIN_WORK;
    if (by_work < t) t = (int)(by_work > 0 ? by_work : 1);
    if (tasks < t) t = (int)(tasks > 0 ? tasks : 1);
#ifdef FSM_HAVE_ATFORK
    if (t > 1) pthread_once(&atfork_once, register_atfork);
#endif
    return t;
#else
    (void)requested; (void)work; (void)tasks;
    return 1;
#endif
}

/*
 * Per-row scalars of float64 rows (merge factors, 1/S, log1p(S')) are formed in the x87 80-bit
 * format where long double is that (64-bit significand): libm's double log1p can be ~1 ulp off,
 * which alone would use half of the float64 error budget. Elsewhere: double.
 */
#if LDBL_MANT_DIG == 64
typedef long double fsm_wide;
#define FSM_EXPL expl
#define FSM_LOG1PL log1pl
#else
typedef double fsm_wide;
#define FSM_EXPL exp
#define FSM_LOG1PL log1p
#endif

typedef struct { double m; fsm_acc acc; } fsm_block;                /* one block's pass-1 statistics */
typedef struct { double m, hi, lo; fsm_wide wide_inv; } fsm_row;    /* M and the row's factor or log */

#define T float
#define W double
#define SFX f32
#define FSM_EXPW exp
#define FSM_LOG1PW log1p
#include "rows_dtype.h"
#undef T
#undef W
#undef SFX
#undef FSM_EXPW
#undef FSM_LOG1PW
#define T double
#define W fsm_wide
#define SFX f64
#define FSM_EXPW FSM_EXPL
#define FSM_LOG1PW FSM_LOG1PL
#include "rows_dtype.h"
#undef T
#undef W
#undef SFX
#undef FSM_EXPW
#undef FSM_LOG1PW

int fsm_compute(fsm_op op, fsm_dtype dtype, const void *x, void *y,
                int64_t outer, int64_t n, int64_t inner, int threads)
{
    const fsm_kernels *k = fsm_active();
    const fsm_op_passes *p = &fsm_ops[op];
    int64_t work = outer * n * inner;
    int64_t tasks = inner > 1 ? outer * ((inner + FSM_COLS - 1) / FSM_COLS)
                    : n <= FSM_BLOCK ? outer : outer * ((n + FSM_BLOCK - 1) / FSM_BLOCK);
    int t = effective_threads(threads, work, tasks);
    if (t <= 1) {
        if (dtype == FSM_F32) return compute_f32(k, p, (const float *)x, (float *)y, outer, n, inner, 1);
        return compute_f64(k, p, (const double *)x, (double *)y, outer, n, inner, 1);
    }
    int budget = fsm_default_threads();
    if (threads > budget) budget = threads;  /* an explicit request above the default is honoured */
    int before = busy_add(t);
    int got = before >= budget ? 1 : (budget - before < t ? budget - before : t);
    int rc = dtype == FSM_F32 ? compute_f32(k, p, (const float *)x, (float *)y, outer, n, inner, got)
                              : compute_f64(k, p, (const double *)x, (double *)y, outer, n, inner, got);
    busy_add(-t);
    return rc;
}

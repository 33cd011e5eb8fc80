/*
 * Row / block / column driver: splits the work, calls one kernel per row, block or column chunk.
 * This is the only file that talks to OpenMP (the FSM_* macros below are no-ops without it).
 *
 * Thread policy: threads <= 0 means the default, fsm_default_threads(). A call whose work is below
 * FSM_MIN_WORK elements per thread uses fewer threads, and a call that would use one thread never
 * starts a team. Rows are split across threads (static schedule); a row longer than FSM_BLOCK with
 * fewer rows than threads has its blocks split instead. In a child process created by fork() after
 * the parent used a team, every call runs on one thread: libgomp's pool does not survive fork()
 * (GCC bug 60035) and a team started there can hang.
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include "fastsoftmax.h"

#if defined(FSM_WITH_OPENMP) && defined(_OPENMP)
#include <omp.h>
#define FSM_PRAGMA(x) _Pragma(#x)
#define FSM_PARALLEL(t) FSM_PRAGMA(omp parallel num_threads(t) if ((t) > 1))
#define FSM_PARALLEL_FOR(t) FSM_PRAGMA(omp parallel for schedule(static) num_threads(t) if ((t) > 1))
#define FSM_FOR_STATIC FSM_PRAGMA(omp for schedule(static))
#define FSM_SINGLE FSM_PRAGMA(omp single)
#define FSM_HAVE_OPENMP 1
#else
#define FSM_PARALLEL(t)
#define FSM_PARALLEL_FOR(t)
#define FSM_FOR_STATIC
#define FSM_SINGLE
#define FSM_HAVE_OPENMP 0
#endif

#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#define FSM_HAVE_ATFORK 1
#endif

#define FSM_BLOCK ((int64_t)16384)     /* elements per row block: fixed, so results never depend on threads */
#define FSM_COLS 256                   /* columns per task in the non-last-axis layout */
#define FSM_MIN_WORK ((int64_t)65536)  /* elements per thread below which fewer threads are used */

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

static int effective_threads(int requested, int64_t work, int64_t tasks)
{
#if FSM_HAVE_OPENMP
    if (in_forked_child) return 1;
    int t = requested > 0 ? requested : fsm_default_threads();
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
 * log1p(s_hi + s_lo) as hi + lo, once per row. Where long double is the x87 80-bit format the log
 * is taken there (64-bit significand): libm's double log1p can be ~1 ulp off, which alone would
 * use half of the float64 error budget of log_softmax and logsumexp. Elsewhere: double log1p.
 */
static void log1p_dd(double s_hi, double s_lo, double *hi, double *lo)
{
#if LDBL_MANT_DIG == 64
    long double l = log1pl((long double)s_hi + (long double)s_lo);
    *hi = (double)l;
    *lo = (double)(l - (long double)*hi);
#else
    *hi = log1p(s_hi);
    *lo = s_lo / (1.0 + s_hi);
#endif
}

/* tot += a, with the error of the sum kept in sum_lo (TwoSum). */
static void acc_merge(fsm_acc *tot, const fsm_acc *a)
{
    double t = tot->sum + a->sum, bp = t - tot->sum;
    tot->sum_lo += (tot->sum - (t - bp)) + (a->sum - bp) + a->sum_lo;
    tot->sum = t;
    tot->n_max += a->n_max;
}

#define T float
#define SFX f32
#include "rows_dtype.h"
#undef T
#undef SFX
#define T double
#define SFX f64
#include "rows_dtype.h"
#undef T
#undef SFX

int fsm_compute(fsm_op op, fsm_dtype dtype, const void *x, void *y,
                int64_t outer, int64_t n, int64_t inner, int threads)
{
    const fsm_kernels *k = fsm_active();
    int64_t work = outer * n * inner;
    int64_t tasks = inner == 1 ? (outer > 1 || n <= FSM_BLOCK ? outer : (n + FSM_BLOCK - 1) / FSM_BLOCK)
                               : outer * ((inner + FSM_COLS - 1) / FSM_COLS);
    if (inner == 1 && outer > 1 && n > FSM_BLOCK) {
        int64_t blocks = outer * ((n + FSM_BLOCK - 1) / FSM_BLOCK);
        tasks = blocks;
    }
    int t = effective_threads(threads, work, tasks);
    if (dtype == FSM_F32) return compute_f32(k, op, (const float *)x, (float *)y, outer, n, inner, t);
    return compute_f64(k, op, (const double *)x, (double *)y, outer, n, inner, t);
}

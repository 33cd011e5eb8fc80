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
#define FSM_OPS_TABLE 1 /* ops.h: the op table lives here */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "fastsoftmax.h"

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
#ifndef FSM_HALF_BATCH_ELEMS
#define FSM_HALF_BATCH_ELEMS ((int64_t)4096) /* half types: the batch's float32 scratch stays in L1 */
#endif
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

/* The out-of-cache path (rows_dtype.h) counts the calls it takes, so that tests see it was taken
   (a plain counter: concurrent callers may lose a count, which no result depends on). */
static volatile int64_t stream_calls;
static void fsm_stream_calls_add(void) { stream_calls = stream_calls + 1; }
int64_t fsm_stream_calls(void) { return stream_calls; }

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

/*
 * float16 and bfloat16 (bf = 0 / 1): each piece of work is widened into a float32 scratch that stays
 * in cache, computed there in place by the float32 driver above (the same kernels, the same bits as
 * the float32 call on the widened data), and rounded once into y. The pieces are the float32 paths'
 * own: a batch of short rows, one block of a long row (widened just before its pass 1, narrowed just
 * after its pass 2, so each block is read from memory once and written once), a column block.
 * Error of a half result: 0.5 ulp of the half type for the rounding, plus the float32 kernel's
 * <= 1.6 ulp of float32 (2^-13 of a float16 ulp, 2^-16 of a bfloat16 ulp).
 */
/* The max pass and pass 1 of half rows: widened into s while their max is taken, then pass 1 on s. */
static void pass1_rows_half(const fsm_kernels *k, const fsm_op_passes *p, int bf, const uint16_t *x, float *s,
                            int64_t rows, int64_t n, float *m, float *mn, fsm_acc *acc)
{
    k->widen_max_rows(x, s, rows, n, m, p->max_pass == FSM_MAX_AND_MIN ? mn : NULL, bf);
    if (p->pass1 == FSM_PASS1_STORE_EXPS)
        k->expsum_store_rows_f32(s, s, rows, n, m, mn, acc);
    else
        k->expsum_exclmax_rows_f32(s, rows, n, m, acc);
}

/* rows_short_f32's passes for half rows, through the float32 scratch s (rows * n elements). */
static void rows_short_half(const fsm_kernels *k, const fsm_op_passes *p, int bf, const uint16_t *x, uint16_t *y,
                            int64_t rows, int64_t n, float *s)
{
    float m[FSM_BATCH], mn[FSM_BATCH], v[FSM_BATCH];
    fsm_acc acc[FSM_BATCH];
    double hi[FSM_BATCH], lo[FSM_BATCH];
    pass1_rows_half(k, p, bf, x, s, rows, n, m, mn, acc);
    for (int64_t r = 0; r < rows; r++) {
        fsm_block b = {(double)m[r], acc[r]};
        fsm_row st;
        merge_f32(p, &b, 1, &st);
        row_factor_f32(p, &st, &acc[r], &hi[r], &lo[r]);
        if (p->last == FSM_LAST_ROW_VALUE) v[r] = lse_value_f32(m[r], st.hi, st.lo);
    }
    if (p->last == FSM_LAST_SCALE) {
        for (int64_t r = 0; r < rows; r++)  /* pass 1 skipped these rows: s held no exps */
            if (isnan(hi[r]))
                for (int64_t i = 0; i < n; i++) s[r * n + i] = NAN;
        k->scale_narrow_rows(s, y, rows, n, hi, lo, acc, bf);
    } else if (p->last == FSM_LAST_LOGSHIFT) {
        k->logshift_rows_f32(s, s, rows, n, m, hi, lo);
        k->narrow_half(s, y, rows * n, bf);
    } else {
        k->narrow_half(v, y, rows, bf);
    }
}

/* The last pass of one block of a half row: block_pass2_f32 on the scratch s, rounded into y. */
static void block_pass2_half(const fsm_kernels *k, const fsm_op_passes *p, int bf, float *s, uint16_t *y,
                             int64_t len, const fsm_block *b, const fsm_row *r)
{
    if (p->last == FSM_LAST_SCALE && !isnan(r->hi) && (float)b->m != -INFINITY) {
        double c = block_factor_f32((float)b->m, (float)r->m) * r->wide_inv / b->acc.unit;
        double hi = c, lo = 0.0;  /* the wide type of float32 rows is double: c's low part is 0 */
        k->scale_narrow_rows(s, y, 1, len, &hi, &lo, &b->acc, bf);
        return;
    }
    block_pass2_f32(k, p, s, s, len, b, r);
    k->narrow_half(s, y, len, bf);
}

/* One long row through a float32 scratch of n elements, block by block (row_blocks_f32's passes): each
   block is widened just before its pass 1 and narrowed in its pass 2. */
static int row_blocks_half(const fsm_kernels *k, const fsm_op_passes *p, int bf, const uint16_t *x, uint16_t *y,
                           int64_t n, int threads)
{
    const int64_t nb = (n + FSM_BLOCK - 1) / FSM_BLOCK;
    fsm_block *bs = (fsm_block *)malloc((size_t)nb * sizeof(fsm_block));
    float *s = (float *)malloc((size_t)n * sizeof(float));
    fsm_row r;
    if (!bs || !s) {
        free(bs);
        free(s);
        return -1;
    }
    FSM_PARALLEL(threads)
    {
        FSM_FOR_DYNAMIC
        for (int64_t b = 0; b < nb; b++) {
            int64_t len = n - b * FSM_BLOCK < FSM_BLOCK ? n - b * FSM_BLOCK : FSM_BLOCK;
            float m, mn;
            pass1_rows_half(k, p, bf, x + b * FSM_BLOCK, s + b * FSM_BLOCK, 1, len, &m, &mn, &bs[b].acc);
            bs[b].m = (double)m;
        }
        FSM_SINGLE
        merge_f32(p, bs, nb, &r);
        if (p->last != FSM_LAST_ROW_VALUE) {
            FSM_FOR_DYNAMIC
            for (int64_t b = 0; b < nb; b++) {
                int64_t len = n - b * FSM_BLOCK < FSM_BLOCK ? n - b * FSM_BLOCK : FSM_BLOCK;
                block_pass2_half(k, p, bf, s + b * FSM_BLOCK, y + b * FSM_BLOCK, len, &bs[b], &r);
            }
        }
    }
    if (p->last == FSM_LAST_ROW_VALUE) {
        float v = lse_value_f32((float)r.m, r.hi, r.lo);
        k->narrow_half(&v, y, 1, bf);
    }
    free(bs);
    free(s);
    return 0;
}

static int compute_half(const fsm_kernels *k, const fsm_op_passes *p, int bf, const uint16_t *x, uint16_t *y,
                        int64_t outer, int64_t n, int64_t inner, int threads)
{
    const int64_t out_n = p->one_output_per_row ? 1 : n;
    if (inner == 1) {
        if (n <= FSM_BLOCK) {  /* batches as in compute_f32, each widened into a scratch on the stack */
            int64_t batch = FSM_HALF_BATCH_ELEMS / n;
            batch = batch < 1 ? 1 : batch > FSM_BATCH ? FSM_BATCH : batch;
            const int64_t nbatch = (outer + batch - 1) / batch;
            FSM_PARALLEL_FOR(threads)
            for (int64_t b = 0; b < nbatch; b++) {
                float s[FSM_BATCH_ELEMS > FSM_BLOCK ? FSM_BATCH_ELEMS : FSM_BLOCK];
                int64_t r0 = b * batch, rows = outer - r0 < batch ? outer - r0 : batch;
                rows_short_half(k, p, bf, x + r0 * n, y + r0 * out_n, rows, n, s);
            }
            return 0;
        }
        if (outer >= threads) {
            int failed = 0;
            FSM_PARALLEL_FOR(threads)
            for (int64_t r = 0; r < outer; r++)
                if (row_blocks_half(k, p, bf, x + r * n, y + r * out_n, n, 1)) failed = 1;
            return failed ? -1 : 0;
        }
        for (int64_t r = 0; r < outer; r++)
            if (row_blocks_half(k, p, bf, x + r * n, y + r * out_n, n, threads)) return -1;
        return 0;
    }
    /* Columns: always through a float32 scratch block (compute_f32's, padded the same way), at least
       16 columns wide, computed in place, then narrowed row by row into y. */
    const int64_t out_stride = out_n * inner, pad = 16;
    int64_t width = FSM_SCRATCH_BYTES / (int64_t)sizeof(float) / n - pad;
    width = width >= FSM_COLS ? FSM_COLS : width < 16 ? 16 : width - width % 16;
    if (width > inner) width = inner;
    const int64_t chunks = (inner + width - 1) / width, pitch = width + pad;
    int failed = 0;
    FSM_PARALLEL(threads)
    {
        float *s = (float *)malloc((size_t)(n * pitch) * sizeof(float));
        float v[FSM_COLS];
        if (!s) failed = 1;
        FSM_FOR_DYNAMIC
        for (int64_t t = 0; t < outer * chunks; t++) {
            if (!s) continue;
            int64_t o = t / chunks, j0 = (t % chunks) * width;
            int64_t cols = inner - j0 < width ? inner - j0 : width;
            const uint16_t *xb = x + o * n * inner + j0;
            uint16_t *yb = y + o * out_stride + j0;
            for (int64_t i = 0; i < n; i++) k->widen_half(xb + i * inner, s + i * pitch, cols, bf);
            if (p->one_output_per_row) {
                cols_f32(k, p, s, s, n, pitch, cols, v, 0);
                k->narrow_half(v, yb, cols, bf);
            } else {
                cols_f32(k, p, s, s, n, pitch, cols, s, pitch);
                for (int64_t i = 0; i < n; i++) k->narrow_half(s + i * pitch, yb + i * inner, cols, bf);
            }
        }
        free(s);
    }
    return failed ? -1 : 0;
}

static int compute_any(const fsm_kernels *k, const fsm_op_passes *p, fsm_dtype dtype, const void *x, void *y,
                       int64_t outer, int64_t n, int64_t inner, int threads)
{
    switch (dtype) {
    case FSM_F32: return compute_f32(k, p, (const float *)x, (float *)y, outer, n, inner, threads);
    case FSM_F64: return compute_f64(k, p, (const double *)x, (double *)y, outer, n, inner, threads);
    case FSM_F16:
    case FSM_BF16:
        return compute_half(k, p, dtype == FSM_BF16, (const uint16_t *)x, (uint16_t *)y, outer, n, inner, threads);
    }
    return -2;
}

int fsm_compute(fsm_op op, fsm_dtype dtype, const void *x, void *y,
                int64_t outer, int64_t n, int64_t inner, int threads)
{
    const fsm_kernels *k = fsm_active();
    const fsm_op_passes *p = &fsm_ops[op];
    int64_t work = outer * n * inner;
    int64_t tasks = inner > 1 ? outer * ((inner + FSM_COLS - 1) / FSM_COLS)
                    : n <= FSM_BLOCK ? outer : outer * ((n + FSM_BLOCK - 1) / FSM_BLOCK);
    int t = effective_threads(threads, work, tasks);
    if (t <= 1) return compute_any(k, p, dtype, x, y, outer, n, inner, 1);
    int budget = fsm_default_threads();
    if (threads > budget) budget = threads;  /* an explicit request above the default is honoured */
    int before = busy_add(t);
    int got = before >= budget ? 1 : (budget - before < t ? budget - before : t);
    int rc = compute_any(k, p, dtype, x, y, outer, n, inner, got);
    busy_add(-t);
    return rc;
}

int fsm_row_stats(fsm_dtype dtype, const void *x, int64_t rows, int64_t n, double *m, double *l_hi, double *l_lo)
{
    const fsm_kernels *k = fsm_active();
    if (dtype == FSM_F32) return row_stats_f32(k, (const float *)x, rows, n, m, l_hi, l_lo);
    if (dtype == FSM_F64) return row_stats_f64(k, (const double *)x, rows, n, m, l_hi, l_lo);
    return -2;
}

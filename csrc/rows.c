/*
 * Row / block / column driver: cuts each call into tasks (batches of short rows, long rows or their
 * blocks, column blocks) whose boundaries depend on the shape only, and hands them to the runner in
 * threads.c, which decides which thread runs each one (the thread policy is described there). So
 * the result is the same bit for bit for any number of threads.
 */
#define FSM_OPS_TABLE 1 /* ops.h: the op table lives here */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "fastsoftmax.h"
#include "threads.h"
/* The weighted logsumexp's code outside its inner loops (rows_dtype.h) is optimised for size (GCC): the
   release wheel's size limit. */
#if defined(__GNUC__) && !defined(__clang__)
#define FSM_WSMALL __attribute__((optimize("Os")))
#else
#define FSM_WSMALL
#endif
/* x86-64: the weighted logsumexp's pass over (a, b, exps) in SSE2, AVX2 where the active kernels are
   AVX2, or AVX-512 where they are AVX-512 (rows_dtype.h, wsum); elsewhere plain C (the same bits) */
#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__) || defined(_MSC_VER)) && \
    !defined(FSM_WSUM_PLAIN) /* -DFSM_WSUM_PLAIN: the plain C loop (tests of its bits) */
#include <immintrin.h>
#define FSM_WSUM_SSE2 1
#if defined(__GNUC__) || defined(__clang__)
#define FSM_WSUM_AVX2 __attribute__((target("avx2")))
#define FSM_WSUM_AVX512 __attribute__((target("avx512f")))
#else
#define FSM_WSUM_AVX2
#define FSM_WSUM_AVX512
#endif
#endif

#define FSM_BLOCK ((int64_t)16384)     /* elements per row block: fixed, so results never depend on threads */
#define FSM_BATCH 256                  /* short rows per kernel call */
#define FSM_BATCH_ELEMS ((int64_t)8192) /* ... and at most this many elements, so the batch stays in L1/L2 */
/* The weighted logsumexp's batches of short rows: at most this many bytes of a, so that a, b and the
   exps (three times this) stay in L1 for the pass over all three. With the plain batches (8192
   elements) that pass read from L2: logsumexp b= of (4096, 1000) took 1.86-1.99x the call without b
   (Zen 5, float32 and float64), 1.28-1.30x (float32) and 1.73-1.76x (float64) with these; 16384 bytes
   measured 1.66 / 1.90. */
#ifndef FSM_WBATCH_BYTES
#define FSM_WBATCH_BYTES ((int64_t)8192)
#endif
#define FSM_COLS FSM_COLS_MAX          /* columns per task in the non-last-axis layout */
#define FSM_SCRATCH_BYTES ((int64_t)65536) /* per-thread scratch for column blocks (below malloc's mmap threshold) */
#ifndef FSM_HALF_BATCH_ELEMS
#define FSM_HALF_BATCH_ELEMS ((int64_t)4096) /* half types: the batch's float32 scratch stays in L1 */
#endif
#define FSM_BLOCK_LEN(n, b) ((n) - (b) * FSM_BLOCK < FSM_BLOCK ? (n) - (b) * FSM_BLOCK : FSM_BLOCK)

/* p rounded up to a 64-byte boundary (scratch floats whose vector stores should not straddle lines;
   the allocation carries 64 bytes more). */
static inline float *fsm_align64(void *p) { return (float *)(((uintptr_t)p + 63) & ~(uintptr_t)63); }

#define FSM_COLS_PREFETCH_SLICE 32  /* columns of a block computed between two prefetch slices (rows_dtype.h) */

/*
 * Per-row scalars of float64 rows (merge factors, 1/S, log1p(S')) are formed in the x87 80-bit
 * format where long double is that (64-bit significand): libm's double log1p can be ~1 ulp off,
 * which alone would use half of the float64 error budget. Elsewhere: double.
 */
#if LDBL_MANT_DIG == 64
typedef long double fsm_wide;
#define FSM_EXPL expl
#define FSM_LOG1PL log1pl
#define FSM_LOGL logl
#else
typedef double fsm_wide;
#define FSM_EXPL exp
#define FSM_LOG1PL log1p
#define FSM_LOGL log
#endif

/* The out-of-cache path (rows_dtype.h) counts the calls it takes, so that tests see it was taken
   (a plain counter: concurrent callers may lose a count, which no result depends on). */
static volatile int64_t stream_calls;
static void fsm_stream_calls_add(void) { stream_calls = stream_calls + 1; }
int64_t fsm_stream_calls(void) { return stream_calls; }
/* ... and so do the calls whose long rows prefetch their next block (rows_dtype.h prefetch_wanted) */
static volatile int64_t prefetch_calls;
static void fsm_prefetch_calls_add(void) { prefetch_calls = prefetch_calls + 1; }
int64_t fsm_prefetch_calls(void) { return prefetch_calls; }

/* The row pitch (elements) of a column block's scratch: an odd number of cache lines, so that a
   column's rows fall into distinct L1 sets and no row aliases a row a few steps back modulo 4 KiB (a
   pitch of 48 lines, 752 + 16 floats, put every fourth row of a column in the same set and made each
   load wait on the store four rows earlier). At most two lines above the width. */
static int64_t fsm_col_pitch(int64_t width, int64_t elem_size)
{
    int64_t lines = (width * elem_size + 63) / 64;
    if (lines % 2 == 0) lines++;
    return lines * 64 / elem_size;
}

#define FSM_LANES_N 48 /* rows_lanes: the longest rows it takes (logsumexp; its tile: 64 bytes a row element) */
#define FSM_LANES_N_ELEMENTWISE 32 /* ... and for softmax and log_softmax */
enum { FSM_PF_NONE = 0, FSM_PF_BLOCKS = 1, FSM_PF_NEXT_ROW = 2 };  /* row_blocks' prefetch (rows_dtype.h) */
typedef struct { double m; fsm_acc acc; } fsm_block;                /* one block's pass-1 statistics */
typedef struct { double m, hi, lo; fsm_wide wide_inv; } fsm_row;    /* M and the row's factor or log */

#define T float
#define W double
#define SFX f32
#define FSM_COL_FUSED 1
#define FSM_EXPW exp
#define FSM_LOG1PW log1p
#define FSM_LOGW log
#include "rows_dtype.h"
#undef T
#undef W
#undef SFX
#undef FSM_EXPW
#undef FSM_LOG1PW
#undef FSM_COL_FUSED
#define FSM_COL_FUSED 0
#undef FSM_LOGW
#define T double
#define W fsm_wide
#define SFX f64
#define FSM_EXPW FSM_EXPL
#define FSM_LOG1PW FSM_LOG1PL
#define FSM_LOGW FSM_LOGL
#include "rows_dtype.h"
#undef T
#undef W
#undef SFX
#undef FSM_EXPW
#undef FSM_LOG1PW
#undef FSM_LOGW

/*
 * float16 and bfloat16 (bf = 0 / 1): each piece of work is widened into a float32 scratch that stays
 * in cache, computed there in place by the float32 driver above (the same kernels, the same bits as
 * the float32 call on the widened data), and rounded once into y. The pieces are the float32 paths'
 * own: a batch of short rows, one block of a long row (widened just before its pass 1, narrowed just
 * after its pass 2, so each block is read from memory once and written once), a column block.
 * Softmax's pass 1 widens as it reads (expsum_store_half_rows) instead of the max pass storing the
 * widened row: the scratch is written once, by the exps, and the max pass and the exp pass read
 * 2 bytes an element (the block is still in cache for the second). Measured on Zen 4 (AVX-512, one
 * thread, ÷ the float32 call): (64, 32000) 1.04-1.07 -> 0.94-1.00 (float16), 1.13 -> 0.95-1.00
 * (bfloat16); (1, 128256) 1.08-1.12 -> 1.05-1.10 and 1.14-1.18 -> 1.11-1.15.
 * Error of a half result: 0.5 ulp of the half type for the rounding, plus the float32 kernel's
 * <= 1.6 ulp of float32 (2^-13 of a float16 ulp, 2^-16 of a bfloat16 ulp).
 */
/* The max pass and pass 1 of half rows. Softmax: the max taken on x, then the exps of x (widened as
   they are read) stored in s. The others: widened into s while their max is taken, then pass 1 on s
   (the logshift pass reads the widened row again). */
static void pass1_rows_half(const fsm_kernels *k, const fsm_op_passes *p, int bf, const uint16_t *x, float *s,
                            int64_t rows, int64_t n, float *m, float *mn, fsm_acc *acc)
{
    if (p->pass1 == FSM_PASS1_STORE_EXPS) {
        k->widen_max_rows(x, NULL, rows, n, m, p->max_pass == FSM_MAX_AND_MIN ? mn : NULL, bf);
        k->expsum_store_half_rows(x, s, rows, n, m, mn, acc, bf);
        return;
    }
    k->widen_max_rows(x, s, rows, n, m, p->max_pass == FSM_MAX_AND_MIN ? mn : NULL, bf);
    k->expsum_exclmax_rows_f32(s, rows, n, m, p->max_pass == FSM_MAX_AND_MIN ? mn : NULL, acc, 0);
}

/* rows_short_f32's passes for half rows, through the float32 scratch s (rows * n elements). */
static void rows_short_half(const fsm_kernels *k, const fsm_op_passes *p, int bf, const uint16_t *x, uint16_t *y,
                            int64_t rows, int64_t n, float *s)
{
    float m[FSM_BATCH], mn[FSM_BATCH], v[FSM_BATCH];
    fsm_acc acc[FSM_BATCH];
    double hi[FSM_BATCH], lo[FSM_BATCH];
    if (lanes_wanted_f32(k, p, n) || (p->pass1 == FSM_PASS1_STORE_EXPS && p->last == FSM_LAST_SCALE)) {
        /* the float32 paths that take a whole batch (tile lanes, the fused softmax): widened into s,
           computed there in place by the float32 driver, rounded once (the float32 call's bits) */
        k->widen_half(x, s, rows * n, bf);
        rows_short_any_f32(k, p, s, s, rows, n, -1);
        k->narrow_half(s, y, p->last == FSM_LAST_ROW_VALUE ? rows : rows * n, bf);
        return;
    }
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

/* One long row through a float32 scratch s of n elements, on the calling thread (row_blocks_f32's
   passes): each block is widened just before its pass 1 and narrowed in its pass 2. */
static void row_blocks_half(const fsm_kernels *k, const fsm_op_passes *p, int bf, const uint16_t *x, uint16_t *y,
                            int64_t n, fsm_block *bs, float *s)
{
    const int64_t nb = (n + FSM_BLOCK - 1) / FSM_BLOCK;
    fsm_row r;
    for (int64_t b = 0; b < nb; b++) {
        float m, mn;
        pass1_rows_half(k, p, bf, x + b * FSM_BLOCK, s + b * FSM_BLOCK, 1, FSM_BLOCK_LEN(n, b), &m, &mn, &bs[b].acc);
        bs[b].m = (double)m;
    }
    merge_f32(p, bs, nb, &r);
    if (p->last != FSM_LAST_ROW_VALUE) {
        for (int64_t b = 0; b < nb; b++)
            block_pass2_half(k, p, bf, s + b * FSM_BLOCK, y + b * FSM_BLOCK, FSM_BLOCK_LEN(n, b), &bs[b], &r);
    } else {
        float v = lse_value_f32((float)r.m, r.hi, r.lo);
        k->narrow_half(&v, y, 1, bf);
    }
}

/* compute_f32's tasks for half data (see the call type in rows_dtype.h); s: the float32 scratch of
   the rows in blocks (outer * n elements). */
typedef struct {
    const fsm_kernels *k;
    const fsm_op_passes *p;
    int bf;
    const uint16_t *x;
    uint16_t *y;
    int64_t n, inner, out_n, batch, outer, nb;
    fsm_block *bs;
    fsm_row *rs;
    float *s;
    int64_t width, chunks, pitch;
    int failed;
} half_call;

static void task_short_half(void *ctx, int phase, int64_t b, void **local)
{
    half_call *c = (half_call *)ctx;
    _Alignas(64) float s[FSM_BATCH_ELEMS > FSM_BLOCK ? FSM_BATCH_ELEMS : FSM_BLOCK];
    int64_t r0 = b * c->batch, rows = c->outer - r0 < c->batch ? c->outer - r0 : c->batch;
    (void)phase; (void)local;
    rows_short_half(c->k, c->p, c->bf, c->x + r0 * c->n, c->y + r0 * c->out_n, rows, c->n, s);
}

static void task_row_half(void *ctx, int phase, int64_t r, void **local)
{
    half_call *c = (half_call *)ctx;
    (void)phase;
    if (!*local) {  /* this thread's row scratch: the blocks' statistics, then n floats from a 64-byte boundary */
        *local = malloc((size_t)c->nb * sizeof(fsm_block) + 64 + (size_t)c->n * sizeof(float));
        if (!*local) {
            c->failed = 1;
            return;
        }
    }
    fsm_block *bs = (fsm_block *)*local;
    row_blocks_half(c->k, c->p, c->bf, c->x + r * c->n, c->y + r * c->out_n, c->n, bs, fsm_align64(bs + c->nb));
}

static void task_block_half(void *ctx, int phase, int64_t i, void **local)
{
    half_call *c = (half_call *)ctx;
    int64_t r = i / c->nb, b = i % c->nb, len = FSM_BLOCK_LEN(c->n, b);
    float *s = c->s + r * c->n + b * FSM_BLOCK;
    (void)local;
    if (phase == 0) {
        float m, mn;
        pass1_rows_half(c->k, c->p, c->bf, c->x + r * c->n + b * FSM_BLOCK, s, 1, len, &m, &mn, &c->bs[i].acc);
        c->bs[i].m = (double)m;
    } else {
        block_pass2_half(c->k, c->p, c->bf, s, c->y + r * c->n + b * FSM_BLOCK, len, &c->bs[i], &c->rs[r]);
    }
}

static void merge_rows_half(void *ctx, int phase)
{
    half_call *c = (half_call *)ctx;
    (void)phase;
    for (int64_t r = 0; r < c->outer; r++) {
        merge_f32(c->p, c->bs + r * c->nb, c->nb, &c->rs[r]);
        if (c->p->last == FSM_LAST_ROW_VALUE) {
            float v = lse_value_f32((float)c->rs[r].m, c->rs[r].hi, c->rs[r].lo);
            c->k->narrow_half(&v, c->y + r, 1, c->bf);
        }
    }
}

/* Columns: through a float32 scratch block (compute_f32's, padded the same way), computed in place,
   then narrowed row by row into y. */
static void task_cols_half(void *ctx, int phase, int64_t t, void **local)
{
    half_call *c = (half_call *)ctx;
    const int64_t n = c->n, inner = c->inner, width = c->width, pitch = c->pitch;
    float v[FSM_COLS];
    (void)phase;
    if (!*local) {
        *local = malloc((size_t)(n * pitch) * sizeof(float) + 64);
        if (!*local) {
            c->failed = 1;
            return;
        }
    }
    float *s = fsm_align64(*local);  /* vectors of whole lines, as task_cols's scratch */
    int64_t o = t / c->chunks, j0 = (t % c->chunks) * width;
    int64_t cols = inner - j0 < width ? inner - j0 : width;
    const uint16_t *xb = c->x + o * n * inner + j0;
    uint16_t *yb = c->y + o * c->out_n * inner + j0;
    for (int64_t i = 0; i < n; i++) c->k->widen_half(xb + i * inner, s + i * pitch, cols, c->bf);
    if (c->p->one_output_per_row) {
        cols_f32(c->k, c->p, s, s, n, pitch, cols, v, 0);
        c->k->narrow_half(v, yb, cols, c->bf);
    } else {
        cols_f32(c->k, c->p, s, s, n, pitch, cols, s, pitch);
        for (int64_t i = 0; i < n; i++) c->k->narrow_half(s + i * pitch, yb + i * inner, cols, c->bf);
    }
}

static int compute_half(const fsm_kernels *k, const fsm_op_passes *p, int bf, const uint16_t *x, uint16_t *y,
                        int64_t outer, int64_t n, int64_t inner, int threads)
{
    half_call c;
    fsm_work w = {0};
    void *s_mem = NULL;
    memset(&c, 0, sizeof c);
    c.k = k;
    c.p = p;
    c.bf = bf;
    c.x = x;
    c.y = y;
    c.n = n;
    c.inner = inner;
    c.outer = outer;
    c.out_n = p->one_output_per_row ? 1 : n;
    c.nb = (n + FSM_BLOCK - 1) / FSM_BLOCK;
    w.ctx = &c;
    w.nphases = 1;
    if (inner == 1 && n <= FSM_BLOCK) {  /* batches as in compute_f32, each widened into a scratch on the stack */
        int64_t batch = FSM_HALF_BATCH_ELEMS / n;
        c.batch = batch < 1 ? 1 : batch > FSM_BATCH ? FSM_BATCH : batch;
        w.task = task_short_half;
        w.ntasks[0] = (outer + c.batch - 1) / c.batch;
    } else if (inner == 1 && outer >= threads) {
        w.task = task_row_half;
        w.ntasks[0] = outer;
    } else if (inner == 1) {
        c.bs = (fsm_block *)malloc((size_t)(outer * c.nb) * sizeof(fsm_block));
        c.rs = (fsm_row *)malloc((size_t)outer * sizeof(fsm_row));
        s_mem = malloc(64 + (size_t)(outer * n) * sizeof(float));  /* the float32 rows, from a 64-byte boundary */
        if (!c.bs || !c.rs || !s_mem) {
            free(c.bs);
            free(c.rs);
            free(s_mem);
            return -1;
        }
        c.s = fsm_align64(s_mem);
        w.task = task_block_half;
        w.between = merge_rows_half;
        w.nphases = p->last == FSM_LAST_ROW_VALUE ? 1 : 2;
        w.ntasks[0] = w.ntasks[1] = outer * c.nb;
    } else {  /* at least 16 columns wide */
        int64_t width = FSM_SCRATCH_BYTES / (int64_t)sizeof(float) / n - 128 / (int64_t)sizeof(float);
        width = width >= FSM_COLS ? FSM_COLS : width < 16 ? 16 : width - width % 16;
        if (width > inner) width = inner;
        c.width = width;
        c.pitch = fsm_col_pitch(width, (int64_t)sizeof(float));
        c.chunks = (inner + width - 1) / width;
        w.task = task_cols_half;
        w.ntasks[0] = outer * c.chunks;
    }
    fsm_run(&w, threads);
    free(c.bs);
    free(c.rs);
    free(s_mem);
    return c.failed ? -1 : 0;
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
    int64_t tasks = inner > 1 ? outer * ((inner + FSM_COLS - 1) / FSM_COLS)
                    : n <= FSM_BLOCK ? outer : outer * ((n + FSM_BLOCK - 1) / FSM_BLOCK);
    int t = fsm_plan_threads(threads, outer * n * inner, tasks);
    return compute_any(fsm_active(), &fsm_ops[op], dtype, x, y, outer, n, inner, t);
}

int fsm_row_stats(fsm_dtype dtype, const void *x, int64_t rows, int64_t n, double *m, double *l_hi, double *l_lo)
{
    const fsm_kernels *k = fsm_active();
    if (dtype == FSM_F32) return row_stats_f32(k, (const float *)x, rows, n, m, l_hi, l_lo);
    if (dtype == FSM_F64) return row_stats_f64(k, (const double *)x, rows, n, m, l_hi, l_lo);
    return -2;
}

FSM_WSMALL int64_t fsm_lse_weighted(fsm_dtype dtype, const void *a, const void *b, int64_t rows, int64_t n, void *out, void *sgn,
                         uint8_t *redo, int return_sign, int threads)
{
    int64_t tasks = n <= FSM_BLOCK ? rows : rows * ((n + FSM_BLOCK - 1) / FSM_BLOCK);
    int t = fsm_plan_threads(threads, 2 * rows * n, tasks);
    if (dtype == FSM_F32)
        return lse_weighted_f32(fsm_active(), (const float *)a, (const float *)b, rows, n, (float *)out, (float *)sgn,
                                redo, return_sign, t);
    if (dtype == FSM_F64)
        return lse_weighted_f64(fsm_active(), (const double *)a, (const double *)b, rows, n, (double *)out,
                                (double *)sgn, redo, return_sign, t);
    return -2;
}

/*
 * Top-k probabilities and next-token sampling over rows of logits, in O(n) per row, no sort of the row.
 *
 * top-k softmax. The k largest probabilities of softmax(z) are those of the k largest z, so the
 * selection runs on the logits and only the k winners ever see an exponential:
 *   1. one max-and-sum pass: the row max M and L = log(sum exp(z - M)) as a double pair, from the
 *      softmax op's SIMD passes with the exps kept in an in-cache scratch (rows.c's fsm_row_stats). Its
 *      sums are compensated (float32 rows exact to ~2^-30 of the sum, float64 rows to a few units of
 *      2^-53 or better), which bounds L's absolute error and so each probability's relative error;
 *   2. the selection: for k <= FSM_SEL_SMALL_K a sorted buffer of k, fed only by chunks of 16 holding an
 *      element above its last entry (after the first few thousand elements almost every chunk is
 *      skipped by one vector compare); for larger k the k-th largest key by the radix cut below, then
 *      the elements above it and, in index order, those equal to it; sorted at the end (k log k);
 *   3. p = exp((z - M) - L) for the k winners, with z - M and its difference from L carried exactly
 *      (TwoSum) and the product formed in long double where that is the x87 format. The errors are
 *      then the final rounding (0.5 ulp), L's, and a few units of 2^-60: measured <= 0.65 ulp for
 *      float32 and <= 0.72 ulp for float64. Where long double is double, libm's exp and one
 *      product add ~0.5 ulp for float64.
 * Ties are broken by the lower index everywhere (the buffer inserts after equal values; the radix
 * path takes tied elements in index order; the final sort orders by (value, index)).
 *
 * Sampling. The probabilities p are the softmax kernel's (the same bits on every ISA and for any
 * thread count, so one seed gives one index everywhere). Each filter keeps the elements at or above
 * a threshold on p, and the filters compose by taking the largest threshold:
 *   top_k   t_k = the k-th largest p (every element equal to it is kept: ties are not split);
 *   top_p   among p >= t_k, the largest t with mass(p >= t) >= top_p * mass(p >= t_k): the smallest
 *           set of the most likely elements whose mass reaches top_p (elements tied at the cut kept);
 *   min_p   p >= min_p * max p (renormalising does not change the ratio).
 * Each threshold comes from a radix selection on the monotone integer key of p (its bits): a
 * histogram of the top 11 bits of every key, weighted by 1 (top_k) or by p (top_p), locates the
 * bucket where the running count / mass crosses the target; that bucket's elements are collected
 * and histogrammed on the next bits, and so on until the key is exact or a handful is left, which is
 * sorted. Two passes over the row plus work on the candidates: O(n), whatever the distribution
 * (all-equal logits put every element in one bucket, which the next levels split).
 * The draw: u (one uniform double per row, from the caller's generator) times the kept mass,
 * located in index order. The kept mass is summed per block of FSM_SEL_DRAW_BLOCK elements, the
 * block where u * mass is crossed is found from those sums, and only that block is walked. Where
 * the in-block sum or u * mass falls a rounding short, the last kept element is drawn: the bias
 * is one rounding of a double sum (~1e-16 of the mass).
 * Elements with p = 0 (exp underflow, -inf logits) are never drawn: the crossing needs the sum to grow.
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "select.h"
#include "threads.h"

#define FSM_SEL_SMALL 64          /* candidate sets at most this large are sorted instead of histogrammed */
#define FSM_SEL_FULL_HIST 16384   /* rows at least this long: the first digit in four interleaved full histograms */
#define FSM_SEL_SMALL_K 64        /* top-k: a sorted buffer up to this k, the radix cut above it */
#define FSM_SEL_DRAW_BLOCK 1024   /* elements per block of the draw's kept-mass sums */

#if LDBL_MANT_DIG == 64
typedef long double fsm_sel_wide; /* x87: float64 top-k products and exp in 64-bit significands */
#define FSM_SEL_EXP expl
#else
typedef double fsm_sel_wide;
#define FSM_SEL_EXP exp
#endif

/* Monotone keys: KEY(a) < KEY(b) exactly when a < b (no NaN here); -0 and +0 have one key. */
static inline uint32_t key_f32(float v)
{
    uint32_t u;
    v += 0.0f;  /* -0 -> +0 */
    memcpy(&u, &v, sizeof u);
    return (u & 0x80000000u) ? ~u : u | 0x80000000u;
}

static inline uint64_t key_f64(double v)
{
    uint64_t u;
    v += 0.0;
    memcpy(&u, &v, sizeof u);
    return (u & 0x8000000000000000u) ? ~u : u | 0x8000000000000000u;
}

/*
 * The row sweeps that are not histograms, vectorised with SSE2 where the compiler targets x86-64
 * (every x86-64 CPU has it: no dispatch), in plain C elsewhere. Both forms give the same bits: the
 * kept-mass sum has 8 lanes (element i in lane i % 8), combined as ((l0+l2)+(l4+l6)) +
 * ((l1+l3)+(l5+l7)), then the tail added in order; a max and a compare are exact.
 */
#if defined(__SSE2__) || defined(_M_X64) || (defined(_M_IX86_FP) && _M_IX86_FP >= 2)
#include <emmintrin.h>
#define FSM_SEL_SSE2 1
#endif

/* The mask of the z[j] > thr, j < 16 (bit j) */
static inline unsigned above16_f32(const float *z, float thr)
{
#ifdef FSM_SEL_SSE2
    __m128 t = _mm_set1_ps(thr);
    return (unsigned)(_mm_movemask_ps(_mm_cmpgt_ps(_mm_loadu_ps(z), t)) |
                      _mm_movemask_ps(_mm_cmpgt_ps(_mm_loadu_ps(z + 4), t)) << 4 |
                      _mm_movemask_ps(_mm_cmpgt_ps(_mm_loadu_ps(z + 8), t)) << 8 |
                      _mm_movemask_ps(_mm_cmpgt_ps(_mm_loadu_ps(z + 12), t)) << 12);
#else
    unsigned m = 0;
    for (int j = 0; j < 16; j++) m |= (unsigned)(z[j] > thr) << j;
    return m;
#endif
}

static inline unsigned above16_f64(const double *z, double thr)
{
#ifdef FSM_SEL_SSE2
    __m128d t = _mm_set1_pd(thr);
    unsigned m = 0;
    for (int j = 0; j < 16; j += 2) m |= (unsigned)_mm_movemask_pd(_mm_cmpgt_pd(_mm_loadu_pd(z + j), t)) << j;
    return m;
#else
    unsigned m = 0;
    for (int j = 0; j < 16; j++) m |= (unsigned)(z[j] > thr) << j;
    return m;
#endif
}

/* the index of the lowest set bit of m != 0 */
static inline int lowest_bit(unsigned m)
{
#if defined(__GNUC__) || defined(__clang__)
    return __builtin_ctz(m);
#else
    int j = 0;
    while (!(m & 1u)) {
        m >>= 1;
        j++;
    }
    return j;
#endif
}

/* sum of the p[i] >= tv, i < len, in double (the lane order above) */
static double kept_sum_f32(const float *p, int64_t len, float tv)
{
    int64_t i = 0;
    double r;
#ifdef FSM_SEL_SSE2
    __m128 t = _mm_set1_ps(tv);
    __m128d a0 = _mm_setzero_pd(), a1 = a0, a2 = a0, a3 = a0;
    for (; i + 8 <= len; i += 8) {
        __m128 x0 = _mm_loadu_ps(p + i), x1 = _mm_loadu_ps(p + i + 4);
        x0 = _mm_and_ps(x0, _mm_cmpge_ps(x0, t));
        x1 = _mm_and_ps(x1, _mm_cmpge_ps(x1, t));
        a0 = _mm_add_pd(a0, _mm_cvtps_pd(x0));
        a1 = _mm_add_pd(a1, _mm_cvtps_pd(_mm_movehl_ps(x0, x0)));
        a2 = _mm_add_pd(a2, _mm_cvtps_pd(x1));
        a3 = _mm_add_pd(a3, _mm_cvtps_pd(_mm_movehl_ps(x1, x1)));
    }
    __m128d a = _mm_add_pd(_mm_add_pd(a0, a1), _mm_add_pd(a2, a3));
    r = _mm_cvtsd_f64(a) + _mm_cvtsd_f64(_mm_unpackhi_pd(a, a));
#else
    double l[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (; i + 8 <= len; i += 8)
        for (int j = 0; j < 8; j++) l[j] += p[i + j] >= tv ? (double)p[i + j] : 0.0;
    r = ((l[0] + l[2]) + (l[4] + l[6])) + ((l[1] + l[3]) + (l[5] + l[7]));
#endif
    for (; i < len; i++) r += p[i] >= tv ? (double)p[i] : 0.0;
    return r;
}

static double kept_sum_f64(const double *p, int64_t len, double tv)
{
    int64_t i = 0;
    double r;
#ifdef FSM_SEL_SSE2
    __m128d t = _mm_set1_pd(tv);
    __m128d a0 = _mm_setzero_pd(), a1 = a0, a2 = a0, a3 = a0;
    for (; i + 8 <= len; i += 8) {
        __m128d x0 = _mm_loadu_pd(p + i), x1 = _mm_loadu_pd(p + i + 2);
        __m128d x2 = _mm_loadu_pd(p + i + 4), x3 = _mm_loadu_pd(p + i + 6);
        a0 = _mm_add_pd(a0, _mm_and_pd(x0, _mm_cmpge_pd(x0, t)));
        a1 = _mm_add_pd(a1, _mm_and_pd(x1, _mm_cmpge_pd(x1, t)));
        a2 = _mm_add_pd(a2, _mm_and_pd(x2, _mm_cmpge_pd(x2, t)));
        a3 = _mm_add_pd(a3, _mm_and_pd(x3, _mm_cmpge_pd(x3, t)));
    }
    __m128d a = _mm_add_pd(_mm_add_pd(a0, a1), _mm_add_pd(a2, a3));
    r = _mm_cvtsd_f64(a) + _mm_cvtsd_f64(_mm_unpackhi_pd(a, a));
#else
    double l[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (; i + 8 <= len; i += 8)
        for (int j = 0; j < 8; j++) l[j] += p[i + j] >= tv ? p[i + j] : 0.0;
    r = ((l[0] + l[2]) + (l[4] + l[6])) + ((l[1] + l[3]) + (l[5] + l[7]));
#endif
    for (; i < len; i++) r += p[i] >= tv ? p[i] : 0.0;
    return r;
}

/* The indices i < n with lo <= v[i] < hi, in order, to cand; returns how many. */
static int64_t collect_range_f32(const float *v, int64_t n, float lo, float hi, int64_t *cand)
{
    int64_t nc = 0, i = 0;
#ifdef FSM_SEL_SSE2
    __m128 l = _mm_set1_ps(lo), h = _mm_set1_ps(hi);
    for (; i + 8 <= n; i += 8) {
        __m128 a = _mm_loadu_ps(v + i), b = _mm_loadu_ps(v + i + 4);
        int m = _mm_movemask_ps(_mm_and_ps(_mm_cmpge_ps(a, l), _mm_cmplt_ps(a, h))) |
                _mm_movemask_ps(_mm_and_ps(_mm_cmpge_ps(b, l), _mm_cmplt_ps(b, h))) << 4;
        if (!m) continue;
        for (int j = 0; j < 8; j++) {
            cand[nc] = i + j;
            nc += (m >> j) & 1;
        }
    }
#endif
    for (; i < n; i++) {
        cand[nc] = i;
        nc += v[i] >= lo && v[i] < hi;
    }
    return nc;
}

static int64_t collect_range_f64(const double *v, int64_t n, double lo, double hi, int64_t *cand)
{
    int64_t nc = 0, i = 0;
#ifdef FSM_SEL_SSE2
    __m128d l = _mm_set1_pd(lo), h = _mm_set1_pd(hi);
    for (; i + 4 <= n; i += 4) {
        __m128d a = _mm_loadu_pd(v + i), b = _mm_loadu_pd(v + i + 2);
        int m = _mm_movemask_pd(_mm_and_pd(_mm_cmpge_pd(a, l), _mm_cmplt_pd(a, h))) |
                _mm_movemask_pd(_mm_and_pd(_mm_cmpge_pd(b, l), _mm_cmplt_pd(b, h))) << 2;
        if (!m) continue;
        for (int j = 0; j < 4; j++) {
            cand[nc] = i + j;
            nc += (m >> j) & 1;
        }
    }
#endif
    for (; i < n; i++) {
        cand[nc] = i;
        nc += v[i] >= lo && v[i] < hi;
    }
    return nc;
}

/* the largest of p[0 .. n) (no NaN) */
static float max_of_f32(const float *p, int64_t n)
{
    int64_t i = 0;
    float m = p[0];
#ifdef FSM_SEL_SSE2
    if (n >= 8) {
        __m128 a = _mm_loadu_ps(p), b = _mm_loadu_ps(p + 4);
        for (i = 8; i + 8 <= n; i += 8) {
            a = _mm_max_ps(a, _mm_loadu_ps(p + i));
            b = _mm_max_ps(b, _mm_loadu_ps(p + i + 4));
        }
        float l[4];
        _mm_storeu_ps(l, _mm_max_ps(a, b));
        for (int j = 0; j < 4; j++) m = l[j] > m ? l[j] : m;
    }
#endif
    for (; i < n; i++) m = p[i] > m ? p[i] : m;
    return m;
}

static double max_of_f64(const double *p, int64_t n)
{
    int64_t i = 0;
    double m = p[0];
#ifdef FSM_SEL_SSE2
    if (n >= 4) {
        __m128d a = _mm_loadu_pd(p), b = _mm_loadu_pd(p + 2);
        for (i = 4; i + 4 <= n; i += 4) {
            a = _mm_max_pd(a, _mm_loadu_pd(p + i));
            b = _mm_max_pd(b, _mm_loadu_pd(p + i + 2));
        }
        double l[2];
        _mm_storeu_pd(l, _mm_max_pd(a, b));
        m = l[0] > m ? l[0] : m;
        m = l[1] > m ? l[1] : m;
    }
#endif
    for (; i < n; i++) m = p[i] > m ? p[i] : m;
    return m;
}

#define T float
#define K uint32_t
#define SFX f32
#define KEY key_f32
#define FSM_DTYPE FSM_F32
#define FSM_NEXTUP(c) nextafterf((c), INFINITY)
#define WIDE double
#define WIDE_EXP exp
#include "select_dtype.h"
#undef T
#undef K
#undef SFX
#undef KEY
#undef FSM_DTYPE
#undef FSM_NEXTUP
#undef WIDE
#undef WIDE_EXP

#define T double
#define K uint64_t
#define SFX f64
#define KEY key_f64
#define FSM_DTYPE FSM_F64
#define FSM_NEXTUP(c) nextafter((c), INFINITY)
#define WIDE fsm_sel_wide
#define WIDE_EXP FSM_SEL_EXP
#include "select_dtype.h"
#undef T
#undef K
#undef SFX
#undef KEY
#undef FSM_DTYPE
#undef FSM_NEXTUP
#undef WIDE
#undef WIDE_EXP

/*
 * The calls: rows in tasks of at least FSM_SEL_TASK_ELEMS elements (whole rows), run by threads.c's
 * runner, each thread with its own scratch. Every row is computed by the same code whichever thread
 * takes it, so results do not depend on the thread count.
 */
#define FSM_SEL_TASK_ELEMS ((int64_t)65536)

typedef struct {
    fsm_dtype dtype;
    const void *x;
    int64_t rows, n, per_task, k, top_k;
    double top_p, min_p;
    const double *u;
    void *probs;
    int64_t *out;
    signed char *status;
    size_t scratch;
    volatile int failed;
} sel_call;

static int64_t rows_per_task(int64_t n)
{
    int64_t r = FSM_SEL_TASK_ELEMS / (n > 0 ? n : 1);
    return r < 1 ? 1 : r;
}

/* the thread's scratch (allocated at its first task; the runner frees it), or NULL with the call failed */
static void *sel_scratch(sel_call *c, void **local)
{
    if (!*local) *local = malloc(c->scratch);
    if (!*local) c->failed = 1;
    return *local;
}

static void topk_task(void *ctx, int phase, int64_t task, void **local)
{
    sel_call *c = (sel_call *)ctx;
    (void)phase;
    void *s = sel_scratch(c, local);
    if (!s) return;
    int64_t r0 = task * c->per_task, r1 = r0 + c->per_task < c->rows ? r0 + c->per_task : c->rows;
    int rc = c->dtype == FSM_F32
                 ? topk_rows_f32((const float *)c->x, r0, r1, c->n, c->k, (float *)c->probs, c->out, c->status, s)
                 : topk_rows_f64((const double *)c->x, r0, r1, c->n, c->k, (double *)c->probs, c->out, c->status, s);
    if (rc != FSM_SEL_OK) c->failed = 1;
}

static void sample_task(void *ctx, int phase, int64_t task, void **local)
{
    sel_call *c = (sel_call *)ctx;
    (void)phase;
    void *s = sel_scratch(c, local);
    if (!s) return;
    int64_t r0 = task * c->per_task, r1 = r0 + c->per_task < c->rows ? r0 + c->per_task : c->rows;
    if (c->dtype == FSM_F32)
        sample_rows_f32((const float *)c->x, r0, r1, c->n, c->top_k, c->top_p, c->min_p, c->u, c->out, s);
    else
        sample_rows_f64((const double *)c->x, r0, r1, c->n, c->top_k, c->top_p, c->min_p, c->u, c->out, s);
}

static void sel_run(sel_call *c, fsm_task_fn fn, int threads)
{
    fsm_work w;
    memset(&w, 0, sizeof w);
    w.task = fn;
    w.ctx = c;
    w.nphases = 1;
    w.ntasks[0] = (c->rows + c->per_task - 1) / c->per_task;
    fsm_run(&w, fsm_plan_threads(threads, c->rows * c->n, w.ntasks[0]));
}

int fsm_topk_softmax(fsm_dtype dtype, const void *z, int64_t rows, int64_t n, int64_t k, void *probs,
                     int64_t *idx, int64_t *bad_row, int threads)
{
    sel_call c;
    memset(&c, 0, sizeof c);
    c.dtype = dtype;
    c.x = z;
    c.rows = rows;
    c.n = n;
    c.k = k;
    c.probs = probs;
    c.out = idx;
    c.per_task = rows_per_task(n);
    c.scratch = dtype == FSM_F32 ? topk_scratch_f32(c.per_task, n, k) : topk_scratch_f64(c.per_task, n, k);
    c.status = (signed char *)malloc((size_t)(rows > 0 ? rows : 1));
    if (!c.status) return FSM_SEL_NOMEM;
    sel_run(&c, topk_task, threads);
    int rc = c.failed ? FSM_SEL_NOMEM : FSM_SEL_OK;
    for (int64_t r = 0; rc == FSM_SEL_OK && r < rows; r++)  /* the first bad row, whichever thread saw it */
        if (c.status[r] != FSM_SEL_OK) {
            *bad_row = r;
            rc = c.status[r];
        }
    free(c.status);
    return rc;
}

int fsm_sample(fsm_dtype dtype, const void *p, int64_t rows, int64_t n, int64_t top_k, double top_p, double min_p,
               const double *u, int64_t *out, int threads)
{
    sel_call c;
    memset(&c, 0, sizeof c);
    c.dtype = dtype;
    c.x = p;
    c.rows = rows;
    c.n = n;
    c.top_k = top_k;
    c.top_p = top_p;
    c.min_p = min_p;
    c.u = u;
    c.out = out;
    c.per_task = rows_per_task(n);
    c.scratch = dtype == FSM_F32 ? sample_scratch_f32(n) : sample_scratch_f64(n);
    sel_run(&c, sample_task, threads);
    return c.failed ? FSM_SEL_NOMEM : FSM_SEL_OK;
}

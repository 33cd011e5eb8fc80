/*
 * fastsoftmax C core: softmax, log_softmax and logsumexp over contiguous float32/float64 data
 * (float16/bfloat16 too: widened to float32 in the driver, rows.c).
 *
 * Layout. Every call is described by (outer, n, inner): the data is outer blocks of n rows of
 * inner contiguous elements, and the reduction runs over n (stride inner). inner == 1 is the
 * contiguous-row case; inner > 1 is a non-last reduced axis (NCHW logits over C), vectorised
 * across inner. softmax/log_softmax write outer*n*inner outputs; logsumexp writes outer*inner.
 *
 * The math (per row x of length n, m = max x):
 *   softmax_i     = exp(x_i - m) / s,            s  = sum_j exp(x_j - m)
 *   log_softmax_i = (x_i - m) - log1p(s'),       s' = sum_{x_j < m} exp(x_j - m) + (k - 1)
 *   logsumexp     = m + log1p(s'),               k  = number of j with x_j == m
 * Taking the k maxima out of the sum keeps log1p(s') accurate when one logit dominates
 * (log(s) with s = 1 + 1e-17 would lose every digit of the answer).
 *
 * Numerical stability and accuracy (the argument behind "<= 2 ulp"; kernels/template.h has the steps):
 *   1. No rounded x - m enters exp. float32 kernels reduce x itself (exact Cody-Waite reduction, the
 *      row's scale 2^-K folded into the exponent), or x - m when |m| > 240, which is then exact for
 *      every element that is not clamped (Sterbenz); float64 kernels do the same in double lanes
 *      (x itself, or x - m when |m| > 2^40).
 *   2. exp: float32 data uses float32 lanes, a degree-6 polynomial fitted for relative error
 *      (2^-28), rounded once to float32. float64 data uses a table of 2^(j/16) (hi + lo) and a
 *      degree-7 polynomial fitted for relative error (2^-65) on |r| <= ln2/32: < 0.14 ulp before
 *      the one rounding of e.
 *   3. Sums: float32 softmax exps are summed by Fast2Sum in float lanes from a start value above every
 *      term (exact), moved to double every 16 steps; the max elements enter unrounded. float32 log-op
 *      sums are formed in double from rounded exps plus their exact rounding residuals. float64
 *      softmax exps by Fast2Sum from a start value above every term, the log ops' unrounded pieces
 *      with TwoSum; the max elements enter unrounded (unit as a double-double). The row is summed
 *      in fixed blocks whose partials are merged in order, so results do not depend on the number
 *      of threads.
 *   4. Normalisation: y = fma(e, c_hi, e * c_lo) with c = 1/s split in two: float64 c_hi + c_lo are
 *      doubles from the wide type (c_lo = 0 where that is double), float32 kernels split their double
 *      c into two floats. e * c_lo is rounded first (2^-106 of y for float64, 2^-48 for float32), then
 *      the FMA adds it to the exact e * c_hi and rounds once more: that rounding is the one that counts.
 *      The max elements get unit * c formed in double (float32) or double-double (float64), rounded once. A stored exp carries
 *      at most 0.5 ulp(e) + the exp error, which is at most twice that in ulp(y), plus 0.5 ulp for the
 *      final rounding: measured <= 1.6 ulp (float32) and <= 1.62 ulp (float64).
 *   5. log_softmax and logsumexp are formed from x - m and log1p(s'): float32 in double from the exact
 *      x - m, ~0.5-0.65 ulp; float64 log_softmax as (x - m) - L in two roundings that cannot cancel
 *      (<= 1.25 ulp argued, <= 1.19 measured), logsumexp with TwoSum (<= 0.50).
 * Special rows follow scipy.special: a NaN anywhere gives NaN; softmax of a row whose max is +inf
 * or -inf (all -inf) is NaN; log_softmax shifts by 0 when the max is not finite; logsumexp gives
 * +inf / -inf. Subnormal outputs are produced (never flushed); the caller's FTZ/DAZ state is not touched.
 * float32 kernels never form a subnormal intermediate (Intel assists): subnormal outputs are built
 * as integers on a careful path of the scale pass.
 */
#ifndef FASTSOFTMAX_H
#define FASTSOFTMAX_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The ops (fsm_op: FSM_SOFTMAX, FSM_LOG_SOFTMAX, FSM_LOGSUMEXP) and the passes each runs: ops.h, one line an op. */
#include "ops.h"
/* float16 and bfloat16 data are widened to float32 in the driver and computed by the float32 kernels;
   each result is rounded once to the input's type. */
typedef enum { FSM_F32 = 0, FSM_F64 = 1, FSM_F16 = 2, FSM_BF16 = 3 } fsm_dtype;

/*
 * Partial sums of one block of a row. The exps a kernel stores and sums are exp(x - m) * unit
 * (unit = 1 for float64; float32 kernels carry a factor near 2^64, see kernels/template.h), so the
 * block's sum of exp(x - m) is (sum + sum_lo) / (unit + unit_lo). sum_lo is the compensation (float64
 * only); unit_lo is unit's low part (float64 only: its unit is a double-double, 0 for float32); n_max
 * counts elements equal to the row max when they are excluded from sum. e_max is the stored (rounded)
 * exp of the max elements, whose outputs the softmax scale pass sets to unit * c (both dtypes).
 * float32 softmax only: e_min is the smallest stored exp (it tells the scale pass whether a product
 * can be subnormal).
 */
typedef struct { double sum, sum_lo, n_max, unit, e_min, e_max, unit_lo; } fsm_acc;

#define FSM_COLS_MAX 1024 /* column kernels take at most this many columns a call */

/* Prefetch hint (no effect on results): a read, or a write when `w` is 1, into all cache levels. */
#if defined(__GNUC__) || defined(__clang__)
#define FSM_PREFETCH(p, w) __builtin_prefetch((p), (w), 3)
#define FSM_PREFETCH_L2(p, w) __builtin_prefetch((p), (w), 1)  /* prefetcht2: L2 and outward */
#else
#define FSM_PREFETCH(p, w) ((void)(p))
#define FSM_PREFETCH_L2(p, w) ((void)(p))
#endif

/*
 * The kernels of one ISA. Row kernels take `rows` rows of n contiguous elements with per-row state
 * in arrays (expsum kernels skip rows whose max is not finite, leaving their acc at 0); column
 * kernels take n rows of `cols` contiguous elements, rows `ld` elements apart, with per-column state.
 * "exclmax" kernels leave elements equal to m out of sum and count them in n_max instead.
 */
typedef struct {
    const char *name;        /* its kernels.inc id: "portable", "avx2", "avx512" */
    const char *algorithm;   /* what the kernels compute, for show_config() */
    int lanes_f32, lanes_f64;  /* lanes per vector: column kernels take multiples of these */
    /* mn: the rows' minima too, when not NULL (float32 softmax; the float64 kernel ignores it) */
    void (*max_rows_f32)(const float *x, int64_t rows, int64_t n, float *m, float *mn);
    void (*max_rows_f64)(const double *x, int64_t rows, int64_t n, double *m, double *mn);
    /* mn: the rows' minima from max_rows (float32; float64 ignores it) */
    /* ahead > 0: while element i of a row is read, x[i + ahead] is prefetched (the caller's next block;
       a hint, results unchanged); 0: no prefetch */
    void (*expsum_store_rows_f32)(const float *x, float *y, int64_t rows, int64_t n, const float *m,
                                  const float *mn, fsm_acc *acc, int64_t ahead);
    void (*expsum_store_rows_f64)(const double *x, double *y, int64_t rows, int64_t n, const double *m,
                                  const double *mn, fsm_acc *acc, int64_t ahead);
    void (*expsum_exclmax_rows_f32)(const float *x, int64_t rows, int64_t n, const float *m, const float *mn,
                                    fsm_acc *acc, int64_t ahead);
    void (*expsum_exclmax_rows_f64)(const double *x, int64_t rows, int64_t n, const double *m, const double *mn,
                                    fsm_acc *acc, int64_t ahead);
    /* y *= c_hi + c_lo per row; acc: the rows' pass-1 statistics (float64 ignores them) */
    void (*scale_rows_f32)(float *y, int64_t rows, int64_t n, const double *c_hi, const double *c_lo,
                           const fsm_acc *acc);
    void (*scale_rows_f64)(double *y, int64_t rows, int64_t n, const double *c_hi, const double *c_lo,
                           const fsm_acc *acc);
    void (*logshift_rows_f32)(const float *x, float *y, int64_t rows, int64_t n, const float *m,
                              const double *l_hi, const double *l_lo);
    void (*logshift_rows_f64)(const double *x, double *y, int64_t rows, int64_t n, const double *m,
                              const double *l_hi, const double *l_lo);
    void (*col_max_f32)(const float *x, int64_t n, int64_t ld, int64_t cols, float *m);
    void (*col_max_f64)(const double *x, int64_t n, int64_t ld, int64_t cols, double *m);
    /* per-column statistics in acc[0 .. cols) */
    void (*col_expsum_store_f32)(const float *x, float *y, int64_t n, int64_t ld, int64_t cols,
                                 const float *m, fsm_acc *acc);
    void (*col_expsum_store_f64)(const double *x, double *y, int64_t n, int64_t ld, int64_t cols,
                                 const double *m, fsm_acc *acc);
    void (*col_expsum_exclmax_f32)(const float *x, int64_t n, int64_t ld, int64_t cols,
                                   const float *m, fsm_acc *acc);
    void (*col_expsum_exclmax_f64)(const double *x, int64_t n, int64_t ld, int64_t cols,
                                   const double *m, fsm_acc *acc);
    /* the last pass reads e (exps) or x with row distance ld_in and writes y with row distance ld_out */
    void (*col_scale_f32)(const float *e, float *y, int64_t n, int64_t ld_in, int64_t ld_out, int64_t cols,
                          const double *c_hi, const double *c_lo, const fsm_acc *acc);
    void (*col_scale_f64)(const double *e, double *y, int64_t n, int64_t ld_in, int64_t ld_out, int64_t cols,
                          const double *c_hi, const double *c_lo, const fsm_acc *acc);
    /* float32 softmax of columns in one sweep per vector of columns (cols a multiple of the vector):
       exps into e (may be x), the result into y; a vector with a non-finite maximum is left alone and
       flagged in skipped[j / lanes] for the general passes */
    void (*col_softmax_f32)(const float *x, float *e, int64_t n, int64_t ld, int64_t cols, float *y, int64_t ld_out,
                            unsigned char *skipped);
    /* float32 softmax of short rows in one call (rows of at most the driver's block), y may be x;
       after >= 0: prefetch each next group of rows, of these and of the `after` rows of x that follow
       them; after < 0: no prefetch */
    void (*softmax_rows_f32)(const float *x, float *y, int64_t rows, int64_t n, int64_t after);
    void (*col_logshift_f32)(const float *x, float *y, int64_t n, int64_t ld_in, int64_t ld_out, int64_t cols,
                             const float *m, const double *l_hi, const double *l_lo);
    void (*col_logshift_f64)(const double *x, double *y, int64_t n, int64_t ld_in, int64_t ld_out, int64_t cols,
                             const double *m, const double *l_hi, const double *l_lo);
    /* rows (at most one vector's lanes) of n contiguous elements to and from the columns of a tile whose
       rows are one vector apart (tile_in fills the lanes past `rows` with row 0) */
    void (*tile_in_f32)(const float *x, int64_t rows, int64_t n, float *tile);
    void (*tile_out_f32)(const float *tile, int64_t rows, int64_t n, float *y);
    void (*tile_in_f64)(const double *x, int64_t rows, int64_t n, double *tile);
    void (*tile_out_f64)(const double *tile, int64_t rows, int64_t n, double *y);
    /* float16 (bf16 = 0) / bfloat16 (bf16 = 1) <-> float32, n contiguous elements: widening is exact,
       narrowing rounds to nearest even (half.h has the scalar definitions the tails use) */
    void (*widen_half)(const uint16_t *h, float *f, int64_t n, int bf16);
    void (*narrow_half)(const float *f, uint16_t *h, int64_t n, int bf16);
    /* max_rows_f32 of half rows, writing each row widened to s (rows * n contiguous float32) unless s is NULL */
    void (*widen_max_rows)(const uint16_t *h, float *s, int64_t rows, int64_t n, float *m, float *mn, int bf16);
    /* expsum_store_rows_f32 of half rows h, widened as they are read; the exps go to y (float32) */
    void (*expsum_store_half_rows)(const uint16_t *h, float *y, int64_t rows, int64_t n, const float *m,
                                   const float *mn, fsm_acc *acc, int bf16);
    /* scale_rows_f32 of the stored exps e, the products rounded into half rows h (e may be overwritten) */
    void (*scale_narrow_rows)(float *e, uint16_t *h, int64_t rows, int64_t n, const double *c_hi,
                              const double *c_lo, const fsm_acc *acc, int bf16);
    /* y[0..n) = s[0..n) with non-temporal stores where the ISA has them (the out-of-cache path), fenced */
    void (*stream_f32)(const float *s, float *y, int64_t n);
    void (*stream_f64)(const double *s, double *y, int64_t n);
} fsm_kernels;

/* The kernel sets, one per line of kernels.inc. Sets the build cannot compile are NULL. */
#define FSM_ISA(id, cpu_check) extern const fsm_kernels *const fsm_kernels_##id;
#include "kernels.inc"
#undef FSM_ISA

/* Dispatch (cpu.c): detect the CPU once; choose the best set, or force one by name. */
int fsm_isa_count(void);                          /* the ISAs of kernels.inc, compiled here or not */
const char *fsm_isa_name(int i);                  /* the i-th, lowest first, as named there; NULL out of range */
const fsm_kernels *fsm_isa_kernels(const char *name); /* the set of that name, NULL if not compiled */
int fsm_isa_compiled(const char *name);           /* 1 if this build contains the kernel set */
int fsm_isa_supported(const char *name);          /* 1 if compiled in and the CPU/OS can run it */
int fsm_set_isa(const char *name);                /* "auto" or a name; 0 on success, -1 if unsupported */
const fsm_kernels *fsm_active(void);
/* The last-level cache in bytes (cpu.c): fsm_llc_detected() once (CPUID, then sysconf, else 32 MiB);
   fsm_llc_bytes() is the size outputs are compared with, -1 where the out-of-cache path is off (the
   default on AMD, measured slower there) or what fsm_set_llc_bytes() forced (> 0: on with that size,
   < 0: off, 0: the default). Outputs above it take the driver's out-of-cache path (rows_dtype.h:
   non-temporal stores from a cache-resident scratch). */
int64_t fsm_llc_detected(void);
int64_t fsm_llc_bytes(void);
void fsm_set_llc_bytes(int64_t bytes);
/* Calls on long rows whose x and y together exceed fsm_prefetch_above() bytes prefetch each next block,
   calls on short rows above an eighth of it each next group of rows (rows_dtype.h): fsm_llc_detected()
   by default; fsm_set_prefetch_above(b): b > 0 that size, b < 0 never, 0 the default. */
int64_t fsm_prefetch_above(void);
void fsm_set_prefetch_above(int64_t bytes);
/* Whether subnormal operands and results cost nothing extra here (cpu.c measures it once): the float32
   scale pass then lets the multiply round subnormal outputs (the same bits as its integer form).
   fsm_set_subnormals(mode): 1 forces the direct form, -1 the integer form, 0 the measured default. */
int fsm_subnormals_free(void);
int fsm_subnormals_measured(void);
void fsm_set_subnormals(int mode);
/* Whether the AVX-512 set rounds bfloat16 with AVX512_BF16's vcvtne2ps2bf16 (the same bits as its integer
   form): fsm_bf16cvt_supported() says whether the CPU has it, fsm_bf16cvt() whether it is in use (read by
   the kernels once the ISA is chosen); fsm_set_bf16cvt(-1) turns it off, 0 back to the default. */
int fsm_bf16cvt(void);
int fsm_bf16cvt_supported(void);
void fsm_set_bf16cvt(int mode);
int64_t fsm_prefetch_calls(void);                 /* calls told to prefetch (long rows, or short rows) */
int64_t fsm_stream_calls(void);                   /* calls that took the out-of-cache path so far */

/* Threads (threads.c, the one place that talks to OpenMP; the policy is described there). */
int fsm_openmp_enabled(void);
int fsm_default_threads(void);                    /* what threads=None resolves to now */

/*
 * Compute op over (outer, n, inner) as described above, with at most `threads` threads
 * (threads <= 0: the default). Runs without the GIL. Returns 0, or -1 if scratch memory ran out.
 */
int fsm_compute(fsm_op op, fsm_dtype dtype, const void *x, void *y,
                int64_t outer, int64_t n, int64_t inner, int threads);

/*
 * logsumexp with weights (rows_dtype.h, lse_weighted): per row of the rows x n C-contiguous float32 /
 * float64 arrays a and b (weights), scipy's log|sum(b * exp(a))| in out and its sign in sgn (the
 * fallback's _lse_parts and lse_combine); redo[r] = 1 marks the rows it leaves to the fallback (a
 * non-finite max or result, weights that cancel at the max, sums beyond the dtype's range, and
 * without return_sign a negative sum). Returns the number of those rows, or -1 if memory ran out.
 */
int64_t fsm_lse_weighted(fsm_dtype dtype, const void *a, const void *b, int64_t rows, int64_t n, void *out, void *sgn,
                         uint8_t *redo, int return_sign, int threads);

#ifdef __cplusplus
}
#endif
#endif

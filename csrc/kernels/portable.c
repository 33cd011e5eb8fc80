/*
 * Portable kernels: one lane, plain C. Used where no SIMD set applies (aarch64, x86-64 without
 * AVX2+FMA, anything else) and as the reference the SIMD sets are tested against. The compiler
 * vectorises what it can; fma() is the C99 function (a single instruction on aarch64).
 */
#include <math.h>
#include <stdint.h>
#include <string.h>
#include "fastsoftmax.h"
#include "kernels/half.h"

#if (defined(__x86_64__) || defined(_M_X64)) && defined(__GNUC__) && !defined(__clang__)
/* On x86-64 these kernels run only on CPUs without AVX2+FMA (before 2013) and on the few columns of a
   block that do not fill a vector: optimised for size there (the release wheel's 400 kB limit; 49 kB
   of code at -O3). Elsewhere (aarch64) they are the main kernels and keep -O3. */
#pragma GCC optimize("Os")
#endif

#define FSM_TARGET
#define FSM_ISA portable
#define FSM_F64_TBITS 4   /* the float64 exp table: 16 entries (template.h) */
#define FSM_ISA_ALGORITHM "scalar C: f32 x_rr2_p6_c2s, f64 x_rr2_t16_p7"
#define VD_N 1
#define VF_N 1
typedef double vd;
typedef float vf;
typedef int vd_nanflag;
typedef int vf_nanflag;

static inline vd vd_set1(double a) { return a; }
static inline vd vd_load(const double *p) { return *p; }
static inline void vd_store(double *p, vd a) { *p = a; }
static inline vd vd_load_f32(const float *p) { return (double)*p; }
static inline void vd_store_f32(float *p, vd a) { *p = (float)a; }
static inline vd vd_add(vd a, vd b) { return a + b; }
static inline vd vd_sub(vd a, vd b) { return a - b; }
static inline vd vd_mul(vd a, vd b) { return a * b; }
static inline vd vd_div(vd a, vd b) { return a / b; }
static inline vd vd_fma(vd a, vd b, vd c) { return fma(a, b, c); }
static inline vd vd_max(vd a, vd b) { return b > a ? b : a; }
static inline vd vd_clamp_lo(vd lo, vd d) { return d < lo ? lo : d; }
static inline vd vd_keep_if_gt(vd v, vd d, vd lo) { return d > lo ? v : 0.0; }
static inline vd vd_keep_if_ne0(vd v, vd d) { return d != 0.0 ? v : 0.0; }
static inline vd vd_one_if_eq0(vd d) { return d == 0.0 ? 1.0 : 0.0; }
static inline vd_nanflag vd_nanflag_init(void) { return 0; }
static inline vd_nanflag vd_nanflag_update(vd_nanflag f, vd a, vd b) { return f | (a != a) | (b != b); }
static inline int vd_nanflag_any(vd_nanflag f) { return f; }
static inline double vd_hsum(vd a) { return a; }
static inline double vd_hmax(vd a) { return a; }
static inline vd vd_pow2_bits(vd t)
{
    uint64_t u;
    memcpy(&u, &t, sizeof u);
    u <<= 52;
    memcpy(&t, &u, sizeof t);
    return t;
}
/* float64 table kernels: the 16-entry table 2^(j/16), indexed by the low 4 bits of t */
static inline vd vd_min(vd a, vd b) { return b < a ? b : a; }
static inline double vd_hmin(vd a) { return a; }
static inline vd vd_floor(vd a) { return floor(a); }
static inline vd vd_table(const double *tab, vd t)
{
    uint64_t u;
    memcpy(&u, &t, sizeof u);
    return tab[u & ((1u << FSM_F64_TBITS) - 1)];
}
static inline vd vd_pow2_tbits(vd t)
{
    uint64_t u;
    memcpy(&u, &t, sizeof u);
    u = (u >> FSM_F64_TBITS) << 52;
    memcpy(&t, &u, sizeof t);
    return t;
}
static inline int vd_count_eq(vd a, vd b) { return a == b; }
static inline int vd_count_ne(vd a, vd b) { return a != b; }
static inline vd vd_select_eq(vd a, vd b, vd x, vd y) { return a == b ? x : y; }
static inline vd vd_zero_if_eq(vd v, vd a, vd b) { return a != b ? v : 0.0; }
/* no non-temporal stores in plain C: the out-of-cache path's copy is a plain one */
static inline void vf_stream(float *p, vf a) { *p = a; }
static inline void vd_stream(double *p, vd a) { *p = a; }
static inline void fsm_sfence(void) {}
static inline vd vd_keep_first(vd a, int64_t r) { return r > 0 ? a : 0.0; }
/* One lane: a tail never happens (r is always 1), these only complete the vocabulary. */
static inline vd vd_load_f32_part(const float *p, int64_t r, double fill) { return r > 0 ? (double)*p : fill; }
static inline void vd_store_f32_part(float *p, vd a, int64_t r) { if (r > 0) *p = (float)a; }
static inline vd vd_load_part(const double *p, int64_t r, double fill) { return r > 0 ? *p : fill; }
static inline void vd_store_part(double *p, vd a, int64_t r) { if (r > 0) *p = a; }
static inline vf vf_load_part(const float *p, int64_t r, float fill) { return r > 0 ? *p : fill; }
static inline vf vf_set1(float a) { return a; }
static inline vf vf_load(const float *p) { return *p; }
static inline void vf_store(float *p, vf a) { *p = a; }
static inline vf vf_mul(vf a, vf b) { return a * b; }
static inline vf vf_fma(vf a, vf b, vf c) { return fmaf(a, b, c); }
/* as maxps: the second operand when either is NaN */
static inline vf vf_max(vf a, vf b) { return a > b ? a : b; }
static inline vf_nanflag vf_nanflag_init(void) { return 0; }
static inline vf_nanflag vf_nanflag_update(vf_nanflag f, vf a, vf b) { return f | (a != a) | (b != b); }
static inline int vf_nanflag_any(vf_nanflag f) { return f; }
static inline float vf_hmax(vf a) { return a; }
static inline float vf_hmin(vf a) { return a; }
static inline int vf_count_eq(vf a, vf b) { return a == b; }
/* A running count of the lanes equal to b (the AVX2 set keeps it in a vector and compares bits) */
typedef int64_t vf_tally;
static inline vf_tally vf_tally_zero(void) { return 0; }
static inline vf_tally vf_tally_eq(vf_tally t, vf a, vf b) { return t + vf_count_eq(a, b); }
static inline vf_tally vf_tally_feq(vf_tally t, vf a, vf b) { return t + vf_count_eq(a, b); }
static inline int64_t vf_tally_total(vf_tally t) { return t; }
static inline vf vf_add(vf a, vf b) { return a + b; }
static inline vf vf_sub(vf a, vf b) { return a - b; }
static inline vf vf_min(vf a, vf b) { return b < a ? b : a; }
static inline vf vf_pow2_bits(vf t)
{
    uint32_t u;
    memcpy(&u, &t, sizeof u);
    u <<= 23;
    memcpy(&t, &u, sizeof t);
    return t;
}
/* p * 2^j, j the low 9 bits of bits(t): an integer add to p's exponent field (exact while normal) */
static inline vf vf_add_exponent(vf p, vf t)
{
    uint32_t u, v;
    memcpy(&u, &p, sizeof u);
    memcpy(&v, &t, sizeof v);
    u += v << 23;
    memcpy(&p, &u, sizeof p);
    return p;
}
static inline void vf_store_part(float *p, vf a, int64_t r) { if (r > 0) *p = a; }
static inline vf vf_keep_first(vf a, int64_t r) { return r > 0 ? a : 0.0f; }
static inline vf vf_zero_if_eq(vf v, vf a, vf b) { return a != b ? v : 0.0f; }
static inline vf vf_one_if_eq(vf a, vf b) { return a == b ? 1.0f : 0.0f; }
static inline vf vf_select_eq(vf a, vf b, vf x, vf y) { return a == b ? x : y; }
static inline vf vf_select_lt(vf a, vf thr, vf x, vf y) { return a < thr ? x : y; }
static inline vf vf_bits_above(vf z, vf b)
{
    volatile float t = z + b;  /* rounded to float here, whatever the compiler's excess precision */
    float s = t;
    uint32_t u, v;
    memcpy(&u, &s, sizeof u);
    memcpy(&v, &b, sizeof v);
    u -= v;
    memcpy(&s, &u, sizeof s);
    return s;
}
static inline void vf_widen_add(vd *lo, vd *hi, vf a) { (void)hi; *lo += (double)a; }
/* one lane: a 1 x 1 transpose (the tile kernels) */
static inline void vf_transpose(vf r[1]) { (void)r; }
static inline void vd_transpose(vd r[1]) { (void)r; }

/* float16 / bfloat16 <-> float32: the scalar conversions of half.h */
static inline vf vf_load_f16(const uint16_t *p) { return fsm_f16_to_f32(*p); }
static inline void vf_store_f16(uint16_t *p, vf a) { *p = fsm_f32_to_f16(a); }
static inline vf vf_load_bf16(const uint16_t *p) { return fsm_bf16_to_f32(*p); }
static inline void vf_store_bf16(uint16_t *p, vf a) { *p = fsm_f32_to_bf16(a); }
static inline void vf_load_bf16x2(const uint16_t *p, vf *a, vf *b) { *a = fsm_bf16_to_f32(p[0]); *b = fsm_bf16_to_f32(p[1]); }
static inline void vf_store_bf16x2(uint16_t *p, vf a, vf b) { p[0] = fsm_f32_to_bf16(a); p[1] = fsm_f32_to_bf16(b); }
static inline void vf_store_bf16x2_normal(uint16_t *p, vf a, vf b) { vf_store_bf16x2(p, a, b); }

/* The bits of half values as 16-bit integers, one a lane (template.h, max_half_bits). */
#define FSM_TARGET_H
#define VH_N 1
typedef uint16_t vh;
static inline vh vh_load(const uint16_t *p) { return *p; }
static inline vh vh_set1(uint16_t a) { return a; }
static inline vh vh_max_s(vh a, vh b) { return (int16_t)b > (int16_t)a ? b : a; }
static inline vh vh_max_u(vh a, vh b) { return b > a ? b : a; }
static inline vh vh_min_u(vh a, vh b) { return b < a ? b : a; }
static inline uint16_t vh_hmin_u(vh a) { return a; }
static inline uint16_t vh_hmax_u(vh a) { return a; }
static inline int16_t vh_hmax_s(vh a) { return (int16_t)a; }

#include "kernels/template.h"

const fsm_kernels *const fsm_kernels_portable = &kernel_set_portable;

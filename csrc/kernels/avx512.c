/*
 * AVX-512F kernels: 8 doubles / 16 floats a vector, comparisons into mask registers. Enabled per
 * function with a target attribute; cpu.c selects it only when CPUID and XCR0 (opmask, ZMM state)
 * allow. Not built on macOS (Apple's toolchain targets and OS support vary; AVX2 is used there).
 */
#include "fastsoftmax.h"

#if (defined(__x86_64__) || defined(_M_X64)) && !defined(__APPLE__) && \
    (defined(__GNUC__) || defined(__clang__) || defined(_MSC_VER))
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__GNUC__) && !defined(__clang__)
/* tune=: scheduling only (the ISA stays AVX-512F). GCC's generic tuning made the max and scale passes
   15-20 % slower on Zen 4 (bench/micro/passes.sh: max 0.058 -> 0.047, scale 0.071 -> 0.066 ns/element). */
#define FSM_TARGET __attribute__((target("avx512f,avx2,fma,tune=skylake-avx512")))
#elif defined(__clang__)
#define FSM_TARGET __attribute__((target("avx512f,avx2,fma")))
#else
#define FSM_TARGET
#endif
#define FSM_ISA avx512
#define FSM_F64_TBITS 4   /* the float64 exp table: 16 entries (template.h) */
#define FSM_ISA_ALGORITHM "AVX-512F: f32 x_rr2_p6_c2s (16 floats/step, x2 unrolled), f64 x_rr2_t16_p7 (vpermt2pd table, x2)"
#define VD_N 8
#define VF_N 16
#define FSM_SCALE_DIRECT 1 /* the direct subnormal scale form where subnormals are free (template.h) */
typedef __m512d vd;
typedef __m512 vf;
typedef __mmask8 vd_nanflag;
typedef __mmask16 vf_nanflag;

FSM_TARGET static inline vd vd_set1(double a) { return _mm512_set1_pd(a); }
FSM_TARGET static inline vd vd_load(const double *p) { return _mm512_loadu_pd(p); }
FSM_TARGET static inline void vd_store(double *p, vd a) { _mm512_storeu_pd(p, a); }
FSM_TARGET static inline vd vd_load_f32(const float *p) { return _mm512_cvtps_pd(_mm256_loadu_ps(p)); }
FSM_TARGET static inline void vd_store_f32(float *p, vd a) { _mm256_storeu_ps(p, _mm512_cvtpd_ps(a)); }
FSM_TARGET static inline vd vd_add(vd a, vd b) { return _mm512_add_pd(a, b); }
FSM_TARGET static inline vd vd_sub(vd a, vd b) { return _mm512_sub_pd(a, b); }
FSM_TARGET static inline vd vd_mul(vd a, vd b) { return _mm512_mul_pd(a, b); }
FSM_TARGET static inline vd vd_div(vd a, vd b) { return _mm512_div_pd(a, b); }
FSM_TARGET static inline vd vd_fma(vd a, vd b, vd c) { return _mm512_fmadd_pd(a, b, c); }
FSM_TARGET static inline vd vd_max(vd a, vd b) { return _mm512_max_pd(a, b); }
FSM_TARGET static inline vd vd_clamp_lo(vd lo, vd d) { return _mm512_max_pd(lo, d); }
FSM_TARGET static inline vd vd_keep_if_gt(vd v, vd d, vd lo) { return _mm512_maskz_mov_pd(_mm512_cmp_pd_mask(d, lo, _CMP_GT_OQ), v); }
FSM_TARGET static inline vd vd_keep_if_ne0(vd v, vd d)
{
    return _mm512_maskz_mov_pd(_mm512_cmp_pd_mask(d, _mm512_setzero_pd(), _CMP_NEQ_UQ), v);
}
FSM_TARGET static inline vd vd_one_if_eq0(vd d)
{
    return _mm512_maskz_mov_pd(_mm512_cmp_pd_mask(d, _mm512_setzero_pd(), _CMP_EQ_OQ), _mm512_set1_pd(1.0));
}
FSM_TARGET static inline vd_nanflag vd_nanflag_init(void) { return 0; }
FSM_TARGET static inline vd_nanflag vd_nanflag_update(vd_nanflag f, vd a, vd b)
{
    return (vd_nanflag)(f | _mm512_cmp_pd_mask(a, b, _CMP_UNORD_Q));
}
FSM_TARGET static inline int vd_nanflag_any(vd_nanflag f) { return f != 0; }
FSM_TARGET static inline double vd_hsum(vd a) { return _mm512_reduce_add_pd(a); }
FSM_TARGET static inline double vd_hmax(vd a) { return _mm512_reduce_max_pd(a); }
FSM_TARGET static inline vd vd_pow2_bits(vd t) { return _mm512_castsi512_pd(_mm512_slli_epi64(_mm512_castpd_si512(t), 52)); }
/* float64 table kernels: the 16-entry table 2^(j/16) in two registers, indexed by the low 4 bits of t */
FSM_TARGET static inline vd vd_min(vd a, vd b) { return _mm512_min_pd(a, b); }
FSM_TARGET static inline double vd_hmin(vd a) { return _mm512_reduce_min_pd(a); }
FSM_TARGET static inline vd vd_floor(vd a) { return _mm512_roundscale_pd(a, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC); }
FSM_TARGET static inline vd vd_table(const double *tab, vd t)
{
    return _mm512_permutex2var_pd(_mm512_loadu_pd(tab), _mm512_castpd_si512(t), _mm512_loadu_pd(tab + 8));
}
FSM_TARGET static inline vd vd_pow2_tbits(vd t)
{
    return _mm512_castsi512_pd(_mm512_slli_epi64(_mm512_srli_epi64(_mm512_castpd_si512(t), FSM_F64_TBITS), 52));
}
FSM_TARGET static inline int vd_count_eq(vd a, vd b) { return __builtin_popcount((unsigned)_mm512_cmp_pd_mask(a, b, _CMP_EQ_OQ)); }
FSM_TARGET static inline int vd_count_ne(vd a, vd b) { return __builtin_popcount((unsigned)_mm512_cmp_pd_mask(a, b, _CMP_NEQ_UQ)); }
FSM_TARGET static inline vd vd_select_eq(vd a, vd b, vd x, vd y) { return _mm512_mask_blend_pd(_mm512_cmp_pd_mask(a, b, _CMP_EQ_OQ), y, x); }
FSM_TARGET static inline vd vd_zero_if_eq(vd v, vd a, vd b) { return _mm512_maskz_mov_pd(_mm512_cmp_pd_mask(a, b, _CMP_NEQ_UQ), v); }
/* non-temporal stores (p aligned to the vector) and the fence that orders them before later stores */
FSM_TARGET static inline void vf_stream(float *p, vf a) { _mm512_stream_ps(p, a); }
FSM_TARGET static inline void vd_stream(double *p, vd a) { _mm512_stream_pd(p, a); }
FSM_TARGET static inline void fsm_sfence(void) { _mm_sfence(); }
FSM_TARGET static inline vd vd_keep_first(vd a, int64_t r) { return _mm512_maskz_mov_pd((__mmask8)((1u << r) - 1), a); }
/* Partial vectors for tails: lanes k < r are loaded / stored, the others read as `fill`. */
/* 8 floats through 16-lane masked operations (AVX-512F has no 256-bit masked loads without VL). */
FSM_TARGET static inline vd vd_load_f32_part(const float *p, int64_t r, double fill)
{
    __m512 v = _mm512_mask_loadu_ps(_mm512_set1_ps((float)fill), (__mmask16)((1u << r) - 1), p);
    return _mm512_cvtps_pd(_mm512_castps512_ps256(v));
}
FSM_TARGET static inline void vd_store_f32_part(float *p, vd a, int64_t r)
{
    _mm512_mask_storeu_ps(p, (__mmask16)((1u << r) - 1), _mm512_castps256_ps512(_mm512_cvtpd_ps(a)));
}
FSM_TARGET static inline vd vd_load_part(const double *p, int64_t r, double fill)
{
    return _mm512_mask_loadu_pd(_mm512_set1_pd(fill), (__mmask8)((1u << r) - 1), p);
}
FSM_TARGET static inline void vd_store_part(double *p, vd a, int64_t r) { _mm512_mask_storeu_pd(p, (__mmask8)((1u << r) - 1), a); }
FSM_TARGET static inline vf vf_load_part(const float *p, int64_t r, float fill)
{
    return _mm512_mask_loadu_ps(_mm512_set1_ps(fill), (__mmask16)((1u << r) - 1), p);
}
FSM_TARGET static inline vf vf_set1(float a) { return _mm512_set1_ps(a); }
FSM_TARGET static inline vf vf_load(const float *p) { return _mm512_loadu_ps(p); }
FSM_TARGET static inline void vf_store(float *p, vf a) { _mm512_storeu_ps(p, a); }
FSM_TARGET static inline vf vf_mul(vf a, vf b) { return _mm512_mul_ps(a, b); }
FSM_TARGET static inline vf vf_fma(vf a, vf b, vf c) { return _mm512_fmadd_ps(a, b, c); }
FSM_TARGET static inline vf vf_max(vf a, vf b) { return _mm512_max_ps(a, b); }
FSM_TARGET static inline vf_nanflag vf_nanflag_init(void) { return 0; }
FSM_TARGET static inline vf_nanflag vf_nanflag_update(vf_nanflag f, vf a, vf b)
{
    return (vf_nanflag)(f | _mm512_cmp_ps_mask(a, b, _CMP_UNORD_Q));
}
FSM_TARGET static inline int vf_nanflag_any(vf_nanflag f) { return f != 0; }
FSM_TARGET static inline float vf_hmax(vf a) { return _mm512_reduce_max_ps(a); }
FSM_TARGET static inline float vf_hmin(vf a) { return _mm512_reduce_min_ps(a); }
FSM_TARGET static inline int vf_count_eq(vf a, vf b) { return __builtin_popcount((unsigned)_mm512_cmp_ps_mask(a, b, _CMP_EQ_OQ)); }
/* A running count of the lanes equal to b (the AVX2 set keeps it in a vector and compares bits) */
typedef int64_t vf_tally;
FSM_TARGET static inline vf_tally vf_tally_zero(void) { return 0; }
FSM_TARGET static inline vf_tally vf_tally_eq(vf_tally t, vf a, vf b) { return t + vf_count_eq(a, b); }
FSM_TARGET static inline vf_tally vf_tally_feq(vf_tally t, vf a, vf b) { return t + vf_count_eq(a, b); }
FSM_TARGET static inline int64_t vf_tally_total(vf_tally t) { return t; }
FSM_TARGET static inline vf vf_add(vf a, vf b) { return _mm512_add_ps(a, b); }
FSM_TARGET static inline vf vf_sub(vf a, vf b) { return _mm512_sub_ps(a, b); }
FSM_TARGET static inline vf vf_min(vf a, vf b) { return _mm512_min_ps(a, b); }
FSM_TARGET static inline vf vf_pow2_bits(vf t) { return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_castps_si512(t), 23)); }
/* p * 2^j, j the low 9 bits of bits(t): an integer add to p's exponent field (exact while normal) */
FSM_TARGET static inline vf vf_add_exponent(vf p, vf t)
{
    return _mm512_castsi512_ps(_mm512_add_epi32(_mm512_castps_si512(p), _mm512_slli_epi32(_mm512_castps_si512(t), 23)));
}
FSM_TARGET static inline void vf_store_part(float *p, vf a, int64_t r) { _mm512_mask_storeu_ps(p, (__mmask16)((1u << r) - 1), a); }
FSM_TARGET static inline vf vf_keep_first(vf a, int64_t r) { return _mm512_maskz_mov_ps((__mmask16)((1u << r) - 1), a); }
FSM_TARGET static inline vf vf_zero_if_eq(vf v, vf a, vf b) { return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(a, b, _CMP_NEQ_UQ), v); }
FSM_TARGET static inline vf vf_one_if_eq(vf a, vf b)
{
    return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(a, b, _CMP_EQ_OQ), _mm512_set1_ps(1.0f));
}
FSM_TARGET static inline vf vf_select_eq(vf a, vf b, vf x, vf y) { return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, b, _CMP_EQ_OQ), y, x); }
FSM_TARGET static inline vf vf_select_lt(vf a, vf thr, vf x, vf y) { return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, thr, _CMP_LT_OQ), y, x); }
/* bits(z + b) - bits(b) as integers: for 0 <= z < b, b a power of two, round-to-nearest(z / ulp(b)),
   whatever the caller's rounding mode */
FSM_TARGET static inline vf vf_bits_above(vf z, vf b)
{
    __m512i t = _mm512_castps_si512(_mm512_add_round_ps(z, b, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    return _mm512_castsi512_ps(_mm512_sub_epi32(t, _mm512_castps_si512(b)));
}
/* lo += the low 8 floats of a, hi += the high 8, in double */
FSM_TARGET static inline void vf_widen_add(vd *lo, vd *hi, vf a)
{
    *lo = _mm512_add_pd(*lo, _mm512_cvtps_pd(_mm512_castps512_ps256(a)));
    *hi = _mm512_add_pd(*hi, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1))));
}

/* r[0..VF_N) transposed in place (lane j of r[i] becomes lane i of r[j]): the tile kernels that run rows
   as the lanes of a column kernel. Pairs of floats, then of doubles, interleaved within each 128-bit
   lane; then the 4 x 4 lanes of 128 bits in two shuffles. 64 shuffles for 256 floats. */
FSM_TARGET static inline void vf_transpose(vf r[16])
{
    __m512 t[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int q = 0; q < 16; q += 4)  /* r[q + c], lane L: rows q .. q+3 of column 4L + c */
        for (int h = 0; h < 2; h++) {
            __m512d a = _mm512_castps_pd(t[q + h]), b = _mm512_castps_pd(t[q + 2 + h]);
            r[q + 2 * h] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, b));
            r[q + 2 * h + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, b));
        }
    for (int c = 0; c < 4; c++) {
        __m512 v0 = _mm512_shuffle_f32x4(r[c], r[4 + c], 0x44), v1 = _mm512_shuffle_f32x4(r[c], r[4 + c], 0xee);
        __m512 v2 = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0x44), v3 = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0xee);
        t[c] = _mm512_shuffle_f32x4(v0, v2, 0x88);
        t[4 + c] = _mm512_shuffle_f32x4(v0, v2, 0xdd);
        t[8 + c] = _mm512_shuffle_f32x4(v1, v3, 0x88);
        t[12 + c] = _mm512_shuffle_f32x4(v1, v3, 0xdd);
    }
    for (int i = 0; i < 16; i++) r[i] = t[i];
}
FSM_TARGET static inline void vd_transpose(vd r[8])
{
    __m512d t[8];
    for (int i = 0; i < 8; i += 2) {  /* t[2p + c], lane L: rows 2p, 2p+1 of column 2L + c */
        t[i] = _mm512_unpacklo_pd(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_pd(r[i], r[i + 1]);
    }
    for (int c = 0; c < 2; c++) {
        __m512d v0 = _mm512_shuffle_f64x2(t[c], t[2 + c], 0x44), v1 = _mm512_shuffle_f64x2(t[c], t[2 + c], 0xee);
        __m512d v2 = _mm512_shuffle_f64x2(t[4 + c], t[6 + c], 0x44), v3 = _mm512_shuffle_f64x2(t[4 + c], t[6 + c], 0xee);
        r[c] = _mm512_shuffle_f64x2(v0, v2, 0x88);
        r[2 + c] = _mm512_shuffle_f64x2(v0, v2, 0xdd);
        r[4 + c] = _mm512_shuffle_f64x2(v1, v3, 0x88);
        r[6 + c] = _mm512_shuffle_f64x2(v1, v3, 0xdd);
    }
}

/* float16 / bfloat16 <-> float32 (the half types' loads widen exactly; stores round to nearest even) */
FSM_TARGET static inline vf vf_load_f16(const uint16_t *p) { return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p)); }
FSM_TARGET static inline void vf_store_f16(uint16_t *p, vf a)
{
    _mm256_storeu_si256((__m256i *)p, _mm512_cvtps_ph(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}
FSM_TARGET static inline vf vf_load_bf16(const uint16_t *p)
{
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p)), 16));
}
FSM_TARGET static inline void vf_load_bf16x2(const uint16_t *p, vf *a, vf *b)
{
    *a = vf_load_bf16(p);
    *b = vf_load_bf16(p + VF_N);
}
/* normal = 1: every lane of a is +0 or normal with |a| < 2^111 (the caller knows): rounded in two
   float operations instead of the integer form's five and the NaN test (the argument at avx2.c's
   bf16_bits_normal) */
FSM_TARGET static inline void vf_store_bf16_f(uint16_t *p, vf a, const int normal)
{
    __m512i r;
    if (normal) {
        vf q = _mm512_mul_ps(a, _mm512_set1_ps(65535.0f));
        r = _mm512_castps_si512(_mm512_fmsub_ps(a, _mm512_set1_ps(65536.0f), q));
    } else {
        __m512i x = _mm512_castps_si512(a);
        __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(x, 16), _mm512_set1_epi32(1));
        r = _mm512_add_epi32(x, _mm512_add_epi32(_mm512_set1_epi32(0x7fff), lsb));
        r = _mm512_mask_or_epi32(r, _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q), x, _mm512_set1_epi32(0x400000));
    }
    _mm256_storeu_si256((__m256i *)p, _mm512_cvtepi32_epi16(_mm512_srli_epi32(r, 16)));
}
FSM_TARGET static inline void vf_store_bf16(uint16_t *p, vf a) { vf_store_bf16_f(p, a, 0); }
/* two vectors (packing them as one store needs AVX-512BW's vpackusdw, which this set does not assume) */
FSM_TARGET static inline void vf_store_bf16x2(uint16_t *p, vf a, vf b)
{
    vf_store_bf16_f(p, a, 0);
    vf_store_bf16_f(p + VF_N, b, 0);
}
FSM_TARGET static inline void vf_store_bf16x2_normal(uint16_t *p, vf a, vf b)
{
    vf_store_bf16_f(p, a, 1);
    vf_store_bf16_f(p + VF_N, b, 1);
}

/*
 * AVX512_BF16's vcvtne2ps2bf16, where the CPU has it (cpu.c, fsm_bf16cvt): two vectors rounded to
 * bfloat16 in one instruction (nearest even; a NaN keeps its top bits and is made quiet, as
 * fsm_f32_to_bf16 does) instead of the eight integer operations a vector above. The instruction
 * flushes float32 subnormals to zero, so a pair with a subnormal lane (vfpclassps; outputs below
 * 2^-126, rare) takes the integer form; normal = 1: the caller knows there is none. Only the functions
 * that call it carry this target.
 */
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 10
#define FSM_BF16_TARGET __attribute__((target("avx512f,avx512dq,avx512bw,avx512bf16,avx2,fma,tune=skylake-avx512")))
#elif defined(__clang__) && __clang_major__ >= 9
#define FSM_BF16_TARGET __attribute__((target("avx512f,avx512dq,avx512bw,avx512bf16,avx2,fma")))
#endif
#ifdef FSM_BF16_TARGET
FSM_BF16_TARGET static inline void vf_store_bf16x2_cvt(uint16_t *p, vf a, vf b, const int normal)
{
    if (!normal && (_mm512_fpclass_ps_mask(a, 0x20) | _mm512_fpclass_ps_mask(b, 0x20))) {
        vf_store_bf16x2(p, a, b);
        return;
    }
    _mm512_storeu_si512((void *)p, (__m512i)_mm512_cvtne2ps_pbh(b, a));
}
#endif

/*
 * The bits of half values as 16-bit integers, VH_N a vector (the max pass of half rows compares them
 * so, 32 a vector, without widening: template.h, max_half_bits). The 16-bit forms need AVX-512BW,
 * which cpu.c requires of this set; only the functions that use them carry the target.
 */
#if defined(__GNUC__) && !defined(__clang__)
#define FSM_TARGET_H __attribute__((target("avx512f,avx512bw,avx2,fma,tune=skylake-avx512")))
#elif defined(__clang__)
#define FSM_TARGET_H __attribute__((target("avx512f,avx512bw,avx2,fma")))
#else
#define FSM_TARGET_H
#endif
#define VH_N 32
typedef __m512i vh;
FSM_TARGET_H static inline vh vh_load(const uint16_t *p) { return _mm512_loadu_si512((const void *)p); }
FSM_TARGET_H static inline vh vh_set1(uint16_t a) { return _mm512_set1_epi16((short)a); }
FSM_TARGET_H static inline vh vh_max_s(vh a, vh b) { return _mm512_max_epi16(a, b); }
FSM_TARGET_H static inline vh vh_max_u(vh a, vh b) { return _mm512_max_epu16(a, b); }
FSM_TARGET_H static inline vh vh_min_u(vh a, vh b) { return _mm512_min_epu16(a, b); }
/* the horizontal reductions: halves folded down to 8 lanes, then SSE4.1's phminposuw (unsigned min;
   the max is the min of the complement, the signed order is the unsigned one of a ^ 0x8000) */
FSM_TARGET_H static inline uint16_t vh8_hmin_u(__m128i a) { return (uint16_t)_mm_extract_epi16(_mm_minpos_epu16(a), 0); }
FSM_TARGET_H static inline uint16_t vh_hmin_u(vh a)
{
    __m256i t = _mm256_min_epu16(_mm512_castsi512_si256(a), _mm512_extracti64x4_epi64(a, 1));
    return vh8_hmin_u(_mm_min_epu16(_mm256_castsi256_si128(t), _mm256_extracti128_si256(t, 1)));
}
FSM_TARGET_H static inline uint16_t vh_hmax_u(vh a) { return (uint16_t)(0xffff ^ vh_hmin_u(_mm512_xor_si512(a, _mm512_set1_epi16(-1)))); }
FSM_TARGET_H static inline int16_t vh_hmax_s(vh a) { return (int16_t)(0x8000 ^ vh_hmax_u(_mm512_xor_si512(a, _mm512_set1_epi16((short)0x8000)))); }

#include "kernels/template.h"

const fsm_kernels *const fsm_kernels_avx512 = &kernel_set_avx512;
#else
const fsm_kernels *const fsm_kernels_avx512 = 0;
#endif

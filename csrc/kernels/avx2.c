/*
 * AVX2 + FMA (+ F16C for the half types) kernels: 4 doubles / 8 floats a vector. Enabled per function with a target
 * attribute, so this file builds without -mavx2 and the extension still loads on any x86-64;
 * cpu.c only selects it when CPUID and XGETBV say the CPU and OS support AVX2, FMA and F16C.
 */
#include "fastsoftmax.h"

#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__) || defined(_MSC_VER))
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__GNUC__) || defined(__clang__)
#define FSM_TARGET __attribute__((target("avx2,fma,f16c")))
#else
#define FSM_TARGET
#endif
#define FSM_ISA avx2
#ifdef FSM_AVX2_F64_GATHER
#define FSM_ISA_ALGORITHM "AVX2+FMA: f32 x_rr2_p6_c2s (8 floats/step, x2 unrolled), f64 x_rr2_t16_p7 (gathered table, x2)"
#else
#define FSM_ISA_ALGORITHM "AVX2+FMA: f32 x_rr2_p6_c2s (8 floats/step, x2 unrolled), f64 x_rr2_t8_p8 (vpermd table, x2)"
#endif
#define VD_N 4
#define VF_N 8
typedef __m256d vd;
typedef __m256 vf;
typedef __m256d vd_nanflag;
typedef __m256 vf_nanflag;

FSM_TARGET static inline vd vd_set1(double a) { return _mm256_set1_pd(a); }
FSM_TARGET static inline vd vd_load(const double *p) { return _mm256_loadu_pd(p); }
FSM_TARGET static inline void vd_store(double *p, vd a) { _mm256_storeu_pd(p, a); }
FSM_TARGET static inline vd vd_load_f32(const float *p) { return _mm256_cvtps_pd(_mm_loadu_ps(p)); }
FSM_TARGET static inline void vd_store_f32(float *p, vd a) { _mm_storeu_ps(p, _mm256_cvtpd_ps(a)); }
FSM_TARGET static inline vd vd_add(vd a, vd b) { return _mm256_add_pd(a, b); }
FSM_TARGET static inline vd vd_sub(vd a, vd b) { return _mm256_sub_pd(a, b); }
FSM_TARGET static inline vd vd_mul(vd a, vd b) { return _mm256_mul_pd(a, b); }
FSM_TARGET static inline vd vd_div(vd a, vd b) { return _mm256_div_pd(a, b); }
FSM_TARGET static inline vd vd_fma(vd a, vd b, vd c) { return _mm256_fmadd_pd(a, b, c); }
FSM_TARGET static inline vd vd_max(vd a, vd b) { return _mm256_max_pd(a, b); }
/* maxpd returns its second operand when either is NaN: a NaN d passes through. */
FSM_TARGET static inline vd vd_clamp_lo(vd lo, vd d) { return _mm256_max_pd(lo, d); }
FSM_TARGET static inline vd vd_keep_if_gt(vd v, vd d, vd lo) { return _mm256_and_pd(_mm256_cmp_pd(d, lo, _CMP_GT_OQ), v); }
FSM_TARGET static inline vd vd_keep_if_ne0(vd v, vd d)
{
    return _mm256_andnot_pd(_mm256_cmp_pd(d, _mm256_setzero_pd(), _CMP_EQ_OQ), v);
}
FSM_TARGET static inline vd vd_one_if_eq0(vd d)
{
    return _mm256_and_pd(_mm256_cmp_pd(d, _mm256_setzero_pd(), _CMP_EQ_OQ), _mm256_set1_pd(1.0));
}
FSM_TARGET static inline vd_nanflag vd_nanflag_init(void) { return _mm256_setzero_pd(); }
FSM_TARGET static inline vd_nanflag vd_nanflag_update(vd_nanflag f, vd a, vd b)
{
    return _mm256_or_pd(f, _mm256_cmp_pd(a, b, _CMP_UNORD_Q));
}
FSM_TARGET static inline int vd_nanflag_any(vd_nanflag f) { return _mm256_movemask_pd(f) != 0; }
FSM_TARGET static inline double vd_hsum(vd a)
{
    __m128d s = _mm_add_pd(_mm256_castpd256_pd128(a), _mm256_extractf128_pd(a, 1));
    return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
}
FSM_TARGET static inline double vd_hmax(vd a)
{
    __m128d s = _mm_max_pd(_mm256_castpd256_pd128(a), _mm256_extractf128_pd(a, 1));
    return _mm_cvtsd_f64(_mm_max_sd(s, _mm_unpackhi_pd(s, s)));
}
FSM_TARGET static inline vd vd_pow2_bits(vd t) { return _mm256_castsi256_pd(_mm256_slli_epi64(_mm256_castpd_si256(t), 52)); }
/* float64 table kernels: vd_min, vd_hmin, vd_floor, and the table lookup below */
FSM_TARGET static inline vd vd_min(vd a, vd b) { return _mm256_min_pd(a, b); }
FSM_TARGET static inline double vd_hmin(vd a)
{
    __m128d s = _mm_min_pd(_mm256_castpd256_pd128(a), _mm256_extractf128_pd(a, 1));
    return _mm_cvtsd_f64(_mm_min_sd(s, _mm_unpackhi_pd(s, s)));
}
FSM_TARGET static inline vd vd_floor(vd a) { return _mm256_floor_pd(a); }
/* float64 table kernels: the 8-entry table 2^(j/8) (FSM_F64_TBITS 3), indexed by the low 3 bits of t,
 * without a gather. The 16-entry table took two vgatherqpd a vector (hi and lo), and on Zen 3 they were
 * half of the exp pass: the pass with a constant in their place took 0.45-0.47 of the time (ab.sh
 * F64=1, 256 x 1000). Each half of the 8-entry table fits one register: vpermd picks the double
 * j mod 4 of each half (dword indices 2j, 2j + 1 mod 8), blendv picks the half by bit 2 of j (moved
 * to the sign bit): 2 vpermd + 1 blendv per table, and the index and mask (3 + 1 integer operations)
 * shared by hi and lo. The smaller table costs the polynomial one degree (7 -> 8, template.h). On
 * Zen 3 the exp passes are 1.33-1.41x faster than with the gathers; a 16-entry lookup of this form (4
 * vpermd + 3 blendv per table) was no faster than the gathers. On Intel Ice Lake (family 6 model 106)
 * the gather form is 3.0-4.1x slower than this one. Zen 5 gathers cheaply (30 % of the pass,
 * bench/micro/README.md) and has not been measured: FSM_AVX2_F64_GATHER builds the gather form for
 * bench/micro/ab.sh (CFLAGS_B=-DFSM_AVX2_F64_GATHER F64=1). */
#ifdef FSM_AVX2_F64_GATHER
#define FSM_F64_TBITS 4
FSM_TARGET static inline vd vd_table(const double *tab, vd t)
{
    __m256i j = _mm256_and_si256(_mm256_castpd_si256(t), _mm256_set1_epi64x(15));
    return _mm256_i64gather_pd(tab, j, 8);
}
#else
#define FSM_F64_TBITS 3
FSM_TARGET static inline vd vd_table(const double *tab, vd t)
{
    __m256i ti = _mm256_castpd_si256(t);
    __m256i idx = _mm256_add_epi32(_mm256_shuffle_epi32(_mm256_slli_epi64(ti, 1), 0xa0), _mm256_set1_epi64x(1LL << 32));
    __m256d lo4 = _mm256_castsi256_pd(_mm256_permutevar8x32_epi32(_mm256_loadu_si256((const __m256i *)tab), idx));
    __m256d hi4 = _mm256_castsi256_pd(_mm256_permutevar8x32_epi32(_mm256_loadu_si256((const __m256i *)(tab + 4)), idx));
    return _mm256_blendv_pd(lo4, hi4, _mm256_castsi256_pd(_mm256_slli_epi64(ti, 61)));
}
#endif
FSM_TARGET static inline vd vd_pow2_tbits(vd t)
{
    return _mm256_castsi256_pd(_mm256_slli_epi64(_mm256_srli_epi64(_mm256_castpd_si256(t), FSM_F64_TBITS), 52));
}
FSM_TARGET static inline int vd_count_eq(vd a, vd b) { return __builtin_popcount((unsigned)_mm256_movemask_pd(_mm256_cmp_pd(a, b, _CMP_EQ_OQ))); }
FSM_TARGET static inline int vd_count_ne(vd a, vd b) { return __builtin_popcount((unsigned)_mm256_movemask_pd(_mm256_cmp_pd(a, b, _CMP_NEQ_UQ))); }
FSM_TARGET static inline vd vd_select_eq(vd a, vd b, vd x, vd y) { return _mm256_blendv_pd(y, x, _mm256_cmp_pd(a, b, _CMP_EQ_OQ)); }
FSM_TARGET static inline vd vd_zero_if_eq(vd v, vd a, vd b) { return _mm256_and_pd(_mm256_cmp_pd(a, b, _CMP_NEQ_UQ), v); }
/* non-temporal stores (p aligned to the vector) and the fence that orders them before later stores */
FSM_TARGET static inline void vf_stream(float *p, vf a) { _mm256_stream_ps(p, a); }
FSM_TARGET static inline void vd_stream(double *p, vd a) { _mm256_stream_pd(p, a); }
FSM_TARGET static inline void fsm_sfence(void) { _mm_sfence(); }
/* Partial vectors for tails: lanes k < r are loaded / stored, the others read as `fill`. */
FSM_TARGET static inline __m256i lanes4q_below(int64_t r);
FSM_TARGET static inline vd vd_keep_first(vd a, int64_t r) { return _mm256_and_pd(_mm256_castsi256_pd(lanes4q_below(r)), a); }
FSM_TARGET static inline __m128i lanes4_below(int64_t r) { return _mm_cmpgt_epi32(_mm_set1_epi32((int)r), _mm_setr_epi32(0, 1, 2, 3)); }
FSM_TARGET static inline vd vd_load_f32_part(const float *p, int64_t r, double fill)
{
    __m128i m = lanes4_below(r);
    __m128 v = _mm_blendv_ps(_mm_set1_ps((float)fill), _mm_maskload_ps(p, m), _mm_castsi128_ps(m));
    return _mm256_cvtps_pd(v);
}
FSM_TARGET static inline void vd_store_f32_part(float *p, vd a, int64_t r) { _mm_maskstore_ps(p, lanes4_below(r), _mm256_cvtpd_ps(a)); }
FSM_TARGET static inline __m256i lanes4q_below(int64_t r) { return _mm256_cmpgt_epi64(_mm256_set1_epi64x(r), _mm256_setr_epi64x(0, 1, 2, 3)); }
FSM_TARGET static inline vd vd_load_part(const double *p, int64_t r, double fill)
{
    __m256i m = lanes4q_below(r);
    return _mm256_blendv_pd(_mm256_set1_pd(fill), _mm256_maskload_pd(p, m), _mm256_castsi256_pd(m));
}
FSM_TARGET static inline void vd_store_part(double *p, vd a, int64_t r) { _mm256_maskstore_pd(p, lanes4q_below(r), a); }
FSM_TARGET static inline __m256i lanes8_below(int64_t r)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)r), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
FSM_TARGET static inline vf vf_load_part(const float *p, int64_t r, float fill)
{
    __m256i m = lanes8_below(r);
    return _mm256_blendv_ps(_mm256_set1_ps(fill), _mm256_maskload_ps(p, m), _mm256_castsi256_ps(m));
}
FSM_TARGET static inline vf vf_set1(float a) { return _mm256_set1_ps(a); }
FSM_TARGET static inline vf vf_load(const float *p) { return _mm256_loadu_ps(p); }
FSM_TARGET static inline void vf_store(float *p, vf a) { _mm256_storeu_ps(p, a); }
FSM_TARGET static inline vf vf_mul(vf a, vf b) { return _mm256_mul_ps(a, b); }
FSM_TARGET static inline vf vf_fma(vf a, vf b, vf c) { return _mm256_fmadd_ps(a, b, c); }
FSM_TARGET static inline vf vf_max(vf a, vf b) { return _mm256_max_ps(a, b); }
FSM_TARGET static inline vf_nanflag vf_nanflag_init(void) { return _mm256_setzero_ps(); }
FSM_TARGET static inline vf_nanflag vf_nanflag_update(vf_nanflag f, vf a, vf b)
{
    return _mm256_or_ps(f, _mm256_cmp_ps(a, b, _CMP_UNORD_Q));
}
FSM_TARGET static inline int vf_nanflag_any(vf_nanflag f) { return _mm256_movemask_ps(f) != 0; }
FSM_TARGET static inline float vf_hmax(vf a)
{
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_max_ss(s, _mm_shuffle_ps(s, s, 1)));
}
FSM_TARGET static inline float vf_hmin(vf a)
{
    __m128 s = _mm_min_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_min_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_min_ss(s, _mm_shuffle_ps(s, s, 1)));
}
FSM_TARGET static inline int vf_count_eq(vf a, vf b) { return __builtin_popcount((unsigned)_mm256_movemask_ps(_mm256_cmp_ps(a, b, _CMP_EQ_OQ))); }
/* A running count of the lanes whose bits equal b's, kept in a vector: an integer compare and subtract
   per vector, off the FMA pipes and with no move of the mask to a general register (the float32 exp
   pass 5 % faster on Zen 3 than vf_count_eq, bench/micro/ab.sh). Bit equality is float equality but
   for +0 against -0: only for counts where that cannot matter (the template's softmax exp pass). Each
   lane counts to at most n / 8. */
typedef __m256i vf_tally;
FSM_TARGET static inline vf_tally vf_tally_zero(void) { return _mm256_setzero_si256(); }
FSM_TARGET static inline vf_tally vf_tally_eq(vf_tally t, vf a, vf b)
{
    return _mm256_sub_epi32(t, _mm256_cmpeq_epi32(_mm256_castps_si256(a), _mm256_castps_si256(b)));
}
/* The same count by float equality: one subtract where the compare is already made (vf_zero_if_eq) */
FSM_TARGET static inline vf_tally vf_tally_feq(vf_tally t, vf a, vf b)
{
    return _mm256_sub_epi32(t, _mm256_castps_si256(_mm256_cmp_ps(a, b, _CMP_EQ_OQ)));
}
FSM_TARGET static inline int64_t vf_tally_total(vf_tally t)
{
    uint32_t lane[8];
    int64_t total = 0;
    _mm256_storeu_si256((__m256i *)lane, t);
    for (int k = 0; k < 8; k++) total += lane[k];
    return total;
}
FSM_TARGET static inline vf vf_add(vf a, vf b) { return _mm256_add_ps(a, b); }
FSM_TARGET static inline vf vf_sub(vf a, vf b) { return _mm256_sub_ps(a, b); }
FSM_TARGET static inline vf vf_min(vf a, vf b) { return _mm256_min_ps(a, b); }
FSM_TARGET static inline vf vf_pow2_bits(vf t) { return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_castps_si256(t), 23)); }
/* p * 2^j with j the low 9 bits of bits(t) (two's complement), by an integer add to p's exponent field:
   exact where p and the result are normal; off the FMA pipes, where a multiply would take one */
FSM_TARGET static inline vf vf_add_exponent(vf p, vf t)
{
    return _mm256_castsi256_ps(_mm256_add_epi32(_mm256_castps_si256(p), _mm256_slli_epi32(_mm256_castps_si256(t), 23)));
}
FSM_TARGET static inline void vf_store_part(float *p, vf a, int64_t r) { _mm256_maskstore_ps(p, lanes8_below(r), a); }
FSM_TARGET static inline vf vf_keep_first(vf a, int64_t r) { return _mm256_and_ps(_mm256_castsi256_ps(lanes8_below(r)), a); }
FSM_TARGET static inline vf vf_zero_if_eq(vf v, vf a, vf b) { return _mm256_andnot_ps(_mm256_cmp_ps(a, b, _CMP_EQ_OQ), v); }
FSM_TARGET static inline vf vf_one_if_eq(vf a, vf b) { return _mm256_and_ps(_mm256_cmp_ps(a, b, _CMP_EQ_OQ), _mm256_set1_ps(1.0f)); }
FSM_TARGET static inline vf vf_select_eq(vf a, vf b, vf x, vf y) { return _mm256_blendv_ps(y, x, _mm256_cmp_ps(a, b, _CMP_EQ_OQ)); }
FSM_TARGET static inline vf vf_select_lt(vf a, vf thr, vf x, vf y) { return _mm256_blendv_ps(y, x, _mm256_cmp_ps(a, thr, _CMP_LT_OQ)); }
/* bits(z + b) - bits(b) as integers: for 0 <= z < b, b a power of two, round(z / ulp(b)) (the sum
   rounded in the MXCSR mode: nearest unless the caller changed it) */
FSM_TARGET static inline vf vf_bits_above(vf z, vf b)
{
    return _mm256_castsi256_ps(_mm256_sub_epi32(_mm256_castps_si256(_mm256_add_ps(z, b)), _mm256_castps_si256(b)));
}
/* lo += the low 4 floats of a, hi += the high 4, in double */
FSM_TARGET static inline void vf_widen_add(vd *lo, vd *hi, vf a)
{
    *lo = _mm256_add_pd(*lo, _mm256_cvtps_pd(_mm256_castps256_ps128(a)));
    *hi = _mm256_add_pd(*hi, _mm256_cvtps_pd(_mm256_extractf128_ps(a, 1)));
}

/* r[0..VF_N) transposed in place (lane j of r[i] becomes lane i of r[j]): the tile kernels. Pairs of
   floats, then of doubles, interleaved within each 128-bit half; then the halves exchanged. */
FSM_TARGET static inline void vf_transpose(vf r[8])
{
    __m256 t[8];
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int q = 0; q < 8; q += 4)  /* r[q + c], half L: rows q .. q+3 of column 4L + c */
        for (int h = 0; h < 2; h++) {
            __m256d a = _mm256_castps_pd(t[q + h]), b = _mm256_castps_pd(t[q + 2 + h]);
            r[q + 2 * h] = _mm256_castpd_ps(_mm256_unpacklo_pd(a, b));
            r[q + 2 * h + 1] = _mm256_castpd_ps(_mm256_unpackhi_pd(a, b));
        }
    for (int c = 0; c < 4; c++) {
        t[c] = _mm256_permute2f128_ps(r[c], r[4 + c], 0x20);
        t[4 + c] = _mm256_permute2f128_ps(r[c], r[4 + c], 0x31);
    }
    for (int i = 0; i < 8; i++) r[i] = t[i];
}
FSM_TARGET static inline void vd_transpose(vd r[4])
{
    __m256d t[4];
    for (int i = 0; i < 4; i += 2) {  /* t[2p + c], half L: rows 2p, 2p+1 of column 2L + c */
        t[i] = _mm256_unpacklo_pd(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_pd(r[i], r[i + 1]);
    }
    for (int c = 0; c < 2; c++) {
        r[c] = _mm256_permute2f128_pd(t[c], t[2 + c], 0x20);
        r[2 + c] = _mm256_permute2f128_pd(t[c], t[2 + c], 0x31);
    }
}

/* float16 / bfloat16 <-> float32 (the half types' loads widen exactly; stores round to nearest even) */
FSM_TARGET static inline vf vf_load_f16(const uint16_t *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }
FSM_TARGET static inline void vf_store_f16(uint16_t *p, vf a)
{
    _mm_storeu_si128((__m128i *)p, _mm256_cvtps_ph(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}
FSM_TARGET static inline vf vf_load_bf16(const uint16_t *p)
{
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16));
}
/* expsum_store_half_rows gives the plain bfloat16 form of the exp pass its own copy, its flags
   constant (template.h): the shared copy, which tests them in the loop, cost 0.012 ns/element more
   (0.295 against 0.283; half.sh built with the wheel's -fno-ipa-cp-clone, Zen 5), which kept AVX2
   bfloat16 (1, 128256) above 1.1x float32. About 2 kB of code; the other sets' half rows are within
   their target without it. */
#define FSM_BF16_ROW_OWN_COPY 1

/* 16 bfloat16 values from p as two vectors (p[0..8), p[8..16)): one load, its 64-bit quarters
   reordered (q0 q2 | q1 q3), then each quarter's words interleaved with zeros, which puts them in
   the high halves of the 32-bit lanes: three operations instead of vf_load_bf16's two a vector */
FSM_TARGET static inline void vf_load_bf16x2(const uint16_t *p, vf *a, vf *b)
{
    __m256i q = _mm256_permute4x64_epi64(_mm256_loadu_si256((const __m256i *)p), 0xd8), z = _mm256_setzero_si256();
    *a = _mm256_castsi256_ps(_mm256_unpacklo_epi16(z, q));
    *b = _mm256_castsi256_ps(_mm256_unpackhi_epi16(z, q));
}
/* the bfloat16 bits of a in the low half of each 32-bit lane: nearest even, NaN kept quiet */
FSM_TARGET static inline __m256i bf16_bits(vf a)
{
    __m256i x = _mm256_castps_si256(a);
    __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(x, 16), _mm256_set1_epi32(1));
    __m256i r = _mm256_add_epi32(x, _mm256_add_epi32(_mm256_set1_epi32(0x7fff), lsb));
    __m256i quiet = _mm256_or_si256(x, _mm256_set1_epi32(0x400000));
    r = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(r), _mm256_castsi256_ps(quiet),
                                             _mm256_cmp_ps(a, a, _CMP_UNORD_Q)));
    return _mm256_srli_epi32(r, 16);
}
FSM_TARGET static inline void vf_store_bf16(uint16_t *p, vf a)
{
    __m256i r = bf16_bits(a);
    _mm_storeu_si128((__m128i *)p, _mm_packus_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1)));
}
/* two vectors packed into one store */
FSM_TARGET static inline void vf_store_bf16x2(uint16_t *p, vf a, vf b)
{
    __m256i packed = _mm256_packus_epi32(bf16_bits(a), bf16_bits(b));  /* per 128-bit lane: 4 of a, 4 of b */
    _mm256_storeu_si256((__m256i *)p, _mm256_permute4x64_epi64(packed, 0xd8));
}
/*
 * Rounding to bfloat16 in two float operations where every lane of a is +0 or normal with
 * |a| < 2^111 (the caller knows; softmax's outputs in a row without subnormal products). Let
 * U = 2^(e-7), a's bfloat16 ulp (a in [2^e, 2^(e+1))). 65536 a is a multiple of U; q = fl(65535 a)
 * lies in [2^(e+16), 2^(e+17)), so it is a multiple of U too, within U/2 of 65536 a - a; hence
 * h = 65536 a - q (one FMA, exact) is the multiple of U nearest to a. On a tie (a's low 16 bits
 * 0x8000) q rounds to an even multiple of U, and 65536 a / U = a's 24-bit significand is even there,
 * so h / U is even: nearest even, as the integer form. (When 65535 a < 2^(e+16), a is within 2^-16
 * of 2^e and q's finer grid still gives 2^e.) h has zero low 16 bits: they are the bfloat16 bits.
 * Checked for every float in [2^-126, 1] and its negative (tests/test_half.py re-checks the
 * identity on the cases that decide it); subnormals and -0 would differ, hence the precondition.
 * The scale pass of bfloat16 softmax 0.097 -> 0.084 ns/element against the integer form (half.sh,
 * AVX2, Zen 5; Veltkamp's three-operation split and 65536 a by an exponent add measured the same).
 */
FSM_TARGET static inline __m256i bf16_bits_normal(vf a)
{
    vf q = _mm256_mul_ps(a, _mm256_set1_ps(65535.0f));
    return _mm256_srli_epi32(_mm256_castps_si256(_mm256_fmsub_ps(a, _mm256_set1_ps(65536.0f), q)), 16);
}
FSM_TARGET static inline void vf_store_bf16x2_normal(uint16_t *p, vf a, vf b)
{
    __m256i packed = _mm256_packus_epi32(bf16_bits_normal(a), bf16_bits_normal(b));
    _mm256_storeu_si256((__m256i *)p, _mm256_permute4x64_epi64(packed, 0xd8));
}

/* The bits of half values as 16-bit integers, VH_N a vector (template.h, max_half_bits). */
#define FSM_TARGET_H FSM_TARGET
#define VH_N 16
typedef __m256i vh;
FSM_TARGET static inline vh vh_load(const uint16_t *p) { return _mm256_loadu_si256((const __m256i *)p); }
FSM_TARGET static inline vh vh_set1(uint16_t a) { return _mm256_set1_epi16((short)a); }
FSM_TARGET static inline vh vh_max_s(vh a, vh b) { return _mm256_max_epi16(a, b); }
FSM_TARGET static inline vh vh_max_u(vh a, vh b) { return _mm256_max_epu16(a, b); }
FSM_TARGET static inline vh vh_min_u(vh a, vh b) { return _mm256_min_epu16(a, b); }
/* the horizontal reductions: folded to 8 lanes, then phminposuw (as avx512.c) */
FSM_TARGET static inline uint16_t vh_hmin_u(vh a)
{
    __m128i t = _mm_min_epu16(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
    return (uint16_t)_mm_extract_epi16(_mm_minpos_epu16(t), 0);
}
FSM_TARGET static inline uint16_t vh_hmax_u(vh a) { return (uint16_t)(0xffff ^ vh_hmin_u(_mm256_xor_si256(a, _mm256_set1_epi16(-1)))); }
FSM_TARGET static inline int16_t vh_hmax_s(vh a) { return (int16_t)(0x8000 ^ vh_hmax_u(_mm256_xor_si256(a, _mm256_set1_epi16((short)0x8000)))); }

#include "kernels/template.h"

const fsm_kernels *const fsm_kernels_avx2 = &kernel_set_avx2;
#else
const fsm_kernels *const fsm_kernels_avx2 = 0;
#endif

/*
 * The kernels, written once over a small SIMD vocabulary and compiled once per ISA.
 *
 * portable.c, avx2.c and avx512.c each define the vocabulary (types vd = VD_N doubles, vf = VF_N
 * floats, and the vd_* / vf_* operations, all marked FSM_TARGET) and FSM_ISA (their kernels.inc id),
 * then include this file, which defines their kernel set. The steps below are the derivation; every
 * ISA runs exactly these operations, so the ISAs differ only in summation order across lanes.
 * Each kernel is defined once here as KNAME(<op>_<dtype>) and compiled as <op>_<dtype>_<isa>, a name
 * no grep of the sources finds: csrc/kernels/INDEX lists every such name with the line defining it.
 * Rerun scripts/kernel_index.py when a definition moves (tests/test_kernel_index.py fails until then).
 *
 * float32 data stays in float32 lanes ("x_rr2_p6", exp of x itself, never of a rounded x - m).
 * Per row (or column) with maximum m:
 *   c  = m if |m| > 240 else 0        the shift, exact wherever it matters (below)
 *   K  = round((m - c) log2 e)         so the largest stored exp is near 2^64
 *   d  = max(x - c, (m - c) - 120)    x itself when c = 0; below the clamp the output is 0 (next)
 *   t  = d*log2e + (0x1.8p23 + 64 - K)   magic-bias rounding: t = magic + k, k = round(d log2 e),
 *                                     and bits(t) << 23 is k - K + 64 in an exponent field
 *   k  = t - magic                    exact
 *   r  = fma(k, -ln2_hi, d)           exact: ln2_hi is ln 2 rounded to float, so k*ln2_hi is a
 *                                     multiple of 2^-24, and so is d once |d| >= 1/2 (for |d| < 1/2,
 *                                     k is 0 or +-1 and r is a multiple of ulp(d)); |r| < 0.35 fits
 *   r  = fma(k, -ln2_lo, r)           ln2_lo = ln 2 - ln2_hi rounded: error <= 2^-26 |r| ~ 2^-27.5
 *   p  = 1 + r + c2 r^2 + ... + c6 r^6   Horner, float32 coefficients fitted for relative error
 *                                     (scripts/fit_exp_f32.py): 2^-27.97 on |r| <= 0.3466
 *   e  = p * 2^(k - K + 64)           exact scaling, as an integer add of bits(t) << 23 to p's bits (no
 *                                     multiply on the FMA pipes: the exp pass 1-2 % faster on Zen 3;
 *                                     p and e are normal); e = exp(x - m) * unit, unit = e(m) in [2^63.5, 2^64.5]
 * No rounding of x - m ever enters e: with c = 0, d = x; with c = m (|m| > 240), every x that is not
 * clamped lies in [m - 120, m], within a factor 2 of m, so x - m is exact (Sterbenz). That removes
 * the error every other float32 softmax has (|x - m| * 2^-24 relative: 66 ulp at x - m = -80).
 * The 2^64 keeps every intermediate normal: the clamp gives e >= 2^-110, the largest e is < 2^65,
 * so neither the exps nor their sums are ever subnormal (Intel takes a microcode assist on every
 * subnormal operand or result); the clamp at -120 gives outputs below 2^-164, which round to +0.
 *
 * Sums of float32 exps ("c2s": compensated, then double). Each lane accumulates s += e with
 * Fast2Sum, exact because s starts at B = 2^65 > every e and only grows (|s| >= |e|):
 *   t = s + e,  c += e - (t - s),  s = t        (s - B) + c is then the exact sum, up to c's roundings
 * After CSUM_STEPS (16) steps, (s - B) + c is added to double accumulators ((double)s - B is exact)
 * and the lane restarts at B (s stays below 2^69). c's own rounding error over 16 steps is below
 * 16 * 2^-24 |c| with |c| <= 16 ulp(s) / 2, i.e. 2^-38 of s per flush (16 steps instead of 8 measured
 * 5 % faster, bench/micro/ab.sh); since the row's max element is in the sum, the sum
 * is at least B / 2^1.5, so the row sum's relative error stays near 2^-30 (a float32 sum of a few terms
 * in each lane, then double, measured 2.38 ulp). Cost, measured by bench/micro/passes.sh on Zen 4
 * (AVX-512, zmm adds and FMAs one a cycle each): 0.08 ns/element of a 0.30 exp pass, about what
 * widening every vector to double costs there; on Intel the widening cost 60 % of the exp pass
 * (../shared/proto). This does not apply to the log ops' sums, which leave the max out and can be
 * far below B (a dominant logit): see below.
 *
 * The max elements. Their stored exp e(m) is rounded like any other, and when they dominate the sum
 * that rounding would scale every output of the row (measured 2.26 ulp with one logit 40 above the
 * rest). So the sum counts them with the unrounded value unit = e(m) (the exact sum of two float
 * pieces of the same polynomial, exp_f32_pieces), and the scale pass writes their outputs as
 * unit * D formed in double and rounded to float (it finds them as the stored values equal to e(m)):
 * a row of one element gives exactly 1, k equal maxima exactly 1/k.
 *
 * Normalisation: y = e * D, D = 1/sum (stored units, a double) split into floats hi + lo,
 * y = fma(e, hi, e*lo): e*lo is rounded first (2^-48 of y), then the FMA adds it to the exact e*hi
 * and rounds again, the rounding that counts. Error: e has <= 0.5 ulp (rounding of p) + ~0.4 ulp
 * (polynomial, reduction, Horner), the sum ~2^-30, D's split 2^-48 (below 2^-30 in the rows whose
 * lo is dropped, f32_scale_consts), the product 0.5 ulp: measured <= 1.6 ulp in the accuracy tests
 * on every ISA. Subnormal outputs (y < 2^-126) are never formed by a
 * float operation: when the row's smallest e can give one, the scale pass computes z = y * 2^64
 * (normal), and for z < 2^-62 stores the integer round(z * 2^85), which is y's subnormal bit pattern
 * (within 1 unit of 2^-149 plus the relative error above); e with y < 2^-154 are zeroed first.
 * Where the CPU computes with subnormals at full speed (measured once by cpu.c; Zen 4 does, Intel,
 * Zen 3 and Zen 5 do not: Zen 5 takes 2.4-2.6x as long on a product of normal operands that is
 * subnormal), the AVX-512 set lets the multiply z * 2^-64 round instead: the same bits, fewer
 * operations (scale_direct_f32).
 * log_softmax and logsumexp need S' = sum_{x < m} exp(x - m) + (count of m - 1) to full relative
 * accuracy even when it is 1e-20. Each exp is softmax's rounded e (the same Horner steps) plus a
 * residual rho (exp_f32_res) that recovers the three roundings that count: the last two Horner steps
 * (their residuals are exact FMAs: 1 - p is exact for p in [0.7, 1.42]) and the reduction's (delta,
 * as in exp_f32_pieces); what is left is below 2^-27 of e. e is summed in double, rho in float (its
 * own error is 2^-24 of a 2^-24 correction); the exps carry 2^100 so that the residuals stay normal,
 * and rows whose minimum is within the clamp skip it, as softmax's do. This replaced the exact
 * two-piece exp (exp_f32_pieces, still the unit of the max): 9 operations a vector fewer, the pass
 * 0.45 -> 0.41 ns/element (AVX-512, Zen 4). Without rho the pass costs 0.29, but S' then carries e's
 * 0.5-0.9 ulp and log_softmax of a dominant logit about 1 ulp more. (x - m) - log1p(S') is formed in
 * double (x - m exact in double), from an aligned output address: measured <= 0.62 ulp.
 *
 * float64 data stays in double lanes: exp of x itself and a table of N = 2^FSM_F64_TBITS entries,
 * "x_rr2_t16_p7" (16 entries, degree 7: AVX-512 and portable) or "x_rr2_t8_p8" (8 entries, degree 8:
 * AVX2, where a 16-entry lookup is two gathers, avx2.c). Per row (or column) with maximum m:
 *   c  = m if |m| > 2^40 else 0       the shift, exact wherever it matters (as for float32: Sterbenz)
 *   KN = round((m - c) N log2 e),  Kq = floor(KN / N)   the row's scale is 2^-Kq
 *   d  = x - c, clamped below at (Kq - bias + 1/2) ln 2 (careful path, below)
 *   t  = d*Nlog2e + (0x1.8p52 + N (bias - Kq))   magic-bias rounding: t = magic + k, k = round(N d log2 e);
 *                                     the low bits of t are j = k mod N, bits(t) >> bits << 52 is
 *                                     2^(floor(k/N) - Kq + bias - 1023)
 *   r  = fma(k, -ln2_hi/N, d)         exact: ln2_hi = ln 2 rounded to double, so k ln2_hi/N is a multiple
 *                                     of 2^-53/N, and so is d once |d| >= 1/2; for smaller |d|, r is a multiple
 *                                     of min(2^-53/N, ulp(d)) and below 2^53 of that (k = 0: r = d)
 *   r  = fma(k, -ln2_lo/N, r)         rounding error <= ulp(ln2/2N)/2: 2^-59 (N = 16), 2^-58 (N = 8)
 *                                     (absolute, so relative in e)
 *   p  = r + c2 r^2 + ... + cD r^D    e^r - 1, Horner, double coefficients fitted for relative error
 *                                     (scripts/fit_exp_f64.py): 2^-65.2 on |r| <= ln2/32 (D = 7), 2^-66.0
 *                                     on |r| <= ln2/16 (D = 8); its last fma rounds once relative to
 *                                     |p| <= 0.022 / 0.045 (2^-58.5 / 2^-57.5 of e)
 *   u  = fma(T_hi[j], p, T_lo[j])     2^(j/N) = T_hi + T_lo (T_lo < 2^-53 T_hi, T_lo p dropped: 2^-59.5 / 2^-58.5);
 *                                     |u| < 0.05 / 0.09, rounded: 2^-57.5 / 2^-56.9 of e
 *   e  = (T_hi + u) * 2^(floor(k/N) - Kq)   rounded once (0.5 ulp), the power of two exact;
 *                                     e = exp(x - m) * unit, unit = exp(m - c - Kq ln 2) in [0.95, 2.09]
 * No rounding of x - m enters e (d = x, or x - m exact), so the TwoSum of x - m the float64 kernels
 * carried before is gone. The errors before e's own rounding add up to < 2^-55.8 of e with 16 entries,
 * < 2^-55.5 with 8 (0.14 / 0.18 ulp of a double near 2): e carries <= 0.68 ulp, the normalisation 0.5
 * ulp more (same split as float32: y = fma(e, c_hi, e*c_lo), c = 1/S a double-double from the long
 * double row sum), so softmax is bounded by ~1.8 ulp and measured <= 1.62 ulp with either table
 * (tests/test_accuracy.py, every ISA). The 8-entry table made the AVX2 exp passes 1.33-1.41x faster
 * (Zen 3, bench/micro/ab.sh F64=1): its lookup is 10 register operations against the gathers' two.
 * Fast path (softmax rows whose minimum, taken in the max pass, is >= m - 707): bias 1023, no clamp:
 * every 2^(floor(k/N) - Kq) is normal. Careful path (smaller minima, -inf elements, columns, the log
 * ops): bias 1077, so the power of two is 2^(... + 54), normal down to the clamp, where bits(t) >> bits is
 * 0 and e is +0 exactly (exp(x - m) < 2^-1075.8 there: the output rounds to +0); softmax's stored exp
 * is then (T_hi + u) * 2^(... + 54) * 2^-54, whose last product rounds once more where it is subnormal
 * (within 1 unit of 2^-1074 plus the relative error above).
 * Sums. Softmax: the stored exps by Fast2Sum from B = 4 > every e (the float32 argument: s + c is the
 * exact sum up to c's own roundings, ~2^-80 of s for 8192 steps; no flush needed in double), then the
 * lanes folded with TwoSum. The max elements, as for float32: their stored exp e(m) is unit rounded, so
 * unit is kept as a double-double (unit_hi = e(m), unit_lo = the exact residual of T_hi + u at x = m,
 * Fast2Sum), the sum adds n_max * unit_lo, and the scale pass writes their outputs as unit * c rounded
 * once: one element gives exactly 1, k equal maxima 1/k. unit itself carries the reduction/polynomial
 * errors above (< 2^-55.5), common to the block: it cancels within a block and enters only the merge of
 * blocks of a long row. Log ops: each exp is kept unrounded as its two pieces, T_hi * 2^(...+54)
 * (exact, summed with TwoSum) and u * 2^(...+54) (< 0.05 of the term, plain sum), without the elements
 * equal to m, and the sums are scaled by 2^-54 once: exps below 2^-1022 are not rounded to the
 * subnormal grid before they are added. Measured <= 1.19 ulp (log_softmax: its last pass, below, rounds
 * twice; 0.76 with the TwoSum form before it, 0.54 with the two TwoSums before that), 0.50 (logsumexp).
 *
 * Tails (n not a multiple of the vector) run the same vector code on a partial vector (masked load
 * and store) padded with -inf (exp gives 0, never equal to a finite max; the float32 kernels pad
 * with m and zero those lanes before the sum): as accurate as the body. Row kernels take a batch of
 * rows so that short rows do not pay a call per row; the float32 softmax computes its per-row
 * constants (and, in softmax_rows_f32, its 1/S and scale constants) for VF_N rows at a time, and
 * the tile kernels let the driver run rows of a few vectors as the lanes of the column kernels.
 * Passes whose result does not depend on which elements share a vector (max, scale) start at an
 * aligned address; the exp-and-sum pass does not, so that results do not depend on the arrays'
 * alignment.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>
#include "fastsoftmax.h"
#include "kernels/half.h"

#define FSM_CAT2(a, b) a##_##b
#define FSM_CAT(a, b) FSM_CAT2(a, b)
#define KNAME(name) FSM_CAT(name, FSM_ISA)
#define FSM_STR2(a) #a
#define FSM_STR(a) FSM_STR2(a)


/* ---- the two exponentials ---- */

/* ---- float32 in float32 lanes: the exp, the compensated sums, the normalisation ---- */

#define LOG2E_F 0x1.715476p+0f
#define LN2_HI_F 0x1.62e430p-1f
#define LN2_LO_F (-0x1.05c610p-29f)
#define MAGIC_F 0x1.8p23f
#define F32_SHIFT_ABOVE 240.0f  /* |m| above this: reduce x - m (exact by Sterbenz) instead of x */
#define F32_CLAMP 120.0f        /* x below m - F32_CLAMP: output 0 */
#define F32_BIAS 64.0f          /* softmax's stored exps carry 2^64: t's integer part is added to p's exponent */
#define F32_BIAS_LOG 227.0f     /* 127 + 100: the log ops' exps carry 2^100 (their residuals stay normal) */
#define CSUM_B 0x1p65f          /* start of each compensated lane: above every stored exp */
#define CSUM_STEPS 16           /* Fast2Sum steps per lane before the flush into double */

/* Per-lane constants from the maximum vm (the lane layout of the column kernels); the stored exps
   carry 2^(bias - 127). */
FSM_TARGET static inline void f32_lane_consts(vf vm, float bias, vf *vc, vf *vlo, vf *vmagic)
{
    const vf zero = vf_set1(0.0f);
    vf c = vf_select_lt(vm, vf_set1(-F32_SHIFT_ABOVE), vm, zero);
    c = vf_select_lt(vf_set1(F32_SHIFT_ABOVE), vm, vm, c);
    vf d = vf_sub(vm, c);
    vf K = vf_sub(vf_fma(d, vf_set1(LOG2E_F), vf_set1(MAGIC_F)), vf_set1(MAGIC_F));
    *vc = c;
    *vlo = vf_sub(d, vf_set1(F32_CLAMP));
    *vmagic = vf_add(vf_set1(MAGIC_F), vf_sub(vf_set1(bias), K));
}

FSM_TARGET static inline void f32_row_consts(float m, float bias, vf *vc, vf *vlo, vf *vmagic)
{
    f32_lane_consts(vf_set1(m), bias, vc, vlo, vmagic);
}

/*
 * exp(x - m) * unit as derived in the header, as two pieces whose sum is the unrounded value:
 * *hi = (1 + r rounded) * 2^j and *lo = (the rest) * 2^j, with 1 + r = h + l exactly (Fast2Sum),
 * r + delta the reduced argument (delta = the rounding error of r, recovered exactly), and
 * lo = l + delta (1 + r) + r^2 q(r) formed with roundings below 2^-29 of the result.
 */
FSM_TARGET static inline void exp_f32_pieces(vf x, vf vc, vf vlo, vf vmagic, vf *hi, vf *lo)
{
    const vf one = vf_set1(1.0f);
    vf d = vf_max(vf_sub(x, vc), vlo);
    vf t = vf_fma(d, vf_set1(LOG2E_F), vmagic);
    vf k = vf_sub(t, vmagic);
    vf r_hi = vf_fma(k, vf_set1(-LN2_HI_F), d);  /* exact */
    vf r = vf_fma(k, vf_set1(-LN2_LO_F), r_hi);
    vf delta = vf_fma(k, vf_set1(-LN2_LO_F), vf_sub(r_hi, r));
    vf q = vf_fma(vf_set1(0x1.6a242cp-10f), r, vf_set1(0x1.1239e0p-7f));
    q = vf_fma(q, r, vf_set1(0x1.5558f2p-5f));
    q = vf_fma(q, r, vf_set1(0x1.555492p-3f));
    q = vf_fma(q, r, vf_set1(0x1.fffffcp-2f));
    vf h = vf_add(one, r);
    vf l = vf_fma(delta, h, vf_add(vf_sub(one, h), r));
    vf scale = vf_pow2_bits(t);
    *hi = vf_mul(h, scale);
    *lo = vf_mul(vf_fma(vf_mul(r, r), q, l), scale);
}

/* exp(x - m) * unit rounded to float32, by plain Horner steps (the stored exps of softmax).
   shift = 0: the caller knows c = 0 (|m| <= 240, nearly every row) and the subtraction is skipped;
   clamp = 0: the caller knows no element is below the clamp (the row's min), and the max is skipped. */
FSM_TARGET static inline vf exp_f32_lanes_s(vf x, vf vc, vf vlo, vf vmagic, const int shift, const int clamp)
{
    vf d = shift ? vf_sub(x, vc) : x;
    if (clamp) d = vf_max(d, vlo);
    vf t = vf_fma(d, vf_set1(LOG2E_F), vmagic);
    vf k = vf_sub(t, vmagic);
    vf r = vf_fma(k, vf_set1(-LN2_HI_F), d);
    r = vf_fma(k, vf_set1(-LN2_LO_F), r);
    vf p = vf_fma(vf_set1(0x1.6a242cp-10f), r, vf_set1(0x1.1239e0p-7f));
    p = vf_fma(p, r, vf_set1(0x1.5558f2p-5f));
    p = vf_fma(p, r, vf_set1(0x1.555492p-3f));
    p = vf_fma(p, r, vf_set1(0x1.fffffcp-2f));
    p = vf_fma(p, r, vf_set1(1.0f));
    p = vf_fma(p, r, vf_set1(1.0f));
    return vf_add_exponent(p, t);  /* p in [0.7, 1.42], e in [2^-110, 2^65]: both normal, exact */
}

FSM_TARGET static inline vf exp_f32_lanes(vf x, vf vc, vf vlo, vf vmagic) { return exp_f32_lanes_s(x, vc, vlo, vmagic, 1, 1); }

/* The unrounded exps of the lanes of x, in double: unit[l] is the exact sum of the pieces of lane l. */
FSM_TARGET static inline void exp_f32_exact(vf x, vf vc, vf vlo, vf vmagic, double unit[VF_N])
{
    float hi[VF_N], lo[VF_N];
    vf h, l;
    exp_f32_pieces(x, vc, vlo, vmagic, &h, &l);
    vf_store(hi, h);
    vf_store(lo, l);
    for (int k = 0; k < VF_N; k += VD_N) vd_store(unit + k, vd_add(vd_load_f32(hi + k), vd_load_f32(lo + k)));
}

/* s + c += e, exact for each lane while s >= e (see the header: s starts at CSUM_B). */
FSM_TARGET static inline void csum_add(vf *s, vf *c, vf e)
{
    vf t = vf_add(*s, e);
    *c = vf_add(*c, vf_sub(e, vf_sub(t, *s)));
    *s = t;
}

/* Move (s - CSUM_B) + c into the double accumulators (s - CSUM_B is exact in double); restart s at CSUM_B. */
FSM_TARGET static inline void csum_flush(vd *d0, vd *d1, vf *s, vf *c)
{
    vd s0 = vd_set1(-(double)CSUM_B), s1 = vd_set1(VF_N > VD_N ? -(double)CSUM_B : 0.0);
    vf_widen_add(&s0, &s1, *s);
    vf_widen_add(&s0, &s1, *c);
    *d0 = vd_add(*d0, s0);
    *d1 = vd_add(*d1, s1);
    *s = vf_set1(CSUM_B);
    *c = vf_set1(0.0f);
}

/* The per-lane sums of a column kernel (lanes 0..VD_N-1 in d0, the rest in d1) into sum[0..VF_N). */
FSM_TARGET static inline void col_sum_store(double *sum, vd d0, vd d1)
{
    vd_store(sum, d0);
#if VF_N > VD_N
    vd_store(sum + VD_N, d1);
#else
    (void)d1;
#endif
}

/* The statistics of a row that pass 1 skips (its max is not finite). */
FSM_TARGET static inline void acc_clear(fsm_acc *a)
{
    a->sum = a->sum_lo = a->n_max = a->e_min = a->e_max = a->unit_lo = 0.0;
    a->unit = 1.0;
}

/*
 * Constants of y = e * D for one row (or column); careful = 1 when a product or D's float split could
 * be subnormal (a block far below its row's max has a tiny D). D * 2^64 itself is normal unless every
 * output of the row is below 2^-125; there hi64 has fewer bits, and those outputs stay within 1.5 units
 * of 2^-149.
 */
typedef struct { float hi, lo, hi64, lo64, thr, e_max, y_max; int careful; } f32_scale;

FSM_TARGET static inline f32_scale f32_scale_vals(double D, double e_min, double e_max, double unit)
{
    f32_scale sc;
    sc.e_max = (float)e_max;
    sc.y_max = (float)(unit * D);         /* the max elements' output: rounded to double, then to float */
    double D64 = D * 0x1p64;              /* ~ 1 / (number of elements near the max) */
    sc.hi64 = (float)D64;
    sc.lo64 = (float)(D64 - (double)sc.hi64);
    if (fabsf(sc.lo64) < 0x1p-30f * sc.hi64) sc.lo64 = 0.0f;  /* a tiny lo could make e*lo subnormal */
    sc.hi = sc.hi64 * 0x1p-64f;           /* exact while normal */
    sc.lo = sc.lo64 * 0x1p-64f;
    double lo_abs = fabs((double)sc.lo);
    /* written so that a NaN D (a row whose result is NaN) takes the plain loop */
    sc.careful = sc.hi < 0x1p-126f || e_min * (double)sc.hi < 0x1p-125 ||
                 (sc.lo != 0.0f && (lo_abs < 0x1p-126 || e_min * lo_abs < 0x1p-125));
    /* e below: y < 2^-154, which rounds to +0; finite (scale_careful_f32 raises e to it), so the largest float
       where 2^-90 / D64 is larger (D64 below 2^-218, or 0 in a block far below the row's max): hi64
       and lo64 are then 0, and so is the product */
    sc.thr = sc.careful ? (float)fmin(0x1p-90 / D64, 0x1.fffffep127) : 0.0f;
    return sc;
}

FSM_TARGET static inline f32_scale f32_scale_consts(double D, const fsm_acc *a)
{
    return f32_scale_vals(D, a->e_min, a->e_max, a->unit);
}

/*
 * f32_scale_vals of VF_N lanes (rows or columns) in vectors: D = 1 / sum (sum in the stored exps'
 * units, the max elements counted unrounded) and hi, lo, y_max, the same operations in the same
 * order as the scalar function, so the same bits. As a loop of scalar calls this cost ~400 cycles a
 * vector of columns (0.75 against 0.41 ns/element at n = 21) and ~40 a short row. The careful test
 * is the caller's (it needs e_min).
 */
typedef struct { double D[VF_N]; float hi[VF_N], lo[VF_N], y_max[VF_N]; } f32_lane_scale;

FSM_TARGET static inline void f32_lane_scale_vals(const double *sum, const double *unit, f32_lane_scale *S)
{
    float hi64[VF_N], lo64[VF_N];
    for (int h = 0; h < VF_N; h += VD_N) {
        vd u = vd_load(unit + h);
        vd D = vd_div(vd_set1(1.0), vd_add(vd_load(sum + h), vd_set1(0.0)));  /* as the driver: 1 / (sum + sum_lo) */
        vd_store(S->D + h, D);
        vd D64 = vd_mul(D, vd_set1(0x1p64));
        vd_store_f32(hi64 + h, D64);
        vd_store_f32(lo64 + h, vd_sub(D64, vd_load_f32(hi64 + h)));
        vd_store_f32(S->y_max + h, vd_mul(u, D));
    }
    vf vh64 = vf_load(hi64), vl64 = vf_load(lo64);
    vf lo_abs = vf_max(vl64, vf_sub(vf_set1(0.0f), vl64));
    vl64 = vf_select_lt(lo_abs, vf_mul(vf_set1(0x1p-30f), vh64), vf_set1(0.0f), vl64);
    vf_store(S->hi, vf_mul(vh64, vf_set1(0x1p-64f)));
    vf_store(S->lo, vf_mul(vl64, vf_set1(0x1p-64f)));
}

/*
 * y = e * D without a subnormal operand or result: z = e*(hi64 + lo64) = y * 2^64 is normal (e below
 * thr are raised to thr: z is then below 2^-90 (thr's rounding moves it by 2^-24), so their y is
 * round(z * 2^85) = +0 as it would be for e itself), then y = z * 2^-64 where that is normal, else the
 * subnormal y's bits, round(z * 2^85) (= y / 2^-149), built as an integer: z + 2^-62 rounds z onto
 * the grid of 2^-85 (the sum lies in [2^-62, 2^-61]), and its bits less those of 2^-62 are that
 * integer (2^23 when the sum reaches 2^-61: y = 2^-126, the bits of the smallest normal). One
 * operation a vector fewer than min, multiply by 2^85 and convert.
 */
FSM_TARGET static inline vf scale_fast_f32(vf e, vf hi, vf lo, vf e_max, vf y_max)
{
    return vf_select_eq(e, e_max, y_max, vf_fma(e, hi, vf_mul(e, lo)));
}

/*
 * The same y where the CPU computes with subnormals at full speed (fsm_subnormals_free(), cpu.c):
 * z as above, then y = z * 2^-64 rounded once by the multiply. That is the careful loop's result bit
 * for bit: its integer form is round(z * 2^85) units of 2^-149, which is z * 2^-64 rounded to nearest
 * even on the subnormal grid, and below thr both give +0 (z < 2^-90: y < 2^-154). Five operations a
 * vector instead of eleven; on Intel each subnormal operand or result would take a microcode assist.
 * Only the AVX-512 set uses it (FSM_SCALE_DIRECT): on Zen 4, softmax (256, 1000) of uniform(-80, 80)
 * against normal*3 data measured 1.16x with it and 1.24x without on AVX-512; on AVX2 it measured no
 * gain (1.29x against 1.24x, within the +-5 % this machine's runs differ by), so AVX2 keeps one form.
 */
#ifndef FSM_SCALE_DIRECT
#define FSM_SCALE_DIRECT 0
#endif
FSM_TARGET static inline vf scale_direct_f32(vf e, vf hi64, vf lo64, vf e_max, vf y_max)
{
    return vf_select_eq(e, e_max, y_max, vf_mul(vf_fma(e, hi64, vf_mul(e, lo64)), vf_set1(0x1p-64f)));
}

FSM_TARGET static inline vf scale_careful_f32(vf e, vf hi64, vf lo64, vf thr, vf e_max, vf y_max)
{
    const vf e_in = e;
    const vf zmin = vf_set1(0x1p-62f);
    e = vf_max(e, thr);  /* e below thr give y < 2^-154, +0 either way; this keeps e * lo64 normal */
    vf z = vf_fma(e, hi64, vf_mul(e, lo64));
    vf normal = vf_mul(vf_max(zmin, z), vf_set1(0x1p-64f));  /* a NaN z (NaN row) stays NaN */
    vf subnormal = vf_bits_above(z, zmin);  /* z < 2^-62: round(z * 2^85), the bits of the subnormal y */
    return vf_select_eq(e_in, e_max, y_max, vf_select_lt(z, zmin, subnormal, normal));
}

/* ---- float64 in double lanes ("x_rr2_t16_p7" / "x_rr2_t8_p8", see the header): the exp, its sums, the max elements ---- */

/* The table has N = F64_TN = 2^FSM_F64_TBITS entries: 16 where the ISA looks it up in one instruction
   (AVX-512 vpermt2pd, the scalar portable set), 8 on AVX2, whose 16-entry lookups were two gathers,
   half the exp pass (avx2.c). The ISA file defines FSM_F64_TBITS, vd_table and vd_pow2_tbits. */
#ifndef FSM_F64_TBITS
#define FSM_F64_TBITS 4
#endif
#define F64_TN ((double)(1 << FSM_F64_TBITS))
#define F64_LOG2EN (0x1.71547652b82fep+0 * F64_TN)   /* N log2 e (log2 e rounded, times N: exact) */
#define F64_LN2HIN (0x1.62e42fefa39efp-1 / F64_TN)   /* ln 2 rounded to double, / N (exact): a multiple of 2^-53 / N */
#define F64_LN2LON (0x1.abc9e3b39803fp-56 / F64_TN)  /* (ln 2 - the above * N) / N, rounded */
#define F64_MAGIC 0x1.8p52
#define F64_SHIFT_ABOVE 0x1p40   /* |m| above this: reduce x - m (exact by Sterbenz) instead of x */
#define F64_BIAS 1023.0          /* fast path: bits(t) >> bits << 52 is 2^(k - K) itself, always normal */
#define F64_BIAS_CAREFUL 1077.0  /* careful path: 2^(k - K + 54), +0 at the clamp; the product with 2^-54 rounds once */
#define F64_FAST_RANGE 707.0     /* softmax rows with min >= m - this take the fast path */
#define F64_CSUM_B 4.0           /* start of each compensated lane: above every stored exp (< 2.09) */

/* 2^(j/N) = hi + lo, j = 0..N-1: hi rounded to double, lo the rest rounded (|lo| < 2^-53 hi); the
   8-entry table is the 16-entry one's even entries (scripts/fit_exp_f64.py --table prints both). */
#if FSM_F64_TBITS == 4
static const double f64_t_hi[16] = {
    0x1.0000000000000p+0, 0x1.0b5586cf9890fp+0, 0x1.172b83c7d517bp+0, 0x1.2387a6e756238p+0,
    0x1.306fe0a31b715p+0, 0x1.3dea64c123422p+0, 0x1.4bfdad5362a27p+0, 0x1.5ab07dd485429p+0,
    0x1.6a09e667f3bcdp+0, 0x1.7a11473eb0187p+0, 0x1.8ace5422aa0dbp+0, 0x1.9c49182a3f090p+0,
    0x1.ae89f995ad3adp+0, 0x1.c199bdd85529cp+0, 0x1.d5818dcfba487p+0, 0x1.ea4afa2a490dap+0};
static const double f64_t_lo[16] = {
    0x0.0p+0, 0x1.8a62e4adc610bp-54, -0x1.19041b9d78a76p-55, 0x1.9b07eb6c70573p-54,
    0x1.6f46ad23182e4p-55, 0x1.ada0911f09ebcp-55, 0x1.d4397afec42e2p-56, 0x1.6324c054647adp-54,
    -0x1.bdd3413b26456p-54, -0x1.41577ee04992fp-55, 0x1.6e9f156864b27p-54, 0x1.c7c46b071f2bep-56,
    0x1.7a1cd345dcc81p-54, 0x1.11065895048ddp-55, 0x1.2ed02d75b3707p-55, -0x1.e9c23179c2893p-54};
#elif FSM_F64_TBITS == 3
static const double f64_t_hi[8] = {
    0x1.0000000000000p+0, 0x1.172b83c7d517bp+0, 0x1.306fe0a31b715p+0, 0x1.4bfdad5362a27p+0,
    0x1.6a09e667f3bcdp+0, 0x1.8ace5422aa0dbp+0, 0x1.ae89f995ad3adp+0, 0x1.d5818dcfba487p+0};
static const double f64_t_lo[8] = {
    0x0.0p+0, -0x1.19041b9d78a76p-55, 0x1.6f46ad23182e4p-55, 0x1.d4397afec42e2p-56,
    -0x1.bdd3413b26456p-54, 0x1.6e9f156864b27p-54, 0x1.7a1cd345dcc81p-54, 0x1.2ed02d75b3707p-55};
#else
#error "FSM_F64_TBITS: 3 or 4"
#endif

/* Per-lane constants from the maximum vm (every lane its own row or column): the shift c, the clamp
   lo (d below it gives e = +0 exactly: bits(t) >> bits is then 0) and the magic number that makes
   bits(t) >> bits the biased exponent of 2^(k - K) (k = round(N d log2 e), K = N floor(KN / N)). */
FSM_TARGET static inline void f64_lane_consts(vd vm, double bias, vd *vc, vd *vlo, vd *vmagic)
{
    const vd zero = vd_set1(0.0), above = vd_set1(F64_SHIFT_ABOVE);
    vd c = vd_add(vd_keep_if_gt(vm, vm, above), vd_keep_if_gt(vm, vd_sub(zero, vm), above));
    vd d = vd_sub(vm, c);
    vd KN = vd_sub(vd_fma(d, vd_set1(F64_LOG2EN), vd_set1(F64_MAGIC)), vd_set1(F64_MAGIC));
    vd Kq = vd_floor(vd_mul(KN, vd_set1(1.0 / F64_TN)));    /* the row's exponent, KN = N Kq + j_m */
    *vc = c;
    *vlo = vd_mul(vd_add(Kq, vd_set1(0.5 - bias)), vd_set1(F64_LN2HIN * F64_TN));  /* k - N Kq ~ N/2 - N bias */
    *vmagic = vd_add(vd_set1(F64_MAGIC), vd_mul(vd_sub(vd_set1(bias), Kq), vd_set1(F64_TN)));
}

/* exp(x - m) * unit as two pieces and a power of two: the value is (th + u) * scale, with th the
   table's hi entry (exact), u = th * (e^r - 1) + tlo (rounded, |u| < 0.05 th). shift = 0: the caller
   knows c = 0; clamp = 0: the caller knows every x is above m - F64_FAST_RANGE (no clamp needed). */
typedef struct { vd th, u, scale; } f64_exp_parts;

FSM_TARGET static inline f64_exp_parts exp_f64_parts(vd x, vd vc, vd vlo, vd vmagic, const int shift, const int clamp)
{
    f64_exp_parts e;
    vd d = shift ? vd_sub(x, vc) : x;
    if (clamp) d = vd_clamp_lo(vlo, d);
    vd t = vd_fma(d, vd_set1(F64_LOG2EN), vmagic);
    vd k = vd_sub(t, vmagic);
    vd r = vd_fma(k, vd_set1(-F64_LN2HIN), d);  /* exact */
    r = vd_fma(k, vd_set1(-F64_LN2LON), r);
#if FSM_F64_TBITS == 4   /* degree 7 on |r| <= ln2/32: 2^-65.2 */
    vd q = vd_fma(vd_set1(0x1.a019c0858c562p-13), r, vd_set1(0x1.6c18416260c38p-10));
    q = vd_fma(q, r, vd_set1(0x1.11111111d71f1p-7));
    q = vd_fma(q, r, vd_set1(0x1.555555547f8b1p-5));
    q = vd_fma(q, r, vd_set1(0x1.555555555554bp-3));
    q = vd_fma(q, r, vd_set1(0x1.0000000000004p-1));
#else                    /* degree 8 on |r| <= ln2/16: 2^-66.0 */
    vd q = vd_fma(vd_set1(0x1.a013adad57032p-16), r, vd_set1(0x1.a01fb31cc58e3p-13));
    q = vd_fma(q, r, vd_set1(0x1.6c16c18d78310p-10));
    q = vd_fma(q, r, vd_set1(0x1.1111110a17e57p-7));
    q = vd_fma(q, r, vd_set1(0x1.555555555506ep-5));
    q = vd_fma(q, r, vd_set1(0x1.55555555555fap-3));
    q = vd_fma(q, r, vd_set1(0x1.0000000000000p-1));
#endif
    vd pm1 = vd_fma(vd_mul(r, r), q, r);           /* e^r - 1 */
    e.th = vd_table(f64_t_hi, t);
    e.u = vd_fma(e.th, pm1, vd_table(f64_t_lo, t));
    e.scale = vd_pow2_tbits(t);
    return e;
}

/* The stored exp of softmax: (th + u) rounded once, times 2^(k - K) (fast) or 2^(k - K + 54) * 2^-54,
   whose last product rounds once more where the result is subnormal (careful). */
FSM_TARGET static inline vd exp_f64_store(vd x, vd vc, vd vlo, vd vmagic, const int shift, const int careful)
{
    f64_exp_parts e = exp_f64_parts(x, vc, vlo, vmagic, shift, careful);
    vd v = vd_mul(vd_add(e.th, e.u), e.scale);
    return careful ? vd_mul(v, vd_set1(0x1p-54)) : v;
}

/* unit per lane as a double-double: the exact sum of the pieces of the max itself, th + u; hi is
   also the stored exp of the max elements (e_max). */
FSM_TARGET static inline void f64_units(vd vm, vd vc, vd vlo, vd vmagic, double *hi, double *lo)
{
    f64_exp_parts e = exp_f64_parts(vm, vc, vlo, vmagic, 1, 1);
    vd h = vd_add(e.th, e.u);
    vd_store(hi, h);
    vd_store(lo, vd_add(vd_sub(e.th, h), e.u));  /* Fast2Sum: |th| > |u| */
}

/* s + c += e, exact for each lane while s >= e: s starts at F64_CSUM_B, above every stored exp. */
FSM_TARGET static inline void acc_fast2sum(vd *s, vd *c, vd e)
{
    vd t = vd_add(*s, e);
    *c = vd_add(*c, vd_sub(e, vd_sub(t, *s)));
    *s = t;
}

/* The output of the max elements, unit * (c_hi + c_lo) rounded once (double-double product). */
FSM_TARGET static inline double f64_y_max(const fsm_acc *a, double c_hi, double c_lo)
{
    double p = a->unit * c_hi;
    double err = fma(a->unit, c_hi, -p);
    return p + (err + (a->unit * c_lo + a->unit_lo * c_hi));
}

/* s + c += e, error-free (TwoSum), lane-wise. */
FSM_TARGET static inline void acc_2sum(vd *s, vd *c, vd e)
{
    vd t = vd_add(*s, e);
    vd bp = vd_sub(t, *s);
    *c = vd_add(*c, vd_add(vd_sub(*s, vd_sub(t, bp)), vd_sub(e, bp)));
    *s = t;
}

/* Fold the lanes of (s, c) into acc->sum/sum_lo with TwoSum, lane 0 first. */
FSM_TARGET static inline void acc_fold(fsm_acc *acc, vd s, vd c)
{
    double ls[VD_N], lc[VD_N];
    vd_store(ls, s);
    vd_store(lc, c);
    for (int k = 0; k < VD_N; k++) {
        double t = acc->sum + ls[k];
        double bp = t - acc->sum;
        acc->sum_lo += (acc->sum - (t - bp)) + (ls[k] - bp) + lc[k];
        acc->sum = t;
    }
}

/* ---- row kernels: `rows` rows of n contiguous elements, per-row state in arrays ---- */

/* Elements before the first vector-aligned address of p (0 .. VF_N-1): passes whose result does not
   depend on how elements are grouped into vectors (max, elementwise scaling) start with these, so
   that their full vectors never straddle two cache lines. p is float-aligned. */
FSM_TARGET static inline int64_t head_to_align_f32(const float *p, int64_t n)
{
    int64_t h = (int64_t)((-(uintptr_t)p & (uintptr_t)(VF_N * sizeof(float) - 1)) / sizeof(float));
    return h < n ? h : n;
}

/* The max of x[0..n) (NaN if any is NaN) and, with want_min, the min in *mn (the float32 softmax
   takes the smallest exp and whether any element needs the clamp from it). align: start at an aligned
   address (a partial vector first), so that long rows' loads do not split cache lines; short rows
   (softmax_rows_f32) start at x: a row of whole vectors then needs no partial load at all (n = 128:
   the short-row kernel 4 % faster on Zen 3, bench/micro/short.sh; n = 1000 rows measured the same
   either way). The result does not depend on it. */
FSM_TARGET static inline float max_one_f32(const float *x, int64_t n, float *mn, const int want_min, const int align)
{
    vf a0 = vf_set1(-INFINITY), a1 = a0, a2 = a0, a3 = a0;
    vf b0 = vf_set1(INFINITY), b1 = b0, b2 = b0, b3 = b0;
    vf_nanflag nan = vf_nanflag_init();
    int64_t i = align ? head_to_align_f32(x, n) : 0;
    if (i > 0) {
        a1 = vf_load_part(x, i, -INFINITY);
        nan = vf_nanflag_update(nan, a1, a1);
        if (want_min) b1 = vf_load_part(x, i, INFINITY);
    }
    for (; i + 4 * VF_N <= n; i += 4 * VF_N) {
        vf v0 = vf_load(x + i), v1 = vf_load(x + i + VF_N);
        vf v2 = vf_load(x + i + 2 * VF_N), v3 = vf_load(x + i + 3 * VF_N);
        a0 = vf_max(a0, v0); a1 = vf_max(a1, v1); a2 = vf_max(a2, v2); a3 = vf_max(a3, v3);
        if (want_min) {
            b0 = vf_min(b0, v0); b1 = vf_min(b1, v1); b2 = vf_min(b2, v2); b3 = vf_min(b3, v3);
        }
        nan = vf_nanflag_update(nan, v0, v1);
        nan = vf_nanflag_update(nan, v2, v3);
    }
    for (; i < n; i += VF_N) {
        vf v = n - i >= VF_N ? vf_load(x + i) : vf_load_part(x + i, n - i, -INFINITY);
        a0 = vf_max(a0, v);
        if (want_min) b0 = vf_min(b0, n - i >= VF_N ? v : vf_load_part(x + i, n - i, INFINITY));
        nan = vf_nanflag_update(nan, v, v);
    }
    if (want_min) *mn = vf_hmin(vf_min(vf_min(b0, b1), vf_min(b2, b3)));
    if (vf_nanflag_any(nan)) return NAN;
    return vf_hmax(vf_max(vf_max(a0, a1), vf_max(a2, a3)));
}

FSM_TARGET static inline double max_one_f64(const double *x, int64_t n, double *mn, const int want_min)
{
    vd a0 = vd_set1(-INFINITY), a1 = a0, a2 = a0, a3 = a0;
    vd b0 = vd_set1(INFINITY), b1 = b0, b2 = b0, b3 = b0;
    vd_nanflag nan = vd_nanflag_init();
    int64_t i = 0;
    for (; i + 4 * VD_N <= n; i += 4 * VD_N) {
        vd v0 = vd_load(x + i), v1 = vd_load(x + i + VD_N);
        vd v2 = vd_load(x + i + 2 * VD_N), v3 = vd_load(x + i + 3 * VD_N);
        a0 = vd_max(a0, v0); a1 = vd_max(a1, v1); a2 = vd_max(a2, v2); a3 = vd_max(a3, v3);
        if (want_min) {
            b0 = vd_min(b0, v0); b1 = vd_min(b1, v1); b2 = vd_min(b2, v2); b3 = vd_min(b3, v3);
        }
        nan = vd_nanflag_update(nan, v0, v1);
        nan = vd_nanflag_update(nan, v2, v3);
    }
    for (; i < n; i += VD_N) {
        vd v = n - i >= VD_N ? vd_load(x + i) : vd_load_part(x + i, n - i, -INFINITY);
        a0 = vd_max(a0, v);
        if (want_min) b0 = vd_min(b0, n - i >= VD_N ? v : vd_load_part(x + i, n - i, INFINITY));
        nan = vd_nanflag_update(nan, v, v);
    }
    if (want_min) *mn = vd_hmin(vd_min(vd_min(b0, b1), vd_min(b2, b3)));
    if (vd_nanflag_any(nan)) return NAN;
    return vd_hmax(vd_max(vd_max(a0, a1), vd_max(a2, a3)));
}

FSM_TARGET static void KNAME(max_rows_f32)(const float *x, int64_t rows, int64_t n, float *m, float *mn)
{
    if (mn)
        for (int64_t r = 0; r < rows; r++) m[r] = max_one_f32(x + r * n, n, &mn[r], 1, 1);
    else
        for (int64_t r = 0; r < rows; r++) m[r] = max_one_f32(x + r * n, n, NULL, 0, 1);
}

FSM_TARGET static void KNAME(max_rows_f64)(const double *x, int64_t rows, int64_t n, double *m, double *mn)
{
    if (mn)
        for (int64_t r = 0; r < rows; r++) m[r] = max_one_f64(x + r * n, n, &mn[r], 1);
    else
        for (int64_t r = 0; r < rows; r++) m[r] = max_one_f64(x + r * n, n, NULL, 0);
}

/* Per-row constants of the float32 softmax pass, computed VF_N rows at a time (the lane layout of
   f32_lane_consts): short rows then do not pay two exps and the reductions of a splat vector each. */
typedef struct {
    float c[VF_N], lo[VF_N], magic[VF_N], e_max[VF_N], e_min[VF_N];
    double unit[VF_N];
    int64_t ahead;  /* bytes from a row's x to what the caller reads next, prefetched by the exp pass; 0: none
                       (set by the caller, not by f32_group_consts) */
} f32_row_group;

FSM_TARGET static inline void f32_group_consts(const float *m, const float *mn, int64_t rows, float bias,
                                               f32_row_group *g)
{
    vf vm = vf_load_part(m, rows, 0.0f), vc, vlo, vmg;
    f32_lane_consts(vm, bias, &vc, &vlo, &vmg);
    vf_store(g->c, vc);
    vf_store(g->lo, vlo);
    vf_store(g->magic, vmg);
    vf_store(g->e_max, exp_f32_lanes(vm, vc, vlo, vmg));
    vf_store(g->e_min, exp_f32_lanes(vf_load_part(mn, rows, 0.0f), vc, vlo, vmg));  /* the exp of the min */
    exp_f32_exact(vm, vc, vlo, vf_add(vmg, vf_set1(127.0f)), g->unit);  /* pieces take the biased form */
}

/* The element types a float32 pass reads: float32 itself, or a half type widened on load (exact). */
enum { SRC_F32, SRC_F16, SRC_BF16 };

FSM_TARGET static inline vf load_half(const uint16_t *h, int bf16) { return bf16 ? vf_load_bf16(h) : vf_load_f16(h); }

/* VF_N elements of x (of type src) from i, as float32. */
FSM_TARGET static inline vf load_src(const void *x, int64_t i, const int src)
{
    if (src == SRC_F32) return vf_load((const float *)x + i);
    return load_half((const uint16_t *)x + i, src == SRC_BF16);
}

/* 2 VF_N elements of x from i, as two vectors (for bfloat16, vf_load_bf16x2: one load widened by
   the vocabulary's cheapest form) */
FSM_TARGET static inline void load_src2(const void *x, int64_t i, vf *a, vf *b, const int src)
{
    if (src == SRC_BF16) {
        vf_load_bf16x2((const uint16_t *)x + i, a, b);
    } else {
        *a = load_src(x, i, src);
        *b = load_src(x, i + VF_N, src);
    }
}

/* The first r < VF_N of them, the other lanes set to fill. */
FSM_TARGET static inline vf load_src_part(const void *x, int64_t i, int64_t r, float fill, const int src)
{
    if (src == SRC_F32) return vf_load_part((const float *)x + i, r, fill);
    const uint16_t *h = (const uint16_t *)x + i;
    _Alignas(64) float t[VF_N];
    for (int64_t j = 0; j < VF_N; j++)
        t[j] = j >= r ? fill : src == SRC_BF16 ? fsm_bf16_to_f32(h[j]) : fsm_f16_to_f32(h[j]);
    return vf_load(t);
}

/* The exp passes' prefetch of the caller's next block (the `ahead` argument of the row kernels): pf is
   x + ahead as bytes, or NULL for none; a step that reads `bytes` bytes from byte offset `off` of x
   prefetches the same bytes of pf. Out of cache, the next block then arrives while this one computes
   instead of stalling the next max pass (issue 15; bench/micro/ooc_prefetch.py). */
#define PREFETCH_STEP(pf, off, bytes)                                                       \
    do {                                                                                    \
        if (pf)                                                                             \
            for (int64_t b_ = 0; b_ < (int64_t)(bytes); b_ += 64) FSM_PREFETCH((pf) + (off) + b_, 0); \
    } while (0)

/* One row of expsum_store_rows_f32 (m finite, constants in lane k of g); shift, clamp as in exp_f32_lanes_s.
   src: x is float32, or a half row that is widened here (expsum_store_half_rows), so that the half
   paths' max pass does not have to store the row as float32 first. */
#if defined(__GNUC__) || defined(__clang__)
#define FSM_ALWAYS_INLINE inline __attribute__((always_inline))
#elif defined(_MSC_VER)
#define FSM_ALWAYS_INLINE __forceinline
#else
#define FSM_ALWAYS_INLINE inline
#endif
FSM_TARGET static FSM_ALWAYS_INLINE void expsum_store_row_f32_body(const void *x, float *y, int64_t n, float m,
                                                                const f32_row_group *g, int k, fsm_acc *a,
                                                                const int shift, const int clamp, const int src,
                                                                const int prefetch)
{
    const int64_t size = src == SRC_F32 ? 4 : 2;
    /* prefetch = 0: none, whatever g->ahead says (a form without the test in its loop) */
    const char *pf = prefetch && g->ahead ? (const char *)x + g->ahead : NULL;
    const vf vc = vf_set1(g->c[k]), vlo = vf_set1(g->lo[k]), vmg = vf_set1(g->magic[k]), vm = vf_set1(m);
    vf s0 = vf_set1(CSUM_B), s1 = s0, c0 = vf_set1(0.0f), c1 = c0;
    vd d0 = vd_set1(0.0), d1 = d0;
    int64_t i = 0, n_max = 0;
    vf_tally tally = vf_tally_zero();
    /* main loop: CSUM_STEPS steps per accumulator, then into double (the last flush after the tail) */
    while (i + 2 * VF_N <= n) {
        if (i > 0) {
            csum_flush(&d0, &d1, &s0, &c0);
            csum_flush(&d0, &d1, &s1, &c1);
        }
        int64_t end = i + 2 * VF_N * CSUM_STEPS <= n ? i + 2 * VF_N * CSUM_STEPS : n - (n - i) % (2 * VF_N);
        for (; i < end; i += 2 * VF_N) {
            vf x0, x1;
            load_src2(x, i, &x0, &x1, src);
            PREFETCH_STEP(pf, i * size, 2 * VF_N * size);
            vf e0 = exp_f32_lanes_s(x0, vc, vlo, vmg, shift, clamp);
            vf e1 = exp_f32_lanes_s(x1, vc, vlo, vmg, shift, clamp);
            vf_store(y + i, e0);
            vf_store(y + i + VF_N, e1);
            tally = vf_tally_eq(vf_tally_eq(tally, x0, vm), x1, vm);
            csum_add(&s0, &c0, e0);
            csum_add(&s1, &c1, e1);
        }
    }
    /* A tally of equal bits (the AVX2 vf_tally) misses the zeros of the other sign when m is +-0, and the
       tail's cleared lanes count when m is 0: neither matters, since for m = 0 (r = 0, p = 1) unit and
       e_max are the same power of two and n_max's term below is 0. */
    n_max = vf_tally_total(tally);
    /* tail: at most two vectors, the last one partial, into s1 (at most CSUM_STEPS + 2 steps, still
       exact: s stays below 2^69); the missing lanes read m and add 0 */
    for (; i < n; i += VF_N) {
        int64_t r = n - i < VF_N ? n - i : VF_N;
        vf xv = r == VF_N ? load_src(x, i, src) : load_src_part(x, i, r, m, src);
        vf e = exp_f32_lanes_s(xv, vc, vlo, vmg, shift, clamp);
        vf_store_part(y + i, e, r);
        n_max += vf_count_eq(vf_keep_first(xv, r), vm);
        csum_add(&s1, &c1, vf_keep_first(e, r));
    }
    csum_flush(&d0, &d1, &s0, &c0);
    csum_flush(&d0, &d1, &s1, &c1);
    /* The elements equal to m enter the sum unrounded: when they dominate, the rounding of their
       stored exp would otherwise scale every output of the row (up to 2.3 ulp measured) ... */
    a->unit = g->unit[k];
    a->e_max = (double)g->e_max[k];
    a->sum = vd_hsum(vd_add(d0, d1)) + (double)n_max * (a->unit - a->e_max);
    /* ... and their outputs are unit / sum, formed in double and rounded to float (the scale pass
       matches them by e_max) */
    a->e_min = (double)g->e_min[k] * (1.0 - 0x1p-20);  /* the exp of the min, less any non-monotonic ulp */
}

/* The same as a function GCC inlines where it chooses (the float32 paths' constant forms) or keeps
   out of line with its form flags tested at run time (the half paths); the body is forced inline
   only where a form is worth its own copy (expsum_store_half_rows). */
FSM_TARGET static inline void expsum_store_row_f32(const void *x, float *y, int64_t n, float m, const f32_row_group *g,
                                                   int k, fsm_acc *a, const int shift, const int clamp, const int src)
{
    expsum_store_row_f32_body(x, y, n, m, g, k, a, shift, clamp, src, 1);
}

/* expsum_store_row_f32 of a row with finite max m and min mn, in the form its constants allow. */
FSM_TARGET static inline void expsum_store_one_f32(const void *x, float *y, int64_t n, float m, float mn,
                                                   const f32_row_group *g, int k, fsm_acc *a, const int src)
{
    const int clamp = !(mn - g->c[k] >= g->lo[k]);  /* -inf elements need it too */
    if (fabsf(m) > F32_SHIFT_ABOVE)
        expsum_store_row_f32(x, y, n, m, g, k, a, 1, 1, src);
    else if (clamp)
        expsum_store_row_f32(x, y, n, m, g, k, a, 0, 1, src);
    else
        expsum_store_row_f32(x, y, n, m, g, k, a, 0, 0, src);
}

/* e = exp(x - m) * unit stored in y and summed; rows whose max is not finite are skipped (acc = 0). */
FSM_TARGET static void KNAME(expsum_store_rows_f32)(const float *x, float *y, int64_t rows, int64_t n,
                                                    const float *m, const float *mn, fsm_acc *acc, int64_t ahead)
{
    f32_row_group g;
    g.ahead = ahead > 0 ? ahead * (int64_t)sizeof(float) : 0;
    for (int64_t row = 0; row < rows; row++, x += n, y += n) {
        const int k = (int)(row % VF_N);
        if (k == 0) f32_group_consts(m + row, mn + row, rows - row < VF_N ? rows - row : VF_N, F32_BIAS, &g);
        acc_clear(&acc[row]);
        if (isfinite(m[row])) expsum_store_one_f32(x, y, n, m[row], mn[row], &g, k, &acc[row], SRC_F32);
    }
}

/* expsum_store_rows_f32 of half rows h (float16, or bfloat16 when bf16), widened as they are read: y
   gets the float32 call's exps of the widened rows, the same bits. */
FSM_TARGET static void KNAME(expsum_store_half_rows)(const uint16_t *h, float *y, int64_t rows, int64_t n,
                                                     const float *m, const float *mn, fsm_acc *acc, int bf16)
{
    f32_row_group g;
    g.ahead = 0;
    for (int64_t row = 0; row < rows; row++, h += n, y += n) {
        const int k = (int)(row % VF_N);
        if (k == 0) f32_group_consts(m + row, mn + row, rows - row < VF_N ? rows - row : VF_N, F32_BIAS, &g);
        acc_clear(&acc[row]);
        if (!isfinite(m[row])) continue;
        /* two of expsum_store_one_f32's three forms (the same bits: x - 0 is x), for the wheel's size */
        const int shift = fabsf(m[row]) > F32_SHIFT_ABOVE || !(mn[row] - g.c[k] >= g.lo[k]);
        if (shift && bf16) expsum_store_row_f32(h, y, n, m[row], &g, k, &acc[row], 1, 1, SRC_BF16);
        else if (shift) expsum_store_row_f32(h, y, n, m[row], &g, k, &acc[row], 1, 1, SRC_F16);
#if FSM_BF16_ROW_OWN_COPY
        else if (bf16) expsum_store_row_f32_body(h, y, n, m[row], &g, k, &acc[row], 0, 0, SRC_BF16, 0);
#else
        else if (bf16) expsum_store_row_f32(h, y, n, m[row], &g, k, &acc[row], 0, 0, SRC_BF16);
#endif
        else expsum_store_row_f32(h, y, n, m[row], &g, k, &acc[row], 0, 0, SRC_F16);
    }
}

/*
 * exp(x - m) * unit rounded to float (e, the softmax exp's Horner steps) and its residual rho, with
 * e + rho the polynomial's value to ~2^-27 (the log ops' sums): the last two Horner steps,
 * p5 = fl(p4 r + 1) and p = fl(p5 r + 1), are the roundings that count (2^-24 and 2^-25.5 of p);
 * both residuals are exact (1 - p and 1 - p5 are, by Sterbenz, p and p5 being within [0.7, 1.42]),
 * rho = (p5 r + 1 - p) + (p4 r + 1 - p5) r. What stays: p4's rounding times r^2 (2^-28), the
 * reduction's 2^-27.5 and the polynomial's 2^-28.
 */
FSM_TARGET static inline vf exp_f32_res(vf x, vf vc, vf vlo, vf vmagic, vf *rho, const int shift, const int clamp)
{
    const vf one = vf_set1(1.0f);
    vf d = shift ? vf_sub(x, vc) : x;
    if (clamp) d = vf_max(d, vlo);
    vf t = vf_fma(d, vf_set1(LOG2E_F), vmagic);
    vf k = vf_sub(t, vmagic);
    vf r_hi = vf_fma(k, vf_set1(-LN2_HI_F), d);  /* exact */
    vf r = vf_fma(k, vf_set1(-LN2_LO_F), r_hi);
    vf delta = vf_fma(k, vf_set1(-LN2_LO_F), vf_sub(r_hi, r));  /* r's rounding, exact */
    vf p = vf_fma(vf_set1(0x1.6a242cp-10f), r, vf_set1(0x1.1239e0p-7f));
    p = vf_fma(p, r, vf_set1(0x1.5558f2p-5f));
    p = vf_fma(p, r, vf_set1(0x1.555492p-3f));
    vf p4 = vf_fma(p, r, vf_set1(0x1.fffffcp-2f));
    vf p5 = vf_fma(p4, r, one);
    p = vf_fma(p5, r, one);
    vf rho5 = vf_fma(p4, r, vf_sub(one, p5));
    vf rho1 = vf_fma(p5, r, vf_sub(one, p));
    vf scale = vf_pow2_bits(t);
    *rho = vf_mul(vf_fma(p, delta, vf_fma(rho5, r, rho1)), scale);
    return vf_mul(p, scale);
}

/* One exclmax step: e (without the lanes equal to m, which the tally counts) into the double sums, rho
   into the float sum. */
FSM_TARGET static inline void exclmax_step_f32(vf x, vf vm, vf vc, vf vlo, vf vmg, vd *d0, vd *d1, vf *res,
                                               vf_tally *tally, const int shift, const int clamp)
{
    vf rho;
    *tally = vf_tally_feq(*tally, x, vm);
    vf e = exp_f32_res(x, vc, vlo, vmg, &rho, shift, clamp);
    vf_widen_add(d0, d1, vf_zero_if_eq(e, x, vm));
    *res = vf_add(*res, vf_zero_if_eq(rho, x, vm));
}

/* One row of expsum_exclmax_rows_f32 (m finite); shift, clamp as in exp_f32_lanes_s. */
FSM_TARGET static inline void exclmax_row_f32(const float *x, int64_t n, float m, fsm_acc *a, const int shift,
                                              const int clamp, const char *pf)
{
    vf vc, vlo, vmg;
    f32_row_consts(m, F32_BIAS_LOG, &vc, &vlo, &vmg);
    const vf vm = vf_set1(m);
    vf res = vf_set1(0.0f);
    vd d0 = vd_set1(0.0), d1 = d0, r0 = d0, r1 = d0;
    int64_t i = 0, n_max = 0;
    vf_tally tally = vf_tally_zero();
    while (i + 2 * VF_N <= n) {
        int64_t end = i + 2 * VF_N * CSUM_STEPS <= n ? i + 2 * VF_N * CSUM_STEPS : n - (n - i) % (2 * VF_N);
        for (; i < end; i += 2 * VF_N) {
            vf x0 = vf_load(x + i), x1 = vf_load(x + i + VF_N);
            PREFETCH_STEP(pf, i * 4, 2 * VF_N * 4);
            exclmax_step_f32(x0, vm, vc, vlo, vmg, &d0, &d1, &res, &tally, shift, clamp);
            exclmax_step_f32(x1, vm, vc, vlo, vmg, &d0, &d1, &res, &tally, shift, clamp);
        }
        vf_widen_add(&r0, &r1, res);
        res = vf_set1(0.0f);
    }
    for (; i < n; i += VF_N) {  /* the fill lanes read m: excluded, and not counted */
        int64_t r = n - i < VF_N ? n - i : VF_N;
        vf xv = vf_load_part(x + i, r, m);
        exclmax_step_f32(xv, vm, vc, vlo, vmg, &d0, &d1, &res, &tally, shift, clamp);
        n_max -= VF_N - r;
    }
    n_max += vf_tally_total(tally);
    vf_widen_add(&r0, &r1, res);
    a->sum = vd_hsum(vd_add(d0, d1));
    a->sum_lo = vd_hsum(vd_add(r0, r1));
    a->n_max = (double)n_max;
    double unit[VF_N];
    exp_f32_exact(vm, vc, vlo, vmg, unit);
    a->unit = unit[0];
}

/* The sums of the log ops (see the header); mn: the row minima (the clamp is skipped above it). */
FSM_TARGET static void KNAME(expsum_exclmax_rows_f32)(const float *x, int64_t rows, int64_t n,
                                                      const float *m, const float *mn, fsm_acc *acc,
                                                      int64_t ahead)
{
    for (int64_t row = 0; row < rows; row++, x += n) {
        fsm_acc *a = &acc[row];
        acc_clear(a);
        if (!isfinite(m[row])) continue;
        const int clamp = !mn || !(mn[row] >= m[row] - F32_CLAMP);  /* -inf elements need it too */
        const char *pf = ahead > 0 ? (const char *)(x + ahead) : NULL;
        if (fabsf(m[row]) > F32_SHIFT_ABOVE)
            exclmax_row_f32(x, n, m[row], a, 1, 1, pf);
        else if (clamp)
            exclmax_row_f32(x, n, m[row], a, 0, 1, pf);
        else
            exclmax_row_f32(x, n, m[row], a, 0, 0, pf);
    }
}

/* One row of expsum_store_rows_f64 (m finite); shift, careful as in exp_f64_store. */
FSM_TARGET static inline void expsum_store_row_f64(const double *x, double *y, int64_t n, double m, fsm_acc *a,
                                                   const int shift, const int careful, const char *pf)
{
    vd vc, vlo, vmg;
    f64_lane_consts(vd_set1(m), careful ? F64_BIAS_CAREFUL : F64_BIAS, &vc, &vlo, &vmg);
    const vd vm = vd_set1(m), B = vd_set1(F64_CSUM_B);
    vd s0 = B, s1 = B, c0 = vd_set1(0.0), c1 = c0;
    int64_t i = 0, n_max = 0;
    for (; i + 2 * VD_N <= n; i += 2 * VD_N) {
        vd x0 = vd_load(x + i), x1 = vd_load(x + i + VD_N);
        PREFETCH_STEP(pf, i * 8, 2 * VD_N * 8);
        vd e0 = exp_f64_store(x0, vc, vlo, vmg, shift, careful);
        vd e1 = exp_f64_store(x1, vc, vlo, vmg, shift, careful);
        vd_store(y + i, e0);
        vd_store(y + i + VD_N, e1);
        n_max += vd_count_eq(x0, vm) + vd_count_eq(x1, vm);
        acc_fast2sum(&s0, &c0, e0);
        acc_fast2sum(&s1, &c1, e1);
    }
    /* tail: the missing lanes read m (finite on either path) and add 0 */
    for (; i < n; i += VD_N) {
        int64_t r = n - i < VD_N ? n - i : VD_N;
        vd xv = vd_load_part(x + i, r, m);
        vd e = exp_f64_store(xv, vc, vlo, vmg, shift, careful);
        vd_store_part(y + i, e, r);
        n_max += vd_count_eq(xv, vm) - (int)(VD_N - r);  /* the fill lanes equal m */
        acc_fast2sum(&s1, &c1, vd_keep_first(e, r));
    }
    acc_fold(a, vd_sub(s0, B), c0);  /* s - B is exact (s >= B, both multiples of ulp(B)) */
    acc_fold(a, vd_sub(s1, B), c1);
    double uh[VD_N], ul[VD_N];
    f64_units(vm, vc, vlo, vmg, uh, ul);
    /* The max elements enter the sum with the unrounded unit (their stored exp is unit's hi part), and
       the scale pass writes their outputs as unit * c: a row of one element gives exactly 1. */
    a->unit = a->e_max = uh[0];
    a->unit_lo = ul[0];
    a->sum_lo += (double)n_max * ul[0];
}

/* e = exp(x - m) * unit stored in y and summed; rows whose max is not finite are skipped (acc = 0).
   mn: the rows' minima; a row whose min is within F64_FAST_RANGE of its max takes the fast path. */
FSM_TARGET static void KNAME(expsum_store_rows_f64)(const double *x, double *y, int64_t rows, int64_t n,
                                                    const double *m, const double *mn, fsm_acc *acc, int64_t ahead)
{
    for (int64_t row = 0; row < rows; row++, x += n, y += n) {
        fsm_acc *a = &acc[row];
        acc_clear(a);
        if (!isfinite(m[row])) continue;
        const int careful = !(mn && mn[row] >= m[row] - F64_FAST_RANGE);  /* -inf elements too */
        const char *pf = ahead > 0 ? (const char *)(x + ahead) : NULL;
        if (fabs(m[row]) > F64_SHIFT_ABOVE)
            expsum_store_row_f64(x, y, n, m[row], a, 1, 1, pf);
        else if (careful)
            expsum_store_row_f64(x, y, n, m[row], a, 0, 1, pf);
        else
            expsum_store_row_f64(x, y, n, m[row], a, 0, 0, pf);
    }
}

/*
 * The sum of exp(x - m) * unit over the elements below m, the elements equal to m counted. The exps
 * carry 2^54 (normal down to the clamp) and are summed unrounded: the table pieces th * scale (exact)
 * with TwoSum, the small pieces u * scale (< 0.05 of each term) in plain adds; the sum is scaled by
 * 2^-54 once at the end (exact unless the sum itself is subnormal).
 */
FSM_TARGET static inline void exclmax_step_f64(vd xv, vd vm, vd vc, vd vlo, vd vmg, vd *s, vd *c, vd *l,
                                               const int shift)
{
    f64_exp_parts e = exp_f64_parts(xv, vc, vlo, vmg, shift, 1);
    acc_2sum(s, c, vd_zero_if_eq(vd_mul(e.th, e.scale), xv, vm));
    *l = vd_add(*l, vd_zero_if_eq(vd_mul(e.u, e.scale), xv, vm));
}

FSM_TARGET static inline void expsum_exclmax_row_f64(const double *x, int64_t n, double m, fsm_acc *a, const int shift,
                                                     const char *pf)
{
    vd vc, vlo, vmg;
    f64_lane_consts(vd_set1(m), F64_BIAS_CAREFUL, &vc, &vlo, &vmg);
    const vd vm = vd_set1(m);
    vd s0 = vd_set1(0.0), c0 = s0, l0 = s0, s1 = s0, c1 = s0, l1 = s0;
    int64_t i = 0, n_max, n_ne = 0;
    for (; i + 2 * VD_N <= n; i += 2 * VD_N) {
        vd x0 = vd_load(x + i), x1 = vd_load(x + i + VD_N);
        PREFETCH_STEP(pf, i * 8, 2 * VD_N * 8);
        exclmax_step_f64(x0, vm, vc, vlo, vmg, &s0, &c0, &l0, shift);
        exclmax_step_f64(x1, vm, vc, vlo, vmg, &s1, &c1, &l1, shift);
        n_ne += vd_count_ne(x0, vm) + vd_count_ne(x1, vm);  /* the masks' own compare (x is never NaN here) */
    }
    n_max = i - n_ne;
    for (; i < n; i += VD_N) {  /* the fill lanes read -inf: clamped, their exp is +0 */
        vd xv = vd_load_part(x + i, n - i < VD_N ? n - i : VD_N, -INFINITY);
        exclmax_step_f64(xv, vm, vc, vlo, vmg, &s0, &c0, &l0, shift);
        n_max += vd_count_eq(xv, vm);
    }
    acc_fold(a, s0, vd_add(c0, l0));
    acc_fold(a, s1, vd_add(c1, l1));
    a->sum *= 0x1p-54;
    a->sum_lo *= 0x1p-54;
    a->n_max = (double)n_max;
    double uh[VD_N], ul[VD_N];
    f64_units(vm, vc, vlo, vmg, uh, ul);
    a->unit = a->e_max = uh[0];
    a->unit_lo = ul[0];
}

FSM_TARGET static void KNAME(expsum_exclmax_rows_f64)(const double *x, int64_t rows, int64_t n,
                                                      const double *m, const double *mn, fsm_acc *acc,
                                                      int64_t ahead)
{
    (void)mn;
    for (int64_t row = 0; row < rows; row++, x += n) {
        acc_clear(&acc[row]);
        if (!isfinite(m[row])) continue;
        const char *pf = ahead > 0 ? (const char *)(x + ahead) : NULL;
        if (fabs(m[row]) > F64_SHIFT_ABOVE)
            expsum_exclmax_row_f64(x, n, m[row], &acc[row], 1, pf);
        else
            expsum_exclmax_row_f64(x, n, m[row], &acc[row], 0, pf);
    }
}

/*
 * y = e * D, D = c_hi + c_lo (1 / the sum of the stored exps) as one double: c_lo is 0 for float32
 * (rows.c forms its factors in double), so D is c_hi. D is split into floats hi + lo, and
 * y = fma(e, hi, e*lo) rounds twice: e*lo (2^-48 of y), then the sum with the exact e*hi, the
 * rounding that counts; the careful loop rounds its subnormal outputs once more, to the subnormal
 * grid (this file's header: within 1 unit of 2^-149). Fast loop when every product and y are normal
 * (f32_scale_consts decides from the row's smallest e); otherwise the careful loop, which never forms
 * a subnormal float: the few subnormal outputs are built as integers.
 */
/* One row of scale_rows_f32 from its aligned start i, by scale_fast_f32 (direct = 0: vhi, vlo are hi, lo)
   or scale_direct_f32 (direct = 1: they are hi64, lo64); both have the same form. Reads e, writes y
   (the same row, or a scratch copy of it). */
FSM_TARGET static inline void scale_row_f32(const float *e, float *y, int64_t n, int64_t i, vf vhi, vf vlo, vf vmax,
                                            vf vymax, const int direct)
{
#define FSM_SCALE1(v) (direct ? scale_direct_f32((v), vhi, vlo, vmax, vymax) : scale_fast_f32((v), vhi, vlo, vmax, vymax))
    if (i > 0) vf_store_part(y, FSM_SCALE1(vf_load_part(e, i, 0.0f)), i);
    for (; i + 2 * VF_N <= n; i += 2 * VF_N) {
        vf a = vf_load(e + i), b = vf_load(e + i + VF_N);
        vf_store(y + i, FSM_SCALE1(a));
        vf_store(y + i + VF_N, FSM_SCALE1(b));
    }
    for (; i < n; i += VF_N) {
        int64_t r = n - i < VF_N ? n - i : VF_N;
        vf_store_part(y + i, FSM_SCALE1(vf_load_part(e + i, r, 0.0f)), r);
    }
#undef FSM_SCALE1
}

FSM_TARGET static void KNAME(scale_rows_f32)(float *y, int64_t rows, int64_t n, const double *c_hi, const double *c_lo,
                                             const fsm_acc *acc)
{
    for (int64_t row = 0; row < rows; row++, y += n) {
        f32_scale sc = f32_scale_consts(c_hi[row] + c_lo[row], &acc[row]);
        const vf vmax = vf_set1(sc.e_max), vymax = vf_set1(sc.y_max);
        int64_t i = head_to_align_f32(y, n);
        if (!sc.careful) {
            scale_row_f32(y, y, n, i, vf_set1(sc.hi), vf_set1(sc.lo), vmax, vymax, 0);
        } else if (FSM_SCALE_DIRECT && fsm_subnormals_free()) {
            scale_row_f32(y, y, n, i, vf_set1(sc.hi64), vf_set1(sc.lo64), vmax, vymax, 1);
        } else {
            const vf vhi = vf_set1(sc.hi64), vlo = vf_set1(sc.lo64), vthr = vf_set1(sc.thr);
            if (i > 0) vf_store_part(y, scale_careful_f32(vf_load_part(y, i, 0.0f), vhi, vlo, vthr, vmax, vymax), i);
            for (; i + VF_N <= n; i += VF_N)
                vf_store(y + i, scale_careful_f32(vf_load(y + i), vhi, vlo, vthr, vmax, vymax));
            if (i < n)
                vf_store_part(y + i, scale_careful_f32(vf_load_part(y + i, n - i, 0.0f), vhi, vlo, vthr, vmax, vymax), n - i);
        }
    }
}

/*
 * Softmax of `rows` rows of n contiguous elements (short rows: the driver's batches), a group of rows
 * at a time: the max pass, the exp pass (expsum_store_row_f32, as the general passes), then each
 * row's 1/S and scale constants in vectors for the group (f32_lane_scale_vals), and the scale pass.
 * The general path's per-row scalar work (the merge's three divisions, f32_scale_consts, the
 * driver's calls) cost ~40 ns a row on Zen 4, a third of a row of 128. D = 1 / sum is one rounding
 * where the merge's (1 / (sum / unit)) / unit was three. A row whose max is not finite (NaN, +inf,
 * all -inf) is NaN, as the driver makes it; a row that could give a subnormal product takes
 * scale_rows_f32.
 * The exp pass groups each row's elements into vectors from the row's start (its sum must not
 * depend on the address). Where y's rows do not start on a 64-byte boundary, storing those vectors
 * into y splits every store over two cache lines, and the scale pass's loads, right behind them,
 * cannot be forwarded from the split stores: at n = 128 on Zen 4, 0.77 ns/element at NumPy's usual
 * 16-byte offset against 0.52 aligned (bench/micro/short.sh). So the exps go to an aligned scratch
 * (a group's rows, each padded to whole vectors; rows up to 256 elements: for 512 it measured no gain
 * and for 1000 5 % slower, the scratch then crowding x and y out of L1), and the scale pass reads them there and writes y
 * once. The same bits either way.
 * Out of cache (after >= 0: the driver's calls above 4 MB of x and y, rows_dtype.h), each row's exp
 * pass prefetches the same row of the next group, which the next max pass would otherwise wait for:
 * 18-22 % faster on Zen 3 (n = 128 and 1000, bench/micro/short.sh). Prefetching y's next rows for
 * writing as well measured 3-6 % faster at n = 128 but 12-19 % slower at n = 1000, so only x is.
 */
#ifndef FSM_SHORT_GROUP_BYTES
/* softmax_rows_f32: bytes of x a group of rows at most (below); AVX2 (8 lanes) measured 1-2 % slower
   with it (its passes cost twice the operations an element, the L2 reads matter less): no limit there */
#define FSM_SHORT_GROUP_BYTES (VF_N >= 16 ? 12288 : INT64_MAX / 2)
#endif
#define FSM_SHORT_SCRATCH 4096 /* floats (16 KiB): rows up to 256 (AVX-512), 512 (AVX2) */
FSM_TARGET static void KNAME(softmax_rows_f32)(const float *x, float *y, int64_t rows, int64_t n, int64_t after)
{
    float m[VF_N], mn[VF_N];
    double sum[VF_N], unit[VF_N];
    fsm_acc acc[VF_N];
    f32_row_group g;
    f32_lane_scale S;
    _Alignas(64) float scratch[FSM_SHORT_SCRATCH];
    const int64_t pitch = (n + VF_N - 1) / VF_N * VF_N;
    const int use_scratch = (((uintptr_t)y | (uintptr_t)(n * (int64_t)sizeof(float))) & 63) != 0 && pitch * VF_N <= FSM_SHORT_SCRATCH;
    /* Rows a group: VF_N (the lanes of the group's constants), or as many as keep the group's x and y
       inside a 32 KiB L1 (FSM_SHORT_GROUP_BYTES of x): each pass reads what the one before touched. At
       n = 1000 a group of 16 is 64 KiB of x and 64 of y, so the exp and scale passes read from L2;
       3 rows a group measured 2-7 % faster there on AVX-512 (Ice Lake, bench/micro/short.sh 1000 256
       and 1000 1024, B/A 1.02-1.07 in 6 runs), n = 512 (6 rows) 9 %. Rows of up to 192 elements keep
       groups of 16. A row's result does not depend on its group (each row is one lane of the constants). */
    int64_t group = FSM_SHORT_GROUP_BYTES / (n * (int64_t)sizeof(float));
    group = group < 1 ? 1 : group > VF_N ? VF_N : group;
    for (int64_t r0 = 0; r0 < rows; r0 += group, x += group * n, y += group * n) {
        const int64_t nr = rows - r0 < group ? rows - r0 : group;
        uint32_t skip = 0;
        for (int64_t r = 0; r < nr; r++) {
            m[r] = max_one_f32(x + r * n, n, &mn[r], 1, 0);
            if (!isfinite(m[r])) {
                skip |= (uint32_t)1 << r;
                m[r] = mn[r] = 0.0f;
            }
        }
        f32_group_consts(m, mn, nr, F32_BIAS, &g);
        /* the next group (this batch's or the caller's next rows), prefetched by the exp pass for the next max pass */
        g.ahead = after >= 0 && r0 + 2 * group <= rows + after ? group * n * (int64_t)sizeof(float) : 0;
        for (int64_t r = 0; r < VF_N; r++) {
            sum[r] = unit[r] = 1.0;
            if (r >= nr || skip >> r & 1) continue;
            /* two of expsum_store_one_f32's three forms (the same bits: x - 0 is x), for the wheel's size */
            float *e = use_scratch ? scratch + r * pitch : y + r * n;
            if (fabsf(m[r]) > F32_SHIFT_ABOVE || !(mn[r] - g.c[r] >= g.lo[r]))
                expsum_store_row_f32(x + r * n, e, n, m[r], &g, (int)r, &acc[r], 1, 1, SRC_F32);
            else if (g.ahead)  /* the usual form twice: its loop without the prefetch test in cache */
                expsum_store_row_f32_body(x + r * n, e, n, m[r], &g, (int)r, &acc[r], 0, 0, SRC_F32, 1);
            else
                expsum_store_row_f32_body(x + r * n, e, n, m[r], &g, (int)r, &acc[r], 0, 0, SRC_F32, 0);
            sum[r] = acc[r].sum;
            unit[r] = acc[r].unit;
        }
        f32_lane_scale_vals(sum, unit, &S);
        for (int64_t r = 0; r < nr; r++) {
            float *yr = y + r * n;
            const float *er = use_scratch ? scratch + r * pitch : yr;
            if (skip >> r & 1) {
                for (int64_t i = 0; i < n; i++) yr[i] = NAN;
                continue;
            }
            /* a superset of f32_scale_vals's careful test: its extra rows get the same bits there */
            if (S.hi[r] < 0x1p-95f || acc[r].e_min * (double)S.hi[r] < 0x1p-94) {
                const double zero = 0.0;
                if (er != yr) memcpy(yr, er, (size_t)n * sizeof(float));
                KNAME(scale_rows_f32)(yr, 1, n, &S.D[r], &zero, &acc[r]);
                continue;
            }
            scale_row_f32(er, yr, n, use_scratch ? 0 : head_to_align_f32(yr, n), vf_set1(S.hi[r]), vf_set1(S.lo[r]),
                          vf_set1((float)acc[r].e_max), vf_set1(S.y_max[r]), 0);
        }
    }
}

/* y = e * (c_hi + c_lo) = fma(e, c_hi, e * c_lo); the max elements (e == e_max) get unit * c. */
FSM_TARGET static inline vd scale_f64(vd e, vd vhi, vd vlo, vd vemax, vd vymax)
{
    return vd_select_eq(e, vemax, vymax, vd_fma(e, vhi, vd_mul(e, vlo)));
}

FSM_TARGET static void KNAME(scale_rows_f64)(double *y, int64_t rows, int64_t n, const double *c_hi, const double *c_lo,
                                             const fsm_acc *acc)
{
    for (int64_t row = 0; row < rows; row++, y += n) {
        const vd vhi = vd_set1(c_hi[row]), vlo = vd_set1(c_lo[row]);
        const vd vemax = vd_set1(acc[row].e_max), vymax = vd_set1(f64_y_max(&acc[row], c_hi[row], c_lo[row]));
        int64_t i = 0;
        for (; i + 2 * VD_N <= n; i += 2 * VD_N) {
            vd a = vd_load(y + i), b = vd_load(y + i + VD_N);
            vd_store(y + i, scale_f64(a, vhi, vlo, vemax, vymax));
            vd_store(y + i + VD_N, scale_f64(b, vhi, vlo, vemax, vymax));
        }
        for (; i < n; i += VD_N) {
            int64_t r = n - i < VD_N ? n - i : VD_N;
            vd_store_part(y + i, scale_f64(vd_load_part(y + i, r, 0.0), vhi, vlo, vemax, vymax), r);
        }
    }
}

/*
 * y = (x - m) - L in double, rounded once to float32: x - m is exact in double, L's rounding to double
 * is 2^-53 of |y| (|y| >= L). For float32 rows L is a double (the driver's W), so l_lo is 0 and is not
 * subtracted. (An all-float form, x - C carried by TwoSum with C + c = m + L, measured 25 % faster on
 * AVX-512, but where x = m lies one ulp from C and L < ulp(m), the rest c and x - C cancel and c's own
 * float rounding reached 0.8 ulp; making that step exact too costs what the conversions cost.)
 * The pass starts at an aligned output address (the result does not depend on the grouping).
 */
FSM_TARGET static inline void logshift_f32_step(const float *x, float *y, int64_t r, vd vm, vd vl)
{
    if (r == VD_N) vd_store_f32(y, vd_sub(vd_sub(vd_load_f32(x), vm), vl));
    else vd_store_f32_part(y, vd_sub(vd_sub(vd_load_f32_part(x, r, 0.0), vm), vl), r);
}

FSM_TARGET static void KNAME(logshift_rows_f32)(const float *x, float *y, int64_t rows, int64_t n, const float *m,
                                                const double *l_hi, const double *l_lo)
{
    (void)l_lo;
    for (int64_t row = 0; row < rows; row++, x += n, y += n) {
        const vd vm = vd_set1(m[row]), vl = vd_set1(l_hi[row]);
        const int64_t h = head_to_align_f32(y, n);
        int64_t i = 0;
        for (; i < h; i += VD_N) logshift_f32_step(x + i, y + i, h - i < VD_N ? h - i : VD_N, vm, vl);
        i = h;
        for (; i + VD_N <= n; i += VD_N) logshift_f32_step(x + i, y + i, VD_N, vm, vl);
        if (i < n) logshift_f32_step(x + i, y + i, n - i, vm, vl);
    }
}

/*
 * y = (x - m) - L in two roundings. With A = m - x >= 0 and L >= 0, |y| = A + L, so neither step cancels:
 * a = fl(x - m) is within 0.5 ulp(A) <= 0.5 ulp(y) (exact when x is within a factor 2 of m, Sterbenz),
 * l_hi within 0.5 ulp(L) <= 0.5 ulp(y) of L, and A and L cannot both lie in y's binade, so the two add
 * at most 0.75 ulp(y); the last subtraction rounds once more: <= 1.25 ulp, plus L's own error (its sum
 * and log1p, 2^-55 relative). Where x = m, y = -l_hi, the correctly rounded -L. (The TwoSum form it
 * replaced, x - M with M = m + L a double-double, was nearly correctly rounded, measured 0.76 ulp, at
 * 9 operations a vector instead of 2: its pass was 22 % of a log_softmax (256, 1000) call by perf, and
 * torch ÷ fastsoftmax measured 1.45-1.48 against 1.56-1.61 now, Zen 4, AVX-512, 1 thread; the error
 * measured on normal*3 data went from 0.51 to 1.19 ulp, inside the 2 ulp bound.)
 * Special values need no guard: x = -inf gives -inf, M = +inf (l_hi = 0, scipy shifts by 0) gives
 * x - inf, a NaN row NaN.
 */
FSM_TARGET static void KNAME(logshift_rows_f64)(const double *x, double *y, int64_t rows, int64_t n, const double *m,
                                                const double *l_hi, const double *l_lo)
{
    (void)l_lo;
    for (int64_t row = 0; row < rows; row++, x += n, y += n) {
        const vd vm = vd_set1(m[row]), vl = vd_set1(l_hi[row]);
        int64_t i = 0;
        for (; i + 2 * VD_N <= n; i += 2 * VD_N) {
            vd a = vd_load(x + i), b = vd_load(x + i + VD_N);
            vd_store(y + i, vd_sub(vd_sub(a, vm), vl));
            vd_store(y + i + VD_N, vd_sub(vd_sub(b, vm), vl));
        }
        for (; i < n; i += VD_N) {
            int64_t r = n - i < VD_N ? n - i : VD_N;
            vd_store_part(y + i, vd_sub(vd_sub(vd_load_part(x + i, r, 0.0), vm), vl), r);
        }
    }
}

/* ---- column kernels: `cols` is a multiple of VF_N (float32) or VD_N (float64) ---- */

FSM_TARGET static void KNAME(col_max_f32)(const float *x, int64_t n, int64_t ld, int64_t cols, float *m)
{
    for (int64_t j = 0; j < cols; j += VF_N) {
        vf a = vf_set1(-INFINITY);
        vf_nanflag nan = vf_nanflag_init();
        for (int64_t i = 0; i < n; i++) {
            vf v = vf_load(x + i * ld + j);
            a = vf_max(a, v);
            nan = vf_nanflag_update(nan, v, v);
        }
        vf_store(m + j, a);
        if (vf_nanflag_any(nan))
            for (int64_t k = j; k < j + VF_N; k++)
                for (int64_t i = 0; i < n; i++)
                    if (isnan(x[i * ld + k])) m[k] = NAN;
    }
}

FSM_TARGET static void KNAME(col_max_f64)(const double *x, int64_t n, int64_t ld, int64_t cols, double *m)
{
    for (int64_t j = 0; j < cols; j += VD_N) {
        vd a = vd_set1(-INFINITY);
        vd_nanflag nan = vd_nanflag_init();
        for (int64_t i = 0; i < n; i++) {
            vd v = vd_load(x + i * ld + j);
            a = vd_max(a, v);
            nan = vd_nanflag_update(nan, v, v);
        }
        vd_store(m + j, a);
        if (vd_nanflag_any(nan))
            for (int64_t k = j; k < j + VD_N; k++)
                for (int64_t i = 0; i < n; i++)
                    if (isnan(x[i * ld + k])) m[k] = NAN;
    }
}

/* Per-column versions of the row kernels: each lane is a column with its own m and constants. */

/* One step of a column: e stored, counted into k (x == m), emin and the compensated sum. */
FSM_TARGET static inline void col_expsum_step_f32(const float *x, float *y, vf vm, vf vc, vf vlo, vf vmg, vf *s, vf *c,
                                                  vf *k, vf *emin)
{
    vf xv = vf_load(x);
    vf e = exp_f32_lanes(xv, vc, vlo, vmg);
    vf_store(y, e);
    *emin = vf_min(*emin, e);
    *k = vf_add(*k, vf_one_if_eq(xv, vm));
    csum_add(s, c, e);
}

/* The pass-1 statistics of VF_N columns (lanes), as the row kernel forms them: the sum of the stored
   exps, unit (the max's exp unrounded), e_m (its stored exp), k (the count of the max), the smallest exp. */
typedef struct { double sum[VF_N], unit[VF_N]; float e_m[VF_N], k[VF_N], emin[VF_N]; } col_lanes_f32;

/* The exps of VF_N columns with maxima vm (n rows ld apart) stored in y, and their statistics. */
FSM_TARGET static inline void col_expsum_lanes_f32(const float *x, float *y, int64_t n, int64_t ld, vf vm,
                                                   col_lanes_f32 *L)
{
    vf vc, vlo, vmg;
    f32_lane_consts(vm, F32_BIAS, &vc, &vlo, &vmg);
    vf s = vf_set1(CSUM_B), c = vf_set1(0.0f), k = c, emin = vf_set1(INFINITY);
    vd d0 = vd_set1(0.0), d1 = d0;
    for (int64_t i0 = 0; i0 < n; i0 += CSUM_STEPS) {
        int64_t i1 = i0 + CSUM_STEPS < n ? i0 + CSUM_STEPS : n;
        for (int64_t i = i0; i < i1; i++)
            col_expsum_step_f32(x + i * ld, y + i * ld, vm, vc, vlo, vmg, &s, &c, &k, &emin);
        csum_flush(&d0, &d1, &s, &c);
    }
    col_sum_store(L->sum, d0, d1);
    vf_store(L->emin, emin);
    exp_f32_exact(vm, vc, vlo, vf_add(vmg, vf_set1(127.0f)), L->unit);  /* as in the row kernel: the max enters unrounded */
    vf_store(L->e_m, exp_f32_lanes(vm, vc, vlo, vmg));
    vf_store(L->k, k);
}

/* The lanes' statistics into acc[0..VF_N). */
FSM_TARGET static inline void col_store_acc_f32(fsm_acc *acc, const col_lanes_f32 *L)
{
    for (int l = 0; l < VF_N; l++) {
        fsm_acc *a = &acc[l];
        a->unit = L->unit[l];
        a->unit_lo = 0.0;
        a->sum = L->sum[l] + (double)L->k[l] * (a->unit - (double)L->e_m[l]);
        a->sum_lo = a->n_max = 0.0;
        a->e_min = (double)L->emin[l];
        a->e_max = (double)L->e_m[l];
    }
}

FSM_TARGET static void KNAME(col_expsum_store_f32)(const float *x, float *y, int64_t n, int64_t ld, int64_t cols,
                                                   const float *m, fsm_acc *acc)
{
    col_lanes_f32 L;
    for (int64_t j = 0; j < cols; j += VF_N) {
        col_expsum_lanes_f32(x + j, y + j, n, ld, vf_load(m + j), &L);
        col_store_acc_f32(acc + j, &L);
    }
}

FSM_TARGET static void KNAME(col_expsum_exclmax_f32)(const float *x, int64_t n, int64_t ld, int64_t cols,
                                                     const float *m, fsm_acc *acc)
{
    double lane_sum[VF_N], lane_res[VF_N];
    float lane_k[VF_N];
    double lane_unit[VF_N];
    for (int64_t j = 0; j < cols; j += VF_N) {
        vf vm = vf_load(m + j), vc, vlo, vmg;
        f32_lane_consts(vm, F32_BIAS_LOG, &vc, &vlo, &vmg);
        vf res = vf_set1(0.0f), k = res;
        vd d0 = vd_set1(0.0), d1 = d0, r0 = d0, r1 = d0;
        vf_tally row_tally = vf_tally_zero();  /* counts every lane together: unused here (k counts each) */
        for (int64_t i0 = 0; i0 < n; i0 += CSUM_STEPS) {
            int64_t i1 = i0 + CSUM_STEPS < n ? i0 + CSUM_STEPS : n;
            for (int64_t i = i0; i < i1; i++) {
                vf xv = vf_load(x + i * ld + j);
                exclmax_step_f32(xv, vm, vc, vlo, vmg, &d0, &d1, &res, &row_tally, 1, 1);
                k = vf_add(k, vf_one_if_eq(xv, vm));
            }
            vf_widen_add(&r0, &r1, res);
            res = vf_set1(0.0f);
        }
        col_sum_store(lane_sum, d0, d1);
        col_sum_store(lane_res, r0, r1);
        exp_f32_exact(vm, vc, vlo, vmg, lane_unit);
        vf_store(lane_k, k);
        for (int l = 0; l < VF_N; l++) {
            fsm_acc *a = &acc[j + l];
            acc_clear(a);
            a->sum = lane_sum[l];
            a->sum_lo = lane_res[l];
            a->unit = lane_unit[l];
            a->n_max = (double)lane_k[l];
        }
    }
}

FSM_TARGET static void KNAME(col_expsum_store_f64)(const double *x, double *y, int64_t n, int64_t ld, int64_t cols,
                                                   const double *m, fsm_acc *acc)
{
    double uh[VD_N], ul[VD_N], kk[VD_N];
    for (int64_t j = 0; j < cols; j += VD_N) {
        vd vm = vd_load(m + j), vc, vlo, vmg;  /* columns take the careful path (no minimum is taken) */
        f64_lane_consts(vm, F64_BIAS_CAREFUL, &vc, &vlo, &vmg);
        const vd B = vd_set1(F64_CSUM_B);
        vd s = B, c = vd_set1(0.0), k = c;
        for (int64_t i = 0; i < n; i++) {
            vd xv = vd_load(x + i * ld + j);
            vd e = exp_f64_store(xv, vc, vlo, vmg, 1, 1);
            vd_store(y + i * ld + j, e);
            k = vd_add(k, vd_one_if_eq0(vd_sub(xv, vm)));
            acc_fast2sum(&s, &c, e);
        }
        f64_units(vm, vc, vlo, vmg, uh, ul);
        vd_store(kk, k);
        for (int l = 0; l < VD_N; l++) {
            fsm_acc *a = &acc[j + l];
            acc_clear(a);
            a->unit = a->e_max = uh[l];
            a->unit_lo = ul[l];
        }
        /* lane l of (s - B, c) into column j + l */
        double ss[VD_N], cc[VD_N];
        vd_store(ss, vd_sub(s, B));
        vd_store(cc, c);
        for (int l = 0; l < VD_N; l++) {
            acc[j + l].sum = ss[l];
            acc[j + l].sum_lo = cc[l] + kk[l] * ul[l];
        }
    }
}

FSM_TARGET static void KNAME(col_expsum_exclmax_f64)(const double *x, int64_t n, int64_t ld, int64_t cols,
                                                     const double *m, fsm_acc *acc)
{
    double uh[VD_N], ul[VD_N], kk[VD_N], ss[VD_N], cc[VD_N];
    for (int64_t j = 0; j < cols; j += VD_N) {
        vd vm = vd_load(m + j), vc, vlo, vmg;
        f64_lane_consts(vm, F64_BIAS_CAREFUL, &vc, &vlo, &vmg);
        vd s = vd_set1(0.0), c = s, l = s, k = s;
        for (int64_t i = 0; i < n; i++) {
            vd xv = vd_load(x + i * ld + j);
            exclmax_step_f64(xv, vm, vc, vlo, vmg, &s, &c, &l, 1);
            k = vd_add(k, vd_one_if_eq0(vd_sub(xv, vm)));
        }
        f64_units(vm, vc, vlo, vmg, uh, ul);
        vd_store(ss, vd_mul(s, vd_set1(0x1p-54)));
        vd_store(cc, vd_mul(vd_add(c, l), vd_set1(0x1p-54)));
        vd_store(kk, k);
        for (int q = 0; q < VD_N; q++) {
            fsm_acc *a = &acc[j + q];
            acc_clear(a);
            a->sum = ss[q], a->sum_lo = cc[q], a->n_max = kk[q];
            a->unit = a->e_max = uh[q];
            a->unit_lo = ul[q];
        }
    }
}

/* Columns of stored exps scaled as scale_rows_f32 does, each column with its own D. */
FSM_TARGET static void KNAME(col_scale_f32)(const float *e, float *y, int64_t n, int64_t ld_in, int64_t ld_out,
                                            int64_t cols, const double *c_hi, const double *c_lo, const fsm_acc *acc)
{
    float hi[FSM_COLS_MAX], lo[FSM_COLS_MAX], hi64[FSM_COLS_MAX], lo64[FSM_COLS_MAX], thr[FSM_COLS_MAX];
    float emax[FSM_COLS_MAX], ymax[FSM_COLS_MAX];
    int careful = 0;
    for (int64_t j = 0; j < cols; j++) {
        f32_scale sc = f32_scale_consts(c_hi[j] + c_lo[j], &acc[j]);
        hi[j] = sc.hi, lo[j] = sc.lo, hi64[j] = sc.hi64, lo64[j] = sc.lo64, thr[j] = sc.thr;
        emax[j] = sc.e_max, ymax[j] = sc.y_max;
        careful |= sc.careful;
    }
    if (!careful) {
        for (int64_t i = 0; i < n; i++)  /* row by row: y is written in contiguous runs */
            for (int64_t j = 0; j < cols; j += VF_N)
                vf_store(y + i * ld_out + j, scale_fast_f32(vf_load(e + i * ld_in + j), vf_load(hi + j), vf_load(lo + j),
                                                            vf_load(emax + j), vf_load(ymax + j)));
        return;
    }
    if (FSM_SCALE_DIRECT && fsm_subnormals_free()) {
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < cols; j += VF_N)
                vf_store(y + i * ld_out + j, scale_direct_f32(vf_load(e + i * ld_in + j), vf_load(hi64 + j), vf_load(lo64 + j),
                                                              vf_load(emax + j), vf_load(ymax + j)));
        return;
    }
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < cols; j += VF_N)
            vf_store(y + i * ld_out + j, scale_careful_f32(vf_load(e + i * ld_in + j), vf_load(hi64 + j), vf_load(lo64 + j),
                                                           vf_load(thr + j), vf_load(emax + j), vf_load(ymax + j)));
}

/*
 * Softmax of columns, one sweep per vector of VF_N columns: the max, the exps (stored in e) and their
 * sums, the per-column constants, the scale into y, while the vector's n rows stay in L1. The general
 * path (col_max, col_expsum_store, the driver's 1/S per column, col_scale) costs ~50 cycles of scalar
 * work per column, which dominated short columns: softmax (1, 21, 64, 64) axis=1 took 1.05 ns/element
 * in cache against 0.34 for rows of 1000, and n = 3 took 4.5. Here that work is one lean loop over the
 * lanes. Each lane's operations are the general path's, in the same order (the sum, 1/S,
 * f32_scale_vals), so the bits are the same; a vector whose constants could make a product subnormal
 * is scaled by col_scale_f32 itself (the careful or direct loop).
 */
FSM_TARGET static void KNAME(col_softmax_f32)(const float *x, float *e, int64_t n, int64_t ld, int64_t cols, float *y,
                                              int64_t ld_out, unsigned char *skipped)
{
    col_lanes_f32 L;
    f32_lane_scale S;
    fsm_acc acc[VF_N];
    for (int64_t j = 0; j < cols; j += VF_N) {
        vf vm = vf_set1(-INFINITY);
        vf_nanflag nan = vf_nanflag_init();
        for (int64_t i = 0; i < n; i++) {
            vf v = vf_load(x + i * ld + j);
            vm = vf_max(vm, v);
            nan = vf_nanflag_update(nan, v, v);
        }
        vf dm = vf_sub(vm, vm);  /* NaN where the max is +-inf */
        skipped[j / VF_N] = (unsigned char)(vf_nanflag_any(nan) || vf_nanflag_any(vf_nanflag_update(vf_nanflag_init(), dm, dm)));
        if (skipped[j / VF_N]) continue;
        col_expsum_lanes_f32(x + j, e + j, n, ld, vm, &L);
        /* careful here is a superset of f32_scale_vals's test (a product below 2^-94, not 2^-125): the
           lanes it adds get the same bits from the careful loop */
        /* _Alignas: GCC then keeps this frame off AddressSanitizer's fake stack, whose frames are not
           64-byte aligned although GCC aligns these vector-sized locals so (a vmovapd faulted there) */
        _Alignas(64) double sum[VF_N];
        for (int h = 0; h < VF_N; h += VD_N)
            vd_store(sum + h, vd_add(vd_load(L.sum + h),
                                     vd_mul(vd_load_f32(L.k + h), vd_sub(vd_load(L.unit + h), vd_load_f32(L.e_m + h)))));
        f32_lane_scale_vals(sum, L.unit, &S);
        const vf vh = vf_load(S.hi);
        const int careful = vf_hmin(vh) < 0x1p-95f || vf_hmin(vf_mul(vf_load(L.emin), vh)) < 0x1p-94f;
        if (careful) {
            const double zero[VF_N] = {0.0};
            col_store_acc_f32(acc, &L);
            KNAME(col_scale_f32)(e + j, y + j, n, ld, ld_out, VF_N, S.D, zero, acc);
            continue;
        }
        const vf vhi = vh, vlo2 = vf_load(S.lo), vemax = vf_load(L.e_m), vymax = vf_load(S.y_max);
        for (int64_t i = 0; i < n; i++)
            vf_store(y + i * ld_out + j, scale_fast_f32(vf_load(e + i * ld + j), vhi, vlo2, vemax, vymax));
    }
}

FSM_TARGET static void KNAME(col_scale_f64)(const double *e, double *y, int64_t n, int64_t ld_in, int64_t ld_out,
                                            int64_t cols, const double *c_hi, const double *c_lo, const fsm_acc *acc)
{
    double emax[FSM_COLS_MAX], ymax[FSM_COLS_MAX];
    for (int64_t j = 0; j < cols; j++) {
        emax[j] = acc[j].e_max;
        ymax[j] = f64_y_max(&acc[j], c_hi[j], c_lo[j]);
    }
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < cols; j += VD_N)
            vd_store(y + i * ld_out + j, scale_f64(vd_load(e + i * ld_in + j), vd_load(c_hi + j), vd_load(c_lo + j),
                                                   vd_load(emax + j), vd_load(ymax + j)));
}

FSM_TARGET static void KNAME(col_logshift_f32)(const float *x, float *y, int64_t n, int64_t ld_in, int64_t ld_out,
                                               int64_t cols, const float *m, const double *l_hi, const double *l_lo)
{
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < cols; j += VD_N) {
            vd d = vd_sub(vd_load_f32(x + i * ld_in + j), vd_load_f32(m + j));
            vd_store_f32(y + i * ld_out + j, vd_sub(vd_sub(d, vd_load(l_hi + j)), vd_load(l_lo + j)));
        }
}

FSM_TARGET static void KNAME(col_logshift_f64)(const double *x, double *y, int64_t n, int64_t ld_in, int64_t ld_out,
                                               int64_t cols, const double *m, const double *l_hi, const double *l_lo)
{
    (void)l_lo;  /* y = (x - m) - l_hi, as logshift_rows_f64 */
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < cols; j += VD_N)
            vd_store(y + i * ld_out + j, vd_sub(vd_sub(vd_load(x + i * ld_in + j), vd_load(m + j)), vd_load(l_hi + j)));
}

/* ---- short rows as the lanes of a column tile (the driver's rows_lanes) ---- */

/*
 * tile[i * VF_N + l] = x[l * n + i]: rows l < rows (at most VF_N) of n contiguous elements into the
 * columns of a tile whose rows are VF_N elements apart; lanes l >= rows repeat row 0 (their results
 * are never stored). VF_N x VF_N blocks transposed in registers, loaded and stored as partial
 * vectors (one form for the last, narrower block and the others: these rows are a few vectors).
 */
FSM_TARGET static void KNAME(tile_in_f32)(const float *x, int64_t rows, int64_t n, float *tile)
{
    vf v[VF_N];
    for (int64_t i = 0; i < n; i += VF_N) {
        const int64_t w = n - i < VF_N ? n - i : VF_N;
        for (int64_t l = 0; l < VF_N; l++) v[l] = vf_load_part(x + (l < rows ? l : 0) * n + i, w, 0.0f);
        vf_transpose(v);
        for (int64_t q = 0; q < w; q++) vf_store(tile + (i + q) * VF_N, v[q]);
    }
}

/* y[l * n + i] = tile[i * VF_N + l] for the rows l < rows: tile_in_f32 undone. */
FSM_TARGET static void KNAME(tile_out_f32)(const float *tile, int64_t rows, int64_t n, float *y)
{
    vf v[VF_N];
    for (int64_t i = 0; i < n; i += VF_N) {
        const int64_t w = n - i < VF_N ? n - i : VF_N;
        for (int64_t q = 0; q < VF_N; q++) v[q] = q < w ? vf_load(tile + (i + q) * VF_N) : vf_set1(0.0f);
        vf_transpose(v);
        for (int64_t l = 0; l < rows; l++) vf_store_part(y + l * n + i, v[l], w);
    }
}

FSM_TARGET static void KNAME(tile_in_f64)(const double *x, int64_t rows, int64_t n, double *tile)
{
    vd v[VD_N];
    for (int64_t i = 0; i < n; i += VD_N) {
        const int64_t w = n - i < VD_N ? n - i : VD_N;
        for (int64_t l = 0; l < VD_N; l++) v[l] = vd_load_part(x + (l < rows ? l : 0) * n + i, w, 0.0);
        vd_transpose(v);
        for (int64_t q = 0; q < w; q++) vd_store(tile + (i + q) * VD_N, v[q]);
    }
}

FSM_TARGET static void KNAME(tile_out_f64)(const double *tile, int64_t rows, int64_t n, double *y)
{
    vd v[VD_N];
    for (int64_t i = 0; i < n; i += VD_N) {
        const int64_t w = n - i < VD_N ? n - i : VD_N;
        for (int64_t q = 0; q < VD_N; q++) v[q] = q < w ? vd_load(tile + (i + q) * VD_N) : vd_set1(0.0);
        vd_transpose(v);
        for (int64_t l = 0; l < rows; l++) vd_store_part(y + l * n + i, v[l], w);
    }
}

/* ---- the half types: float16 / bfloat16 rows widened to float32 and narrowed back ---- */

/* f[i] = h[i] as float32 (exact), h float16 (bf16 = 0) or bfloat16 (bf16 = 1). */
FSM_TARGET static void KNAME(widen_half)(const uint16_t *h, float *f, int64_t n, int bf16)
{
    int64_t i = 0;
    if (bf16) {
        for (; i + VF_N <= n; i += VF_N) vf_store(f + i, vf_load_bf16(h + i));
        for (; i < n; i++) f[i] = fsm_bf16_to_f32(h[i]);
    } else {
        for (; i + VF_N <= n; i += VF_N) vf_store(f + i, vf_load_f16(h + i));
        for (; i < n; i++) f[i] = fsm_f16_to_f32(h[i]);
    }
}

/* h[i] = f[i] rounded to float16 / bfloat16 (nearest even): the one rounding of a half result. */
#ifdef FSM_BF16_TARGET
/* The bfloat16 loops of narrow_half and scale_narrow_rows on AVX512_BF16's conversion (avx512.c,
   vf_store_bf16x2_cvt; the same bits as the integer form): pairs of vectors of f, scaled as
   scale_fast_f32 does when sc is not NULL (a row that f32_scale_consts did not find careful: its
   outputs are normal or zero), into h. Returns how many elements it did. */
FSM_BF16_TARGET static int64_t bf16cvt_pairs(const float *f, uint16_t *h, int64_t n, const f32_scale *sc)
{
    int64_t i = 0;
    if (sc) {
        const vf vmax = vf_set1(sc->e_max), vymax = vf_set1(sc->y_max), vhi = vf_set1(sc->hi), vlo = vf_set1(sc->lo);
        for (; i + 2 * VF_N <= n; i += 2 * VF_N)
            vf_store_bf16x2_cvt(h + i, scale_fast_f32(vf_load(f + i), vhi, vlo, vmax, vymax),
                                scale_fast_f32(vf_load(f + i + VF_N), vhi, vlo, vmax, vymax), 1);
    } else {
        for (; i + 2 * VF_N <= n; i += 2 * VF_N) vf_store_bf16x2_cvt(h + i, vf_load(f + i), vf_load(f + i + VF_N), 0);
    }
    return i;
}
#define BF16CVT_PAIRS(f, h, n, sc) (fsm_bf16cvt() ? bf16cvt_pairs(f, h, n, sc) : 0)
#else
#define BF16CVT_PAIRS(f, h, n, sc) ((void)(sc), (int64_t)0)
#endif

FSM_TARGET static void KNAME(narrow_half)(const float *f, uint16_t *h, int64_t n, int bf16)
{
    int64_t i = 0;
    if (bf16) {
        i = BF16CVT_PAIRS(f, h, n, (const f32_scale *)NULL);
        for (; i + 2 * VF_N <= n; i += 2 * VF_N) vf_store_bf16x2(h + i, vf_load(f + i), vf_load(f + i + VF_N));
        for (; i + VF_N <= n; i += VF_N) vf_store_bf16(h + i, vf_load(f + i));
        for (; i < n; i++) h[i] = fsm_f32_to_bf16(f[i]);
    } else {
        for (; i + VF_N <= n; i += VF_N) vf_store_f16(h + i, vf_load(f + i));
        for (; i < n; i++) h[i] = fsm_f32_to_f16(f[i]);
    }
}

/* Half-type loads and stores of one vector: bf16 selects bfloat16, else float16. */
FSM_TARGET static inline void store_half(uint16_t *h, vf a, int bf16)
{
    if (bf16) vf_store_bf16(h, a);
    else vf_store_f16(h, a);
}

/* The first r < VF_N lanes of a, rounded to the half type (scalar: the same bits as the vector store). */
FSM_TARGET static inline void store_half_part(uint16_t *h, vf a, int64_t r, int bf16)
{
    float t[VF_N];
    vf_store(t, a);
    for (int64_t i = 0; i < r; i++) h[i] = bf16 ? fsm_f32_to_bf16(t[i]) : fsm_f32_to_f16(t[i]);
}

/*
 * The max pass of half rows with the widening folded in: each row of h is written to s as float32
 * (exact) while its max (and min, when mn is not NULL) is taken, so the data is read from memory
 * once; m and mn are those max_rows_f32 gives on the widened rows. (Softmax, which needs no widened
 * copy, takes max_half_bits instead.)
 */
FSM_TARGET static inline void widen_max_rows_s(const uint16_t *h, float *s, int64_t rows, int64_t n, float *m,
                                               float *mn, int bf16)
{
    for (int64_t r = 0; r < rows; r++, h += n) {
        float *sr = s + r * n;
        vf a0 = vf_set1(-INFINITY), a1 = a0, b0 = vf_set1(INFINITY), b1 = b0;
        vf_nanflag nan = vf_nanflag_init();
        int64_t i = 0;
        for (; i + 2 * VF_N <= n; i += 2 * VF_N) {
            vf v0 = load_half(h + i, bf16), v1 = load_half(h + i + VF_N, bf16);
            vf_store(sr + i, v0);
            vf_store(sr + i + VF_N, v1);
            a0 = vf_max(a0, v0); a1 = vf_max(a1, v1);
            b0 = vf_min(b0, v0); b1 = vf_min(b1, v1);
            nan = vf_nanflag_update(nan, v0, v1);
        }
        for (; i < n; i += VF_N) {
            vf v;
            if (n - i >= VF_N) {
                v = load_half(h + i, bf16);
                vf_store(sr + i, v);
            } else {
                float *t = sr + i;  /* the tail's lanes, widened */
                for (int64_t j = 0; j < n - i; j++) t[j] = bf16 ? fsm_bf16_to_f32(h[i + j]) : fsm_f16_to_f32(h[i + j]);
                v = vf_load_part(t, n - i, -INFINITY);
                b0 = vf_min(b0, vf_load_part(t, n - i, INFINITY));
                a0 = vf_max(a0, v);
                nan = vf_nanflag_update(nan, v, v);
                break;
            }
            a0 = vf_max(a0, v);
            b0 = vf_min(b0, v);
            nan = vf_nanflag_update(nan, v, v);
        }
        if (mn) mn[r] = vf_hmin(vf_min(b0, b1));
        m[r] = vf_nanflag_any(nan) ? NAN : vf_hmax(vf_max(a0, a1));
    }
}

/*
 * The max (and min, when mn is not NULL) of a half row read as 16-bit integers, VH_N at a time and
 * never widened: softmax's max pass, whose exp pass widens the row as it reads it. float16 and
 * bfloat16 are sign-magnitude, so three integer reductions give both:
 *   smax = max as int16: the largest value when any element has its sign bit clear (those are the
 *          int16 >= 0, in value order); otherwise every element is negative, and then
 *   umin = min as uint16 is the negative of smallest magnitude, the largest value;
 *   umax = max as uint16: when any sign bit is set, the negative of largest magnitude, the smallest
 *          value; otherwise umin is the smallest.
 * A NaN is a magnitude above infinity's: smax > inf (a positive NaN) or umax > -inf's bits (a
 * negative one); the max is then NaN, as max_rows_f32 gives. The values are those of the widened
 * row (widening is exact and monotonic), except that where +0 and -0 are both the max (or the min)
 * this gives +0 (-0), where the float compare may give either: no result depends on it. Three
 * integer operations per 32 elements (AVX-512) against the float pass's widening, max, min and NaN
 * test per 16 (bench/micro/half.sh).
 */
FSM_TARGET_H static inline void max_half_bits(const uint16_t *h, int64_t n, int bf16, float *m, float *mn)
{
    vh smax = vh_set1(0x8000), umax = vh_set1(0), umin = vh_set1(0xffff);  /* the neutral elements */
    /* the elements before the first 64-byte boundary are taken with the tail: no load splits a line */
    int64_t head = (int64_t)((-(uintptr_t)h & 63) / sizeof(uint16_t)), i;
    if (head > n || (uintptr_t)h % sizeof(uint16_t)) head = n;
    for (i = head; i + 2 * VH_N <= n; i += 2 * VH_N) {
        vh a = vh_load(h + i), b = vh_load(h + i + VH_N);
        smax = vh_max_s(smax, vh_max_s(a, b));
        umax = vh_max_u(umax, vh_max_u(a, b));
        umin = vh_min_u(umin, vh_min_u(a, b));
    }
    int16_t s16 = vh_hmax_s(smax);
    uint16_t u_max = vh_hmax_u(umax), u_min = vh_hmin_u(umin);
    for (int64_t j = 0; j < head + (n - i); j++) {  /* the head, then the last < 2 VH_N elements */
        const uint16_t v = h[j < head ? j : i + (j - head)];
        s16 = (int16_t)v > s16 ? (int16_t)v : s16;
        u_max = v > u_max ? v : u_max;
        u_min = v < u_min ? v : u_min;
    }
    const int inf = bf16 ? 0x7f80 : 0x7c00;
    uint16_t hmax = s16 >= 0 ? (uint16_t)s16 : u_min, hmin = u_max >= 0x8000 ? u_max : u_min;
    if (mn) *mn = bf16 ? fsm_bf16_to_f32(hmin) : fsm_f16_to_f32(hmin);
    *m = s16 > inf || u_max > (0x8000 | inf) ? NAN : bf16 ? fsm_bf16_to_f32(hmax) : fsm_f16_to_f32(hmax);
}

/* The max pass of half rows (max_rows_f32 of the widened rows), each row written to s as float32
   unless s is NULL (softmax, whose exp pass widens as it reads: expsum_store_half_rows). */
FSM_TARGET_H static void KNAME(widen_max_rows)(const uint16_t *h, float *s, int64_t rows, int64_t n, float *m,
                                               float *mn, int bf16)
{
    if (s) widen_max_rows_s(h, s, rows, n, m, mn, bf16);
    else
        for (int64_t r = 0; r < rows; r++) max_half_bits(h + r * n, n, bf16, &m[r], mn ? &mn[r] : NULL);
}

/*
 * The scale pass of half rows with the narrowing folded in: h = e * (c_hi + c_lo) rounded once to the
 * half type, the same float32 products as scale_rows_f32's. A row that takes scale_rows_f32's careful
 * loop (subnormal float32 products possible) is scaled in place in e by it, then narrowed.
 */
FSM_TARGET static void KNAME(scale_narrow_rows)(float *e, uint16_t *h, int64_t rows, int64_t n, const double *c_hi,
                                                const double *c_lo, const fsm_acc *acc, int bf16)
{
    for (int64_t row = 0; row < rows; row++, e += n, h += n) {
        f32_scale sc = f32_scale_consts(c_hi[row] + c_lo[row], &acc[row]);
        if (sc.careful) {
            KNAME(scale_rows_f32)(e, 1, n, &c_hi[row], &c_lo[row], &acc[row]);
            KNAME(narrow_half)(e, h, n, bf16);
            continue;
        }
        const vf vmax = vf_set1(sc.e_max), vymax = vf_set1(sc.y_max);
        const vf vhi = vf_set1(sc.hi), vlo = vf_set1(sc.lo);
        int64_t i = 0;
        if (bf16) {
            i = BF16CVT_PAIRS(e, h, n, &sc);
            if (isfinite(sc.hi)) {  /* finite exps times a finite factor, not careful: every output normal or 0, <= 1 */
                for (; i + 2 * VF_N <= n; i += 2 * VF_N) {
                    vf a = vf_load(e + i), b = vf_load(e + i + VF_N);
                    vf_store_bf16x2_normal(h + i, scale_fast_f32(a, vhi, vlo, vmax, vymax),
                                           scale_fast_f32(b, vhi, vlo, vmax, vymax));
                }
            }
            for (; i + 2 * VF_N <= n; i += 2 * VF_N) {
                vf a = vf_load(e + i), b = vf_load(e + i + VF_N);
                vf_store_bf16x2(h + i, scale_fast_f32(a, vhi, vlo, vmax, vymax), scale_fast_f32(b, vhi, vlo, vmax, vymax));
            }
        } else {
            for (; i + 2 * VF_N <= n; i += 2 * VF_N) {
                vf a = vf_load(e + i), b = vf_load(e + i + VF_N);
                vf_store_f16(h + i, scale_fast_f32(a, vhi, vlo, vmax, vymax));
                vf_store_f16(h + i + VF_N, scale_fast_f32(b, vhi, vlo, vmax, vymax));
            }
        }
        for (; i < n; i += VF_N) {
            int64_t r = n - i < VF_N ? n - i : VF_N;
            vf y = scale_fast_f32(r == VF_N ? vf_load(e + i) : vf_load_part(e + i, r, 0.0f), vhi, vlo, vmax, vymax);
            if (r == VF_N) store_half(h + i, y, bf16);
            else store_half_part(h + i, y, r, bf16);
        }
    }
}

/* ---- the out-of-cache path: a cache-resident scratch copied to the output with non-temporal stores ---- */

/* y[0..n) = s[0..n): plain stores up to y's first vector-aligned address and after the last full vector,
   non-temporal ones between; then the fence (the stores are weakly ordered). y not aligned to its
   element: plain copy. */
FSM_TARGET static void KNAME(stream_f32)(const float *s, float *y, int64_t n)
{
    if ((uintptr_t)y % sizeof(float)) {
        memcpy(y, s, (size_t)n * sizeof(float));
        return;
    }
    int64_t i = head_to_align_f32(y, n);
    memcpy(y, s, (size_t)i * sizeof(float));
    for (; i + VF_N <= n; i += VF_N) vf_stream(y + i, vf_load(s + i));
    memcpy(y + i, s + i, (size_t)(n - i) * sizeof(float));
    fsm_sfence();
}

FSM_TARGET static void KNAME(stream_f64)(const double *s, double *y, int64_t n)
{
    if ((uintptr_t)y % sizeof(double)) {
        memcpy(y, s, (size_t)n * sizeof(double));
        return;
    }
    int64_t i = (int64_t)((-(uintptr_t)y & (uintptr_t)(VD_N * sizeof(double) - 1)) / sizeof(double));
    if (i > n) i = n;
    memcpy(y, s, (size_t)i * sizeof(double));
    for (; i + VD_N <= n; i += VD_N) vd_stream(y + i, vd_load(s + i));
    memcpy(y + i, s + i, (size_t)(n - i) * sizeof(double));
    fsm_sfence();
}

static const fsm_kernels KNAME(kernel_set) = {
    .name = FSM_STR(FSM_ISA),  /* the kernels.inc id, as fsm_isa_name() spells it */
    .algorithm = FSM_ISA_ALGORITHM,
    .lanes_f32 = VF_N,
    .lanes_f64 = VD_N,
    .max_rows_f32 = KNAME(max_rows_f32),
    .max_rows_f64 = KNAME(max_rows_f64),
    .expsum_store_rows_f32 = KNAME(expsum_store_rows_f32),
    .expsum_store_half_rows = KNAME(expsum_store_half_rows),
    .expsum_store_rows_f64 = KNAME(expsum_store_rows_f64),
    .expsum_exclmax_rows_f32 = KNAME(expsum_exclmax_rows_f32),
    .expsum_exclmax_rows_f64 = KNAME(expsum_exclmax_rows_f64),
    .scale_rows_f32 = KNAME(scale_rows_f32),
    .scale_rows_f64 = KNAME(scale_rows_f64),
    .logshift_rows_f32 = KNAME(logshift_rows_f32),
    .logshift_rows_f64 = KNAME(logshift_rows_f64),
    .col_max_f32 = KNAME(col_max_f32),
    .col_max_f64 = KNAME(col_max_f64),
    .col_expsum_store_f32 = KNAME(col_expsum_store_f32),
    .col_expsum_store_f64 = KNAME(col_expsum_store_f64),
    .col_expsum_exclmax_f32 = KNAME(col_expsum_exclmax_f32),
    .col_expsum_exclmax_f64 = KNAME(col_expsum_exclmax_f64),
    .col_scale_f32 = KNAME(col_scale_f32),
    .col_scale_f64 = KNAME(col_scale_f64),
    .col_softmax_f32 = KNAME(col_softmax_f32),
    .softmax_rows_f32 = KNAME(softmax_rows_f32),
    .col_logshift_f32 = KNAME(col_logshift_f32),
    .col_logshift_f64 = KNAME(col_logshift_f64),
    .tile_in_f32 = KNAME(tile_in_f32),
    .tile_out_f32 = KNAME(tile_out_f32),
    .tile_in_f64 = KNAME(tile_in_f64),
    .tile_out_f64 = KNAME(tile_out_f64),
    .widen_half = KNAME(widen_half),
    .narrow_half = KNAME(narrow_half),
    .widen_max_rows = KNAME(widen_max_rows),
    .scale_narrow_rows = KNAME(scale_narrow_rows),
    .stream_f32 = KNAME(stream_f32),
    .stream_f64 = KNAME(stream_f64),
};

/*
 * The kernels, written once over a small SIMD vocabulary and compiled once per ISA.
 *
 * portable.c, avx2.c and avx512.c each define the vocabulary (types vd = VD_N doubles, vf = VF_N
 * floats, and the vd_* / vf_* operations, all marked FSM_TARGET) and FSM_ISA, then include this
 * file, which defines fsm_kernels_<ISA>. The steps below are the derivation; every ISA runs exactly
 * these operations, so the ISAs differ only in summation order across lanes.
 *
 * exp for float32 data ("dexp_rr1_p6"), with d = x - m formed in double (exact, see fastsoftmax.h):
 *   d  = max(d, -1023 ln2)            below: n = -1023, whose 2^n bits are those of +0: e = 0 exactly
 *   t  = d*log2(e) + (0x1.8p52+1023)  magic-bias rounding: t's low mantissa bits hold n + 1023
 *   n  = t - (0x1.8p52+1023)          n = round(d / ln2)
 *   r  = d - n*ln2                    one constant: |n| <= 1023, error < 2^-43, |r| <= 0.3466
 *   p  = c0 + c1 r + ... + c6 r^6     near-minimax on [-0.3466, 0.3466], relative error 2^-28.5,
 *                                     evaluated by Estrin's scheme (short dependency chain)
 *   e  = p * 2^n                      2^n = bits(t) << 52
 * e is rounded to float32 once when stored: 0.5 ulp + 0.09 ulp.
 * Why double lanes for float32 data: in float32 the same bound needs x - m and the reduced argument
 * carried as pairs (Fast2Sum), 1 + r formed exactly and each stored exp's rounding residual summed;
 * that costs about the instructions the 8 float lanes save, and on Zen 3 it measured 4 % slower
 * (3.3x slower with wide-range data, whose scaled residuals go subnormal). bench/micro/README.md
 * has the numbers and the patch.
 *
 * exp for float64 data ("2sum_rr2_p11"):
 *   d, err = TwoSum(x, -m)            x - m == d + err exactly
 *   d  = max(d, -1077 ln2), err = 0 there (and for -inf): below, 2^(n+54) is +0 and e = 0 exactly
 *   t, n as above with bias 1023+54   so 2^(n+54) stays normal down to the subnormal range
 *   r_hi = d - n*LN2_HI               exact (Cody-Waite: n*LN2_HI exact, Sterbenz)
 *   t2 = err - n*LN2_LO               tiny, its rounding is below 2^-85
 *   r, r_lo = Fast2Sum(r_hi, t2)      the reduced argument as a double-double
 *   b  = r_lo + r^2 q(r)              q: degree 9, |r^2 (q - q*)| < 2^-56
 *   h, l = Fast2Sum(1, r)             1 + r exactly
 *   p  = h + (l + b)                  one rounding at the end
 *   e  = p * 2^(n+54) * 2^-54         last product rounds once into the subnormal range
 * The log ops sum p * 2^(n+54) and scale the sum once: exps below 2^-1022 are not rounded to the
 * subnormal grid before they are added (that cost 41 ulp on [0, -713 x 1000]).
 *
 * Tails (n not a multiple of the vector) run the same vector code on a partial vector (masked load
 * and store) padded with -inf (exp gives 0, never equal to a finite max): as accurate as the body.
 * Row kernels take a batch of rows so that short rows do not pay a call per row.
 */
#include <math.h>
#include <string.h>
#include "fastsoftmax.h"

#define FSM_CAT2(a, b) a##_##b
#define FSM_CAT(a, b) FSM_CAT2(a, b)
#define KNAME(name) FSM_CAT(name, FSM_ISA)

#define LOG2E 0x1.71547652b82fep+0
#define LN2 0x1.62e42fefa39efp-1
#define LN2_HI 0x1.62e42fee00000p-1
#define LN2_LO 0x1.a39ef35793c76p-33
#define MAGIC32 (0x1.8p52 + 1023.0)
#define MAGIC64 (0x1.8p52 + 1077.0)
#define EXP32_LO (-0x1.628b76e3a7b61p+9) /* -1023 ln 2: n = -1023 makes 2^n exactly +0 */
#define EXP64_LO (-0x1.75427f6acad6fp+9) /* -1077 ln 2: n + 1077 = 0 makes 2^(n+54) exactly +0 */

/* ---- the two exponentials ---- */

FSM_TARGET static inline vd exp_for_f32(vd d)
{
    d = vd_clamp_lo(vd_set1(EXP32_LO), d);
    vd t = vd_fma(d, vd_set1(LOG2E), vd_set1(MAGIC32));
    vd n = vd_sub(t, vd_set1(MAGIC32));
    vd r = vd_fma(n, vd_set1(-LN2), d);
    /* Estrin: the same polynomial with a shorter dependency chain (latency, not op count, limits) */
    vd r2 = vd_mul(r, r);
    vd p01 = vd_fma(vd_set1(0x1.000000a21065fp+0), r, vd_set1(1.0));
    vd p23 = vd_fma(vd_set1(0x1.55540423d0fe2p-3), r, vd_set1(0x1.000000287e0bep-1));
    vd p45 = vd_fma(vd_set1(0x1.126fb4b28494dp-7), r, vd_set1(0x1.5554acd3f7a6dp-5));
    vd p46 = vd_fma(vd_set1(0x1.6d753f9d0edb6p-10), r2, p45);
    vd p26 = vd_fma(p46, r2, p23);
    vd p = vd_fma(p26, r2, p01);
    return vd_mul(p, vd_pow2_bits(t));
}

/* exp(x - m) * 2^54 for float64, x - m carried exactly; also returns d = fl(x - m) for the max test.
   The 2^54 keeps every value normal: sums of exps that are subnormal are formed before one final
   scaling (log ops), instead of adding values already rounded to the subnormal grid. */
FSM_TARGET static inline vd exp_for_f64_x2p54(vd x, vd vm, vd vnegm, vd *d_out)
{
    vd d = vd_sub(x, vm);
    vd z = vd_sub(d, x);
    vd err = vd_add(vd_sub(x, vd_sub(d, z)), vd_sub(vnegm, z));
    *d_out = d;
    err = vd_keep_if_gt(err, d, vd_set1(EXP64_LO));
    d = vd_clamp_lo(vd_set1(EXP64_LO), d);
    vd t = vd_fma(d, vd_set1(LOG2E), vd_set1(MAGIC64));
    vd n = vd_sub(t, vd_set1(MAGIC64));
    vd r_hi = vd_fma(n, vd_set1(-LN2_HI), d);
    vd t2 = vd_fma(n, vd_set1(-LN2_LO), err);
    vd r = vd_add(r_hi, t2);
    vd r_lo = vd_sub(t2, vd_sub(r, r_hi));
    vd q = vd_fma(vd_set1(0x1.af38a71a18cb9p-26), r, vd_set1(0x1.2891834686c7ep-22));
    q = vd_fma(q, r, vd_set1(0x1.71de0daf7a6ccp-19));
    q = vd_fma(q, r, vd_set1(0x1.a019b90eefe8ep-16));
    q = vd_fma(q, r, vd_set1(0x1.a01a01a7c3d59p-13));
    q = vd_fma(q, r, vd_set1(0x1.6c16c1788b646p-10));
    q = vd_fma(q, r, vd_set1(0x1.11111111109b4p-7));
    q = vd_fma(q, r, vd_set1(0x1.5555555553d64p-5));
    q = vd_fma(q, r, vd_set1(0x1.5555555555556p-3));
    q = vd_fma(q, r, vd_set1(0x1.0000000000001p-1));
    vd b = vd_fma(vd_mul(r, r), q, r_lo);
    vd one = vd_set1(1.0);
    vd h = vd_add(one, r);
    vd l = vd_add(vd_sub(one, h), r);
    vd p = vd_add(h, vd_add(l, b));
    return vd_mul(p, vd_pow2_bits(t));
}

/* exp(x - m) for float64: the last product rounds once, into the subnormal range if need be. */
FSM_TARGET static inline vd exp_for_f64(vd x, vd vm, vd vnegm, vd *d_out)
{
    return vd_mul(exp_for_f64_x2p54(x, vm, vnegm, d_out), vd_set1(0x1p-54));
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

FSM_TARGET static inline float max_one_f32(const float *x, int64_t n)
{
    vf a0 = vf_set1(-INFINITY), a1 = a0, a2 = a0, a3 = a0;
    vf_nanflag nan = vf_nanflag_init();
    int64_t i = 0;
    for (; i + 4 * VF_N <= n; i += 4 * VF_N) {
        vf v0 = vf_load(x + i), v1 = vf_load(x + i + VF_N);
        vf v2 = vf_load(x + i + 2 * VF_N), v3 = vf_load(x + i + 3 * VF_N);
        a0 = vf_max(a0, v0); a1 = vf_max(a1, v1); a2 = vf_max(a2, v2); a3 = vf_max(a3, v3);
        nan = vf_nanflag_update(nan, v0, v1);
        nan = vf_nanflag_update(nan, v2, v3);
    }
    for (; i < n; i += VF_N) {
        vf v = n - i >= VF_N ? vf_load(x + i) : vf_load_part(x + i, n - i, -INFINITY);
        a0 = vf_max(a0, v);
        nan = vf_nanflag_update(nan, v, v);
    }
    if (vf_nanflag_any(nan)) return NAN;
    return vf_hmax(vf_max(vf_max(a0, a1), vf_max(a2, a3)));
}

FSM_TARGET static inline double max_one_f64(const double *x, int64_t n)
{
    vd a0 = vd_set1(-INFINITY), a1 = a0, a2 = a0, a3 = a0;
    vd_nanflag nan = vd_nanflag_init();
    int64_t i = 0;
    for (; i + 4 * VD_N <= n; i += 4 * VD_N) {
        vd v0 = vd_load(x + i), v1 = vd_load(x + i + VD_N);
        vd v2 = vd_load(x + i + 2 * VD_N), v3 = vd_load(x + i + 3 * VD_N);
        a0 = vd_max(a0, v0); a1 = vd_max(a1, v1); a2 = vd_max(a2, v2); a3 = vd_max(a3, v3);
        nan = vd_nanflag_update(nan, v0, v1);
        nan = vd_nanflag_update(nan, v2, v3);
    }
    for (; i < n; i += VD_N) {
        vd v = n - i >= VD_N ? vd_load(x + i) : vd_load_part(x + i, n - i, -INFINITY);
        a0 = vd_max(a0, v);
        nan = vd_nanflag_update(nan, v, v);
    }
    if (vd_nanflag_any(nan)) return NAN;
    return vd_hmax(vd_max(vd_max(a0, a1), vd_max(a2, a3)));
}

FSM_TARGET static void KNAME(max_rows_f32)(const float *x, int64_t rows, int64_t n, float *m)
{
    for (int64_t r = 0; r < rows; r++) m[r] = max_one_f32(x + r * n, n);
}

FSM_TARGET static void KNAME(max_rows_f64)(const double *x, int64_t rows, int64_t n, double *m)
{
    for (int64_t r = 0; r < rows; r++) m[r] = max_one_f64(x + r * n, n);
}

/* e = exp(x - m) stored in y and summed; rows whose max is not finite are skipped (acc = 0). */
FSM_TARGET static void KNAME(expsum_store_rows_f32)(const float *x, float *y, int64_t rows, int64_t n,
                                                    const float *m, fsm_acc *acc)
{
    for (int64_t row = 0; row < rows; row++, x += n, y += n) {
        acc[row].sum = acc[row].sum_lo = acc[row].n_max = 0.0;
        if (!isfinite(m[row])) continue;
        const vd vm = vd_set1(m[row]);
        vd s0 = vd_set1(0.0), s1 = s0;
        int64_t i = 0;
        /* main loop */
        for (; i + 2 * VD_N <= n; i += 2 * VD_N) {
            vd e0 = exp_for_f32(vd_sub(vd_load_f32(x + i), vm));
            vd e1 = exp_for_f32(vd_sub(vd_load_f32(x + i + VD_N), vm));
            vd_store_f32(y + i, e0);
            vd_store_f32(y + i + VD_N, e1);
            s0 = vd_add(s0, e0);
            s1 = vd_add(s1, e1);
        }
        /* tail: padded with -inf, whose exp is 0 */
        for (; i < n; i += VD_N) {
            int64_t r = n - i < VD_N ? n - i : VD_N;
            vd e = exp_for_f32(vd_sub(vd_load_f32_part(x + i, r, -INFINITY), vm));
            vd_store_f32_part(y + i, e, r);
            s0 = vd_add(s0, e);
        }
        acc[row].sum = vd_hsum(vd_add(s0, s1));
    }
}

FSM_TARGET static void KNAME(expsum_exclmax_rows_f32)(const float *x, int64_t rows, int64_t n,
                                                      const float *m, fsm_acc *acc)
{
    for (int64_t row = 0; row < rows; row++, x += n) {
        acc[row].sum = acc[row].sum_lo = acc[row].n_max = 0.0;
        if (!isfinite(m[row])) continue;
        const vd vm = vd_set1(m[row]);
        vd s0 = vd_set1(0.0), s1 = s0, k0 = s0;
        int64_t i = 0;
        for (; i + 2 * VD_N <= n; i += 2 * VD_N) {
            vd d0 = vd_sub(vd_load_f32(x + i), vm);
            vd d1 = vd_sub(vd_load_f32(x + i + VD_N), vm);
            s0 = vd_add(s0, vd_keep_if_ne0(exp_for_f32(d0), d0));
            s1 = vd_add(s1, vd_keep_if_ne0(exp_for_f32(d1), d1));
            k0 = vd_add(k0, vd_add(vd_one_if_eq0(d0), vd_one_if_eq0(d1)));
        }
        for (; i < n; i += VD_N) {
            vd d = vd_sub(vd_load_f32_part(x + i, n - i < VD_N ? n - i : VD_N, -INFINITY), vm);
            s0 = vd_add(s0, vd_keep_if_ne0(exp_for_f32(d), d));
            k0 = vd_add(k0, vd_one_if_eq0(d));
        }
        acc[row].sum = vd_hsum(vd_add(s0, s1));
        acc[row].n_max = vd_hsum(k0);
    }
}

FSM_TARGET static void KNAME(expsum_store_rows_f64)(const double *x, double *y, int64_t rows, int64_t n,
                                                    const double *m, fsm_acc *acc)
{
    for (int64_t row = 0; row < rows; row++, x += n, y += n) {
        acc[row].sum = acc[row].sum_lo = acc[row].n_max = 0.0;
        if (!isfinite(m[row])) continue;
        const vd vm = vd_set1(m[row]), vnegm = vd_set1(-m[row]);
        vd s0 = vd_set1(0.0), c0 = s0, s1 = s0, c1 = s0, d;
        int64_t i = 0;
        for (; i + 2 * VD_N <= n; i += 2 * VD_N) {
            vd e0 = exp_for_f64(vd_load(x + i), vm, vnegm, &d);
            vd e1 = exp_for_f64(vd_load(x + i + VD_N), vm, vnegm, &d);
            vd_store(y + i, e0);
            vd_store(y + i + VD_N, e1);
            acc_2sum(&s0, &c0, e0);
            acc_2sum(&s1, &c1, e1);
        }
        for (; i < n; i += VD_N) {
            int64_t r = n - i < VD_N ? n - i : VD_N;
            vd e = exp_for_f64(vd_load_part(x + i, r, -INFINITY), vm, vnegm, &d);
            vd_store_part(y + i, e, r);
            acc_2sum(&s0, &c0, e);
        }
        acc_fold(&acc[row], s0, c0);
        acc_fold(&acc[row], s1, c1);
    }
}

FSM_TARGET static void KNAME(expsum_exclmax_rows_f64)(const double *x, int64_t rows, int64_t n,
                                                      const double *m, fsm_acc *acc)
{
    for (int64_t row = 0; row < rows; row++, x += n) {
        acc[row].sum = acc[row].sum_lo = acc[row].n_max = 0.0;
        if (!isfinite(m[row])) continue;
        const vd vm = vd_set1(m[row]), vnegm = vd_set1(-m[row]);
        vd s0 = vd_set1(0.0), c0 = s0, s1 = s0, c1 = s0, k0 = s0, d0, d1;
        int64_t i = 0;
        for (; i + 2 * VD_N <= n; i += 2 * VD_N) {
            vd e0 = exp_for_f64_x2p54(vd_load(x + i), vm, vnegm, &d0);
            vd e1 = exp_for_f64_x2p54(vd_load(x + i + VD_N), vm, vnegm, &d1);
            acc_2sum(&s0, &c0, vd_keep_if_ne0(e0, d0));
            acc_2sum(&s1, &c1, vd_keep_if_ne0(e1, d1));
            k0 = vd_add(k0, vd_add(vd_one_if_eq0(d0), vd_one_if_eq0(d1)));
        }
        for (; i < n; i += VD_N) {
            vd e = exp_for_f64_x2p54(vd_load_part(x + i, n - i < VD_N ? n - i : VD_N, -INFINITY), vm, vnegm, &d0);
            acc_2sum(&s0, &c0, vd_keep_if_ne0(e, d0));
            k0 = vd_add(k0, vd_one_if_eq0(d0));
        }
        acc_fold(&acc[row], s0, c0);
        acc_fold(&acc[row], s1, c1);
        acc[row].sum *= 0x1p-54;  /* exact unless the sum itself is subnormal */
        acc[row].sum_lo *= 0x1p-54;
        acc[row].n_max = vd_hsum(k0);
    }
}

/* y *= c, c = c_hi + c_lo, rounded once: y*c_hi is exact inside the FMA. */
FSM_TARGET static void KNAME(scale_rows_f32)(float *y, int64_t rows, int64_t n, const double *c_hi, const double *c_lo)
{
    for (int64_t row = 0; row < rows; row++, y += n) {
        const float hi = (float)c_hi[row];
        const float lo = (float)((c_hi[row] - (double)hi) + c_lo[row]);
        const vf vhi = vf_set1(hi), vlo = vf_set1(lo);
        int64_t i = 0;
        for (; i + 2 * VF_N <= n; i += 2 * VF_N) {
            vf a = vf_load(y + i), b = vf_load(y + i + VF_N);
            vf_store(y + i, vf_fma(a, vhi, vf_mul(a, vlo)));
            vf_store(y + i + VF_N, vf_fma(b, vhi, vf_mul(b, vlo)));
        }
        for (; i < n; i++) y[i] = fmaf(y[i], hi, y[i] * lo);
    }
}

FSM_TARGET static void KNAME(scale_rows_f64)(double *y, int64_t rows, int64_t n, const double *c_hi, const double *c_lo)
{
    for (int64_t row = 0; row < rows; row++, y += n) {
        const vd vhi = vd_set1(c_hi[row]), vlo = vd_set1(c_lo[row]);
        int64_t i = 0;
        for (; i + 2 * VD_N <= n; i += 2 * VD_N) {
            vd a = vd_load(y + i), b = vd_load(y + i + VD_N);
            vd_store(y + i, vd_fma(a, vhi, vd_mul(a, vlo)));
            vd_store(y + i + VD_N, vd_fma(b, vhi, vd_mul(b, vlo)));
        }
        for (; i < n; i++) y[i] = fma(y[i], c_hi[row], y[i] * c_lo[row]);
    }
}

/* y = (x - m) - L in double: x - m is exact, one rounding to float32 at the end. */
FSM_TARGET static void KNAME(logshift_rows_f32)(const float *x, float *y, int64_t rows, int64_t n, const float *m,
                                                const double *l_hi, const double *l_lo)
{
    for (int64_t row = 0; row < rows; row++, x += n, y += n) {
        const vd vm = vd_set1(m[row]), vl = vd_set1(l_hi[row]), vll = vd_set1(l_lo[row]);
        int64_t i = 0;
        for (; i + VD_N <= n; i += VD_N)
            vd_store_f32(y + i, vd_sub(vd_sub(vd_sub(vd_load_f32(x + i), vm), vl), vll));
        if (i < n)
            vd_store_f32_part(y + i, vd_sub(vd_sub(vd_sub(vd_load_f32_part(x + i, n - i, 0.0), vm), vl), vll), n - i);
    }
}

/* y = (x - m) - L with both subtractions' errors carried (TwoSum), one rounding at the end. */
FSM_TARGET static inline vd logshift_f64_one(vd x, vd vm, vd vnegm, vd vl, vd vnegl, vd vll)
{
    vd d = vd_sub(x, vm);
    vd z = vd_sub(d, x);
    vd err = vd_add(vd_sub(x, vd_sub(d, z)), vd_sub(vnegm, z));
    vd t = vd_sub(d, vl);
    vd z2 = vd_sub(t, d);
    vd err2 = vd_add(vd_sub(d, vd_sub(t, z2)), vd_sub(vnegl, z2));
    vd corr = vd_sub(vd_add(err, err2), vll);
    return vd_add(t, vd_keep_if_gt(corr, t, vd_set1(-HUGE_VAL)));
}

FSM_TARGET static void KNAME(logshift_rows_f64)(const double *x, double *y, int64_t rows, int64_t n, const double *m,
                                                const double *l_hi, const double *l_lo)
{
    for (int64_t row = 0; row < rows; row++, x += n, y += n) {
        const vd vm = vd_set1(m[row]), vnegm = vd_set1(-m[row]);
        const vd vl = vd_set1(l_hi[row]), vnegl = vd_set1(-l_hi[row]), vll = vd_set1(l_lo[row]);
        int64_t i = 0;
        for (; i + VD_N <= n; i += VD_N)
            vd_store(y + i, logshift_f64_one(vd_load(x + i), vm, vnegm, vl, vnegl, vll));
        if (i < n)
            vd_store_part(y + i, logshift_f64_one(vd_load_part(x + i, n - i, 0.0), vm, vnegm, vl, vnegl, vll), n - i);
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

FSM_TARGET static void KNAME(col_expsum_store_f32)(const float *x, float *y, int64_t n, int64_t ld, int64_t cols,
                                                   const float *m, double *sum, double *sum_lo)
{
    (void)sum_lo;
    for (int64_t j = 0; j < cols; j += VD_N) {
        vd vm = vd_load_f32(m + j), s = vd_set1(0.0);
        for (int64_t i = 0; i < n; i++) {
            vd e = exp_for_f32(vd_sub(vd_load_f32(x + i * ld + j), vm));
            vd_store_f32(y + i * ld + j, e);
            s = vd_add(s, e);
        }
        vd_store(sum + j, s);
    }
}

FSM_TARGET static void KNAME(col_expsum_exclmax_f32)(const float *x, int64_t n, int64_t ld, int64_t cols,
                                                     const float *m, double *sum, double *sum_lo, double *n_max)
{
    (void)sum_lo;
    for (int64_t j = 0; j < cols; j += VD_N) {
        vd vm = vd_load_f32(m + j), s = vd_set1(0.0), k = s;
        for (int64_t i = 0; i < n; i++) {
            vd d = vd_sub(vd_load_f32(x + i * ld + j), vm);
            s = vd_add(s, vd_keep_if_ne0(exp_for_f32(d), d));
            k = vd_add(k, vd_one_if_eq0(d));
        }
        vd_store(sum + j, s);
        vd_store(n_max + j, k);
    }
}

FSM_TARGET static void KNAME(col_expsum_store_f64)(const double *x, double *y, int64_t n, int64_t ld, int64_t cols,
                                                   const double *m, double *sum, double *sum_lo)
{
    for (int64_t j = 0; j < cols; j += VD_N) {
        vd vm = vd_load(m + j), vnegm = vd_sub(vd_set1(0.0), vm), s = vd_set1(0.0), c = s, d;
        for (int64_t i = 0; i < n; i++) {
            vd e = exp_for_f64(vd_load(x + i * ld + j), vm, vnegm, &d);
            vd_store(y + i * ld + j, e);
            acc_2sum(&s, &c, e);
        }
        vd_store(sum + j, s);
        vd_store(sum_lo + j, c);
    }
}

FSM_TARGET static void KNAME(col_expsum_exclmax_f64)(const double *x, int64_t n, int64_t ld, int64_t cols,
                                                     const double *m, double *sum, double *sum_lo, double *n_max)
{
    for (int64_t j = 0; j < cols; j += VD_N) {
        vd vm = vd_load(m + j), vnegm = vd_sub(vd_set1(0.0), vm), s = vd_set1(0.0), c = s, k = s, d;
        for (int64_t i = 0; i < n; i++) {
            vd e = exp_for_f64_x2p54(vd_load(x + i * ld + j), vm, vnegm, &d);
            acc_2sum(&s, &c, vd_keep_if_ne0(e, d));
            k = vd_add(k, vd_one_if_eq0(d));
        }
        vd_store(sum + j, vd_mul(s, vd_set1(0x1p-54)));
        vd_store(sum_lo + j, vd_mul(c, vd_set1(0x1p-54)));
        vd_store(n_max + j, k);
    }
}

/* float32 columns scale in double: one rounding of e*c. */
FSM_TARGET static void KNAME(col_scale_f32)(const float *e, float *y, int64_t n, int64_t ld_in, int64_t ld_out,
                                            int64_t cols, const double *c_hi, const double *c_lo)
{
    (void)c_lo;
    for (int64_t i = 0; i < n; i++)  /* row by row: y is written in contiguous runs */
        for (int64_t j = 0; j < cols; j += VD_N)
            vd_store_f32(y + i * ld_out + j, vd_mul(vd_load_f32(e + i * ld_in + j), vd_load(c_hi + j)));
}

FSM_TARGET static void KNAME(col_scale_f64)(const double *e, double *y, int64_t n, int64_t ld_in, int64_t ld_out,
                                            int64_t cols, const double *c_hi, const double *c_lo)
{
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < cols; j += VD_N) {
            vd a = vd_load(e + i * ld_in + j);
            vd_store(y + i * ld_out + j, vd_fma(a, vd_load(c_hi + j), vd_mul(a, vd_load(c_lo + j))));
        }
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
    const vd zero = vd_set1(0.0);
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < cols; j += VD_N) {
            vd vm = vd_load(m + j), vl = vd_load(l_hi + j);
            vd vnegm = vd_sub(zero, vm), vnegl = vd_sub(zero, vl), vll = vd_load(l_lo + j);
            vd_store(y + i * ld_out + j, logshift_f64_one(vd_load(x + i * ld_in + j), vm, vnegm, vl, vnegl, vll));
        }
}

static const fsm_kernels KNAME(kernel_set) = {
    FSM_ISA_NAME, FSM_ISA_ALGORITHM, VF_N, VD_N,
    KNAME(max_rows_f32), KNAME(max_rows_f64),
    KNAME(expsum_store_rows_f32), KNAME(expsum_store_rows_f64),
    KNAME(expsum_exclmax_rows_f32), KNAME(expsum_exclmax_rows_f64),
    KNAME(scale_rows_f32), KNAME(scale_rows_f64),
    KNAME(logshift_rows_f32), KNAME(logshift_rows_f64),
    KNAME(col_max_f32), KNAME(col_max_f64),
    KNAME(col_expsum_store_f32), KNAME(col_expsum_store_f64),
    KNAME(col_expsum_exclmax_f32), KNAME(col_expsum_exclmax_f64),
    KNAME(col_scale_f32), KNAME(col_scale_f64),
    KNAME(col_logshift_f32), KNAME(col_logshift_f64),
};

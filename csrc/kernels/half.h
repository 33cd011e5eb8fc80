/*
 * Scalar conversions between float32 and the two 16-bit float types, in plain C: the portable
 * kernels' vocabulary and the tails of the SIMD loops (which give the same bits as the vector
 * instructions: round to nearest even, subnormals kept, NaN kept and made quiet).
 *   float16  (IEEE binary16): 1 sign, 5 exponent, 10 fraction bits; max 65504, subnormals from 2^-24.
 *   bfloat16: the top 16 bits of a float32 (8 exponent bits, 7 fraction bits).
 * Widening is exact for both. Narrowing rounds once: a float32 result y becomes the half nearest to y.
 */
#ifndef FSM_HALF_H
#define FSM_HALF_H

#include <stdint.h>
#include <string.h>

static inline float fsm_bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static inline uint32_t fsm_f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

static inline float fsm_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0x1f) return fsm_bits_f32(sign | 0x7f800000u | (m << 13) | (m ? 0x400000u : 0));  /* inf, NaN */
    if (e == 0) {  /* zero or subnormal: m * 2^-24, exact in float32 */
        float f = (float)m * 0x1p-24f;
        return sign ? -f : f;
    }
    return fsm_bits_f32(sign | ((e + 112) << 23) | (m << 13));
}

static inline uint16_t fsm_f32_to_f16(float f)
{
    uint32_t x = fsm_f32_bits(f), ax = x & 0x7fffffffu;
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    if (ax > 0x7f800000u) return (uint16_t)(sign | 0x7e00u | ((ax >> 13) & 0x3ffu));  /* NaN, quiet */
    if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);  /* |f| >= 65520 rounds to inf */
    if (ax < 0x38800000u) {  /* below 2^-14: a subnormal half (or 0, or the smallest normal) */
        /* |f| * 2^24 is exact and below 1024; adding and removing 1.5 * 2^23 rounds it to an integer
           (nearest even), which is the subnormal's fraction field (1024: the smallest normal). */
        float t = (fsm_bits_f32(ax) * 0x1p24f + 0x1.8p23f) - 0x1.8p23f;
        return (uint16_t)(sign | (uint16_t)t);
    }
    uint32_t r = ax - 0x38000000u;  /* exponent rebased from 127 to 15 */
    r = (r + 0xfffu + ((r >> 13) & 1u)) >> 13;  /* round the 13 dropped bits to nearest even */
    return (uint16_t)(sign | r);
}

static inline float fsm_bf16_to_f32(uint16_t h) { return fsm_bits_f32((uint32_t)h << 16); }

static inline uint16_t fsm_f32_to_bf16(float f)
{
    uint32_t x = fsm_f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40u);  /* NaN, quiet */
    return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);  /* nearest even; a carry reaches inf */
}

#endif

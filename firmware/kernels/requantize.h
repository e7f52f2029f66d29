/* mcuflow kernel library: the output stage every layer shares (both variants).
 *
 * y = clamp(((acc * mult + 2^(rshift - 1)) >> rshift) + zp, lo, hi) with a 64-bit product and an
 * arithmetic shift (floor division by 2^rshift). Right shifts of negative values are arithmetic on every
 * compiler mcuflow supports (gcc, clang, arm-none-eabi-gcc). */
#ifndef MCUFLOW_REQUANTIZE_H
#define MCUFLOW_REQUANTIZE_H

#include <stdint.h>

#include "mcuflow_kernel_config.h"

MCUFLOW_INLINE int8_t mcuflow_requantize(int32_t acc, int32_t mult, uint32_t rshift, const int32_t zp, const int32_t lo,
                                        const int32_t hi)
{
    int32_t v;
    if (rshift > 32u) {
        /* The usual case: add the rounding bit to the high word and shift the high word only
         * (floor(floor(p / 2^32) / 2^k) == floor(p / 2^(32 + k))), avoiding a 64-bit variable shift. */
        int64_t p = (int64_t)acc * (int64_t)mult + (int64_t)((uint64_t)(1u << (rshift - 33u)) << 32);
        v = (int32_t)(p >> 32) >> (rshift - 32u);
    } else {
        int64_t p = ((int64_t)acc * (int64_t)mult + ((int64_t)1 << (rshift - 1u))) >> rshift;
        /* |zero point| <= 128, so clamping here first leaves the final clamp's result unchanged */
        v = p > 65535 ? 65535 : (p < -65535 ? -65535 : (int32_t)p);
    }
    v += zp;
#if defined(__ARM_ARCH) && __ARM_ARCH >= 7 && !defined(__ARM_ARCH_6M__)
    __asm__("ssat %0, #8, %1" : "=r"(v) : "r"(v)); /* one instruction for the int8 range */
    if (lo > -128 && v < lo) {
        v = lo;
    }
    if (hi < 127 && v > hi) {
        v = hi;
    }
#else
    if (v < lo) {
        v = lo;
    }
    if (v > hi) {
        v = hi;
    }
#endif
    return (int8_t)v;
}

/* The same integers for rshift >= 33 (every row of a layer with shift_gt32), in fewer instructions. It takes
 * k1 = rshift - 33, as the export stores such a layer's shifts. With h = floor(acc * mult / 2^32) (one SMULL)
 * and k = rshift - 32 = k1 + 1 >= 1,
 *   floor((acc * mult + 2^(rshift - 1)) / 2^rshift) = floor((h + 2^(k-1)) / 2^k) = floor((floor(h / 2^k1) + 1) / 2),
 * and adding zp before the last halving, as 2 * zp, changes nothing (it is even). On Armv7-M the halving
 * and the int8 saturation are one SSAT with ASR #1. */
MCUFLOW_INLINE int8_t mcuflow_requantize_gt32(int32_t acc, int32_t mult, uint32_t k1, const int32_t zp,
                                             const int32_t lo, const int32_t hi)
{
    const int32_t h = (int32_t)(((int64_t)acc * (int64_t)mult) >> 32);
    int32_t v = (h >> k1) + (1 + 2 * zp);
#if defined(__ARM_ARCH) && __ARM_ARCH >= 7 && !defined(__ARM_ARCH_6M__)
    __asm__("ssat %0, #8, %1, asr #1" : "=r"(v) : "r"(v));
    if (lo > -128 && v < lo) {
        v = lo;
    }
    if (hi < 127 && v > hi) {
        v = hi;
    }
#else
    v >>= 1;
    if (v < lo) {
        v = lo;
    }
    if (v > hi) {
        v = hi;
    }
#endif
    return (int8_t)v;
}

/* A layer's output stage: the short form where every row allows it. */
#define MCUFLOW_REQUANT_ROW(l, acc, r)                                                                        \
    ((l)->shift_gt32 ? mcuflow_requantize_gt32((acc), (l)->mult[r], (l)->rshift[r], (l)->out_zp, (l)->act_min, \
                                               (l)->act_max)                                                  \
                     : mcuflow_requantize((acc), (l)->mult[r], (l)->rshift[r], (l)->out_zp, (l)->act_min,     \
                                          (l)->act_max))

#endif /* MCUFLOW_REQUANTIZE_H */

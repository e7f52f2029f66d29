/* mcuflow kernel library, Armv7E-M variant: the DSP instructions the kernels use, and word loads.
 *
 * On the target they are single inline-asm instructions (no vendor headers), so the compiler still
 * schedules them; with -DMCUFLOW_EMULATE_DSP=1 they are C models, bit for bit (the kernels' sums never
 * saturate, so the Q flag is moot), and the DSP variant runs and is tested on the host. */
#ifndef MCUFLOW_DSP_INTRINSICS_H
#define MCUFLOW_DSP_INTRINSICS_H

#include <stdint.h>

#include "../mcuflow_kernel_config.h"

#if MCUFLOW_DSP_EMULATED
MCUFLOW_INLINE uint32_t mcuflow_sxtb16(uint32_t v)
{
    return ((uint32_t)(uint16_t)(int16_t)(int8_t)(v & 0xffu)) |
           ((uint32_t)(uint16_t)(int16_t)(int8_t)((v >> 16) & 0xffu) << 16);
}
MCUFLOW_INLINE uint32_t mcuflow_sxtb16_ror8(uint32_t v)
{
    return mcuflow_sxtb16((v >> 8) | (v << 24));
}
MCUFLOW_INLINE int32_t mcuflow_lo16(uint32_t v)
{
    return (int32_t)(int16_t)(uint16_t)(v & 0xffffu);
}
MCUFLOW_INLINE int32_t mcuflow_hi16(uint32_t v)
{
    return (int32_t)(int16_t)(uint16_t)(v >> 16);
}
MCUFLOW_INLINE int32_t mcuflow_smlad(uint32_t a, uint32_t b, int32_t acc)
{
    return acc + mcuflow_lo16(a) * mcuflow_lo16(b) + mcuflow_hi16(a) * mcuflow_hi16(b);
}
MCUFLOW_INLINE int32_t mcuflow_smlabb(uint32_t a, int32_t b, int32_t acc)
{
    return acc + mcuflow_lo16(a) * mcuflow_lo16((uint32_t)b);
}
MCUFLOW_INLINE int32_t mcuflow_smlatb(uint32_t a, int32_t b, int32_t acc)
{
    return acc + mcuflow_hi16(a) * mcuflow_lo16((uint32_t)b);
}
#else
MCUFLOW_INLINE uint32_t mcuflow_sxtb16(uint32_t v)
{
    uint32_t r;
    __asm__("sxtb16 %0, %1" : "=r"(r) : "r"(v));
    return r;
}
MCUFLOW_INLINE uint32_t mcuflow_sxtb16_ror8(uint32_t v)
{
    uint32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(v));
    return r;
}
MCUFLOW_INLINE int32_t mcuflow_smlad(uint32_t a, uint32_t b, int32_t acc)
{
    int32_t r;
    __asm__("smlad %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(acc));
    return r;
}
MCUFLOW_INLINE int32_t mcuflow_smlabb(uint32_t a, int32_t b, int32_t acc)
{
    int32_t r;
    __asm__("smlabb %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(acc));
    return r;
}
MCUFLOW_INLINE int32_t mcuflow_smlatb(uint32_t a, int32_t b, int32_t acc)
{
    int32_t r;
    __asm__("smlatb %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(acc));
    return r;
}
#endif

/* A 32-bit load of packed int8/int16 data at any alignment: one LDR on Cortex-M3 and up, never merged into
 * LDRD/LDM (those fault when unaligned), so its type says "byte aligned". may_alias: it reads int8/int16
 * arrays. */
#if defined(__GNUC__) || defined(__clang__)
typedef uint32_t __attribute__((may_alias, aligned(1))) mcuflow_u32_unaligned;

MCUFLOW_INLINE uint32_t mcuflow_load32(const void *p)
{
    return *(const mcuflow_u32_unaligned *)p;
}
#else
#include <string.h>

MCUFLOW_INLINE uint32_t mcuflow_load32(const void *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

#endif

#endif /* MCUFLOW_DSP_INTRINSICS_H */

/* mcuflow kernel library: the convolution's inner loop, two output pixels at a time.
 *
 * mcuflow_dot2_s16(w, xa, xb, n, &acc_a, &acc_b, aligned): acc_a += sum_k w[k] * xa[k], acc_b += sum_k w[k] * xb[k],
 * weights in (w0, w2, w1, w3) groups (a partial last group as is), inputs int16. Two pixels share every
 * weight load and unpack: on Armv7E-M one LDR, two SXTB16 and four SMLAD per four weights and two pixels
 * (the single-pixel loop needs the LDR and the SXTB16s for each pixel). `aligned` (a constant): w, xa and
 * xb start on word boundaries, so the loads pair into LDRD. The reference variant is plain C;
 * with MCUFLOW_EMULATE_DSP the DSP variant runs on the C models of its instructions. */
#ifndef MCUFLOW_CONV_DOT_H
#define MCUFLOW_CONV_DOT_H

#include <stdint.h>

#include "mcuflow_kernel_config.h"

#if MCUFLOW_KERNELS_DSP && !MCUFLOW_DSP_EMULATED

/* Eight weights for two pixels. Aligned (weights and both patches on word boundaries): LDRD everywhere,
 * 17 instructions for 16 MACs; else LDR (unaligned word loads are fine on Armv7E-M), 22. */
#define MCUFLOW_DOT2_HALF(LD_X) \
    "sxtb16 %[t], %[v]\n\t" \
    "sxtb16 %[v], %[v], ror #8\n\t" LD_X \
    "smlad %[a], %[t], %[a0], %[a]\n\t" \
    "smlad %[a], %[v], %[a1], %[a]\n\t" \
    "smlad %[b], %[t], %[b0], %[b]\n\t" \
    "smlad %[b], %[v], %[b1], %[b]\n\t"
#define MCUFLOW_DOT2_LDRD "ldrd %[a0], %[a1], [%[xa]], #8\n\tldrd %[b0], %[b1], [%[xb]], #8\n\t"
#define MCUFLOW_DOT2_LDR \
    "ldr %[a0], [%[xa]], #4\n\tldr %[a1], [%[xa]], #4\n\tldr %[b0], [%[xb]], #4\n\tldr %[b1], [%[xb]], #4\n\t"
#define MCUFLOW_DOT2_OPERANDS \
    : [a] "+r"(a), [b] "+r"(b), [w] "+r"(w), [xa] "+r"(xa), [xb] "+r"(xb), [v] "=&r"(v), [u] "=&r"(u_), \
      [t] "=&r"(t), [a0] "=&r"(a0), [a1] "=&r"(a1), [b0] "=&r"(b0), [b1] "=&r"(b1) \
    : \
    : "memory"

MCUFLOW_INLINE void mcuflow_dot2_s16(const int8_t *w, const int16_t *xa, const int16_t *xb, uint32_t n, int32_t *acc_a,
                                     int32_t *acc_b, const int aligned)
{
    int32_t a = *acc_a;
    int32_t b = *acc_b;
    uint32_t v, u_, t, a0, a1, b0, b1;
    if (aligned) {
        MCUFLOW_PRAGMA_UNROLL4
        while (n >= 8u) {
            __asm__("ldrd %[v], %[u], [%[w]], #8\n\t" MCUFLOW_DOT2_HALF(MCUFLOW_DOT2_LDRD) "mov %[v], %[u]\n\t"
                    MCUFLOW_DOT2_HALF(MCUFLOW_DOT2_LDRD) MCUFLOW_DOT2_OPERANDS);
            n -= 8u;
        }
    } else {
        MCUFLOW_PRAGMA_UNROLL4
        while (n >= 8u) {
            __asm__("ldr %[v], [%[w]], #4\n\tldr %[u], [%[w]], #4\n\t" MCUFLOW_DOT2_HALF(MCUFLOW_DOT2_LDR)
                    "mov %[v], %[u]\n\t" MCUFLOW_DOT2_HALF(MCUFLOW_DOT2_LDR) MCUFLOW_DOT2_OPERANDS);
            n -= 8u;
        }
    }
    if (n >= 4u) {
        __asm__("ldr %[v], [%[w]], #4\n\t" MCUFLOW_DOT2_HALF(MCUFLOW_DOT2_LDR) MCUFLOW_DOT2_OPERANDS);
        n -= 4u;
    }
    (void)u_;
    while (n != 0u) {
        const int32_t wk = *w++;
        a += wk * (*xa++);
        b += wk * (*xb++);
        --n;
    }
    *acc_a = a;
    *acc_b = b;
}

#elif MCUFLOW_KERNELS_DSP /* emulated: the same steps on the C models */

MCUFLOW_INLINE void mcuflow_dot2_s16(const int8_t *w, const int16_t *xa, const int16_t *xb, uint32_t n, int32_t *acc_a,
                                     int32_t *acc_b, const int aligned)
{
    int32_t a = *acc_a;
    (void)aligned;
    int32_t b = *acc_b;
    while (n >= 4u) {
        const uint32_t v = mcuflow_load32(w);
        const uint32_t lo = mcuflow_sxtb16(v);
        const uint32_t hi = mcuflow_sxtb16_ror8(v);
        a = mcuflow_smlad(lo, mcuflow_load32(xa), a);
        a = mcuflow_smlad(hi, mcuflow_load32(xa + 2), a);
        b = mcuflow_smlad(lo, mcuflow_load32(xb), b);
        b = mcuflow_smlad(hi, mcuflow_load32(xb + 2), b);
        w += 4;
        xa += 4;
        xb += 4;
        n -= 4u;
    }
    while (n != 0u) {
        const int32_t wk = *w++;
        a += wk * (*xa++);
        b += wk * (*xb++);
        --n;
    }
    *acc_a = a;
    *acc_b = b;
}

#else /* reference */

MCUFLOW_INLINE void mcuflow_dot2_s16(const int8_t *w, const int16_t *xa, const int16_t *xb, uint32_t n, int32_t *acc_a,
                                     int32_t *acc_b, const int aligned)
{
    int32_t a = *acc_a;
    (void)aligned;
    int32_t b = *acc_b;
    while (n >= 4u) {
        a += (int32_t)w[0] * xa[0] + (int32_t)w[2] * xa[1] + (int32_t)w[1] * xa[2] + (int32_t)w[3] * xa[3];
        b += (int32_t)w[0] * xb[0] + (int32_t)w[2] * xb[1] + (int32_t)w[1] * xb[2] + (int32_t)w[3] * xb[3];
        w += 4;
        xa += 4;
        xb += 4;
        n -= 4u;
    }
    while (n != 0u) {
        const int32_t wk = *w++;
        a += wk * (*xa++);
        b += wk * (*xb++);
        --n;
    }
    *acc_a = a;
    *acc_b = b;
}

#endif

#endif /* MCUFLOW_CONV_DOT_H */

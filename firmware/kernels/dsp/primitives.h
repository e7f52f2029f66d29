/* mcuflow kernel library, Armv7E-M variant: the inner loops on packed 16-bit multiply-accumulates.
 *
 * Same names and results as reference/primitives.h (integer sums do not depend on their order):
 * mcuflow_dot_s16 pairs two weights unpacked by SXTB16 with two int16 inputs loaded as one word, one
 * SMLAD per two MACs; MCUFLOW_GATHER4 splits one weight word into (w0, w2) and (w1, w3) and multiplies
 * the four gathered inputs with SMLABB/SMLATB. On the target both are asm blocks written out so the
 * compiler cannot hoist and spill their loads; with MCUFLOW_EMULATE_DSP they run on the C models. */
#ifndef MCUFLOW_DSP_PRIMITIVES_H
#define MCUFLOW_DSP_PRIMITIVES_H

#include <stdint.h>

#include "intrinsics.h"

#if !MCUFLOW_DSP_EMULATED
/* Four MACs in one block: one weight word, four index loads, four gathered inputs, SMLABB/SMLATB. */
#define MCUFLOW_GATHER4_ASM(LD, STEP) \
    "ldr %[v], [%[w]], #4\n\t" \
    LD " %[c0], [%[c]], #" STEP "\n\t" \
    LD " %[c1], [%[c]], #" STEP "\n\t" \
    LD " %[c2], [%[c]], #" STEP "\n\t" \
    LD " %[c3], [%[c]], #" STEP "\n\t" \
    "ldrsb %[c0], [%[x], %[c0]]\n\t" \
    "ldrsb %[c1], [%[x], %[c1]]\n\t" \
    "ldrsb %[c2], [%[x], %[c2]]\n\t" \
    "ldrsb %[c3], [%[x], %[c3]]\n\t" \
    "sxtb16 %[t], %[v]\n\t" \
    "sxtb16 %[v], %[v], ror #8\n\t" \
    "smlabb %[acc], %[t], %[c0], %[acc]\n\t" \
    "smlatb %[acc], %[t], %[c2], %[acc]\n\t" \
    "smlabb %[acc], %[v], %[c1], %[acc]\n\t" \
    "smlatb %[acc], %[v], %[c3], %[acc]"
#define MCUFLOW_GATHER4(x, w, c, acc, LD, STEP) \
    do { \
        uint32_t v_, t_, c0_, c1_, c2_, c3_; \
        __asm__(MCUFLOW_GATHER4_ASM(LD, STEP) \
                : [acc] "+r"(acc), [w] "+r"(w), [c] "+r"(c), [v] "=&r"(v_), [t] "=&r"(t_), [c0] "=&r"(c0_), \
                  [c1] "=&r"(c1_), [c2] "=&r"(c2_), [c3] "=&r"(c3_) \
                : [x] "r"(x) \
                : "memory"); \
    } while (0)
#define MCUFLOW_GATHER4_ADVANCES 1 /* the block steps w and c itself (post-indexed loads) */

/* Eight MACs: 2 weight words, 4 input words (LDRD where both rows are aligned), 4 SXTB16, 4 SMLAD. */
#define MCUFLOW_MAC8_ALIGNED \
    __asm__("ldrd %[a], %[b], [%[w]], #8\n\t" \
            "ldrd %[c], %[d], [%[x]], #8\n\t" \
            "sxtb16 %[e], %[a]\n\t" \
            "sxtb16 %[a], %[a], ror #8\n\t" \
            "smlad %[acc], %[e], %[c], %[acc]\n\t" \
            "smlad %[acc], %[a], %[d], %[acc]\n\t" \
            "ldrd %[c], %[d], [%[x]], #8\n\t" \
            "sxtb16 %[e], %[b]\n\t" \
            "sxtb16 %[b], %[b], ror #8\n\t" \
            "smlad %[acc], %[e], %[c], %[acc]\n\t" \
            "smlad %[acc], %[b], %[d], %[acc]" \
            : [acc] "+r"(acc), [w] "+r"(w), [x] "+r"(x), [a] "=&r"(a), [b] "=&r"(b), [c] "=&r"(c), \
              [d] "=&r"(d), [e] "=&r"(e) \
            : \
            : "memory")

#define MCUFLOW_MAC8_UNALIGNED \
    __asm__("ldr %[a], [%[w]], #4\n\t" \
            "ldr %[c], [%[x]], #4\n\t" \
            "ldr %[d], [%[x]], #4\n\t" \
            "sxtb16 %[e], %[a]\n\t" \
            "sxtb16 %[a], %[a], ror #8\n\t" \
            "smlad %[acc], %[e], %[c], %[acc]\n\t" \
            "smlad %[acc], %[a], %[d], %[acc]\n\t" \
            "ldr %[b], [%[w]], #4\n\t" \
            "ldr %[c], [%[x]], #4\n\t" \
            "ldr %[d], [%[x]], #4\n\t" \
            "sxtb16 %[e], %[b]\n\t" \
            "sxtb16 %[b], %[b], ror #8\n\t" \
            "smlad %[acc], %[e], %[c], %[acc]\n\t" \
            "smlad %[acc], %[b], %[d], %[acc]" \
            : [acc] "+r"(acc), [w] "+r"(w), [x] "+r"(x), [a] "=&r"(a), [b] "=&r"(b), [c] "=&r"(c), \
              [d] "=&r"(d), [e] "=&r"(e) \
            : \
            : "memory")

#define MCUFLOW_MAC8_BLOCKS \
    do { \
        if (wa && xa) { \
            MCUFLOW_MAC8_ALIGNED; \
        } else { \
            MCUFLOW_MAC8_UNALIGNED; \
        } \
        n -= 8u; \
    } while (0)

/* acc + sum_k w[k] * x[k], w in (w0, w2, w1, w3) groups. wa / xa: w and x are 4-byte aligned (constants
 * from the layer), so loads may pair into LDRD. unroll (a constant): unroll the block loop, for hot rows. */
MCUFLOW_INLINE int32_t mcuflow_dot_s16(const int8_t *w, const int16_t *x, uint32_t n, int32_t acc, const int wa,
                                       const int xa, const int unroll)
{
    uint32_t a, b, c, d, e;
    if (unroll) {
        MCUFLOW_PRAGMA_UNROLL16
        while (n >= 8u) {
            MCUFLOW_MAC8_BLOCKS;
        }
    } else {
        while (n >= 8u) {
            MCUFLOW_MAC8_BLOCKS;
        }
    }
    if (n >= 4u) {
        __asm__("ldr %[a], [%[w]], #4\n\t"
                "ldr %[c], [%[x]], #4\n\t"
                "ldr %[d], [%[x]], #4\n\t"
                "sxtb16 %[e], %[a]\n\t"
                "sxtb16 %[a], %[a], ror #8\n\t"
                "smlad %[acc], %[e], %[c], %[acc]\n\t"
                "smlad %[acc], %[a], %[d], %[acc]"
                : [acc] "+r"(acc), [w] "+r"(w), [x] "+r"(x), [a] "=&r"(a), [c] "=&r"(c), [d] "=&r"(d), [e] "=&r"(e)
                :
                : "memory");
        n -= 4u;
    }
    (void)b;
    while (n != 0u) {
        acc += (int32_t)(*w++) * (*x++);
        --n;
    }
    return acc;
}

/* Eight MACs on int8 inputs: 2 weight words and 2 input words (LDRD each where aligned), each word unpacked
 * by SXTB16 into its even and odd bytes, 4 SMLAD. Weights in their natural order: the even bytes of a weight
 * word meet the even bytes of an input word. */
#define MCUFLOW_MAC8_S8(LOADS) \
    __asm__(LOADS \
            "sxtb16 %[e], %[a]\n\t" \
            "sxtb16 %[a], %[a], ror #8\n\t" \
            "sxtb16 %[f], %[c]\n\t" \
            "sxtb16 %[c], %[c], ror #8\n\t" \
            "smlad %[acc], %[e], %[f], %[acc]\n\t" \
            "smlad %[acc], %[a], %[c], %[acc]\n\t" \
            "sxtb16 %[e], %[b]\n\t" \
            "sxtb16 %[b], %[b], ror #8\n\t" \
            "sxtb16 %[f], %[d]\n\t" \
            "sxtb16 %[d], %[d], ror #8\n\t" \
            "smlad %[acc], %[e], %[f], %[acc]\n\t" \
            "smlad %[acc], %[b], %[d], %[acc]" \
            : [acc] "+r"(acc), [w] "+r"(w), [x] "+r"(x), [a] "=&r"(a), [b] "=&r"(b), [c] "=&r"(c), \
              [d] "=&r"(d), [e] "=&r"(e), [f] "=&r"(f) \
            : \
            : "memory")
#define MCUFLOW_LOADS_S8_ALIGNED "ldrd %[a], %[b], [%[w]], #8\n\tldrd %[c], %[d], [%[x]], #8\n\t"
#define MCUFLOW_LOADS_S8_UNALIGNED \
    "ldr %[a], [%[w]], #4\n\tldr %[b], [%[w]], #4\n\tldr %[c], [%[x]], #4\n\tldr %[d], [%[x]], #4\n\t"

#define MCUFLOW_MAC8_S8_BLOCKS \
    do { \
        if (wa && xa) { \
            MCUFLOW_MAC8_S8(MCUFLOW_LOADS_S8_ALIGNED); \
        } else { \
            MCUFLOW_MAC8_S8(MCUFLOW_LOADS_S8_UNALIGNED); \
        } \
        n -= 8u; \
    } while (0)

/* acc + sum_k w[k] * x[k] for int8 w (natural order) and int8 x: the index-free rows over the permuted
 * input. wa / xa: w and x are 4-byte aligned (constants from the layer); unroll as mcuflow_dot_s16.
 * The _step form leaves *pw and *px past what it read (the next row's weights, the next window). */
MCUFLOW_INLINE int32_t mcuflow_dot_s8_step(const int8_t **pw, const int8_t **px, uint32_t n, int32_t acc,
                                           const int wa, const int xa, const int unroll)
{
    const int8_t *w = *pw;
    const int8_t *x = *px;
    uint32_t a, b, c, d, e, f;
    if (unroll) {
        MCUFLOW_PRAGMA_UNROLL16
        while (n >= 8u) {
            MCUFLOW_MAC8_S8_BLOCKS;
        }
    } else {
        while (n >= 8u) {
            MCUFLOW_MAC8_S8_BLOCKS;
        }
    }
    if (n >= 4u) {
        __asm__("ldr %[a], [%[w]], #4\n\t"
                "ldr %[c], [%[x]], #4\n\t"
                "sxtb16 %[e], %[a]\n\t"
                "sxtb16 %[a], %[a], ror #8\n\t"
                "sxtb16 %[f], %[c]\n\t"
                "sxtb16 %[c], %[c], ror #8\n\t"
                "smlad %[acc], %[e], %[f], %[acc]\n\t"
                "smlad %[acc], %[a], %[c], %[acc]"
                : [acc] "+r"(acc), [w] "+r"(w), [x] "+r"(x), [a] "=&r"(a), [c] "=&r"(c), [e] "=&r"(e), [f] "=&r"(f)
                :
                : "memory");
        n -= 4u;
    }
    (void)b;
    (void)d;
    while (n != 0u) {
        acc += (int32_t)(*w++) * (*x++);
        --n;
    }
    *pw = w;
    *px = x;
    return acc;
}

MCUFLOW_INLINE int32_t mcuflow_dot_s8(const int8_t *w, const int8_t *x, uint32_t n, int32_t acc, const int wa,
                                      const int xa, const int unroll)
{
    return mcuflow_dot_s8_step(&w, &x, n, acc, wa, xa, unroll);
}

#else /* MCUFLOW_DSP_EMULATED: the same blocks on the C models of the instructions */

#define MCUFLOW_GATHER4(x, w, c, acc, LD, STEP) \
    do { \
        const uint32_t v_ = mcuflow_load32(w); \
        const uint32_t w02_ = mcuflow_sxtb16(v_); \
        const uint32_t w13_ = mcuflow_sxtb16_ror8(v_); \
        acc = mcuflow_smlabb(w02_, (int32_t)x[c[0]], acc); \
        acc = mcuflow_smlabb(w13_, (int32_t)x[c[1]], acc); \
        acc = mcuflow_smlatb(w02_, (int32_t)x[c[2]], acc); \
        acc = mcuflow_smlatb(w13_, (int32_t)x[c[3]], acc); \
    } while (0)
#define MCUFLOW_GATHER4_ADVANCES 0

MCUFLOW_INLINE int32_t mcuflow_dot_s16(const int8_t *w, const int16_t *x, uint32_t n, int32_t acc, const int wa,
                                       const int xa, const int unroll)
{
    (void)unroll;
    (void)wa;
    (void)xa;
    while (n >= 4u) {
        const uint32_t v0 = mcuflow_load32(w);
        acc = mcuflow_smlad(mcuflow_sxtb16(v0), mcuflow_load32(x), acc);
        acc = mcuflow_smlad(mcuflow_sxtb16_ror8(v0), mcuflow_load32(x + 2), acc);
        w += 4;
        x += 4;
        n -= 4u;
    }
    while (n != 0u) {
        acc += (int32_t)(*w++) * (*x++);
        --n;
    }
    return acc;
}
MCUFLOW_INLINE int32_t mcuflow_dot_s8_step(const int8_t **pw, const int8_t **px, uint32_t n, int32_t acc,
                                           const int wa, const int xa, const int unroll)
{
    const int8_t *w = *pw;
    const int8_t *x = *px;
    (void)unroll;
    (void)wa;
    (void)xa;
    while (n >= 4u) {
        const uint32_t vw = mcuflow_load32(w);
        const uint32_t vx = mcuflow_load32(x);
        acc = mcuflow_smlad(mcuflow_sxtb16(vw), mcuflow_sxtb16(vx), acc);
        acc = mcuflow_smlad(mcuflow_sxtb16_ror8(vw), mcuflow_sxtb16_ror8(vx), acc);
        w += 4;
        x += 4;
        n -= 4u;
    }
    while (n != 0u) {
        acc += (int32_t)(*w++) * (*x++);
        --n;
    }
    *pw = w;
    *px = x;
    return acc;
}

MCUFLOW_INLINE int32_t mcuflow_dot_s8(const int8_t *w, const int8_t *x, uint32_t n, int32_t acc, const int wa,
                                      const int xa, const int unroll)
{
    return mcuflow_dot_s8_step(&w, &x, n, acc, wa, xa, unroll);
}
#endif

#endif /* MCUFLOW_DSP_PRIMITIVES_H */

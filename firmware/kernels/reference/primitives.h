/* mcuflow kernel library, portable reference variant: the inner loops, in plain C99.
 *
 * mcuflow_dot_s16:       acc + sum_k w[k] * x[k] over int16 inputs, weights in (w0, w2, w1, w3) groups
 * mcuflow_dot_s8:        acc + sum_k w[k] * x[k] over int8 inputs, weights in their natural order
 * MCUFLOW_GATHER4:       acc + sum of four w[k] * x[c[k]], weights in their natural order
 * The Armv7E-M variant (dsp/primitives.h) defines the same names with packed multiply-accumulates. */
#ifndef MCUFLOW_REFERENCE_PRIMITIVES_H
#define MCUFLOW_REFERENCE_PRIMITIVES_H

#include <stdint.h>

#include "../mcuflow_kernel_config.h"

#define MCUFLOW_GATHER4(x, w, c, acc, LD, STEP) \
    (acc += (int32_t)w[0] * x[c[0]] + (int32_t)w[1] * x[c[1]] + (int32_t)w[2] * x[c[2]] + (int32_t)w[3] * x[c[3]])
#define MCUFLOW_GATHER4_ADVANCES 0 /* the caller steps w and c */

/* wa, xa (row alignment) and unroll only steer the DSP variant's loads and loop. */
MCUFLOW_INLINE int32_t mcuflow_dot_s16(const int8_t *w, const int16_t *x, uint32_t n, int32_t acc, const int wa,
                                       const int xa, const int unroll)
{
    (void)wa;
    (void)xa;
    (void)unroll;
    MCUFLOW_PRAGMA_UNROLL16
    while (n >= 4u) {
        acc += (int32_t)w[0] * x[0] + (int32_t)w[2] * x[1] + (int32_t)w[1] * x[2] + (int32_t)w[3] * x[3];
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

/* acc + sum_k w[k] * x[k] over int8 inputs, weights in their natural order (the index-free rows). The
 * _step form leaves *pw and *px past what it read. */
MCUFLOW_INLINE int32_t mcuflow_dot_s8_step(const int8_t **pw, const int8_t **px, uint32_t n, int32_t acc,
                                           const int wa, const int xa, const int unroll)
{
    const int8_t *w = *pw;
    const int8_t *x = *px;
    (void)wa;
    (void)xa;
    (void)unroll;
    MCUFLOW_PRAGMA_UNROLL16
    while (n >= 4u) {
        acc += (int32_t)w[0] * x[0] + (int32_t)w[1] * x[1] + (int32_t)w[2] * x[2] + (int32_t)w[3] * x[3];
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

#endif /* MCUFLOW_REFERENCE_PRIMITIVES_H */

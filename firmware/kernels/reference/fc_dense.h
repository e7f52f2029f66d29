/* mcuflow kernel library, portable reference variant: the dense format.
 *
 * Every row holds all n_in weights, stored in groups of four as (w0, w2, w1, w3) like the index-free
 * format (one device weight order for both), and reads the int8 input directly. */
#ifndef MCUFLOW_REFERENCE_FC_DENSE_H
#define MCUFLOW_REFERENCE_FC_DENSE_H

#include <stdint.h>

#include "../mcuflow_kernel_types.h"
#include "../requantize.h"

MCUFLOW_INLINE void mcuflow_fc_dense_reference(const mcuflow_fc_t *l, const int8_t *x, int8_t *y)
{
    const int8_t *w = l->w;
    uint32_t r;
    for (r = 0u; r < l->n_out; ++r) {
        const int8_t *xp = x;
        int32_t acc = l->bias[r];
        uint32_t k = l->n_in;
        while (k >= 4u) {
            acc += (int32_t)w[0] * xp[0] + (int32_t)w[2] * xp[1] + (int32_t)w[1] * xp[2] + (int32_t)w[3] * xp[3];
            w += 4;
            xp += 4;
            k -= 4u;
        }
        while (k != 0u) {
            acc += (int32_t)(*w++) * (*xp++);
            --k;
        }
        y[r] = MCUFLOW_REQUANT_ROW(l, acc, r);
    }
}

#endif /* MCUFLOW_REFERENCE_FC_DENSE_H */

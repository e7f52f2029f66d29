/* mcuflow kernel library, Armv7E-M variant: the dense format.
 *
 * The input is widened to int16 once into scratch (n_in entries, shared by all rows), then every row is
 * the same SMLAD dot product as an index-free row. Without scratch it is the reference kernel. */
#ifndef MCUFLOW_DSP_FC_DENSE_H
#define MCUFLOW_DSP_FC_DENSE_H

#include <stddef.h>
#include <stdint.h>

#include "../reference/fc_dense.h"
#include "primitives.h"

MCUFLOW_INLINE void mcuflow_fc_dense_dsp(const mcuflow_fc_t *l, const int8_t *x, int8_t *y, int16_t *scratch)
{
    const int8_t *w = l->w;
    uint32_t r;
    if (scratch == NULL) {
        mcuflow_fc_dense_reference(l, x, y);
        return;
    }
    for (r = 0u; r < l->n_in; ++r) {
        scratch[r] = x[r];
    }
    for (r = 0u; r < l->n_out; ++r) {
        const int32_t acc = mcuflow_dot_s16(w, scratch, l->n_in, l->bias[r], l->w_aligned, 1, l->unroll);
        w += l->n_in;
        y[r] = MCUFLOW_REQUANT_ROW(l, acc, r);
    }
}

#endif /* MCUFLOW_DSP_FC_DENSE_H */

/* mcuflow kernel library: the gathering formats, whose rows read their inputs through stored columns.
 *
 *   mcuflow_fc_fixed: every row has `degree` weights; cols holds n_out * degree columns.
 *   mcuflow_fc_csr:   row r holds row_ptr[r + 1] - row_ptr[r] weights; cols holds them all.
 * Weights are in their natural order. The gathers dominate: one index load and one input load per MAC. */
#ifndef MCUFLOW_FC_GATHER_H
#define MCUFLOW_FC_GATHER_H

#include <stdint.h>

#include "mcuflow_kernel_types.h"
#include "requantize.h"

/* acc + sum_k w[k] * x[c[k]] for one row of k entries, four at a time (MCUFLOW_GATHER4 of the variant). */
#define MCUFLOW_GATHER_ROW_IMPL(NAME, CTYPE, LD, STEP) \
    MCUFLOW_INLINE int32_t NAME(const int8_t *x, const int8_t *w, const CTYPE *c, uint32_t k, int32_t acc) \
    { \
        MCUFLOW_PRAGMA_UNROLL4 \
        while (k >= 4u) { \
            MCUFLOW_GATHER4(x, w, c, acc, LD, STEP); \
            if (!MCUFLOW_GATHER4_ADVANCES) { \
                w += 4; \
                c += 4; \
            } \
            k -= 4u; \
        } \
        while (k != 0u) { \
            acc += (int32_t)(*w++) * x[*c++]; \
            --k; \
        } \
        return acc; \
    }

MCUFLOW_GATHER_ROW_IMPL(mcuflow_gather_row_u8, uint8_t, "ldrb", "1")
MCUFLOW_GATHER_ROW_IMPL(mcuflow_gather_row_u16, uint16_t, "ldrh", "2")
MCUFLOW_GATHER_ROW_IMPL(mcuflow_gather_row_u32, uint32_t, "ldr", "4")

/* Entry i of an array of unsigned integers of `bytes` (1, 2 or 4) each. */
MCUFLOW_INLINE uint32_t mcuflow_index_at(const void *a, const uint32_t bytes, uint32_t i)
{
    if (bytes == 1u) {
        return ((const uint8_t *)a)[i];
    }
    if (bytes == 2u) {
        return ((const uint16_t *)a)[i];
    }
    return ((const uint32_t *)a)[i];
}

/* One row from the column array c (entries of col_bytes each). */
MCUFLOW_INLINE int32_t mcuflow_gather_row(const int8_t *x, const int8_t *w, const uint8_t *c, const uint32_t col_bytes,
                                          uint32_t k, int32_t acc)
{
    if (col_bytes == 1u) {
        return mcuflow_gather_row_u8(x, w, c, k, acc);
    }
    if (col_bytes == 2u) {
        return mcuflow_gather_row_u16(x, w, (const uint16_t *)(const void *)c, k, acc);
    }
    return mcuflow_gather_row_u32(x, w, (const uint32_t *)(const void *)c, k, acc);
}

/* scratch is unused: the gathering formats need no buffer (the argument keeps every fc kernel's shape). */
MCUFLOW_INLINE void mcuflow_fc_fixed(const mcuflow_fc_t *l, const int8_t *x, int8_t *y, int16_t *scratch)
{
    const int8_t *w = l->w;
    const uint8_t *c = (const uint8_t *)l->cols;
    uint32_t r;
    (void)scratch;
    for (r = 0u; r < l->n_out; ++r) {
        const int32_t acc = mcuflow_gather_row(x, w, c, l->col_bytes, l->degree, l->bias[r]);
        w += l->degree;
        c += l->degree * l->col_bytes;
        y[r] = mcuflow_requantize(acc, l->mult[r], l->rshift[r], l->out_zp, l->act_min, l->act_max);
    }
}

MCUFLOW_INLINE void mcuflow_fc_csr(const mcuflow_fc_t *l, const int8_t *x, int8_t *y, int16_t *scratch)
{
    const int8_t *w = l->w;
    const uint8_t *c = (const uint8_t *)l->cols;
    uint32_t r;
    (void)scratch;
    for (r = 0u; r < l->n_out; ++r) {
        const uint32_t k =
            mcuflow_index_at(l->row_ptr, l->row_ptr_bytes, r + 1u) - mcuflow_index_at(l->row_ptr, l->row_ptr_bytes, r);
        const int32_t acc = mcuflow_gather_row(x, w, c, l->col_bytes, k, l->bias[r]);
        w += k;
        c += k * l->col_bytes;
        y[r] = mcuflow_requantize(acc, l->mult[r], l->rshift[r], l->out_zp, l->act_min, l->act_max);
    }
}

#endif /* MCUFLOW_FC_GATHER_H */

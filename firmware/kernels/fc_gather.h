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

/* A csr row's length: the DSP variant keeps the previous row pointer (one read per row); the reference
 * variant reads both, which gcc schedules better around the plain gathers (measured on M3 and M4). */
#if MCUFLOW_KERNELS_DSP
#define MCUFLOW_CSR_ROW_LEN(l, r, start, end) ((end) - (start))
#else
#define MCUFLOW_CSR_ROW_LEN(l, r, start, end) \
    ((void)(start), (end) - mcuflow_index_at((l)->row_ptr, (l)->row_ptr_bytes, (r)))
#endif

/* Both kernels once per column type, so the column pointer steps in whole entries. */
#define MCUFLOW_GATHER_KERNELS_IMPL(SUFFIX, CTYPE) \
    MCUFLOW_INLINE void mcuflow_fc_fixed_##SUFFIX(const mcuflow_fc_t *l, const int8_t *x, int8_t *y) \
    { \
        const int8_t *w = l->w; \
        const CTYPE *c = (const CTYPE *)l->cols; \
        uint32_t r; \
        for (r = 0u; r < l->n_out; ++r) { \
            const int32_t acc = mcuflow_gather_row_##SUFFIX(x, w, c, l->degree, l->bias[r]); \
            w += l->degree; \
            c += l->degree; \
            y[r] = MCUFLOW_REQUANT_ROW(l, acc, r); \
        } \
    } \
    MCUFLOW_INLINE void mcuflow_fc_csr_##SUFFIX(const mcuflow_fc_t *l, const int8_t *x, int8_t *y) \
    { \
        const int8_t *w = l->w; \
        const CTYPE *c = (const CTYPE *)l->cols; \
        uint32_t start = mcuflow_index_at(l->row_ptr, l->row_ptr_bytes, 0u); \
        uint32_t r; \
        for (r = 0u; r < l->n_out; ++r) { \
            const uint32_t end = mcuflow_index_at(l->row_ptr, l->row_ptr_bytes, r + 1u); \
            const uint32_t k = MCUFLOW_CSR_ROW_LEN(l, r, start, end); \
            const int32_t acc = mcuflow_gather_row_##SUFFIX(x, w, c, k, l->bias[r]); \
            start = end; \
            w += k; \
            c += k; \
            y[r] = MCUFLOW_REQUANT_ROW(l, acc, r); \
        } \
    }

MCUFLOW_GATHER_KERNELS_IMPL(u8, uint8_t)
MCUFLOW_GATHER_KERNELS_IMPL(u16, uint16_t)
MCUFLOW_GATHER_KERNELS_IMPL(u32, uint32_t)

/* scratch is unused: the gathering formats need no buffer (the argument keeps every fc kernel's shape). */
MCUFLOW_INLINE void mcuflow_fc_fixed(const mcuflow_fc_t *l, const int8_t *x, int8_t *y, void *scratch)
{
    (void)scratch;
    if (l->col_bytes == 1u) {
        mcuflow_fc_fixed_u8(l, x, y);
    } else if (l->col_bytes == 2u) {
        mcuflow_fc_fixed_u16(l, x, y);
    } else {
        mcuflow_fc_fixed_u32(l, x, y);
    }
}

MCUFLOW_INLINE void mcuflow_fc_csr(const mcuflow_fc_t *l, const int8_t *x, int8_t *y, void *scratch)
{
    (void)scratch;
    if (l->col_bytes == 1u) {
        mcuflow_fc_csr_u8(l, x, y);
    } else if (l->col_bytes == 2u) {
        mcuflow_fc_csr_u16(l, x, y);
    } else {
        mcuflow_fc_csr_u32(l, x, y);
    }
}

#endif /* MCUFLOW_FC_GATHER_H */

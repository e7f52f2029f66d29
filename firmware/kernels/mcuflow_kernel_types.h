/* mcuflow kernel library: the constants of one layer and of one exit, as the generated code holds them.
 *
 * A generated model keeps each layer's mcuflow_fc_t as a static const object beside the call, so the
 * inlined kernel reads its shape as compile-time constants. Code that builds one at run time (tests,
 * your own firmware) gets the same results, without the unrolling. */
#ifndef MCUFLOW_KERNEL_TYPES_H
#define MCUFLOW_KERNEL_TYPES_H

#include <stdint.h>

/* One fully connected layer: y[r] = requantize(bias[r] + sum_k w[r][k] * x[col(r, k)]). */
typedef struct {
    const int8_t *w;       /* int8 weights, row by row, in the kernel's order (README: "Weight order") */
    const void *cols;      /* fixed, csr: column of every weight, col_bytes each */
    const void *row_ptr;   /* csr: n_out + 1 row starts, row_ptr_bytes each */
    const int32_t *bias;   /* int32 per row, the input zero point folded in */
    const int32_t *mult;   /* Q31 requantisation multiplier per row, in [2^30, 2^31) */
    const uint8_t *rshift; /* right shift per row, 1..62; a shift_gt32 layer stores rshift - 33 */
    uint32_t n_in;
    uint32_t n_out;
    uint32_t degree;        /* weights per row: n_in (dense), the in-degree (fixed, index_free) */
    uint32_t col_bytes;     /* fixed, csr: 1, 2 or 4 */
    uint32_t row_ptr_bytes; /* csr: 1, 2 or 4 */
    uint32_t p;             /* index_free: column step, a unit of Z/n_in */
    uint32_t s;             /* index_free: pass shift in [0, n_in) */
    uint32_t pass_step;     /* index_free: (s * p) mod n_in, the column jump at a pass boundary */
    uint32_t perm_m;        /* index_free: residue classes of the input permutation */
    int32_t perm_delta;     /* index_free: column step inside a class, (perm_m * p) mod n_in in (-n_in, n_in) */
    uint32_t n_x;           /* index_free: inputs the layer reads (0: n_in). Columns n_x .. n_in - 1 are padding
                             * whose stored weights are 0 (the export folds the padding into the bias), so the
                             * kernel reads an unpadded input of n_x elements in place */
    uint8_t w_aligned;      /* every row's weights start on a 4-byte boundary */
    uint8_t x_aligned;      /* index_free: every row's window of the permuted input starts on a 4-byte boundary */
    uint8_t unroll;         /* unroll each row's block loop (hot rows; small layers keep the loop for flash) */
    const uint16_t *runs;   /* index_free without rows that straddle a pass boundary: n_runs (rows, first
                             * window) pairs, the rows in order (fc_index_free.h); NULL: the general loop */
    uint32_t n_runs;
    uint8_t shift_gt32;     /* every row's rshift is at least 33: the requantisation's short form (rshift[]
                             * holds rshift - 33) */
    int32_t out_zp;         /* output zero point */
    int32_t act_min;        /* output clamp: -128..act_max (a fused ReLU raises act_min to out_zp) */
    int32_t act_max;
} mcuflow_fc_t;

/* One early exit's decision on its int8 logits. */
typedef struct {
    const uint16_t *lut;    /* Q15 round(32768 * exp(-d * logit_scale)) for a logit gap d = 0..lut_last */
    uint32_t lut_last;      /* the table's last index, 2^k - 1 (0: 255); larger gaps read it, and it is 0 */
    uint32_t num_classes;
    uint32_t threshold_q15; /* the exit answers when its confidence reaches this, 1..32767 */
} mcuflow_exit_t;

#endif /* MCUFLOW_KERNEL_TYPES_H */

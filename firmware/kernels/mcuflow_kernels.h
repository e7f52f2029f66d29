/* mcuflow kernel library: the one header generated code (or your firmware) includes.
 *
 * Every kernel is a static inline function, one per operation, with the same signature for every
 * fully connected format:
 *
 *   void mcuflow_fc_dense     (const mcuflow_fc_t *l, const int8_t *x, int8_t *y, void *scratch);
 *   void mcuflow_fc_fixed     (...);   fixed in-degree, stored columns
 *   void mcuflow_fc_csr       (...);   compressed sparse rows
 *   void mcuflow_fc_index_free(...);   the closed-form pattern, no stored columns
 *   uint8_t mcuflow_exit_decide(const mcuflow_exit_t *e, const int8_t *logits, uint8_t *label, uint16_t *confidence);
 *   void mcuflow_pad(const int8_t *x, int8_t *y, uint32_t n_in, uint32_t n_out, int32_t fill);
 *
 * The variant (reference/ or dsp/) is chosen at compile time: see mcuflow_kernel_config.h and README.md. */
#ifndef MCUFLOW_KERNELS_H
#define MCUFLOW_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "mcuflow_kernel_config.h"
#include "mcuflow_kernel_types.h"
#include "requantize.h"

#if MCUFLOW_KERNELS_DSP
#include "dsp/fc_dense.h"
#include "dsp/primitives.h"
#else
#include "reference/fc_dense.h"
#include "reference/primitives.h"
#endif

#include "exit_decide.h"
#include "fc_gather.h"
#include "fc_index_free.h"
#include "pad.h"

/* Convolutional heads: mcuflow_conv (dense and channel-sparse), mcuflow_maxpool, mcuflow_avgpool. */
#include "conv.h"
#include "pool.h"

/* scratch: n_in int16 entries for the DSP variant's widened input, or NULL (then the rows read int8). */
MCUFLOW_INLINE void mcuflow_fc_dense(const mcuflow_fc_t *l, const int8_t *x, int8_t *y, void *scratch)
{
#if MCUFLOW_KERNELS_DSP
    mcuflow_fc_dense_dsp(l, x, y, (int16_t *)scratch);
#else
    (void)scratch;
    mcuflow_fc_dense_reference(l, x, y);
#endif
}

#endif /* MCUFLOW_KERNELS_H */

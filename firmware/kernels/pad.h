/* mcuflow kernel library: zero-padding of the input vector (both variants). */
#ifndef MCUFLOW_PAD_H
#define MCUFLOW_PAD_H

#include <stdint.h>
#include <string.h>

#include "mcuflow_kernel_config.h"

/* y[0 .. n_in) = x, y[n_in .. n_out) = fill (the input zero point: a real 0). x may already be y (an
 * input written in place), and then only the padding is written. */
MCUFLOW_INLINE void mcuflow_pad(const int8_t *x, int8_t *y, const uint32_t n_in, const uint32_t n_out, const int32_t fill)
{
    if (x != y) {
        memcpy(y, x, n_in);
    }
    memset(y + n_in, fill, n_out - n_in);
}

#endif /* MCUFLOW_PAD_H */

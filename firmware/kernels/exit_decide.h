/* mcuflow kernel library: an early exit's decision (both variants).
 *
 * Integer max-softmax on int8 logits: with gaps d_j = max - l_j, the confidence is
 * 2^30 / sum_j lut[d_j] (rounded, Q15, at most 32767), and the exit answers when it reaches its own
 * threshold. The table may end early, at the first index 2^k - 1 whose entry (and every later one) is 0. Ties in the argmax go to the lowest index. */
#ifndef MCUFLOW_EXIT_DECIDE_H
#define MCUFLOW_EXIT_DECIDE_H

#include <stdint.h>

#include "mcuflow_kernel_types.h"

/* 1 when the exit answers; label and confidence are set either way. */
MCUFLOW_INLINE uint8_t mcuflow_exit_decide(const mcuflow_exit_t *e, const int8_t *logits, uint8_t *label,
                                           uint16_t *confidence)
{
    int32_t best = logits[0];
    uint32_t arg = 0u;
    uint32_t sum = 0u;
    uint32_t j;
    uint32_t q;
    for (j = 1u; j < e->num_classes; ++j) {
        if (logits[j] > best) {
            best = logits[j];
            arg = j;
        }
    }
    const int32_t last = e->lut_last != 0u ? (int32_t)e->lut_last : 255;
    for (j = 0u; j < e->num_classes; ++j) {
        int32_t gap = best - (int32_t)logits[j]; /* 0..255 */
        if (last < 255 && gap > last) {
            gap = last; /* a table cut where it reached 0 (USAT where the last index is 2^k - 1) */
        }
        sum += e->lut[gap];
    }
    q = (1073741824u + (sum >> 1)) / sum;
    if (q > 32767u) {
        q = 32767u;
    }
    *label = (uint8_t)arg;
    *confidence = (uint16_t)q;
    return (uint8_t)(q >= e->threshold_q15);
}

#endif /* MCUFLOW_EXIT_DECIDE_H */

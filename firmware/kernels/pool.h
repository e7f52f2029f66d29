/* mcuflow kernel library: max and average pooling over HWC int8 feature maps, no padding (both variants).
 *
 * The output keeps the input's scale and zero point. Max: the window maximum. Average over the n = kh * kw
 * window values: floor((sum + n / 2) / n), computed as ((sum + 128 n + n / 2) / n) - 128 so that the
 * division is of a non-negative number. Both then clamp to act_min (a fused ReLU: the zero point).
 * y may be x (in place): output j reads only inputs at indices >= j, and every later output later ones. */
#ifndef MCUFLOW_POOL_H
#define MCUFLOW_POOL_H

#include <stdint.h>

#include "mcuflow_kernel_config.h"

typedef struct {
    uint32_t in_h, in_w, c;
    uint32_t out_h, out_w;
    uint32_t kh, kw, stride_h, stride_w;
    int32_t act_min;
} mcuflow_pool_t;

MCUFLOW_INLINE void mcuflow_maxpool(const mcuflow_pool_t *l, const int8_t *x, int8_t *y, void *scratch)
{
    uint32_t oy, ox, c, i, j;
    (void)scratch;
    for (oy = 0u; oy < l->out_h; ++oy) {
        for (ox = 0u; ox < l->out_w; ++ox) {
            const int8_t *base = x + ((oy * l->stride_h) * l->in_w + ox * l->stride_w) * l->c;
            for (c = 0u; c < l->c; ++c) {
                int32_t m = l->act_min;
                for (i = 0u; i < l->kh; ++i) {
                    const int8_t *r = base + i * l->in_w * l->c + c;
                    for (j = 0u; j < l->kw; ++j) {
                        const int32_t v = r[j * l->c];
                        m = v > m ? v : m;
                    }
                }
                *y++ = (int8_t)m;
            }
        }
    }
}

MCUFLOW_INLINE void mcuflow_avgpool(const mcuflow_pool_t *l, const int8_t *x, int8_t *y, void *scratch)
{
    const int32_t count = (int32_t)(l->kh * l->kw);
    uint32_t oy, ox, c, i, j;
    (void)scratch;
    for (oy = 0u; oy < l->out_h; ++oy) {
        for (ox = 0u; ox < l->out_w; ++ox) {
            const int8_t *base = x + ((oy * l->stride_h) * l->in_w + ox * l->stride_w) * l->c;
            for (c = 0u; c < l->c; ++c) {
                int32_t sum = 128 * count + count / 2;
                int32_t v;
                for (i = 0u; i < l->kh; ++i) {
                    const int8_t *r = base + i * l->in_w * l->c + c;
                    for (j = 0u; j < l->kw; ++j) {
                        sum += r[j * l->c];
                    }
                }
                v = sum / count - 128;
                *y++ = (int8_t)(v < l->act_min ? l->act_min : v);
            }
        }
    }
}

#endif /* MCUFLOW_POOL_H */

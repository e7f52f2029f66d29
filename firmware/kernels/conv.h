/* mcuflow kernel library: 2-D convolution over HWC int8 feature maps, dense or channel-sparse (both
 * variants: the inner loop is the variant's mcuflow_dot_s16).
 *
 * Output channel o reads the d_in input channels (u * p) mod c_in for u in its window of the closed form
 * u = (t + (t / c_in) * s) mod c_in, t = o * d_in + k (mcuflow/sparsity/patterns.py over channels; dense:
 * p = 1, s = 0, d_in = c_in). The kernel regenerates the windows; no channel index is stored.
 *
 * Per output pixel it builds the permuted, channel-major patch xp[u * T + t] (T = kh * kw taps, t = i * kw + j)
 * of u_count channels (c_in, plus the first ones repeated, so windows never wrap), padding with the input
 * zero point (a real zero: the export folds -in_zp * sum(w) into the bias). Every output channel is then one
 * contiguous dot product of d_in * T weights, or two where its window straddles a pass boundary.
 * Weights: per output channel, each piece in groups of four as (w0, w2, w1, w3), a partial last group as is.
 *
 * out[(oy * out_w + ox) * c_out + o] = requantize(bias[o] + sum w * xp), as every fully connected kernel. */
#ifndef MCUFLOW_CONV_H
#define MCUFLOW_CONV_H

#include <stddef.h>
#include <stdint.h>

#include "mcuflow_kernel_config.h"
#include "conv_dot.h"
#include "requantize.h"

typedef struct {
    const int8_t *w;       /* c_out * d_in * kh * kw weights in the kernel's order */
    const int32_t *bias;   /* int32 per output channel, the input zero point folded in */
    const int32_t *mult;   /* Q31 multiplier per output channel */
    const uint8_t *rshift; /* right shift per output channel */
    uint32_t in_h, in_w, c_in;
    uint32_t out_h, out_w, c_out;
    uint32_t kh, kw, stride_h, stride_w, pad_top, pad_left;
    uint32_t d_in;    /* input channels per output channel */
    uint32_t p;       /* channel step, a unit of Z/c_in */
    uint32_t s;       /* pass shift in [0, c_in) */
    uint32_t u_count; /* channels of the permuted patch: scratch holds u_count * kh * kw + row_pad int16 */
    uint32_t row_pad; /* dense rows: zero weights (and zero patch entries) that make a row a multiple of 4 */
    int32_t in_zp, out_zp, act_min, act_max;
    uint8_t w_aligned; /* every row starts on a 4-byte boundary (weights and patch) */
    uint8_t x_aligned;
} mcuflow_conv_t;

/* The permuted patch of the output pixel whose window starts at (y0, x0) (may be negative: padding). */
MCUFLOW_INLINE void mcuflow_conv_patch(const mcuflow_conv_t *l, const int8_t *x, int16_t *xp, int32_t y0, int32_t x0)
{
    const uint32_t taps = l->kh * l->kw;
    uint32_t t = 0u;
    uint32_t i, j, u;
    if (y0 >= 0 && x0 >= 0 && (uint32_t)y0 + l->kh <= l->in_h && (uint32_t)x0 + l->kw <= l->in_w) {
        /* Inside the map: channel by channel, each kernel row a run of kw inputs c_in bytes apart
         * (constant offsets where the layer is inlined). */
        const int8_t *base = x + ((uint32_t)y0 * l->in_w + (uint32_t)x0) * l->c_in;
        uint32_t c = 0u;
        for (u = 0u; u < l->u_count; ++u) {
            const int8_t *src = base + c;
            int16_t *d = xp + u * taps;
            for (i = 0u; i < l->kh; ++i) {
                MCUFLOW_PRAGMA_UNROLL16
                for (j = 0u; j < l->kw; ++j) {
                    d[j] = src[j * l->c_in];
                }
                d += l->kw;
                src += l->in_w * l->c_in;
            }
            c += l->p;
            if (c >= l->c_in) {
                c -= l->c_in;
            }
        }
        return;
    }
    for (i = 0u; i < l->kh; ++i) {
        const int32_t iy = y0 + (int32_t)i;
        for (j = 0u; j < l->kw; ++j, ++t) {
            const int32_t ix = x0 + (int32_t)j;
            int16_t *d = xp + t;
            if (iy < 0 || iy >= (int32_t)l->in_h || ix < 0 || ix >= (int32_t)l->in_w) {
                for (u = 0u; u < l->u_count; ++u) {
                    d[u * taps] = (int16_t)l->in_zp;
                }
            } else {
                const int8_t *src = x + ((uint32_t)iy * l->in_w + (uint32_t)ix) * l->c_in;
                uint32_t c = 0u;
                for (u = 0u; u < l->u_count; ++u) {
                    d[u * taps] = src[c];
                    c += l->p;
                    if (c >= l->c_in) {
                        c -= l->c_in;
                    }
                }
            }
        }
    }
}

/* Entries of one patch in the scratch: u_count * kh * kw + row_pad, rounded up to whole words. */
MCUFLOW_INLINE uint32_t mcuflow_conv_patch_len(const mcuflow_conv_t *l)
{
    return (l->u_count * l->kh * l->kw + l->row_pad + 1u) & ~1u;
}

/* Every output channel of one output pixel (pb == NULL) or of two (patches pa, pb -> ya, yb). */
MCUFLOW_INLINE void mcuflow_conv_channels(const mcuflow_conv_t *l, const int16_t *pa, const int16_t *pb, int8_t *ya,
                                          int8_t *yb)
{
    const uint32_t taps = l->kh * l->kw;
    const uint32_t n = l->c_in;
    const uint32_t row = l->d_in * taps + l->row_pad;
    const int8_t *w = l->w;
    uint32_t u = 0u;   /* window start */
    uint32_t left = n; /* channels left in the current pass */
    uint32_t o;
    for (o = 0u; o < l->c_out; ++o) {
        int32_t acc = l->bias[o];
        int32_t acc_b = acc;
        if (left >= l->d_in) {
            if (pb != NULL) {
                mcuflow_dot2_s16(w, pa + u * taps, pb + u * taps, row, &acc, &acc_b, l->w_aligned && l->x_aligned);
            } else {
                acc = mcuflow_dot_s16(w, pa + u * taps, row, acc, l->w_aligned, l->x_aligned, 1);
            }
            w += row;
            u += l->d_in;
            left -= l->d_in;
            if (u >= n) {
                u -= n;
            }
            if (left == 0u) {
                left = n;
                u += l->s;
                if (u >= n) {
                    u -= n;
                }
            }
        } else {
            /* The window straddles a pass boundary: `left` channels from u, the rest from u2. */
            const uint32_t rest = l->d_in - left;
            uint32_t u2 = u + left + l->s;
            u2 = u2 >= 2u * n ? u2 - 2u * n : (u2 >= n ? u2 - n : u2);
            if (pb != NULL) {
                mcuflow_dot2_s16(w, pa + u * taps, pb + u * taps, left * taps, &acc, &acc_b, 0);
                mcuflow_dot2_s16(w + left * taps, pa + u2 * taps, pb + u2 * taps, rest * taps, &acc, &acc_b, 0);
            } else {
                acc = mcuflow_dot_s16(w, pa + u * taps, left * taps, acc, 0, 0, 0);
                acc = mcuflow_dot_s16(w + left * taps, pa + u2 * taps, rest * taps, acc, 0, 0, 0);
            }
            w += l->d_in * taps;
            u = u2 + rest;
            if (u >= n) {
                u -= n;
            }
            left = n - rest;
        }
        ya[o] = mcuflow_requantize(acc, l->mult[o], l->rshift[o], l->out_zp, l->act_min, l->act_max);
        if (pb != NULL) {
            yb[o] = mcuflow_requantize(acc_b, l->mult[o], l->rshift[o], l->out_zp, l->act_min, l->act_max);
        }
    }
}

/* scratch: 2 * mcuflow_conv_patch_len(l) int16 entries (required): the patches of two neighbouring output
 * pixels, whose dot products share each weight load. */
MCUFLOW_INLINE void mcuflow_conv(const mcuflow_conv_t *l, const int8_t *x, int8_t *y, void *scratch)
{
    const uint32_t taps = l->kh * l->kw;
    const uint32_t plen = mcuflow_conv_patch_len(l);
    int16_t *const pa = (int16_t *)scratch;
    int16_t *const pb = pa + plen;
    uint32_t oy, ox, k;
    for (k = l->u_count * taps; k < plen; ++k) {
        pa[k] = 0; /* the zeros the padded dense rows meet */
        pb[k] = 0;
    }
    for (oy = 0u; oy < l->out_h; ++oy) {
        const int32_t y0 = (int32_t)(oy * l->stride_h) - (int32_t)l->pad_top;
        for (ox = 0u; ox + 1u < l->out_w; ox += 2u) {
            const int32_t x0 = (int32_t)(ox * l->stride_w) - (int32_t)l->pad_left;
            mcuflow_conv_patch(l, x, pa, y0, x0);
            mcuflow_conv_patch(l, x, pb, y0, x0 + (int32_t)l->stride_w);
            mcuflow_conv_channels(l, pa, pb, y, y + l->c_out);
            y += 2u * l->c_out;
        }
        if (ox < l->out_w) {
            mcuflow_conv_patch(l, x, pa, y0, (int32_t)(ox * l->stride_w) - (int32_t)l->pad_left);
            mcuflow_conv_channels(l, pa, NULL, y, NULL);
            y += l->c_out;
        }
    }
}

#endif /* MCUFLOW_CONV_H */

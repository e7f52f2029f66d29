/* mcuflow kernel library: the index-free format, whose closed-form pattern the kernel regenerates.
 *
 * Edge t = r * degree + k reads column (u * p) mod n_in with u = (t + (t / n_in) * s) mod n_in
 * (mcuflow/sparsity/patterns.py). Only the weights are stored.
 *
 * With a scratch buffer of n_in + degree - 1 int16 entries, one pass over x builds the permuted input
 * xp[u] = x[(u * p) mod n_in], so every row is a contiguous window of xp: u steps by one inside a pass and
 * jumps by s at a pass boundary. The tail xp[n_in ..] repeats the head, so windows never wrap; a row that
 * straddles a pass boundary is done in two pieces. Each row is then the variant's mcuflow_dot_s16.
 * Without a buffer (scratch == NULL) the kernel walks the pattern column by column: no RAM, more
 * instructions.
 *
 * Weights are stored in groups of four as (w0, w2, w1, w3) (a partial last group as is), which
 * SXTB16 unpacks into the pairs (w0, w1) and (w2, w3) that meet two int16 inputs loaded as one word. */
#ifndef MCUFLOW_FC_INDEX_FREE_H
#define MCUFLOW_FC_INDEX_FREE_H

#include <stddef.h>
#include <stdint.h>

#include "mcuflow_kernel_types.h"
#include "requantize.h"

/* d[i * m] = s[i * delta] for i < len; m and delta are constants where inlined, so these are immediate
 * offsets (LDRSB/STRH pairs). */
MCUFLOW_INLINE void mcuflow_copy_strided(const int8_t *s, int16_t *d, uint32_t len, const int32_t delta, const uint32_t m)
{
    while (len >= 8u) {
        d[0] = s[0];
        d[m] = s[delta];
        d[2u * m] = s[2 * delta];
        d[3u * m] = s[3 * delta];
        d[4u * m] = s[4 * delta];
        d[5u * m] = s[5 * delta];
        d[6u * m] = s[6 * delta];
        d[7u * m] = s[7 * delta];
        s += 8 * delta;
        d += 8u * m;
        len -= 8u;
    }
    switch (len) {
    case 7u:
        d[6u * m] = s[6 * delta];
        /* fall through */
    case 6u:
        d[5u * m] = s[5 * delta];
        /* fall through */
    case 5u:
        d[4u * m] = s[4 * delta];
        /* fall through */
    case 4u:
        d[3u * m] = s[3 * delta];
        /* fall through */
    case 3u:
        d[2u * m] = s[2 * delta];
        /* fall through */
    case 2u:
        d[m] = s[delta];
        /* fall through */
    case 1u:
        d[0] = s[0];
        /* fall through */
    default:
        break;
    }
}

/* The same copy out of line, for the rare class that wraps around n: one copy of its code per model.
 * (A model whose index-free layers share one (m, delta) gets it with constants propagated.) */
static MCUFLOW_NOINLINE __attribute__((unused)) void mcuflow_copy_strided_wrap(const int8_t *s, int16_t *d, uint32_t len,
                                                                               int32_t delta, uint32_t m)
{
    mcuflow_copy_strided(s, d, len, delta, m);
}

/* One residue class of u: count entries d[i * m] = x[(cc + i * delta) mod n]. The export keeps
 * (count - 1) * |delta| < n, so the column wraps around n at most once: one or two strided copies. */
MCUFLOW_INLINE void mcuflow_permute_class(const int8_t *x, int16_t *d, uint32_t cc, const uint32_t count,
                                          const uint32_t n, const uint32_t m, const int32_t delta)
{
    const uint32_t span = (count - 1u) * (uint32_t)(delta > 0 ? delta : -delta); /* a constant */
    if (MCUFLOW_LIKELY(delta > 0 ? cc < n - span : cc >= span)) {
        mcuflow_copy_strided(x + cc, d, count, delta, m);
    } else {
        const uint32_t first = delta > 0 ? (n - 1u - cc) / (uint32_t)delta + 1u : cc / (uint32_t)(-delta) + 1u;
        const int32_t wrapped = (int32_t)cc + (int32_t)first * delta + (delta > 0 ? -(int32_t)n : (int32_t)n);
        mcuflow_copy_strided_wrap(x + cc, d, first, delta, m);
        mcuflow_copy_strided_wrap(x + wrapped, d + first * m, count - first, delta, m);
    }
}

/* xp[u] = x[(u * p) mod n] for u < n, walked in m residue classes of u: within a class u steps by m and the
 * column by delta = (m * p) mod n, chosen small at export. Classes j < n % m hold one entry more. */
MCUFLOW_INLINE void mcuflow_permute(const int8_t *x, int16_t *xp, const uint32_t n, const uint32_t p, const uint32_t m,
                                    const int32_t delta)
{
    uint32_t c = 0u; /* column of u = j: (j * p) mod n */
    uint32_t j;
    for (j = 0u; j < n % m; ++j) {
        mcuflow_permute_class(x, xp + j, c, n / m + 1u, n, m, delta);
        c += p;
        c = c >= n ? c - n : c;
    }
    for (; j < m; ++j) {
        mcuflow_permute_class(x, xp + j, c, n / m, n, m, delta);
        c += p;
        c = c >= n ? c - n : c;
    }
}

/* A row's dot product over any range, out of line: only rows that straddle a pass boundary use it. */
static MCUFLOW_NOINLINE __attribute__((unused)) int32_t mcuflow_dot_s16_any(const int8_t *w, const int16_t *x,
                                                                            uint32_t n, int32_t acc)
{
    return mcuflow_dot_s16(w, x, n, acc, 0, 0, 0);
}

MCUFLOW_INLINE void mcuflow_index_free_permuted(const mcuflow_fc_t *l, const int8_t *x, int8_t *y, int16_t *xp)
{
    const uint32_t n = l->n_in;
    const uint32_t degree = l->degree;
    const int8_t *w = l->w;
    uint32_t u = 0u;   /* window start */
    uint32_t left = n; /* edges left in the current pass */
    uint32_t r;
    mcuflow_permute(x, xp, n, l->p, l->perm_m, l->perm_delta);
    for (r = 0u; r + 1u < degree; ++r) {
        xp[n + r] = xp[r];
    }
    for (r = 0u; r < l->n_out; ++r) {
        int32_t acc;
        if (left >= degree) {
            acc = mcuflow_dot_s16(w, xp + u, degree, l->bias[r], l->w_aligned, l->x_aligned, 1);
            u += degree;
            left -= degree;
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
            /* The row straddles a pass boundary: its first `left` entries are xp[u ..], the rest start at
             * u2 = u + left + s. Whole weight groups on either side go through the dot product; the group
             * the boundary cuts (if any) is done entry by entry in the stored order. */
            const uint32_t rest = degree - left;
            const uint32_t g0 = left & ~3u;        /* end of the groups before */
            const uint32_t g1 = (left + 3u) & ~3u; /* start of the groups after */
            const uint32_t full = degree & ~3u;    /* entries stored in groups */
            uint32_t u2 = u + left + l->s;
            uint32_t k;
            u2 = u2 >= 2u * n ? u2 - 2u * n : (u2 >= n ? u2 - n : u2);
            acc = mcuflow_dot_s16_any(w, xp + u, g0, l->bias[r]);
            for (k = g0; k < g1 && k < degree; ++k) {
                const uint32_t at = k < full ? (k & ~3u) | ((k & 1u) << 1) | ((k & 2u) >> 1) : k;
                acc += (int32_t)w[at] * (k < left ? xp[u + k] : xp[u2 + k - left]);
            }
            if (g1 < degree) {
                acc = mcuflow_dot_s16_any(w + g1, xp + u2 + (g1 - left), degree - g1, acc);
            }
            u = u2 + rest;
            if (u >= n) {
                u -= n;
            }
            left = n - rest;
        }
        w += degree;
        y[r] = mcuflow_requantize(acc, l->mult[r], l->rshift[r], l->out_zp, l->act_min, l->act_max);
    }
}

/* The pattern walked edge by edge, without a buffer: within a pass the column steps by p, at a pass
 * boundary also by pass_step = (s * p) mod n. The column is kept as c - n in [-n, 0), so the add's sign
 * replaces the compare. Rows are walked in runs that end at a pass boundary; inside a run whole weight
 * groups of four, stored (w0, w2, w1, w3), are read at once. */
#define MCUFLOW_WALK_NEXT(v) \
    do { \
        MCUFLOW_TRACE((uint32_t)(c + (int32_t)n)); \
        (v) = xe[c]; \
        c += (int32_t)p; \
        if (c >= 0) { \
            c -= (int32_t)n; \
        } \
    } while (0)

MCUFLOW_INLINE void mcuflow_index_free_walk(const mcuflow_fc_t *l, const int8_t *x, int8_t *y)
{
    const uint32_t n = l->n_in;
    const uint32_t p = l->p;
    const uint32_t degree = l->degree;
    const int8_t *w = l->w;
    const int8_t *const xe = x + n;
    const uint32_t full = degree & ~3u;
    int32_t c = -(int32_t)n;
    uint32_t left = n;
    uint32_t r;
    for (r = 0u; r < l->n_out; ++r) {
        int32_t acc = l->bias[r];
        uint32_t k = 0u;
        while (k < degree) {
            const uint32_t end = k + (degree - k < left ? degree - k : left); /* this run: edges k .. end */
            left -= end - k;
            while (k < end) {
                if ((k & 3u) == 0u && k + 4u <= end && k < full) {
                    int32_t x0, x1, x2, x3;
                    MCUFLOW_WALK_NEXT(x0);
                    MCUFLOW_WALK_NEXT(x1);
                    MCUFLOW_WALK_NEXT(x2);
                    MCUFLOW_WALK_NEXT(x3);
                    acc += (int32_t)w[k] * x0 + (int32_t)w[k + 2u] * x1 + (int32_t)w[k + 1u] * x2 +
                           (int32_t)w[k + 3u] * x3;
                    k += 4u;
                } else {
                    int32_t x0;
                    MCUFLOW_WALK_NEXT(x0);
                    acc += (int32_t)w[k < full ? k ^ ((((k + 1u) >> 1) & 1u) * 3u) : k] * x0;
                    ++k;
                }
            }
            if (left == 0u) {
                left = n;
                c += (int32_t)l->pass_step;
                if (c >= 0) {
                    c -= (int32_t)n;
                }
            }
        }
        w += degree;
        y[r] = mcuflow_requantize(acc, l->mult[r], l->rshift[r], l->out_zp, l->act_min, l->act_max);
    }
}

/* scratch: n_in + degree - 1 int16 entries (the permuted input), or NULL to walk the pattern instead. */
MCUFLOW_INLINE void mcuflow_fc_index_free(const mcuflow_fc_t *l, const int8_t *x, int8_t *y, int16_t *scratch)
{
    if (scratch != NULL) {
        mcuflow_index_free_permuted(l, x, y, scratch);
    } else {
        mcuflow_index_free_walk(l, x, y);
    }
}

#endif /* MCUFLOW_FC_INDEX_FREE_H */

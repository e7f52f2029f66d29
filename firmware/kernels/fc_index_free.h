/* mcuflow kernel library: the index-free format, whose closed-form pattern the kernel regenerates.
 *
 * Edge t = r * degree + k reads column (u * p) mod n_in with u = (t + (t / n_in) * s) mod n_in
 * (mcuflow/sparsity/patterns.py). Only the weights are stored, in their natural order.
 *
 * With a scratch buffer of n_in + degree - 1 int8 entries, one pass over x builds the permuted input
 * xp[u] = x[(u * p) mod n_in], so every row is a contiguous window of xp: u steps by one inside a pass and
 * jumps by s at a pass boundary. The tail xp[n_in ..] repeats the head, so windows never wrap; a row that
 * straddles a pass boundary is done in two pieces. Each row is then the variant's mcuflow_dot_s8. Every
 * input is read once and used out-degree times from the buffer, half the RAM of an int16 one.
 * Columns n_x .. n_in - 1 (a padded input) have weight 0: the permutation skips them, so the kernel reads
 * just the n_x inputs there are, wherever they lie (no padded copy), and their xp entries keep whatever
 * they held (times 0).
 * Without a buffer (scratch == NULL) the kernel walks the pattern column by column: no RAM, more
 * instructions, and it reads all n_in columns (a padded input). */
#ifndef MCUFLOW_FC_INDEX_FREE_H
#define MCUFLOW_FC_INDEX_FREE_H

#include <stddef.h>
#include <stdint.h>

#include "mcuflow_kernel_types.h"
#include "requantize.h"

/* d[i * m] = s[i * delta] for i < len; m and delta are constants where inlined, so these are immediate
 * offsets (LDRB/STRB pairs). */
MCUFLOW_INLINE void mcuflow_copy_strided(const int8_t *s, int8_t *d, uint32_t len, const int32_t delta, const uint32_t m)
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

/* A residue class that wraps around n or touches the padding [nx, n), out of line (a few classes per
 * layer): its columns cc + i * delta (mod n), i < count, in runs of inputs (copied) and of padding
 * (skipped). The export keeps (count - 1) * |delta| < n, so there are at most three runs. */
static MCUFLOW_NOINLINE __attribute__((unused)) void mcuflow_permute_class_slow(const int8_t *x, int8_t *d, uint32_t cc,
                                                                                uint32_t count, uint32_t n,
                                                                                uint32_t nx, uint32_t m, int32_t delta)
{
    const uint32_t step = (uint32_t)(delta > 0 ? delta : -delta);
    uint32_t i = 0u;
    int32_t c = (int32_t)cc;
    while (i < count) {
        uint32_t len;
        if ((uint32_t)c >= nx) { /* padding: up to the wrap (delta > 0) or down into the inputs (delta < 0) */
            len = delta > 0 ? (n - (uint32_t)c + step - 1u) / step : ((uint32_t)c - nx) / step + 1u;
        } else {                 /* inputs: up to the padding or down past column 0 */
            len = delta > 0 ? (nx - 1u - (uint32_t)c) / step + 1u : (uint32_t)c / step + 1u;
            len = len < count - i ? len : count - i;
            mcuflow_copy_strided(x + c, d + i * m, len, delta, m);
        }
        i += len;
        c += (int32_t)len * delta;
        c = c >= (int32_t)n ? c - (int32_t)n : (c < 0 ? c + (int32_t)n : c);
    }
}

/* One residue class of u: count entries d[i * m] = x[(cc + i * delta) mod n]. */
MCUFLOW_INLINE void mcuflow_permute_class(const int8_t *x, int8_t *d, uint32_t cc, const uint32_t count,
                                          const uint32_t n, const uint32_t nx, const uint32_t m, const int32_t delta)
{
    const uint32_t span = (count - 1u) * (uint32_t)(delta > 0 ? delta : -delta); /* a constant */
    if (MCUFLOW_LIKELY(delta > 0 ? cc < nx - span : (cc >= span && cc < nx))) {
        mcuflow_copy_strided(x + cc, d, count, delta, m);
    } else {
        mcuflow_permute_class_slow(x, d, cc, count, n, nx, m, delta);
    }
}

/* xp[u] = x[(u * p) mod n] for u < n, walked in m residue classes of u: within a class u steps by m and the
 * column by delta = (m * p) mod n, chosen small at export. Classes j < n % m hold one entry more. */
MCUFLOW_INLINE void mcuflow_permute(const int8_t *x, int8_t *xp, const uint32_t n, const uint32_t nx, const uint32_t p,
                                    const uint32_t m, const int32_t delta)
{
    uint32_t c = 0u; /* column of u = j: (j * p) mod n, stepped as c - (n - p) or c + p */
    uint32_t j;
    for (j = 0u; j < n % m; ++j) {
        mcuflow_permute_class(x, xp + j, c, n / m + 1u, n, nx, m, delta);
        c = c >= n - p ? c - (n - p) : c + p;
    }
    MCUFLOW_PRAGMA_UNROLL2 /* two classes a turn: the loop's own compare and branch once per two */
    for (; j < m; ++j) {
        mcuflow_permute_class(x, xp + j, c, n / m, n, nx, m, delta);
        c = c >= n - p ? c - (n - p) : c + p;
    }
}

/* A row's dot product over any range, out of line: only rows that straddle a pass boundary use it. */
static MCUFLOW_NOINLINE __attribute__((unused)) int32_t mcuflow_dot_s8_any(const int8_t *w, const int8_t *x, uint32_t n,
                                                                           int32_t acc)
{
    return mcuflow_dot_s8(w, x, n, acc, 0, 0, 0);
}

/* The rows of a layer where no row straddles a pass boundary, in runs (l->runs, computed at export: row
 * after row the window steps by degree, except at a pass boundary, where the next pass starts s further
 * on, and where a window would start at or past n, when it starts again from xp). Each run is (rows,
 * first window). The weights, the window and the per-row constants are walked by pointers that the dot
 * product and the requantisation step themselves, so a row costs its dot product and a dozen
 * instructions. */
MCUFLOW_INLINE void mcuflow_index_free_runs(const mcuflow_fc_t *l, const int8_t *xp, int8_t *y)
{
    const uint32_t degree = l->degree;
    const int8_t *w = l->w;
    const int32_t *bias = l->bias;
    const int32_t *mult = l->mult;
    const uint8_t *shift = l->rshift;
    const uint16_t *run = l->runs;
    const uint16_t *const end = run + 2u * l->n_runs;
    for (; run != end; run += 2) {
        const int8_t *xw = xp + run[1];
        uint32_t k;
        for (k = run[0]; k != 0u; --k) {
            const int32_t acc = mcuflow_dot_s8_step(&w, &xw, degree, *bias++, l->w_aligned, l->x_aligned, l->unroll);
            *y++ = l->shift_gt32 ? mcuflow_requantize_gt32(acc, *mult, *shift, l->out_zp, l->act_min, l->act_max)
                                 : mcuflow_requantize(acc, *mult, *shift, l->out_zp, l->act_min, l->act_max);
            ++mult;
            ++shift;
        }
    }
}

MCUFLOW_INLINE void mcuflow_index_free_permuted(const mcuflow_fc_t *l, const int8_t *x, int8_t *y, int8_t *xp)
{
    const uint32_t n = l->n_in;
    const uint32_t degree = l->degree;
    const int8_t *w = l->w;
    uint32_t u = 0u;   /* window start */
    uint32_t left = n; /* edges left in the current pass */
    uint32_t r;
    mcuflow_permute(x, xp, n, l->n_x != 0u ? l->n_x : n, l->p, l->perm_m, l->perm_delta);
    for (r = 0u; r + 1u < degree; ++r) {
        xp[n + r] = xp[r];
    }
    if (l->n_runs != 0u) {
        mcuflow_index_free_runs(l, xp, y);
        return;
    }
    for (r = 0u; r < l->n_out; ++r) {
        int32_t acc;
        if (left >= degree) {
            acc = mcuflow_dot_s8(w, xp + u, degree, l->bias[r], l->w_aligned, l->x_aligned, l->unroll);
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
             * u2 = u + left + s. */
            const uint32_t rest = degree - left;
            uint32_t u2 = u + left + l->s;
            u2 = u2 >= 2u * n ? u2 - 2u * n : (u2 >= n ? u2 - n : u2);
            acc = mcuflow_dot_s8_any(w, xp + u, left, l->bias[r]);
            acc = mcuflow_dot_s8_any(w + left, xp + u2, rest, acc);
            u = u2 + rest;
            if (u >= n) {
                u -= n;
            }
            left = n - rest;
        }
        w += degree;
        y[r] = MCUFLOW_REQUANT_ROW(l, acc, r);
    }
}

/* The pattern walked edge by edge, without a buffer: within a pass the column steps by p, at a pass
 * boundary also by pass_step = (s * p) mod n. The column is kept as c - n in [-n, 0), so the add's sign
 * replaces the compare. Rows are walked in runs that end at a pass boundary. */
MCUFLOW_INLINE void mcuflow_index_free_walk(const mcuflow_fc_t *l, const int8_t *x, int8_t *y)
{
    const uint32_t n = l->n_in;
    const uint32_t p = l->p;
    const uint32_t degree = l->degree;
    const int8_t *w = l->w;
    const int8_t *const xe = x + n;
    int32_t c = -(int32_t)n;
    uint32_t left = n;
    uint32_t r;
    for (r = 0u; r < l->n_out; ++r) {
        int32_t acc = l->bias[r];
        uint32_t k = 0u;
        while (k < degree) {
            const uint32_t end = k + (degree - k < left ? degree - k : left); /* this run: edges k .. end */
            left -= end - k;
            for (; k < end; ++k) {
                MCUFLOW_TRACE((uint32_t)(c + (int32_t)n));
                acc += (int32_t)w[k] * xe[c];
                c += (int32_t)p;
                if (c >= 0) {
                    c -= (int32_t)n;
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
        y[r] = MCUFLOW_REQUANT_ROW(l, acc, r);
    }
}

/* scratch: n_in + degree - 1 int8 entries (the permuted input), or NULL to walk the pattern instead. */
MCUFLOW_INLINE void mcuflow_fc_index_free(const mcuflow_fc_t *l, const int8_t *x, int8_t *y, void *scratch)
{
    if (scratch != NULL) {
        mcuflow_index_free_permuted(l, x, y, (int8_t *)scratch);
    } else {
        mcuflow_index_free_walk(l, x, y);
    }
}

#endif /* MCUFLOW_FC_INDEX_FREE_H */

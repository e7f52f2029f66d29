/* mcuflow wire protocol, device side. See docs/protocol.md. */
#include "mcuflow_link.h"

uint16_t mcuflow_crc16(const uint8_t *data, uint32_t len) {
    uint16_t crc = 0xFFFFu;
    uint32_t i;
    /* CRC-16/CCITT-FALSE a byte at a time without a table (the polynomial's shifts folded in) */
    for (i = 0; i < len; i++) {
        crc = (uint16_t)((crc >> 8) | (crc << 8));
        crc ^= data[i];
        crc ^= (uint16_t)((crc & 0xFFu) >> 4);
        crc ^= (uint16_t)(crc << 12);
        crc ^= (uint16_t)((crc & 0xFFu) << 5);
    }
    return crc;
}

uint32_t mcuflow_crc32(uint32_t crc, const uint8_t *data, uint32_t len) {
    uint32_t i;
    crc = ~crc;
    for (i = 0; i < len; i++) {
        int bit;
        crc ^= data[i];
        for (bit = 0; bit < 8; bit++) {
            crc = (crc & 1u) ? (crc >> 1) ^ 0xEDB88320u : crc >> 1;
        }
    }
    return ~crc;
}

uint32_t mcuflow_cobs_encode(const uint8_t *in, uint32_t len, uint8_t *out, uint32_t out_cap) {
    uint32_t code_at = 0, o = 1, i;
    uint8_t code = 1;
    if (out_cap < 1u) {
        return 0;
    }
    for (i = 0; i < len; i++) {
        if (in[i] != 0u) {
            if (o >= out_cap) {
                return 0;
            }
            out[o++] = in[i];
            code++;
        }
        if (in[i] == 0u || code == 0xFFu) { /* a zero, or a full block: close the block, open the next */
            out[code_at] = code;
            if (o >= out_cap) {
                return 0;
            }
            code_at = o++;
            code = 1;
        }
    }
    out[code_at] = code;
    return o;
}

int32_t mcuflow_cobs_decode(const uint8_t *in, uint32_t len, uint8_t *out, uint32_t out_cap) {
    uint32_t i = 0, o = 0;
    while (i < len) {
        uint32_t code = in[i], k;
        if (code == 0u || i + code > len) {
            return -1;
        }
        i++;
        for (k = 1; k < code; k++) {
            if (o >= out_cap) {
                return -1;
            }
            /* In place is safe: o < i always holds here. */
            out[o++] = in[i++];
        }
        if (code < 0xFFu && i < len) {
            if (o >= out_cap) {
                return -1;
            }
            out[o++] = 0;
        }
    }
    return (int32_t)o;
}

int mcuflow_bitmap_decode(const uint8_t *in, uint32_t len, int8_t fill, int8_t *out, uint32_t n) {
    uint32_t nb = (n + 7u) / 8u, i, v = nb;
    if (len < nb) {
        return -1;
    }
    /* one pass: a set bit takes the next value (a bit past n, or one value too many, fails), and at the end
     * every value must have been taken */
    for (i = 0; i < nb * 8u; i++) {
        int8_t x = fill;
        if (in[i / 8u] & (1u << (i % 8u))) {
            if (i >= n || v >= len) {
                return -1;
            }
            x = (int8_t)in[v++];
        }
        if (i < n) {
            out[i] = x;
        }
    }
    return v == len ? 0 : -1;
}

uint32_t mcuflow_frame_build(uint8_t type, uint16_t seq, const uint8_t *payload, uint16_t len,
                             uint8_t *raw, uint32_t raw_cap) {
    uint32_t total = MCUFLOW_LINK_HEADER_LEN + (uint32_t)len + MCUFLOW_LINK_CRC_LEN, i;
    uint16_t crc;
    if (len > MCUFLOW_LINK_MAX_PAYLOAD || total > raw_cap) {
        return 0;
    }
    raw[0] = (uint8_t)MCUFLOW_LINK_VERSION;
    raw[1] = type;
    mcuflow_put_u16(raw + 2, seq);
    mcuflow_put_u16(raw + 4, len);
    /* payload may already sit at raw + 6 (built in place). */
    if (payload != raw + MCUFLOW_LINK_HEADER_LEN) {
        for (i = 0; i < len; i++) {
            raw[MCUFLOW_LINK_HEADER_LEN + i] = payload[i];
        }
    }
    crc = mcuflow_crc16(raw, MCUFLOW_LINK_HEADER_LEN + (uint32_t)len);
    mcuflow_put_u16(raw + MCUFLOW_LINK_HEADER_LEN + len, crc);
    return total;
}

uint32_t mcuflow_lean_build(uint8_t lean_type, uint16_t seq, uint8_t *payload, uint16_t len) {
    uint8_t *raw = payload - MCUFLOW_LEAN_HEADER_LEN;
    uint16_t crc;
    raw[0] = lean_type;
    mcuflow_put_u16(raw + 1, seq);
    crc = mcuflow_crc16(raw, MCUFLOW_LEAN_HEADER_LEN + (uint32_t)len);
    mcuflow_put_u16(payload + len, crc);
    return MCUFLOW_LEAN_HEADER_LEN + (uint32_t)len + MCUFLOW_LINK_CRC_LEN;
}

uint32_t mcuflow_table_count(const uint8_t *table, uint32_t capacity, uint32_t input_len) {
    uint32_t count;
    if (table == 0 || capacity < MCUFLOW_TABLE_HEADER_LEN || input_len == 0u ||
        mcuflow_get_u32(table) != MCUFLOW_TABLE_MAGIC || table[4] != MCUFLOW_TABLE_VERSION ||
        mcuflow_get_u16(table + 6) != input_len ||
        mcuflow_get_u32(table + 12) != mcuflow_crc32(0u, table, MCUFLOW_TABLE_HEADER_LEN - 4u)) {
        return 0;
    }
    count = mcuflow_get_u32(table + 8);
    /* the samples must lie inside the region: count * input_len <= capacity - header, without overflow */
    return count <= (capacity - MCUFLOW_TABLE_HEADER_LEN) / input_len ? count : 0u;
}

void mcuflow_rx_init(mcuflow_rx_t *rx, uint8_t *buf, uint32_t cap) {
    rx->buf = buf;
    rx->cap = cap;
    rx->len = 0;
    rx->overflow = 0;
    rx->dropped = 0;
}

static int rx_drop(mcuflow_rx_t *rx) {
    rx->len = 0;
    rx->overflow = 0;
    rx->dropped++;
    return MCUFLOW_RX_DROPPED;
}

int mcuflow_rx_push(mcuflow_rx_t *rx, uint8_t byte, mcuflow_frame_t *frame) {
    int32_t n;
    uint16_t crc;
    if (byte != 0u) {
        if (rx->len < rx->cap) {
            rx->buf[rx->len++] = byte;
        } else {
            rx->overflow = 1;
        }
        return MCUFLOW_RX_NONE;
    }
    if (rx->overflow) {
        return rx_drop(rx);
    }
    if (rx->len == 0u) {
        return MCUFLOW_RX_NONE; /* idle delimiter */
    }
    n = mcuflow_cobs_decode(rx->buf, rx->len, rx->buf, MCUFLOW_LINK_MAX_RAW);
    /* (in place: the decoded frame is never longer than its encoding, so it stays inside buf) */
    if (n < (int32_t)(MCUFLOW_LINK_HEADER_LEN + MCUFLOW_LINK_CRC_LEN)) {
        return rx_drop(rx);
    }
    crc = mcuflow_get_u16(rx->buf + n - 2);
    if (crc != mcuflow_crc16(rx->buf, (uint32_t)n - MCUFLOW_LINK_CRC_LEN)) {
        return rx_drop(rx);
    }
    frame->version = rx->buf[0];
    frame->type = rx->buf[1];
    frame->seq = mcuflow_get_u16(rx->buf + 2);
    frame->length = mcuflow_get_u16(rx->buf + 4);
    frame->crc = crc;
    frame->payload_avail = (uint32_t)n - MCUFLOW_LINK_HEADER_LEN - MCUFLOW_LINK_CRC_LEN;
    frame->payload = rx->buf + MCUFLOW_LINK_HEADER_LEN;
    rx->len = 0;
    return MCUFLOW_RX_FRAME;
}

/* ---- OFFLOAD compression: pruning, narrow codes and the four encodings ---- */

static uint32_t link_mag(const int8_t *q, int32_t zp, uint32_t i) {
    int32_t d = (int32_t)q[i] - zp;
    return (uint32_t)(d < 0 ? -d : d);
}

/* Elements of magnitude above m that survive the threshold. */
static uint32_t link_count_above(const int8_t *q, uint32_t n, int32_t zp, uint32_t thr, uint32_t m) {
    uint32_t i, c = 0;
    for (i = 0; i < n; i++) {
        uint32_t a = link_mag(q, zp, i);
        if (a > thr && a > m) {
            c++;
        }
    }
    return c;
}

uint8_t mcuflow_link_codes(const int8_t *q, uint32_t n, int32_t zp, const mcuflow_linkopt_t *opt, uint8_t *codes) {
    uint32_t thr = opt->threshold, i, cut = 0, ties = n, fill;
    int32_t top = (1 << opt->bits) - 1;
    if (opt->topk != 0u && link_count_above(q, n, zp, thr, 0u) > opt->topk) {
        /* Smallest magnitude cut with at most topk elements above it (binary search, no buffer);
         * elements exactly at the cut fill the remaining places in index order. */
        uint32_t lo = 0, hi = 255;
        while (lo < hi) {
            uint32_t mid = (lo + hi) / 2u;
            if (link_count_above(q, n, zp, thr, mid) <= opt->topk) {
                hi = mid;
            } else {
                lo = mid + 1u;
            }
        }
        cut = lo;
        ties = opt->topk - link_count_above(q, n, zp, thr, cut);
    }
    fill = opt->bits >= 8u ? (uint8_t)zp : opt->code_zp;
    for (i = 0; i < n; i++) {
        uint32_t a = link_mag(q, zp, i);
        int keep = a > thr && a > cut;
        int32_t d;
        if (!keep && a > thr && a == cut && cut != 0u && ties != 0u) {
            keep = 1;
            ties--;
        }
        if (!keep) {
            codes[i] = (uint8_t)fill;
            continue;
        }
        if (opt->bits >= 8u) {
            codes[i] = (uint8_t)q[i];
            continue;
        }
        d = (int32_t)q[i] - zp;
        if (opt->shift != 0u) {
            /* arithmetic shift, as everywhere in the generated code (gcc/clang/arm) */
            d = (d + (1 << (opt->shift - 1u))) >> opt->shift;
        }
        d += opt->code_zp;
        codes[i] = (uint8_t)(d < 0 ? 0 : (d > top ? top : d));
    }
    return (uint8_t)fill;
}

static uint32_t link_packed(uint32_t k, uint8_t bits) {
    return (k * bits + 7u) / 8u;
}

static uint32_t link_width(uint32_t n) {
    return n <= 255u ? 1u : 2u;
}

/* Values that differ from fill, and the nibbles of their zero runs. */
static void link_stats(const uint8_t *codes, uint32_t n, uint8_t fill, uint32_t *k, uint32_t *nibbles) {
    uint32_t i, gap = 0;
    *k = 0;
    *nibbles = 0;
    for (i = 0; i < n; i++) {
        if (codes[i] == fill) {
            gap++;
            continue;
        }
        *nibbles += gap / 15u + 1u;
        gap = 0;
        (*k)++;
    }
}

/* The size of encoding enc from the counts link_stats gives (0: no such encoding). */
static uint32_t link_size_of(uint8_t enc, uint32_t n, uint8_t bits, uint32_t k, uint32_t nib) {
    uint32_t w = link_width(n), values = link_packed(k, bits);
    switch (enc) {
    case MCUFLOW_ENC_DENSE:
        return link_packed(n, bits);
    case MCUFLOW_ENC_BITMAP:
        return (n + 7u) / 8u + values;
    case MCUFLOW_ENC_INDEX_VALUE:
        return w * (1u + k) + values;
    case MCUFLOW_ENC_ZERO_RUNS:
        return w + (nib + 1u) / 2u + values;
    default:
        return 0;
    }
}

uint32_t mcuflow_link_size(uint8_t enc, const uint8_t *codes, uint32_t n, uint8_t bits, uint8_t fill) {
    uint32_t k, nib;
    link_stats(codes, n, fill, &k, &nib);
    return link_size_of(enc, n, bits, k, nib);
}

uint8_t mcuflow_link_choose(const uint8_t *codes, uint32_t n, uint8_t bits, uint8_t fill) {
    uint8_t enc, best = MCUFLOW_ENC_DENSE;
    uint32_t k, nib, best_size;
    link_stats(codes, n, fill, &k, &nib);
    best_size = link_size_of(MCUFLOW_ENC_DENSE, n, bits, k, nib);
    for (enc = 1; enc < MCUFLOW_ENC_COUNT; enc++) {
        uint32_t s = link_size_of(enc, n, bits, k, nib);
        if (s < best_size) {
            best = enc;
            best_size = s;
        }
    }
    return best;
}

/* Appends the low `bits` (1..8) bits of v to an LSB-first bit stream (out must be zeroed): into the byte at
 * the bit position and, when they run past it, the next one. */
static void link_put_bits(uint8_t *out, uint32_t *bitpos, uint32_t v, uint8_t bits) {
    uint32_t at = *bitpos, x = (v & ((1u << bits) - 1u)) << (at % 8u);
    out[at / 8u] |= (uint8_t)x;
    if (at % 8u + bits > 8u) {
        out[at / 8u + 1u] |= (uint8_t)(x >> 8);
    }
    *bitpos = at + bits;
}

static void link_put_index(uint8_t *out, uint32_t *o, uint32_t v, uint32_t w) {
    out[(*o)++] = (uint8_t)(v & 0xFFu);
    if (w == 2u) {
        out[(*o)++] = (uint8_t)(v >> 8);
    }
}

uint32_t mcuflow_link_encode(uint8_t enc, const uint8_t *codes, uint32_t n, uint8_t bits, uint8_t fill,
                             uint8_t *out, uint32_t out_cap) {
    uint32_t k, nib, size, i, o = 0, bitpos, gap = 0, j, w = link_width(n);
    link_stats(codes, n, fill, &k, &nib);
    size = link_size_of(enc, n, bits, k, nib);
    if (size == 0u || size > out_cap) {
        return 0;
    }
    for (i = 0; i < size; i++) {
        out[i] = 0;
    }
    if (enc == MCUFLOW_ENC_INDEX_VALUE || enc == MCUFLOW_ENC_ZERO_RUNS) {
        link_put_index(out, &o, k, w); /* the count of values first */
    }
    j = 2u * o; /* zero runs: the next nibble, from the byte after the count */
    /* One pass: each value's bitmap bit, index or zero-run nibbles, then its bits after the header. */
    bitpos = 8u * (size - (enc == MCUFLOW_ENC_DENSE ? size : link_packed(k, bits)));
    for (i = 0; i < n; i++) {
        if (enc != MCUFLOW_ENC_DENSE && codes[i] == fill) {
            gap++;
            continue;
        }
        if (enc == MCUFLOW_ENC_BITMAP) {
            out[i / 8u] |= (uint8_t)(1u << (i % 8u));
        } else if (enc == MCUFLOW_ENC_INDEX_VALUE) {
            link_put_index(out, &o, i, w);
        } else if (enc == MCUFLOW_ENC_ZERO_RUNS) {
            uint32_t nibble;
            do { /* a 15 for each 15 fill values, then the rest (0..14) */
                nibble = gap < 15u ? gap : 15u;
                out[j / 2u] |= (uint8_t)(nibble << (4u * (j % 2u)));
                j++;
                gap -= nibble;
            } while (nibble == 15u);
        }
        link_put_bits(out, &bitpos, codes[i], bits);
    }
    return size;
}

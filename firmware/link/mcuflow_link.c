/* mcuflow wire protocol, device side. See docs/protocol.md. */
#include "mcuflow_link.h"

uint16_t mcuflow_crc16(const uint8_t *data, uint32_t len) {
    uint16_t crc = 0xFFFFu;
    uint32_t i;
    for (i = 0; i < len; i++) {
        int bit;
        crc ^= (uint16_t)((uint16_t)data[i] << 8);
        for (bit = 0; bit < 8; bit++) {
            crc = (crc & 0x8000u) ? (uint16_t)((crc << 1) ^ 0x1021u) : (uint16_t)(crc << 1);
        }
    }
    return crc;
}

uint32_t mcuflow_cobs_encode(const uint8_t *in, uint32_t len, uint8_t *out, uint32_t out_cap) {
    uint32_t code_at = 0, o = 1, i;
    uint8_t code = 1;
    if (out_cap < 1u) {
        return 0;
    }
    for (i = 0; i < len; i++) {
        if (in[i] == 0u) {
            out[code_at] = code;
            if (o >= out_cap) {
                return 0;
            }
            code_at = o++;
            code = 1;
        } else {
            if (o >= out_cap) {
                return 0;
            }
            out[o++] = in[i];
            code++;
            if (code == 0xFFu) {
                out[code_at] = code;
                if (o >= out_cap) {
                    return 0;
                }
                code_at = o++;
                code = 1;
            }
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
    uint32_t nb = (n + 7u) / 8u, k = 0, i, v;
    if (len < nb) {
        return -1;
    }
    for (i = 0; i < nb * 8u; i++) {
        if (in[i / 8u] & (1u << (i % 8u))) {
            if (i >= n) {
                return -1;
            }
            k++;
        }
    }
    if (len - nb != k) {
        return -1;
    }
    v = nb;
    for (i = 0; i < n; i++) {
        out[i] = (in[i / 8u] & (1u << (i % 8u))) ? (int8_t)in[v++] : fill;
    }
    return 0;
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

void mcuflow_rx_init(mcuflow_rx_t *rx) {
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
        if (rx->len < MCUFLOW_LINK_MAX_ENCODED) {
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

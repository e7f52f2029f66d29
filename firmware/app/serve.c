/* The device's protocol loop: answer HELLO, INFER and BYE over the UART.
 * See docs/protocol.md. Uses only platform.h, mcuflow_link.h and the
 * generated mcuflow_model.h; no heap. */
#include <stdint.h>

#include "mcuflow_link.h"
#include "mcuflow_model.h"
#include "platform.h"

/* The export's link compression settings (mcuflow export --prune-* --link-bits), when present. */
#if defined(__has_include)
#if __has_include("mcuflow_link_config.h")
#include "mcuflow_link_config.h"
#endif
#endif
#ifndef MCUFLOW_LINK_PRUNE_THRESHOLD
#define MCUFLOW_LINK_PRUNE_THRESHOLD 0u
#endif
#ifndef MCUFLOW_LINK_PRUNE_TOPK
#define MCUFLOW_LINK_PRUNE_TOPK 0u
#endif
#ifndef MCUFLOW_LINK_BITS
#define MCUFLOW_LINK_BITS 8u
#endif
#ifndef MCUFLOW_LINK_SHIFT
#define MCUFLOW_LINK_SHIFT 0u
#endif
#ifndef MCUFLOW_LINK_CODE_ZP
#define MCUFLOW_LINK_CODE_ZP 0u
#endif
typedef char mcuflow_link_bits_valid[(MCUFLOW_LINK_BITS >= 2u && MCUFLOW_LINK_BITS <= 8u) ? 1 : -1];

#ifndef MCUFLOW_FIRMWARE_VERSION_MAJOR
#define MCUFLOW_FIRMWARE_VERSION_MAJOR 0
#endif
#ifndef MCUFLOW_FIRMWARE_VERSION_MINOR
#define MCUFLOW_FIRMWARE_VERSION_MINOR 1
#endif

/* The tensors must fit one frame; a model that breaks this cannot be served. */
typedef char mcuflow_input_fits_frame[(MCUFLOW_INPUT_LEN <= MCUFLOW_LINK_MAX_PAYLOAD) ? 1 : -1];
typedef char mcuflow_intermediate_fits_frame
    [(MCUFLOW_OFFLOAD_FIXED_LEN + MCUFLOW_INTERMEDIATE_LEN <= MCUFLOW_LINK_MAX_PAYLOAD) ? 1 : -1];

/* Replies are small (the largest is HELLO or a dense OFFLOAD), so the transmit
 * buffers are sized for them rather than for the largest frame: on the paper
 * model this keeps about 1.9 KB of RAM free. */
#define SERVE_MAX2(a, b) ((a) > (b) ? (a) : (b))
#define SERVE_REPLY_MAX_PAYLOAD                                                                   \
    SERVE_MAX2(SERVE_MAX2(MCUFLOW_HELLO_FIXED_LEN + MCUFLOW_BOARD_NAME_MAX, 1u + MCUFLOW_ERROR_TEXT_MAX), \
               SERVE_MAX2(MCUFLOW_LOCAL_RESULT_LEN, MCUFLOW_OFFLOAD_FIXED_LEN + MCUFLOW_INTERMEDIATE_LEN))
#define SERVE_TX_RAW_CAP (MCUFLOW_LINK_HEADER_LEN + SERVE_REPLY_MAX_PAYLOAD + MCUFLOW_LINK_CRC_LEN)
#define SERVE_TX_ENC_CAP (SERVE_TX_RAW_CAP + 1u + SERVE_TX_RAW_CAP / 254u)

static mcuflow_rx_t rx;
static uint8_t tx_raw[SERVE_TX_RAW_CAP];
static uint8_t tx_enc[SERVE_TX_ENC_CAP + 1u];

/* The last reply and the request it answered (deduplication, docs/protocol.md). */
static uint32_t last_len;
static uint8_t last_valid;
static uint8_t last_type;
static uint16_t last_seq;
static uint16_t last_crc;

static uint8_t *payload_out(void) {
    return tx_raw + MCUFLOW_LINK_HEADER_LEN;
}

static void send_reply(uint8_t type, uint16_t seq, uint16_t len) {
    uint32_t raw_len = mcuflow_frame_build(type, seq, payload_out(), len, tx_raw, sizeof tx_raw);
    uint32_t enc_len = raw_len ? mcuflow_cobs_encode(tx_raw, raw_len, tx_enc, SERVE_TX_ENC_CAP) : 0u;
    if (enc_len == 0u) {
        return; /* cannot happen with the static checks above */
    }
    tx_enc[enc_len++] = 0u;
    last_len = enc_len;
    platform_uart_write(tx_enc, enc_len);
}

static uint16_t error_payload(uint8_t code, const char *text) {
    uint8_t *p = payload_out();
    uint16_t n = 0;
    p[0] = code;
    while (text[n] != '\0' && n < MCUFLOW_ERROR_TEXT_MAX) {
        p[1u + n] = (uint8_t)text[n];
        n++;
    }
    return (uint16_t)(1u + n);
}

static uint16_t hello_payload(void) {
    uint8_t *p = payload_out();
    const char *board = platform_board_name();
    uint32_t caps = MCUFLOW_CAP_ENC_ALL | MCUFLOW_CAP_DEDUP | MCUFLOW_CAP_BYE | MCUFLOW_CAP_INFER_SPARSE;
    uint16_t i, k = 0;
    p[0] = (uint8_t)MCUFLOW_FIRMWARE_VERSION_MAJOR;
    p[1] = (uint8_t)MCUFLOW_FIRMWARE_VERSION_MINOR;
    mcuflow_put_u32(p + 2, caps);
    mcuflow_put_u16(p + 6, (uint16_t)MCUFLOW_INPUT_LEN);
    mcuflow_put_u16(p + 8, (uint16_t)MCUFLOW_INTERMEDIATE_LEN);
    p[10] = (uint8_t)MCUFLOW_NUM_CLASSES;
    p[11] = (uint8_t)MCUFLOW_NUM_EXITS;
    mcuflow_put_u16(p + 12, (uint16_t)MCUFLOW_LINK_MAX_PAYLOAD);
    mcuflow_put_u32(p + 14, rx.dropped);
    for (i = 0; i < 32u; i++) {
        p[18u + i] = mcuflow_model_hash[i];
    }
    if (board != 0) {
        while (board[k] != '\0' && k < MCUFLOW_BOARD_NAME_MAX) {
            p[MCUFLOW_HELLO_FIXED_LEN + k] = (uint8_t)board[k];
            k++;
        }
    }
    p[50] = (uint8_t)k;
    return (uint16_t)(MCUFLOW_HELLO_FIXED_LEN + k);
}

/* INFER_SPARSE inputs are decoded straight into the head's own input buffer when it has one
 * (no copy, no extra RAM), else here; INFER inputs are used where they lie. */
#if MCUFLOW_HEAD_INPUT_IN_ARENA
#define SPARSE_INPUT mcuflow_head_input()
#else
static int8_t sparse_input_buf[MCUFLOW_INPUT_LEN];
#define SPARSE_INPUT sparse_input_buf
#endif
/* The pruned (and possibly narrowed) head output, one code per byte, before encoding. */
static uint8_t link_codes[MCUFLOW_INTERMEDIATE_LEN];
static const mcuflow_linkopt_t link_opt = {MCUFLOW_LINK_PRUNE_THRESHOLD, MCUFLOW_LINK_PRUNE_TOPK, MCUFLOW_LINK_BITS,
                                           MCUFLOW_LINK_SHIFT, MCUFLOW_LINK_CODE_ZP};

/* OFFLOAD body: the smallest encoding of the compressed intermediate. Returns the payload length. */
static uint16_t offload_payload(const mcuflow_head_result_t *res, uint32_t instructions) {
    uint8_t *p = payload_out();
    uint8_t fill = mcuflow_link_codes(res->intermediate, res->intermediate_len, res->intermediate_zero_point,
                                      &link_opt, link_codes);
    uint8_t enc = mcuflow_link_choose(link_codes, res->intermediate_len, link_opt.bits, fill);
    uint32_t scale_bits = res->intermediate_scale_bits;
    int32_t zp = res->intermediate_zero_point;
    uint32_t body;
    if (link_opt.bits < 8u) {
        /* scale * 2^shift: add to the float32 exponent (the export keeps the scale a normal number) */
        scale_bits += (uint32_t)link_opt.shift << 23;
        zp = link_opt.code_zp;
    }
    body = mcuflow_link_encode(enc, link_codes, res->intermediate_len, link_opt.bits, fill,
                               p + MCUFLOW_OFFLOAD_FIXED_LEN, MCUFLOW_INTERMEDIATE_LEN);
    if (body == 0u) {
        return 0; /* cannot happen: the chosen encoding is never larger than dense */
    }
    p[0] = enc;
    p[1] = link_opt.bits;
    mcuflow_put_u16(p + 2, res->intermediate_len);
    mcuflow_put_u32(p + 4, (uint32_t)zp);
    mcuflow_put_u32(p + 8, scale_bits);
    mcuflow_put_u32(p + 12, instructions);
    return (uint16_t)(MCUFLOW_OFFLOAD_FIXED_LEN + body);
}

static uint8_t infer_payload(const mcuflow_frame_t *f, uint16_t *len) {
    mcuflow_head_result_t res;
    const int8_t *input = (const int8_t *)f->payload;
    uint8_t *p = payload_out();
    uint32_t n;
    int rc;
    if (f->type == MCUFLOW_MSG_INFER_SPARSE) {
        if (f->length < 2u || f->payload[0] != MCUFLOW_ENC_BITMAP ||
            mcuflow_bitmap_decode(f->payload + 2, (uint32_t)f->length - 2u, (int8_t)f->payload[1], SPARSE_INPUT,
                                  MCUFLOW_INPUT_LEN) != 0) {
            *len = error_payload(MCUFLOW_ERR_BAD_TENSOR_SIZE, "INFER_SPARSE encoding is malformed");
            return MCUFLOW_MSG_ERROR;
        }
        input = SPARSE_INPUT;
    } else if (f->length != (uint16_t)MCUFLOW_INPUT_LEN) {
        *len = error_payload(MCUFLOW_ERR_BAD_TENSOR_SIZE, "INFER payload is not input_len bytes");
        return MCUFLOW_MSG_ERROR;
    }
    platform_counter_reset();
    rc = mcuflow_head_run(input, &res);
    n = platform_counter_read();
    if (rc != 0) {
        *len = error_payload(MCUFLOW_ERR_HEAD_FAILED, "mcuflow_head_run failed");
        return MCUFLOW_MSG_ERROR;
    }
    if (res.exited) {
        p[0] = res.exit_index;
        p[1] = res.label;
        mcuflow_put_u16(p + 2, res.confidence_q15);
        mcuflow_put_u32(p + 4, n);
        *len = MCUFLOW_LOCAL_RESULT_LEN;
        return MCUFLOW_MSG_LOCAL_RESULT;
    }
    if (res.intermediate == 0 || res.intermediate_len != (uint16_t)MCUFLOW_INTERMEDIATE_LEN) {
        *len = error_payload(MCUFLOW_ERR_INTERNAL, "head returned a bad intermediate");
        return MCUFLOW_MSG_ERROR;
    }
    *len = offload_payload(&res, n);
    if (*len == 0u) {
        *len = error_payload(MCUFLOW_ERR_INTERNAL, "OFFLOAD encoding failed");
        return MCUFLOW_MSG_ERROR;
    }
    return MCUFLOW_MSG_OFFLOAD;
}

/* Handles one frame with a good CRC. */
static void handle(const mcuflow_frame_t *f) {
    uint16_t len = 0;
    uint8_t type;
    if (f->type != MCUFLOW_MSG_HELLO && last_valid && f->type == last_type && f->seq == last_seq &&
        f->crc == last_crc) {
        platform_uart_write(tx_enc, last_len); /* a retry: resend, do not recompute */
        return;
    }
    if (f->version != MCUFLOW_LINK_VERSION) {
        type = MCUFLOW_MSG_ERROR;
        len = error_payload(MCUFLOW_ERR_BAD_VERSION, "unsupported protocol version");
    } else if ((uint32_t)f->length != f->payload_avail) {
        type = MCUFLOW_MSG_ERROR;
        len = error_payload(MCUFLOW_ERR_BAD_LENGTH, "length field disagrees with frame size");
    } else if (f->type == MCUFLOW_MSG_HELLO || f->type == MCUFLOW_MSG_BYE) {
        if (f->length != 0u) {
            type = MCUFLOW_MSG_ERROR;
            len = error_payload(MCUFLOW_ERR_BAD_LENGTH, "HELLO and BYE carry no payload");
        } else if (f->type == MCUFLOW_MSG_HELLO) {
            type = MCUFLOW_MSG_HELLO_REPLY;
            len = hello_payload();
        } else {
            send_reply(MCUFLOW_MSG_BYE_REPLY, f->seq, 0);
            platform_exit(0);
            return;
        }
    } else if (f->type == MCUFLOW_MSG_INFER || f->type == MCUFLOW_MSG_INFER_SPARSE) {
        type = infer_payload(f, &len);
    } else {
        type = MCUFLOW_MSG_ERROR;
        len = error_payload(MCUFLOW_ERR_BAD_TYPE, "unknown message type");
    }
    send_reply(type, f->seq, len);
    last_valid = (uint8_t)(f->type != MCUFLOW_MSG_HELLO);
    last_type = f->type;
    last_seq = f->seq;
    last_crc = f->crc;
}

void mcuflow_serve(void) {
    mcuflow_frame_t frame;
    mcuflow_rx_init(&rx);
    last_valid = 0;
    for (;;) {
        int c = platform_uart_getc();
        if (c < 0 || c > 255) {
            continue;
        }
        if (mcuflow_rx_push(&rx, (uint8_t)c, &frame) == MCUFLOW_RX_FRAME) {
            handle(&frame);
        }
    }
}

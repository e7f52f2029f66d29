/* The device's protocol loop: answer HELLO, INFER (whole or in parts) and BYE over the UART.
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

/* The board name is known when the firmware is built for a board (not in host test builds), so the reply
 * buffers need room for that name only, not for the protocol's 32 bytes. */
#if defined(__has_include)
#if __has_include("board_config.h")
#include "board_config.h"
#endif
#endif
#ifdef BOARD_NAME
#define SERVE_BOARD_NAME_MAX (sizeof(BOARD_NAME) - 1u)
typedef char serve_board_name_fits[(sizeof(BOARD_NAME) - 1u <= MCUFLOW_BOARD_NAME_MAX) ? 1 : -1];
#else
#define SERVE_BOARD_NAME_MAX MCUFLOW_BOARD_NAME_MAX
#endif

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
/* A board with a clock setup reports its clock in HELLO (capability bit 13); the others send nothing
 * more and keep their buffers as they were. */
#ifdef BOARD_HAS_CLOCK
#define SERVE_HELLO_CLOCK_LEN MCUFLOW_HELLO_CLOCK_LEN
#else
#define SERVE_HELLO_CLOCK_LEN 0u
#endif
/* A model of feature maps (a convolutional head) announces its shapes in HELLO (capability bit 14). */
#ifdef MCUFLOW_INTERMEDIATE_SHAPE_C
#define SERVE_HELLO_SHAPE_LEN MCUFLOW_HELLO_SHAPE_LEN
#else
#define SERVE_HELLO_SHAPE_LEN 0u
#endif
#define SERVE_REPLY_MAX_PAYLOAD                                                                   \
    SERVE_MAX2(SERVE_MAX2(MCUFLOW_HELLO_FIXED_LEN + SERVE_BOARD_NAME_MAX + MCUFLOW_HELLO_INPUT_QUANT_LEN + SERVE_HELLO_CLOCK_LEN + SERVE_HELLO_SHAPE_LEN, 1u + MCUFLOW_ERROR_TEXT_MAX), \
               SERVE_MAX2(MCUFLOW_LOCAL_RESULT_LEN, MCUFLOW_OFFLOAD_FIXED_LEN + MCUFLOW_INTERMEDIATE_LEN))
#define SERVE_TX_RAW_CAP (MCUFLOW_LINK_HEADER_LEN + SERVE_REPLY_MAX_PAYLOAD + MCUFLOW_LINK_CRC_LEN)
#define SERVE_TX_ENC_CAP (SERVE_TX_RAW_CAP + 1u + SERVE_TX_RAW_CAP / 254u)
/* An XFER_STATUS for the most parts fits the reply buffer; a decoded input fits the receive buffer
 * (a fragmented INFER_SPARSE is decoded there). */
typedef char serve_status_fits
    [(MCUFLOW_STATUS_FIXED_LEN + MCUFLOW_XFER_MAX_PARTS / 8u <= SERVE_REPLY_MAX_PAYLOAD) ? 1 : -1];
typedef char serve_input_fits_rx[(MCUFLOW_INPUT_LEN <= MCUFLOW_LINK_MAX_ENCODED) ? 1 : -1];

/* One fragmented request being reassembled (docs/protocol.md, "Fragmented requests"). The body
 * itself lives in the device's one input buffer (SPARSE_INPUT below), so there is one transfer at
 * a time: a transfer on another link takes the buffer over and this one starts again. */
typedef struct {
    uint16_t id;
    uint8_t count;            /* parts; 0: no transfer */
    uint8_t answered;         /* the link's cached reply answers this transfer's COMMIT below */
    uint16_t bytes;           /* body bytes received, each part counted once */
    uint8_t have[MCUFLOW_XFER_MAX_PARTS / 8u];
    uint8_t inner;            /* the answered COMMIT: request type, body length and CRC-32 */
    uint16_t total;
    uint32_t check;
} serve_transfer_t;

/* Everything one serial link keeps: its receiver, transmit buffers, reply cache and transfer. */
typedef struct {
    mcuflow_rx_t rx;
    uint8_t tx_raw[SERVE_TX_RAW_CAP];
    uint8_t tx_enc[SERVE_TX_ENC_CAP + 1u];
    /* The last reply and the request it answered (deduplication, docs/protocol.md). */
    uint32_t last_len;
    uint8_t last_valid;
    uint8_t last_type;
    uint16_t last_seq;
    uint16_t last_crc;
    serve_transfer_t xfer;
} serve_link_t;

static serve_link_t link0;
/* The link whose transfer the input buffer holds. */
static serve_link_t *body_owner;

static void serve_link_init(serve_link_t *l) {
    mcuflow_rx_init(&l->rx);
    l->last_valid = 0;
    l->xfer.count = 0;
    l->xfer.answered = 0;
}

static uint8_t *payload_out(serve_link_t *l) {
    return l->tx_raw + MCUFLOW_LINK_HEADER_LEN;
}

/* Frames the payload already in tx_raw and sends it; tx_raw and tx_enc then hold this reply. */
static void send_reply(serve_link_t *l, uint8_t type, uint16_t seq, uint16_t len) {
    uint32_t raw_len = mcuflow_frame_build(type, seq, payload_out(l), len, l->tx_raw, sizeof l->tx_raw);
    uint32_t enc_len = raw_len ? mcuflow_cobs_encode(l->tx_raw, raw_len, l->tx_enc, SERVE_TX_ENC_CAP) : 0u;
    l->xfer.answered = 0; /* whatever the cache held is overwritten */
    if (enc_len == 0u) {
        return; /* cannot happen with the static checks above */
    }
    l->tx_enc[enc_len++] = 0u;
    l->last_len = enc_len;
    platform_uart_write(l->tx_enc, enc_len);
}

static uint16_t error_payload(serve_link_t *l, uint8_t code, const char *text) {
    uint8_t *p = payload_out(l);
    uint16_t n = 0;
    p[0] = code;
    while (text[n] != '\0' && n < MCUFLOW_ERROR_TEXT_MAX) {
        p[1u + n] = (uint8_t)text[n];
        n++;
    }
    return (uint16_t)(1u + n);
}

#ifdef BOARD_HAS_CLOCK
/* HELLO_REPLY's clock (capability bit 13) after the first n bytes: what the cycle counts count. */
static uint16_t hello_clock(uint8_t *p, uint16_t n) {
    mcuflow_put_u32(p + n, platform_clock_hz());
    p[n + 4u] = platform_clock_state();
    return (uint16_t)(n + MCUFLOW_HELLO_CLOCK_LEN);
}
#define SERVE_HELLO_CLOCK_END(p, n) hello_clock(p, n)
#else
#define SERVE_HELLO_CLOCK_END(p, n) (n)
#endif

#ifdef MCUFLOW_INTERMEDIATE_SHAPE_C
/* HELLO_REPLY's shapes (capability bit 14) after the first n bytes: the input's and the intermediate's. */
static uint16_t hello_shape(uint8_t *p, uint16_t n) {
    mcuflow_put_u16(p + n, (uint16_t)MCUFLOW_INPUT_SHAPE_H);
    mcuflow_put_u16(p + n + 2u, (uint16_t)MCUFLOW_INPUT_SHAPE_W);
    mcuflow_put_u16(p + n + 4u, (uint16_t)MCUFLOW_INPUT_SHAPE_C);
    mcuflow_put_u16(p + n + 6u, (uint16_t)MCUFLOW_INTERMEDIATE_SHAPE_H);
    mcuflow_put_u16(p + n + 8u, (uint16_t)MCUFLOW_INTERMEDIATE_SHAPE_W);
    mcuflow_put_u16(p + n + 10u, (uint16_t)MCUFLOW_INTERMEDIATE_SHAPE_C);
    return (uint16_t)(n + MCUFLOW_HELLO_SHAPE_LEN);
}
#define SERVE_HELLO_END(p, n) hello_shape(p, SERVE_HELLO_CLOCK_END(p, n))
#else
#define SERVE_HELLO_END(p, n) SERVE_HELLO_CLOCK_END(p, n)
#endif

static uint16_t hello_payload(serve_link_t *l) {
    uint8_t *p = payload_out(l);
    const char *board = platform_board_name();
    uint32_t caps =
        MCUFLOW_CAP_ENC_ALL | MCUFLOW_CAP_DEDUP | MCUFLOW_CAP_BYE | MCUFLOW_CAP_INFER_SPARSE | MCUFLOW_CAP_FRAGMENT;
    uint16_t i, k = 0;
#ifdef MCUFLOW_INPUT_SCALE_BITS
    caps |= MCUFLOW_CAP_INPUT_QUANT; /* a generated model: the host learns how to quantise its inputs */
#endif
#ifdef BOARD_HAS_CLOCK
    caps |= MCUFLOW_CAP_CLOCK;
#endif
#ifdef MCUFLOW_INTERMEDIATE_SHAPE_C
    caps |= MCUFLOW_CAP_SHAPE;
#endif
    p[0] = (uint8_t)MCUFLOW_FIRMWARE_VERSION_MAJOR;
    p[1] = (uint8_t)MCUFLOW_FIRMWARE_VERSION_MINOR;
    mcuflow_put_u32(p + 2, caps);
    mcuflow_put_u16(p + 6, (uint16_t)MCUFLOW_INPUT_LEN);
    mcuflow_put_u16(p + 8, (uint16_t)MCUFLOW_INTERMEDIATE_LEN);
    p[10] = (uint8_t)MCUFLOW_NUM_CLASSES;
    p[11] = (uint8_t)MCUFLOW_NUM_EXITS;
    mcuflow_put_u16(p + 12, (uint16_t)MCUFLOW_LINK_MAX_PAYLOAD);
    mcuflow_put_u32(p + 14, l->rx.dropped);
    for (i = 0; i < 32u; i++) {
        p[18u + i] = mcuflow_model_hash[i];
    }
    if (board != 0) {
        while (board[k] != '\0' && k < SERVE_BOARD_NAME_MAX) {
            p[MCUFLOW_HELLO_FIXED_LEN + k] = (uint8_t)board[k];
            k++;
        }
    }
    p[50] = (uint8_t)k;
#ifdef MCUFLOW_INPUT_SCALE_BITS
    mcuflow_put_u32(p + MCUFLOW_HELLO_FIXED_LEN + k, (uint32_t)MCUFLOW_INPUT_SCALE_BITS);
    p[MCUFLOW_HELLO_FIXED_LEN + k + 4u] = (uint8_t)(int8_t)MCUFLOW_INPUT_ZERO_POINT;
    return SERVE_HELLO_END(p, (uint16_t)(MCUFLOW_HELLO_FIXED_LEN + k + MCUFLOW_HELLO_INPUT_QUANT_LEN));
#else
    return SERVE_HELLO_END(p, (uint16_t)(MCUFLOW_HELLO_FIXED_LEN + k));
#endif
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
static uint16_t offload_payload(serve_link_t *l, const mcuflow_head_result_t *res, uint32_t instructions) {
    uint8_t *p = payload_out(l);
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

/* Runs an INFER (type INFER, body = the input) or INFER_SPARSE (body = encoding, fill, encoded input)
 * and writes the reply payload; returns the reply type. A sparse body is decoded into `scratch`. */
static uint8_t infer_payload(serve_link_t *l, uint8_t type, const uint8_t *body, uint32_t len, int8_t *scratch,
                             uint16_t *out_len) {
    mcuflow_head_result_t res;
    const int8_t *input = (const int8_t *)body;
    uint8_t *p = payload_out(l);
    uint32_t n;
    int rc;
    if (type == MCUFLOW_MSG_INFER_SPARSE) {
        if (len < 2u || body[0] != MCUFLOW_ENC_BITMAP ||
            mcuflow_bitmap_decode(body + 2, len - 2u, (int8_t)body[1], scratch, MCUFLOW_INPUT_LEN) != 0) {
            *out_len = error_payload(l, MCUFLOW_ERR_BAD_TENSOR_SIZE, "INFER_SPARSE encoding is malformed");
            return MCUFLOW_MSG_ERROR;
        }
        input = scratch;
    } else if (len != (uint32_t)MCUFLOW_INPUT_LEN) {
        *out_len = error_payload(l, MCUFLOW_ERR_BAD_TENSOR_SIZE, "INFER payload is not input_len bytes");
        return MCUFLOW_MSG_ERROR;
    }
    platform_counter_reset();
    rc = mcuflow_head_run(input, &res);
    n = platform_counter_read();
    if (rc != 0) {
        *out_len = error_payload(l, MCUFLOW_ERR_HEAD_FAILED, "mcuflow_head_run failed");
        return MCUFLOW_MSG_ERROR;
    }
    if (res.exited) {
        p[0] = res.exit_index;
        p[1] = res.label;
        mcuflow_put_u16(p + 2, res.confidence_q15);
        mcuflow_put_u32(p + 4, n);
        *out_len = MCUFLOW_LOCAL_RESULT_LEN;
        return MCUFLOW_MSG_LOCAL_RESULT;
    }
    if (res.intermediate == 0 || res.intermediate_len != (uint16_t)MCUFLOW_INTERMEDIATE_LEN) {
        *out_len = error_payload(l, MCUFLOW_ERR_INTERNAL, "head returned a bad intermediate");
        return MCUFLOW_MSG_ERROR;
    }
    *out_len = offload_payload(l, &res, n);
    if (*out_len == 0u) {
        *out_len = error_payload(l, MCUFLOW_ERR_INTERNAL, "OFFLOAD encoding failed");
        return MCUFLOW_MSG_ERROR;
    }
    return MCUFLOW_MSG_OFFLOAD;
}

/* ---- fragmented requests ---- */

static void xfer_start(serve_link_t *l, uint16_t id, uint8_t count) {
    serve_transfer_t *x = &l->xfer;
    uint32_t i;
    if (body_owner != 0 && body_owner != l) {
        body_owner->xfer.count = 0; /* the other link's partial body is about to be overwritten */
        body_owner->xfer.answered = 0;
    }
    body_owner = l;
    x->id = id;
    x->count = count;
    x->answered = 0;
    x->bytes = 0;
    for (i = 0; i < sizeof x->have; i++) {
        x->have[i] = 0;
    }
}

static int xfer_is_current(const serve_link_t *l, uint16_t id, uint8_t count) {
    return body_owner == l && l->xfer.count == count && l->xfer.id == id;
}

/* INFER_PART: store the bytes; never answered. A part that fails its checks is dropped and
 * counted with the bad frames (HELLO's "frames dropped"). */
static void handle_part(serve_link_t *l, const uint8_t *p, uint32_t len) {
    serve_transfer_t *x = &l->xfer;
    uint8_t *body = (uint8_t *)SPARSE_INPUT;
    uint32_t n, off, i;
    uint16_t id;
    uint8_t index, count;
    if (len <= MCUFLOW_PART_HEADER_LEN) {
        l->rx.dropped++;
        return;
    }
    id = mcuflow_get_u16(p);
    index = p[2];
    count = p[3];
    off = mcuflow_get_u16(p + 4);
    n = len - MCUFLOW_PART_HEADER_LEN;
    if (count == 0u || count > MCUFLOW_XFER_MAX_PARTS || index >= count || off > MCUFLOW_INPUT_LEN ||
        n > MCUFLOW_INPUT_LEN - off) {
        l->rx.dropped++;
        return;
    }
    if (!xfer_is_current(l, id, count)) {
        xfer_start(l, id, count); /* a new transfer id discards the old partial transfer */
    }
    for (i = 0; i < n; i++) {
        body[off + i] = p[MCUFLOW_PART_HEADER_LEN + i];
    }
    if (!(x->have[index / 8u] & (1u << (index % 8u)))) {
        x->have[index / 8u] |= (uint8_t)(1u << (index % 8u));
        x->bytes = (uint16_t)(x->bytes + n);
        if (l->tx_raw[1] == MCUFLOW_MSG_XFER_STATUS) {
            l->last_valid = 0; /* a cached "still missing" is out of date now */
        }
    }
}

/* XFER_STATUS: which parts are missing (reason MISSING), or all of them (BAD_CHECK). */
static uint16_t status_payload(serve_link_t *l, uint8_t reason) {
    serve_transfer_t *x = &l->xfer;
    uint8_t *p = payload_out(l);
    uint32_t nb = (x->count + 7u) / 8u, i;
    mcuflow_put_u16(p, x->id);
    p[2] = x->count;
    p[3] = reason;
    for (i = 0; i < nb; i++) {
        p[MCUFLOW_STATUS_FIXED_LEN + i] = 0;
    }
    for (i = 0; i < x->count; i++) {
        if (!(x->have[i / 8u] & (1u << (i % 8u)))) {
            p[MCUFLOW_STATUS_FIXED_LEN + i / 8u] |= (uint8_t)(1u << (i % 8u));
        }
    }
    return (uint16_t)(MCUFLOW_STATUS_FIXED_LEN + nb);
}

/* INFER_COMMIT: run the reassembled request, or say what is missing. `scratch` is free for the
 * decoded sparse input (the receive buffer: the COMMIT's fields are copied out first). */
static uint8_t commit_payload(serve_link_t *l, uint16_t seq, const uint8_t *p, uint32_t len, int8_t *scratch,
                              uint16_t *out_len) {
    serve_transfer_t *x = &l->xfer;
    const uint8_t *body = (const uint8_t *)SPARSE_INPUT;
    uint16_t id, total;
    uint8_t count, inner, type;
    uint32_t check, i;
    if (len != MCUFLOW_COMMIT_LEN) {
        *out_len = error_payload(l, MCUFLOW_ERR_BAD_LENGTH, "INFER_COMMIT is not 10 bytes");
        return MCUFLOW_MSG_ERROR;
    }
    id = mcuflow_get_u16(p);
    count = p[2];
    inner = p[3];
    total = mcuflow_get_u16(p + 4);
    check = mcuflow_get_u32(p + 6);
    if (count == 0u || count > MCUFLOW_XFER_MAX_PARTS || total == 0u || total > (uint16_t)MCUFLOW_INPUT_LEN ||
        (inner != MCUFLOW_MSG_INFER && inner != MCUFLOW_MSG_INFER_SPARSE)) {
        *out_len = error_payload(l, MCUFLOW_ERR_BAD_TENSOR_SIZE, "INFER_COMMIT fields out of range");
        return MCUFLOW_MSG_ERROR;
    }
    if (x->answered && xfer_is_current(l, id, count) && x->inner == inner && x->total == total && x->check == check) {
        /* answered already (under another seq): the same reply again, re-stamped, not recomputed */
        *out_len = mcuflow_get_u16(l->tx_raw + 4);
        type = l->tx_raw[1];
        send_reply(l, type, seq, *out_len);
        x->answered = 1;
        return 0; /* sent */
    }
    if (!xfer_is_current(l, id, count)) {
        xfer_start(l, id, count);
    }
    for (i = 0; i < count; i++) {
        if (!(x->have[i / 8u] & (1u << (i % 8u)))) {
            *out_len = status_payload(l, MCUFLOW_XFER_MISSING);
            return MCUFLOW_MSG_XFER_STATUS;
        }
    }
    if (x->bytes != total || mcuflow_crc32(mcuflow_crc32(0u, &inner, 1u), body, total) != check) {
        xfer_start(l, id, count); /* a part was wrong; which one is unknown: start over */
        *out_len = status_payload(l, MCUFLOW_XFER_BAD_CHECK);
        return MCUFLOW_MSG_XFER_STATUS;
    }
    type = infer_payload(l, inner, body, total, scratch, out_len);
    send_reply(l, type, seq, *out_len);
    x->answered = 1;
    x->inner = inner;
    x->total = total;
    x->check = check;
    return 0; /* sent */
}

/* Handles one frame with a good CRC (its payload lies in the link's receive buffer). */
static void handle(serve_link_t *l, const mcuflow_frame_t *f) {
    uint16_t len = 0;
    uint8_t type;
    if (f->type != MCUFLOW_MSG_HELLO && l->last_valid && f->type == l->last_type && f->seq == l->last_seq &&
        f->crc == l->last_crc) {
        platform_uart_write(l->tx_enc, l->last_len); /* a retry: resend, do not recompute */
        return;
    }
    if (f->version != MCUFLOW_LINK_VERSION) {
        type = MCUFLOW_MSG_ERROR;
        len = error_payload(l, MCUFLOW_ERR_BAD_VERSION, "unsupported protocol version");
    } else if ((uint32_t)f->length != f->payload_avail) {
        type = MCUFLOW_MSG_ERROR;
        len = error_payload(l, MCUFLOW_ERR_BAD_LENGTH, "length field disagrees with frame size");
    } else if (f->type == MCUFLOW_MSG_HELLO || f->type == MCUFLOW_MSG_BYE) {
        if (f->length != 0u) {
            type = MCUFLOW_MSG_ERROR;
            len = error_payload(l, MCUFLOW_ERR_BAD_LENGTH, "HELLO and BYE carry no payload");
        } else if (f->type == MCUFLOW_MSG_HELLO) {
            l->xfer.count = 0; /* a new session: no transfer survives it */
            type = MCUFLOW_MSG_HELLO_REPLY;
            len = hello_payload(l);
        } else {
            send_reply(l, MCUFLOW_MSG_BYE_REPLY, f->seq, 0);
            platform_exit(0);
            return;
        }
    } else if (f->type == MCUFLOW_MSG_INFER_PART) {
        handle_part(l, f->payload, f->length);
        return; /* parts are never answered and leave the reply cache alone */
    } else if (f->type == MCUFLOW_MSG_INFER_COMMIT) {
        type = commit_payload(l, f->seq, f->payload, f->length, (int8_t *)l->rx.buf, &len);
        if (type == 0u) {
            goto sent;
        }
    } else if (f->type == MCUFLOW_MSG_INFER || f->type == MCUFLOW_MSG_INFER_SPARSE) {
        if (body_owner != 0) {
            body_owner->xfer.count = 0; /* the input buffer is about to be overwritten */
            body_owner = 0;
        }
        type = infer_payload(l, f->type, f->payload, f->length, SPARSE_INPUT, &len);
    } else {
        type = MCUFLOW_MSG_ERROR;
        len = error_payload(l, MCUFLOW_ERR_BAD_TYPE, "unknown message type");
    }
    send_reply(l, type, f->seq, len);
sent:
    l->last_valid = (uint8_t)(f->type != MCUFLOW_MSG_HELLO);
    l->last_type = f->type;
    l->last_seq = f->seq;
    l->last_crc = f->crc;
}

void mcuflow_serve(void) {
    mcuflow_frame_t frame;
    serve_link_init(&link0);
    for (;;) {
        int c = platform_uart_getc();
        if (c < 0 || c > 255) {
            continue;
        }
        if (mcuflow_rx_push(&link0.rx, (uint8_t)c, &frame) == MCUFLOW_RX_FRAME) {
            handle(&link0, &frame);
        }
    }
}

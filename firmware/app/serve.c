/* The device's protocol loop: answer HELLO, INFER (whole or in parts), REPLAY and BYE over the UART.
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
/* Fragmented requests (INFER_PART / INFER_COMMIT, capability bit 11) are in unless the build leaves them
 * out (mcuflow build --no-fragments): HELLO then clears bit 11, and both types are answered as unknown. */
#ifndef MCUFLOW_SERVE_FRAGMENTS
#define MCUFLOW_SERVE_FRAGMENTS 1
#endif

/* 1 (the export says so): nothing is pruned and values are 8 bits wide, so the codes are the head output. */
#ifndef MCUFLOW_LINK_IDENTITY
#define MCUFLOW_LINK_IDENTITY 0u
#endif
typedef char mcuflow_link_identity_valid
    [(!MCUFLOW_LINK_IDENTITY || (MCUFLOW_LINK_BITS == 8u && MCUFLOW_LINK_PRUNE_THRESHOLD == 0u &&
                                 MCUFLOW_LINK_PRUNE_TOPK == 0u)) ? 1 : -1];
typedef char mcuflow_link_bits_valid[(MCUFLOW_LINK_BITS >= 2u && MCUFLOW_LINK_BITS <= 8u) ? 1 : -1];

/* Lean answers (capability bit 14) leave out what every OFFLOAD of this model repeats; HELLO_REPLY says it
 * once. That needs the model's intermediate quantisation at build time (every generated model has it). */
#if defined(MCUFLOW_INTERMEDIATE_SCALE_BITS) && defined(MCUFLOW_INTERMEDIATE_ZERO_POINT)
#define SERVE_LEAN 1
#define SERVE_HELLO_LEAN_LEN MCUFLOW_HELLO_LEAN_LEN
#else
#define SERVE_LEAN 0
#define SERVE_HELLO_LEAN_LEN 0u
#endif

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
/* A model of feature maps (a convolutional head) announces its shapes in HELLO (capability bit 16). */
#ifdef MCUFLOW_INTERMEDIATE_SHAPE_C
#define SERVE_HELLO_SHAPE_LEN MCUFLOW_HELLO_SHAPE_LEN
#else
#define SERVE_HELLO_SHAPE_LEN 0u
#endif
#define SERVE_HELLO_MAX_LEN                                                                          \
    (MCUFLOW_HELLO_FIXED_LEN + SERVE_BOARD_NAME_MAX + MCUFLOW_HELLO_INPUT_QUANT_LEN + SERVE_HELLO_CLOCK_LEN + \
     SERVE_HELLO_LEAN_LEN + MCUFLOW_HELLO_REPLAY_LEN + SERVE_HELLO_SHAPE_LEN)
#define SERVE_REPLY_MAX_PAYLOAD                                                                    \
    SERVE_MAX2(SERVE_MAX2(SERVE_HELLO_MAX_LEN, 1u + MCUFLOW_ERROR_TEXT_MAX),                       \
               SERVE_MAX2(SERVE_MAX2(MCUFLOW_LOCAL_RESULT_LEN, MCUFLOW_REPLAY_END_LEN),            \
                          MCUFLOW_OFFLOAD_FIXED_LEN + MCUFLOW_INTERMEDIATE_LEN))
#define SERVE_TX_RAW_CAP (MCUFLOW_LINK_HEADER_LEN + SERVE_REPLY_MAX_PAYLOAD + MCUFLOW_LINK_CRC_LEN)
#define SERVE_TX_ENC_CAP (SERVE_TX_RAW_CAP + 1u + SERVE_TX_RAW_CAP / 254u)
/* An XFER_STATUS for the most parts fits the reply buffer; a decoded input fits the receive buffer
 * (a fragmented INFER_SPARSE is decoded there). */
typedef char serve_status_fits
    [(MCUFLOW_STATUS_FIXED_LEN + MCUFLOW_XFER_MAX_PARTS / 8u <= SERVE_REPLY_MAX_PAYLOAD) ? 1 : -1];

/* The receive buffer. The largest request the host sends is an INFER_PART or INFER carrying the whole input
 * (SERVE_RX_NEED bytes encoded). A generated model's kernels have a scratch buffer that is free between
 * head runs: when it holds that much, the receiver uses it (no RAM of its own). Each frame is handled, and
 * its payload used, before the next head run, which overwrites the buffer: an input received there is
 * copied to the input buffer first (infer_payload), and a replay waits for a frame in progress to end
 * before it runs the next sample (replay_poll). HELLO announces the largest payload that then fits. Without
 * such a buffer (or the generated header: host test builds) the link keeps its own, of the protocol's
 * largest frame (a model's firmware: of the largest request). */
#define SERVE_ENCODED_LEN(raw) ((raw) + 1u + (raw) / 254u)
#define SERVE_RX_NEED \
    SERVE_ENCODED_LEN(MCUFLOW_LINK_HEADER_LEN + MCUFLOW_PART_HEADER_LEN + MCUFLOW_INPUT_LEN + MCUFLOW_LINK_CRC_LEN)
#if !defined(MCUFLOW_SCRATCH_BYTES)
#define SERVE_RX_IN_SCRATCH 0
#define SERVE_RX_CAP MCUFLOW_LINK_MAX_ENCODED
#elif MCUFLOW_SCRATCH_BYTES >= SERVE_RX_NEED
#define SERVE_RX_IN_SCRATCH 1
#define SERVE_RX_CAP MCUFLOW_SCRATCH_BYTES
#else
#define SERVE_RX_IN_SCRATCH 0
#define SERVE_RX_CAP SERVE_RX_NEED
#endif
/* The largest payload a frame that fits the receive buffer carries (HELLO_REPLY bytes 12..13). */
#define SERVE_RX_MAX_PAYLOAD                                                                           \
    (MCUFLOW_RX_MAX_RAW(SERVE_RX_CAP) - MCUFLOW_LINK_HEADER_LEN - MCUFLOW_LINK_CRC_LEN > MCUFLOW_LINK_MAX_PAYLOAD \
         ? MCUFLOW_LINK_MAX_PAYLOAD                                                                    \
         : MCUFLOW_RX_MAX_RAW(SERVE_RX_CAP) - MCUFLOW_LINK_HEADER_LEN - MCUFLOW_LINK_CRC_LEN)
typedef char serve_input_fits_rx[(MCUFLOW_INPUT_LEN <= SERVE_RX_CAP) ? 1 : -1];
typedef char serve_request_fits_rx[(SERVE_RX_NEED <= SERVE_RX_CAP) ? 1 : -1];

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
    uint16_t reply_len;       /* the last reply's type and payload length, in the full form */
    uint8_t reply_type;
    uint8_t lean;             /* the host asked for lean answers in its HELLO (capability bit 14) */
    uint8_t last_valid;
    uint8_t last_type;
    uint16_t last_seq;
    uint16_t last_crc;
    serve_transfer_t xfer;
} serve_link_t;

static serve_link_t link0;
#if !SERVE_RX_IN_SCRATCH
static uint8_t link0_rx_buf[SERVE_RX_CAP];
#endif
/* The link whose transfer the input buffer holds. */
static serve_link_t *body_owner;

static void serve_link_init(serve_link_t *l) {
    #if SERVE_RX_IN_SCRATCH
    mcuflow_rx_init(&l->rx, (uint8_t *)mcuflow_scratch_buffer(), SERVE_RX_CAP);
#else
    mcuflow_rx_init(&l->rx, link0_rx_buf, SERVE_RX_CAP);
#endif
    l->last_valid = 0;
    l->lean = 0;
    l->xfer.count = 0;
    l->xfer.answered = 0;
}

static uint8_t *payload_out(serve_link_t *l) {
    return l->tx_raw + MCUFLOW_LINK_HEADER_LEN;
}

/* Frames the payload already in tx_raw and sends it; tx_raw and tx_enc then hold this reply. A LOCAL_RESULT
 * or OFFLOAD goes out as a lean frame when the host asked for them: built in place around the part of the
 * full payload it keeps (the full header stays where it is, so the reply can be re-sent in either form). */
static void send_reply(serve_link_t *l, uint8_t type, uint16_t seq, uint16_t len) {
    uint8_t *p = payload_out(l);
    const uint8_t *raw = l->tx_raw;
    uint32_t raw_len, enc_len;
    l->reply_type = type;
    l->reply_len = len;
#if SERVE_LEAN
    if (l->lean && type == MCUFLOW_MSG_LOCAL_RESULT) {
        raw = p - MCUFLOW_LEAN_HEADER_LEN;
        raw_len = mcuflow_lean_build(MCUFLOW_LEAN_LOCAL, seq, p, MCUFLOW_LEAN_LOCAL_LEN);
    } else if (l->lean && type == MCUFLOW_MSG_OFFLOAD) {
        raw = p + MCUFLOW_OFFLOAD_FIXED_LEN - MCUFLOW_LEAN_HEADER_LEN;
        raw_len = mcuflow_lean_build((uint8_t)(MCUFLOW_LEAN_OFFLOAD + p[0]), seq, p + MCUFLOW_OFFLOAD_FIXED_LEN,
                                     (uint16_t)(len - MCUFLOW_OFFLOAD_FIXED_LEN));
    } else
#endif
    {
        raw_len = mcuflow_frame_build(type, seq, p, len, l->tx_raw, sizeof l->tx_raw);
    }
    enc_len = raw_len ? mcuflow_cobs_encode(raw, raw_len, l->tx_enc, SERVE_TX_ENC_CAP) : 0u;
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
/* HELLO_REPLY's shapes (capability bit 16) after the first n bytes: the input's and the intermediate's. */
static uint16_t hello_shape(uint8_t *p, uint16_t n) {
    mcuflow_put_u16(p + n, (uint16_t)MCUFLOW_INPUT_SHAPE_H);
    mcuflow_put_u16(p + n + 2u, (uint16_t)MCUFLOW_INPUT_SHAPE_W);
    mcuflow_put_u16(p + n + 4u, (uint16_t)MCUFLOW_INPUT_SHAPE_C);
    mcuflow_put_u16(p + n + 6u, (uint16_t)MCUFLOW_INTERMEDIATE_SHAPE_H);
    mcuflow_put_u16(p + n + 8u, (uint16_t)MCUFLOW_INTERMEDIATE_SHAPE_W);
    mcuflow_put_u16(p + n + 10u, (uint16_t)MCUFLOW_INTERMEDIATE_SHAPE_C);
    return (uint16_t)(n + MCUFLOW_HELLO_SHAPE_LEN);
}
#define SERVE_HELLO_SHAPE(p, n) hello_shape(p, n)
#else
#define SERVE_HELLO_SHAPE(p, n) (n)
#endif

/* The input table of sensor replay: its region (NULL: none) and the samples its header declares. */
static const uint8_t *replay_table(uint32_t *count) {
    uint32_t capacity = 0;
    const uint8_t *table = platform_replay_table(&capacity);
    *count = table != 0 ? mcuflow_table_count(table, capacity, (uint32_t)MCUFLOW_INPUT_LEN) : 0u;
    return table;
}

/* HELLO_REPLY's optional tail after the first n bytes, in capability-bit order: lean (bit 14), replay (15). */
static uint16_t hello_tail(uint8_t *p, uint16_t n, uint32_t *caps) {
    uint32_t count;
#if SERVE_LEAN
    /* What a lean OFFLOAD leaves out: the values' width, their zero point and scale (narrowed as sent). */
    const int32_t zp = MCUFLOW_LINK_BITS < 8u ? (int32_t)MCUFLOW_LINK_CODE_ZP : (int32_t)MCUFLOW_INTERMEDIATE_ZERO_POINT;
    const uint32_t scale = (uint32_t)MCUFLOW_INTERMEDIATE_SCALE_BITS +
                           (MCUFLOW_LINK_BITS < 8u ? (uint32_t)MCUFLOW_LINK_SHIFT << 23 : 0u);
    *caps |= MCUFLOW_CAP_LEAN;
    p[n] = (uint8_t)MCUFLOW_LINK_BITS;
    mcuflow_put_u16(p + n + 1u, (uint16_t)(int16_t)zp);
    mcuflow_put_u32(p + n + 3u, scale);
    n = (uint16_t)(n + MCUFLOW_HELLO_LEAN_LEN);
#endif
    if (replay_table(&count) != 0) {
        *caps |= MCUFLOW_CAP_REPLAY;
        mcuflow_put_u32(p + n, count);
        n = (uint16_t)(n + MCUFLOW_HELLO_REPLAY_LEN);
    }
    return n;
}

static uint16_t hello_payload(serve_link_t *l) {
    uint8_t *p = payload_out(l);
    const char *board = platform_board_name();
    uint32_t caps =
        MCUFLOW_CAP_ENC_ALL | MCUFLOW_CAP_DEDUP | MCUFLOW_CAP_BYE | MCUFLOW_CAP_INFER_SPARSE;
    uint16_t i, n, k = 0;
#if MCUFLOW_SERVE_FRAGMENTS
    caps |= MCUFLOW_CAP_FRAGMENT;
#endif
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
    mcuflow_put_u16(p + 6, (uint16_t)MCUFLOW_INPUT_LEN);
    mcuflow_put_u16(p + 8, (uint16_t)MCUFLOW_INTERMEDIATE_LEN);
    p[10] = (uint8_t)MCUFLOW_NUM_CLASSES;
    p[11] = (uint8_t)MCUFLOW_NUM_EXITS;
    mcuflow_put_u16(p + 12, (uint16_t)SERVE_RX_MAX_PAYLOAD);
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
    n = SERVE_HELLO_CLOCK_END(p, (uint16_t)(MCUFLOW_HELLO_FIXED_LEN + k + MCUFLOW_HELLO_INPUT_QUANT_LEN));
#else
    n = SERVE_HELLO_CLOCK_END(p, (uint16_t)(MCUFLOW_HELLO_FIXED_LEN + k));
#endif
    n = SERVE_HELLO_SHAPE(p, hello_tail(p, n, &caps)); /* capability-bit order: 14, 15, then 16 */
    mcuflow_put_u32(p + 2, caps);
    return n;
}

/* The device's input buffer: INFER_SPARSE inputs are decoded straight into the head's own input buffer when
 * it has one (no copy, no extra RAM), else here; fragmented bodies are reassembled here. INFER inputs are used
 * where they lie, unless that is the receive buffer in the kernels' scratch: then they are copied here. */
#if MCUFLOW_HEAD_INPUT_IN_ARENA
#define SPARSE_INPUT mcuflow_head_input()
#else
static int8_t sparse_input_buf[MCUFLOW_INPUT_LEN];
#define SPARSE_INPUT sparse_input_buf
#endif
#if !MCUFLOW_LINK_IDENTITY
/* The pruned (and possibly narrowed) head output, one code per byte, before encoding. */
static uint8_t link_codes[MCUFLOW_INTERMEDIATE_LEN];
#endif
static const mcuflow_linkopt_t link_opt = {MCUFLOW_LINK_PRUNE_THRESHOLD, MCUFLOW_LINK_PRUNE_TOPK, MCUFLOW_LINK_BITS,
                                           MCUFLOW_LINK_SHIFT, MCUFLOW_LINK_CODE_ZP};

/* OFFLOAD body: the smallest encoding of the compressed intermediate. Returns the payload length. */
static uint16_t offload_payload(serve_link_t *l, const mcuflow_head_result_t *res, uint32_t instructions) {
    uint8_t *p = payload_out(l);
#if MCUFLOW_LINK_IDENTITY
    /* what mcuflow_link_codes gives without pruning at 8 bits: the int8 values themselves, filled with zp */
    const uint8_t *link_codes = (const uint8_t *)res->intermediate;
    uint8_t fill = (uint8_t)res->intermediate_zero_point;
#else
    uint8_t fill = mcuflow_link_codes(res->intermediate, (uint16_t)MCUFLOW_INTERMEDIATE_LEN, res->intermediate_zero_point,
                                      &link_opt, link_codes);
#endif
    uint8_t enc = mcuflow_link_choose(link_codes, (uint16_t)MCUFLOW_INTERMEDIATE_LEN, link_opt.bits, fill);
    uint32_t scale_bits = res->intermediate_scale_bits;
    int32_t zp = res->intermediate_zero_point;
    uint32_t body;
    if (link_opt.bits < 8u) {
        /* scale * 2^shift: add to the float32 exponent (the export keeps the scale a normal number) */
        scale_bits += (uint32_t)link_opt.shift << 23;
        zp = link_opt.code_zp;
    }
    body = mcuflow_link_encode(enc, link_codes, (uint16_t)MCUFLOW_INTERMEDIATE_LEN, link_opt.bits, fill,
                               p + MCUFLOW_OFFLOAD_FIXED_LEN, MCUFLOW_INTERMEDIATE_LEN);
    if (body == 0u) {
        return 0; /* cannot happen: the chosen encoding is never larger than dense */
    }
    p[0] = enc;
    p[1] = link_opt.bits;
    mcuflow_put_u16(p + 2, (uint16_t)MCUFLOW_INTERMEDIATE_LEN);
    mcuflow_put_u32(p + 4, (uint32_t)zp);
    mcuflow_put_u32(p + 8, scale_bits);
    mcuflow_put_u32(p + 12, instructions);
    return (uint16_t)(MCUFLOW_OFFLOAD_FIXED_LEN + body);
}

/* Runs an INFER (type INFER, body = the input) or INFER_SPARSE (body = encoding, fill, encoded input)
 * and writes the reply payload; returns the reply type. A sparse body is decoded into `scratch`. The head's
 * instruction (or cycle) count goes to *instructions. */
static uint8_t infer_payload(serve_link_t *l, uint8_t type, const uint8_t *body, uint32_t len, int8_t *scratch,
                             uint16_t *out_len, uint32_t *instructions) {
    mcuflow_head_result_t res;
    const int8_t *input = (const int8_t *)body;
    uint8_t *p = payload_out(l);
    uint32_t n;
    int rc;
    if (type == MCUFLOW_MSG_INFER_SPARSE) {
        if (len < 2u || body[0] != MCUFLOW_ENC_BITMAP ||
            mcuflow_bitmap_decode(body + 2, len - 2u, (int8_t)body[1], scratch, MCUFLOW_INPUT_LEN) != 0) {
            *out_len = error_payload(l, MCUFLOW_ERR_BAD_TENSOR_SIZE, "sparse input");
            return MCUFLOW_MSG_ERROR;
        }
        input = scratch;
    } else if (len != (uint32_t)MCUFLOW_INPUT_LEN) {
        *out_len = error_payload(l, MCUFLOW_ERR_BAD_TENSOR_SIZE, "input size");
        return MCUFLOW_MSG_ERROR;
    }
#if SERVE_RX_IN_SCRATCH
    if ((const uint8_t *)input >= l->rx.buf && (const uint8_t *)input < l->rx.buf + SERVE_RX_CAP) {
        /* received (or decoded) into the kernels' scratch, which the run overwrites: into the input buffer */
        uint8_t *dst = (uint8_t *)SPARSE_INPUT;
        uint32_t k;
        for (k = 0; k < (uint32_t)MCUFLOW_INPUT_LEN; k++) {
            dst[k] = ((const uint8_t *)input)[k];
        }
        input = (const int8_t *)dst;
    }
#endif
    platform_counter_reset();
    rc = mcuflow_head_run(input, &res);
    n = platform_counter_read();
    *instructions = n;
    if (rc != 0) {
        *out_len = error_payload(l, MCUFLOW_ERR_HEAD_FAILED, "head failed");
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
        *out_len = error_payload(l, MCUFLOW_ERR_INTERNAL, "intermediate");
        return MCUFLOW_MSG_ERROR;
    }
    *out_len = offload_payload(l, &res, n);
    if (*out_len == 0u) {
        *out_len = error_payload(l, MCUFLOW_ERR_INTERNAL, "encoding");
        return MCUFLOW_MSG_ERROR;
    }
    return MCUFLOW_MSG_OFFLOAD;
}

/* ---- fragmented requests ---- */
#if MCUFLOW_SERVE_FRAGMENTS

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
        if (l->reply_type == MCUFLOW_MSG_XFER_STATUS) {
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
    /* the parts not received; bits past the last part stay 0 (have[] has none there) */
    for (i = 0; i < nb; i++) {
        p[MCUFLOW_STATUS_FIXED_LEN + i] = (uint8_t)~x->have[i];
    }
    if (x->count % 8u) {
        p[MCUFLOW_STATUS_FIXED_LEN + nb - 1u] &= (uint8_t)((1u << (x->count % 8u)) - 1u);
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
    uint32_t check, i, instructions;
    if (len != MCUFLOW_COMMIT_LEN) {
        *out_len = error_payload(l, MCUFLOW_ERR_BAD_LENGTH, "commit size");
        return MCUFLOW_MSG_ERROR;
    }
    id = mcuflow_get_u16(p);
    count = p[2];
    inner = p[3];
    total = mcuflow_get_u16(p + 4);
    check = mcuflow_get_u32(p + 6);
    if (count == 0u || count > MCUFLOW_XFER_MAX_PARTS || total == 0u || total > (uint16_t)MCUFLOW_INPUT_LEN ||
        (inner != MCUFLOW_MSG_INFER && inner != MCUFLOW_MSG_INFER_SPARSE)) {
        *out_len = error_payload(l, MCUFLOW_ERR_BAD_TENSOR_SIZE, "commit fields");
        return MCUFLOW_MSG_ERROR;
    }
    if (x->answered && xfer_is_current(l, id, count) && x->inner == inner && x->total == total && x->check == check) {
        /* answered already (under another seq): the same reply again, re-stamped, not recomputed */
        *out_len = l->reply_len;
        type = l->reply_type;
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
    type = infer_payload(l, inner, body, total, scratch, out_len, &instructions);
    send_reply(l, type, seq, *out_len);
    x->answered = 1;
    x->inner = inner;
    x->total = total;
    x->check = check;
    return 0; /* sent */
}

#endif /* MCUFLOW_SERVE_FRAGMENTS */

/* ---- sensor replay ---- */

/* A frame that arrived while a replay ran: it stopped the run and is handled right after it. */
static mcuflow_frame_t replay_pending;
static uint8_t replay_has_pending;

/* Takes whatever bytes wait on the UART, without blocking; 1 when they completed a good frame. */
static int replay_poll(serve_link_t *l) {
    int c;
    while ((c = platform_uart_poll()) >= 0) {
        if (mcuflow_rx_push(&l->rx, (uint8_t)c, &replay_pending) == MCUFLOW_RX_FRAME) {
            return 1;
        }
    }
    return 0;
}

/* A frame from the host has begun but not ended. When the receive buffer is the kernels' scratch the next
 * sample would overwrite it, so the run stops there (as the whole frame would stop it) and the main loop
 * reads the rest. */
#define SERVE_RX_BUSY(l) (SERVE_RX_IN_SCRATCH && (l)->rx.len != 0u)

static void put_u64(uint8_t *p, uint64_t v) {
    mcuflow_put_u32(p, (uint32_t)v);
    mcuflow_put_u32(p + 4, (uint32_t)(v >> 32));
}

/* REPLAY: run samples first .. first + count - 1 of the input table as a sensor would deliver them, send
 * each answer (seq = the sample's index mod 65536), then REPLAY_END, which is this request's reply. A frame
 * from the host stops the run after the sample in progress. Returns REPLAY_END's payload length. */
static uint16_t replay_run(serve_link_t *l, const uint8_t *p, uint32_t len) {
    uint32_t table_count, first, count, period, i, run = 0, n_local = 0, n_offload = 0, instructions;
    uint64_t sum_local = 0, sum_offload = 0;
    uint8_t status = MCUFLOW_REPLAY_DONE, *out;
    const uint8_t *table = replay_table(&table_count);
    uint16_t reply_len;
    if (len != MCUFLOW_REPLAY_LEN) {
        return 0;
    }
    first = mcuflow_get_u32(p);
    count = mcuflow_get_u32(p + 4);
    period = mcuflow_get_u32(p + 8);
    if (body_owner != 0) {
        body_owner->xfer.count = 0; /* the input buffer is about to be overwritten */
        body_owner = 0;
    }
    if (table == 0 || table_count == 0u) {
        status = MCUFLOW_REPLAY_NO_TABLE;
    } else if (first > table_count || count > table_count - first) {
        status = MCUFLOW_REPLAY_RANGE;
    }
    for (i = 0; status == MCUFLOW_REPLAY_DONE && i < count; i++) {
        const uint8_t *sample = table + MCUFLOW_TABLE_HEADER_LEN + (first + i) * (uint32_t)MCUFLOW_INPUT_LEN;
        uint8_t type;
#if MCUFLOW_HEAD_INPUT_IN_ARENA
        /* Into the head's own input buffer first, as a sensor driver would fill it: the head then reads it
         * in place, and the copy stays outside the counted window. */
        uint8_t *dst = (uint8_t *)mcuflow_head_input();
        uint32_t k;
        for (k = 0; k < (uint32_t)MCUFLOW_INPUT_LEN; k++) {
            dst[k] = sample[k];
        }
        sample = dst;
#endif
        type = infer_payload(l, MCUFLOW_MSG_INFER, sample, (uint32_t)MCUFLOW_INPUT_LEN, SPARSE_INPUT, &reply_len,
                             &instructions);
        send_reply(l, type, (uint16_t)(first + i), reply_len);
        run++;
        if (type == MCUFLOW_MSG_LOCAL_RESULT) {
            n_local++;
            sum_local += instructions;
        } else if (type == MCUFLOW_MSG_OFFLOAD) {
            n_offload++;
            sum_offload += instructions;
        }
        /* Paced: the next sample no sooner than `period` counter units after this one started. */
        do {
            if (!replay_has_pending && replay_poll(l)) {
                replay_has_pending = 1;
            }
        } while (!replay_has_pending && period != 0u && platform_counter_read() < period);
        if (replay_has_pending || SERVE_RX_BUSY(l)) {
            status = i + 1u < count ? MCUFLOW_REPLAY_STOPPED : MCUFLOW_REPLAY_DONE;
            break;
        }
    }
    out = payload_out(l);
    out[0] = status;
    mcuflow_put_u32(out + 1, first);
    mcuflow_put_u32(out + 5, run);
    mcuflow_put_u32(out + 9, n_local);
    mcuflow_put_u32(out + 13, n_offload);
    put_u64(out + 17, sum_local);
    put_u64(out + 25, sum_offload);
    return MCUFLOW_REPLAY_END_LEN;
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
        len = error_payload(l, MCUFLOW_ERR_BAD_VERSION, "version");
    } else if ((uint32_t)f->length != f->payload_avail) {
        type = MCUFLOW_MSG_ERROR;
        len = error_payload(l, MCUFLOW_ERR_BAD_LENGTH, "length");
    } else if (f->type == MCUFLOW_MSG_HELLO || f->type == MCUFLOW_MSG_BYE) {
        if (f->length != 0u && !(f->type == MCUFLOW_MSG_HELLO && f->length == MCUFLOW_HELLO_OPTIONS_LEN)) {
            type = MCUFLOW_MSG_ERROR;
            len = error_payload(l, MCUFLOW_ERR_BAD_LENGTH, "payload size");
        } else if (f->type == MCUFLOW_MSG_HELLO) {
            l->xfer.count = 0; /* a new session: no transfer survives it */
            /* The options the host asks for hold for the session; a HELLO without them ends them. */
            l->lean = (uint8_t)(SERVE_LEAN && f->length == MCUFLOW_HELLO_OPTIONS_LEN &&
                                (mcuflow_get_u32(f->payload) & MCUFLOW_CAP_LEAN) != 0u);
            type = MCUFLOW_MSG_HELLO_REPLY;
            len = hello_payload(l);
        } else {
            send_reply(l, MCUFLOW_MSG_BYE_REPLY, f->seq, 0);
            platform_exit(0);
            return;
        }
#if MCUFLOW_SERVE_FRAGMENTS
    } else if (f->type == MCUFLOW_MSG_INFER_PART) {
        handle_part(l, f->payload, f->length);
        return; /* parts are never answered and leave the reply cache alone */
    } else if (f->type == MCUFLOW_MSG_INFER_COMMIT) {
        type = commit_payload(l, f->seq, f->payload, f->length, (int8_t *)l->rx.buf, &len);
        if (type == 0u) {
            goto sent;
        }
#endif
    } else if (f->type == MCUFLOW_MSG_INFER || f->type == MCUFLOW_MSG_INFER_SPARSE) {
        if (body_owner != 0) {
            body_owner->xfer.count = 0; /* the input buffer is about to be overwritten */
            body_owner = 0;
        }
        uint32_t instructions;
        type = infer_payload(l, f->type, f->payload, f->length, SPARSE_INPUT, &len, &instructions);
    } else if (f->type == MCUFLOW_MSG_REPLAY) {
        len = replay_run(l, f->payload, f->length);
        type = MCUFLOW_MSG_REPLAY_END;
        if (len == 0u) {
            type = MCUFLOW_MSG_ERROR;
            len = error_payload(l, MCUFLOW_ERR_BAD_LENGTH, "replay size");
        }
    } else {
        type = MCUFLOW_MSG_ERROR;
        len = error_payload(l, MCUFLOW_ERR_BAD_TYPE, "type");
    }
    send_reply(l, type, f->seq, len);
#if MCUFLOW_SERVE_FRAGMENTS
sent:
#endif
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
            while (replay_has_pending) { /* the frame that stopped a replay (perhaps another REPLAY) */
                replay_has_pending = 0;
                frame = replay_pending;
                handle(&link0, &frame);
            }
        }
    }
}

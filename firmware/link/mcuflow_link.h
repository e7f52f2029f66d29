/* mcuflow wire protocol, device side: COBS, CRC-16/CCITT-FALSE, frames and a
 * byte-at-a-time receiver. See docs/protocol.md. No heap, C99. */
#ifndef MCUFLOW_LINK_H
#define MCUFLOW_LINK_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MCUFLOW_LINK_VERSION      1u
#define MCUFLOW_LINK_HEADER_LEN   6u
#define MCUFLOW_LINK_CRC_LEN      2u
#define MCUFLOW_LINK_MAX_PAYLOAD  1024u
#define MCUFLOW_LINK_MAX_RAW      (MCUFLOW_LINK_HEADER_LEN + MCUFLOW_LINK_MAX_PAYLOAD + MCUFLOW_LINK_CRC_LEN)
/* COBS worst case: one code byte plus one per full 254-byte block. */
#define MCUFLOW_LINK_MAX_ENCODED  (MCUFLOW_LINK_MAX_RAW + 1u + MCUFLOW_LINK_MAX_RAW / 254u)

/* Message types. */
#define MCUFLOW_MSG_HELLO         0x01u
#define MCUFLOW_MSG_INFER         0x02u
#define MCUFLOW_MSG_BYE           0x03u
#define MCUFLOW_MSG_INFER_SPARSE  0x04u
#define MCUFLOW_MSG_INFER_PART    0x05u
#define MCUFLOW_MSG_INFER_COMMIT  0x06u
#define MCUFLOW_MSG_REPLAY        0x07u
#define MCUFLOW_MSG_HELLO_REPLY   0x81u
#define MCUFLOW_MSG_LOCAL_RESULT  0x82u
#define MCUFLOW_MSG_OFFLOAD       0x83u
#define MCUFLOW_MSG_BYE_REPLY     0x84u
#define MCUFLOW_MSG_XFER_STATUS   0x85u
#define MCUFLOW_MSG_REPLAY_END    0x86u
#define MCUFLOW_MSG_ERROR         0xFFu

/* ERROR codes. */
#define MCUFLOW_ERR_BAD_VERSION      1u
#define MCUFLOW_ERR_BAD_TYPE         2u
#define MCUFLOW_ERR_BAD_LENGTH       3u
#define MCUFLOW_ERR_BAD_TENSOR_SIZE  4u
#define MCUFLOW_ERR_HEAD_FAILED      5u
#define MCUFLOW_ERR_INTERNAL         6u

/* Tensor encodings. */
#define MCUFLOW_ENC_DENSE         0u
#define MCUFLOW_ENC_BITMAP        1u
#define MCUFLOW_ENC_INDEX_VALUE   2u
#define MCUFLOW_ENC_ZERO_RUNS     3u
#define MCUFLOW_ENC_COUNT         4u

/* HELLO capabilities. */
#define MCUFLOW_CAP_ENC_DENSE     (1ul << MCUFLOW_ENC_DENSE)
#define MCUFLOW_CAP_ENC_ALL       ((1ul << MCUFLOW_ENC_COUNT) - 1ul)
#define MCUFLOW_CAP_DEDUP         (1ul << 8)
#define MCUFLOW_CAP_BYE           (1ul << 9)
#define MCUFLOW_CAP_INFER_SPARSE  (1ul << 10)
#define MCUFLOW_CAP_FRAGMENT      (1ul << 11)
#define MCUFLOW_CAP_INPUT_QUANT   (1ul << 12) /* HELLO_REPLY ends with the input scale and zero point */
#define MCUFLOW_CAP_CLOCK         (1ul << 13) /* then with the core clock (Hz) and how it was reached */
#define MCUFLOW_CAP_LEAN          (1ul << 14) /* lean answers on request; HELLO_REPLY then ends with their constants */
#define MCUFLOW_CAP_REPLAY        (1ul << 15) /* REPLAY from an input table; HELLO_REPLY then ends with its count */
#define MCUFLOW_CAP_SHAPE         (1ul << 16) /* then with the input and intermediate shapes (feature maps) */

#define MCUFLOW_HELLO_FIXED_LEN   51u
#define MCUFLOW_BOARD_NAME_MAX    32u
#define MCUFLOW_HELLO_INPUT_QUANT_LEN 5u /* float32 scale bits, int8 zero point */
#define MCUFLOW_HELLO_CLOCK_LEN   5u /* u32 core clock in Hz, u8 clock state (PLATFORM_CLOCK_*) */
#define MCUFLOW_HELLO_LEAN_LEN    7u /* the constants lean OFFLOADs leave out: bits u8, zero point i16, scale u32 */
#define MCUFLOW_HELLO_REPLAY_LEN  4u /* the input table's sample count, u32 (0: no valid table) */
#define MCUFLOW_HELLO_OPTIONS_LEN 4u /* a HELLO may carry the capability bits the host asks for, u32 */
#define MCUFLOW_HELLO_SHAPE_LEN   12u /* u16 h, w, c of the input, then of the intermediate (HWC order) */
#define MCUFLOW_LOCAL_RESULT_LEN  8u
#define MCUFLOW_OFFLOAD_FIXED_LEN 16u
#define MCUFLOW_ERROR_TEXT_MAX    64u

/* Lean answers (capability bit 14, docs/protocol.md "Lean frames"): a raw frame of type u8, seq u16, payload,
 * CRC-16, with no version or length field. The type byte marks the frame as lean (never 1, a version). */
#define MCUFLOW_LEAN_LOCAL        0xC2u /* payload: exit u8, class u8, confidence u16 */
#define MCUFLOW_LEAN_OFFLOAD      0xC8u /* + encoding id (0..7); payload: the encoded tensor */
#define MCUFLOW_LEAN_HEADER_LEN   3u
#define MCUFLOW_LEAN_LOCAL_LEN    4u

/* Sensor replay (REPLAY / REPLAY_END, docs/protocol.md "Sensor replay"). */
#define MCUFLOW_REPLAY_LEN        12u  /* first index u32, count u32, period u32 (counter units; 0: free-running) */
#define MCUFLOW_REPLAY_END_LEN    33u  /* status u8, first u32, run u32, local u32, offload u32, two u64 sums */
#define MCUFLOW_REPLAY_DONE       0u   /* REPLAY_END status: every sample asked for was run */
#define MCUFLOW_REPLAY_STOPPED    1u   /* a frame from the host stopped the run early */
#define MCUFLOW_REPLAY_NO_TABLE   2u   /* there is no valid input table */
#define MCUFLOW_REPLAY_RANGE      3u   /* the range asked for is not inside the table */
#define MCUFLOW_TABLE_MAGIC       0x5052434Dul /* "MCRP": the input table's header */
#define MCUFLOW_TABLE_VERSION     1u
#define MCUFLOW_TABLE_HEADER_LEN  16u  /* magic u32, version u8, 0 u8, input_len u16, count u32, CRC-32 u32 */

/* Fragmented requests (INFER_PART / INFER_COMMIT / XFER_STATUS, docs/protocol.md). */
#define MCUFLOW_XFER_MAX_PARTS    64u
#define MCUFLOW_PART_HEADER_LEN   6u   /* transfer id u16, index u8, count u8, offset u16 */
#define MCUFLOW_COMMIT_LEN        10u  /* transfer id u16, count u8, request type u8, length u16, CRC-32 */
#define MCUFLOW_STATUS_FIXED_LEN  4u   /* transfer id u16, count u8, reason u8; then the missing-part bitmap */
#define MCUFLOW_XFER_MISSING      0u   /* XFER_STATUS reason: these parts have not arrived */
#define MCUFLOW_XFER_BAD_CHECK    1u   /* every part arrived but the body failed its CRC-32: all discarded */

uint16_t mcuflow_crc16(const uint8_t *data, uint32_t len);
/* CRC-32 (IEEE 802.3, reflected, as zlib.crc32): pass 0 to start; chains like
 * zlib (crc32(crc32(0, a), b) == crc32(0, a || b)). */
uint32_t mcuflow_crc32(uint32_t crc, const uint8_t *data, uint32_t len);

/* Encodes len bytes; returns the encoded length, or 0 if out_cap is too small. */
uint32_t mcuflow_cobs_encode(const uint8_t *in, uint32_t len, uint8_t *out, uint32_t out_cap);
/* Decodes len bytes (no delimiter); out may equal in. Returns the decoded
 * length, or -1 on a malformed input or if out_cap is too small. */
int32_t mcuflow_cobs_decode(const uint8_t *in, uint32_t len, uint8_t *out, uint32_t out_cap);

/* Bitmap encoding of n int8 values: ceil(n/8) bitmap bytes (bit i, LSB first:
 * element i differs from fill), then the differing values in order. Decodes
 * exactly n values into out; returns 0, or -1 if the sizes disagree or bits
 * past n are set (out then holds the values decoded before the error). */
int mcuflow_bitmap_decode(const uint8_t *in, uint32_t len, int8_t fill, int8_t *out, uint32_t n);

/* OFFLOAD compression (docs/protocol.md, "Link compression"). With d = q - zp:
 * elements with |d| <= threshold are pruned, then all but the topk largest |d|
 * (ties: lower index first; 0 keeps all); bits < 8 turns each d into the code
 * clamp(((d + 2^(shift-1)) >> shift) + code_zp, 0, 2^bits - 1). bits == 8 keeps q. */
typedef struct {
    uint8_t threshold;
    uint16_t topk;
    uint8_t bits;      /* 2..8 */
    uint8_t shift;     /* 0..8, bits < 8 only */
    uint8_t code_zp;   /* 0 or 2^(bits-1), bits < 8 only */
} mcuflow_linkopt_t;

/* Writes the n codes (bits wide, held in bytes) of int8 q into codes; returns the fill code
 * (the code of the real value 0: zp as a byte when bits == 8, else code_zp). */
uint8_t mcuflow_link_codes(const int8_t *q, uint32_t n, int32_t zp, const mcuflow_linkopt_t *opt, uint8_t *codes);
/* Body size of encoding enc for these codes (0 for an unknown encoding). */
uint32_t mcuflow_link_size(uint8_t enc, const uint8_t *codes, uint32_t n, uint8_t bits, uint8_t fill);
/* Writes encoding enc of the codes into out; returns its size, or 0 if out_cap is too small. */
uint32_t mcuflow_link_encode(uint8_t enc, const uint8_t *codes, uint32_t n, uint8_t bits, uint8_t fill,
                             uint8_t *out, uint32_t out_cap);
/* The smallest encoding (lowest id on a tie). */
uint8_t mcuflow_link_choose(const uint8_t *codes, uint32_t n, uint8_t bits, uint8_t fill);

/* The samples of the input table at `table` (a region of `capacity` bytes), or 0 when its header is not a
 * valid mcuflow table for inputs of input_len bytes that fits the region. */
uint32_t mcuflow_table_count(const uint8_t *table, uint32_t capacity, uint32_t input_len);

/* A lean frame in place around its payload: the lean header goes into the 3 bytes before `payload`, the CRC
 * after it. The frame is payload - 3 .. payload + len + 2; returns its length. */
uint32_t mcuflow_lean_build(uint8_t lean_type, uint16_t seq, uint8_t *payload, uint16_t len);

/* Writes header + payload + CRC into raw; returns its length or 0 if it does not fit. */
uint32_t mcuflow_frame_build(uint8_t type, uint16_t seq, const uint8_t *payload, uint16_t len,
                             uint8_t *raw, uint32_t raw_cap);

typedef struct {
    uint8_t version;
    uint8_t type;
    uint16_t seq;
    uint16_t length;          /* the header's length field */
    uint16_t crc;
    uint32_t payload_avail;   /* bytes actually present between header and CRC */
    const uint8_t *payload;   /* points into the receiver; valid until the next push */
} mcuflow_frame_t;

typedef struct {
    uint8_t *buf;             /* cap bytes, the caller's: encoded bytes go in, the frame is decoded in place */
    uint32_t cap;
    uint32_t len;
    uint8_t overflow;
    uint32_t dropped;         /* frames dropped: bad COBS, bad CRC, too short, too long */
} mcuflow_rx_t;

/* The largest raw frame (header, payload, CRC) whose encoding fits a receive buffer of cap bytes. */
#define MCUFLOW_RX_MAX_RAW(cap) ((cap) - 1u - (cap) / 255u)

#define MCUFLOW_RX_NONE     0
#define MCUFLOW_RX_FRAME    1
#define MCUFLOW_RX_DROPPED  (-1)

/* A receiver into buf (cap bytes, at least 8; MCUFLOW_LINK_MAX_ENCODED takes every frame the protocol allows):
 * longer frames are dropped as oversized. */
void mcuflow_rx_init(mcuflow_rx_t *rx, uint8_t *buf, uint32_t cap);
/* Feeds one byte. Returns MCUFLOW_RX_FRAME when a frame with a good CRC ended
 * (filled into *frame), MCUFLOW_RX_DROPPED when a bad one ended, else NONE. */
int mcuflow_rx_push(mcuflow_rx_t *rx, uint8_t byte, mcuflow_frame_t *frame);

static inline void mcuflow_put_u16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)(v & 0xFFu);
    p[1] = (uint8_t)(v >> 8);
}
static inline void mcuflow_put_u32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v & 0xFFu);
    p[1] = (uint8_t)((v >> 8) & 0xFFu);
    p[2] = (uint8_t)((v >> 16) & 0xFFu);
    p[3] = (uint8_t)(v >> 24);
}
static inline uint16_t mcuflow_get_u16(const uint8_t *p) {
    return (uint16_t)(p[0] | ((uint16_t)p[1] << 8));
}
static inline uint32_t mcuflow_get_u32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

#ifdef __cplusplus
}
#endif

#endif /* MCUFLOW_LINK_H */

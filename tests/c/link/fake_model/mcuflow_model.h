/* A stand-in for the generated mcuflow_model.h, for testing the protocol loop on
 * the host. The fake head's behaviour is mirrored in tests/test_protocol_c.py. */
#ifndef MCUFLOW_MODEL_H
#define MCUFLOW_MODEL_H

#include <stdint.h>

#define MCUFLOW_INPUT_LEN         784
#define MCUFLOW_INTERMEDIATE_LEN  40
#define MCUFLOW_NUM_CLASSES       10
#define MCUFLOW_NUM_EXITS         1
/* The fake head's offloads: zero point -128, scale 2^-7 (fake_head.c); lean answers need them here. */
#define MCUFLOW_INTERMEDIATE_ZERO_POINT  (-128)
#define MCUFLOW_INTERMEDIATE_SCALE_BITS  0x3C000000u

/* The real header has `extern const uint8_t mcuflow_model_hash[32];`; the fake's
 * hash is set at start-up from MCUFLOW_FAKE_HASH, so it is writable. */
extern uint8_t mcuflow_fake_model_hash[32];
#define mcuflow_model_hash mcuflow_fake_model_hash

typedef struct {
    uint8_t exited;
    uint8_t exit_index;
    uint8_t label;
    uint16_t confidence_q15;
    const int8_t *intermediate;
    uint16_t intermediate_len;
    int32_t intermediate_zero_point;
    uint32_t intermediate_scale_bits;
} mcuflow_head_result_t;

int mcuflow_head_run(const int8_t *input, mcuflow_head_result_t *out);

#endif

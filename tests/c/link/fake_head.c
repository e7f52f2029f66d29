/* Fake head for the host harness (see fake_model/mcuflow_model.h).
 *   input[0] == 100: sleep 1.5 s before answering (a slow or lost answer)
 *   input[0] == 101: fail (mcuflow_head_run returns -1)
 *   sum of inputs even: exit 0, label |sum| % 10, confidence |sum| % 32768
 *   otherwise: offload q[i] = input[i] + input[783 - i] (wrapping), zero point -128, scale 2^-7
 * The platform counter advances by 1000 per head run plus |sum| % 1000, so a
 * recomputation is visible in the reported count. */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <time.h>

#include "host_platform.h"
#include "mcuflow_model.h"

uint8_t mcuflow_fake_model_hash[32];
static int8_t intermediate[MCUFLOW_INTERMEDIATE_LEN];
static uint32_t runs;

int mcuflow_head_run(const int8_t *input, mcuflow_head_result_t *out) {
    int32_t s = 0;
    uint32_t a;
    int i;
    for (i = 0; i < MCUFLOW_INPUT_LEN; i++) {
        s += input[i];
    }
    a = (uint32_t)(s < 0 ? -s : s);
    runs++;
    host_counter_add(1000u * runs + a % 1000u);
    if (input[0] == 100) {
        struct timespec ts = {1, 500000000L};
        nanosleep(&ts, NULL);
    }
    if (input[0] == 101) {
        return -1;
    }
    if ((s & 1) == 0) {
        out->exited = 1;
        out->exit_index = 0;
        out->label = (uint8_t)(a % 10u);
        out->confidence_q15 = (uint16_t)(a % 32768u);
        out->intermediate = 0;
        out->intermediate_len = 0;
        return 0;
    }
    for (i = 0; i < MCUFLOW_INTERMEDIATE_LEN; i++) {
        intermediate[i] = (int8_t)(uint8_t)((uint8_t)input[i] + (uint8_t)input[MCUFLOW_INPUT_LEN - 1 - i]);
    }
    out->exited = 0;
    out->intermediate = intermediate;
    out->intermediate_len = MCUFLOW_INTERMEDIATE_LEN;
    out->intermediate_zero_point = -128;
    out->intermediate_scale_bits = 0x3C000000u;
    return 0;
}

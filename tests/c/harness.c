/* Batch harness for parity tests: reads N * MCUFLOW_INPUT_LEN int8 from argv[1], runs the
 * generated head on each, writes one packed record per sample to argv[2]:
 * status, exited, exit_index, label, confidence_q15 (LE u16), evaluated[exits], logits[exits][classes],
 * intermediate[MCUFLOW_INTERMEDIATE_LEN] (zeros when the sample exited). */
#include <stdio.h>
#include <string.h>

#include "mcuflow_model.h"

#define NEXITS (MCUFLOW_NUM_EXITS > 0 ? MCUFLOW_NUM_EXITS : 1)

int main(int argc, char **argv)
{
    static int8_t input[MCUFLOW_INPUT_LEN];
    FILE *in;
    FILE *out;
    if (argc != 3) {
        fprintf(stderr, "usage: harness inputs.bin outputs.bin\n");
        return 2;
    }
    in = fopen(argv[1], "rb");
    out = fopen(argv[2], "wb");
    if (in == NULL || out == NULL) {
        fprintf(stderr, "cannot open files\n");
        return 2;
    }
    while (fread(input, 1, sizeof input, in) == sizeof input) {
        mcuflow_head_result_t r;
        uint8_t rec[6 + NEXITS + NEXITS * MCUFLOW_NUM_CLASSES + MCUFLOW_INTERMEDIATE_LEN];
        uint32_t e;
        int status;
        memset(rec, 0, sizeof rec);
        status = mcuflow_head_run(input, &r);
        rec[0] = (uint8_t)status;
        rec[1] = r.exited;
        rec[2] = r.exit_index;
        rec[3] = r.label;
        rec[4] = (uint8_t)(r.confidence_q15 & 0xffu);
        rec[5] = (uint8_t)(r.confidence_q15 >> 8);
        for (e = 0; e < MCUFLOW_NUM_EXITS; ++e) {
            const int8_t *l = mcuflow_exit_logits(e);
            rec[6 + e] = (uint8_t)(l != NULL);
            if (l != NULL) {
                memcpy(rec + 6 + NEXITS + e * MCUFLOW_NUM_CLASSES, l, MCUFLOW_NUM_CLASSES);
            }
        }
        if (!r.exited) {
            if (r.intermediate == NULL || r.intermediate_len != MCUFLOW_INTERMEDIATE_LEN) {
                fprintf(stderr, "bad intermediate\n");
                return 1;
            }
            memcpy(rec + 6 + NEXITS + NEXITS * MCUFLOW_NUM_CLASSES, r.intermediate, MCUFLOW_INTERMEDIATE_LEN);
        }
        if (fwrite(rec, 1, sizeof rec, out) != sizeof rec) {
            return 1;
        }
    }
    fclose(in);
    return fclose(out) == 0 ? 0 : 1;
}

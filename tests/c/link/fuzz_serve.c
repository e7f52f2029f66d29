/* libFuzzer target: the device's receiver and protocol loop (serve.c) on arbitrary bytes.
 * Build: clang -fsanitize=fuzzer,address,undefined (see tests/test_protocol_c.py).
 * serve.c is included so its static handler can be driven without the endless loop. */
#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>

#include "../../../firmware/app/serve.c"

uint8_t mcuflow_fake_model_hash[32];
static int8_t fuzz_intermediate[MCUFLOW_INTERMEDIATE_LEN];
static jmp_buf bye;
static uint32_t written;

int mcuflow_head_run(const int8_t *input, mcuflow_head_result_t *out) {
    int32_t s = 0;
    int i;
    for (i = 0; i < MCUFLOW_INPUT_LEN; i++) {
        s += input[i];
    }
    if (input[0] == 101) {
        return -1;
    }
    out->exited = (uint8_t)((s & 1) == 0);
    out->exit_index = 0;
    out->label = (uint8_t)((uint32_t)(s < 0 ? -s : s) % 10u);
    out->confidence_q15 = 1000;
    for (i = 0; i < MCUFLOW_INTERMEDIATE_LEN; i++) {
        fuzz_intermediate[i] = input[i];
    }
    out->intermediate = fuzz_intermediate;
    out->intermediate_len = MCUFLOW_INTERMEDIATE_LEN;
    out->intermediate_zero_point = -128;
    out->intermediate_scale_bits = 0x3C000000u;
    return 0;
}

/* A valid input table of three samples, so REPLAY runs too (built at the first call). */
#define FUZZ_TABLE_SAMPLES 3u
static uint8_t fuzz_table[MCUFLOW_TABLE_HEADER_LEN + FUZZ_TABLE_SAMPLES * MCUFLOW_INPUT_LEN];

static void fuzz_table_init(void) {
    uint32_t i;
    mcuflow_put_u32(fuzz_table, MCUFLOW_TABLE_MAGIC);
    fuzz_table[4] = MCUFLOW_TABLE_VERSION;
    mcuflow_put_u16(fuzz_table + 6, MCUFLOW_INPUT_LEN);
    mcuflow_put_u32(fuzz_table + 8, FUZZ_TABLE_SAMPLES);
    mcuflow_put_u32(fuzz_table + 12, mcuflow_crc32(0u, fuzz_table, 12u));
    for (i = MCUFLOW_TABLE_HEADER_LEN; i < sizeof fuzz_table; i++) {
        fuzz_table[i] = (uint8_t)(i * 7u);
    }
}

const uint8_t *platform_replay_table(uint32_t *capacity) {
    *capacity = sizeof fuzz_table;
    return fuzz_table;
}

void platform_init(void) {}
int platform_uart_getc(void) { return 0; }
int platform_uart_poll(void) { return -1; }
void platform_uart_write(const uint8_t *buf, uint32_t len) {
    uint32_t i;
    for (i = 0; i < len; i++) {
        written += buf[i]; /* touch every byte so ASan checks the reads */
    }
}
void platform_counter_reset(void) {}
uint32_t platform_counter_read(void) { return 42u; }
const char *platform_board_name(void) { return "fuzz"; }
void platform_exit(int status) {
    (void)status;
    longjmp(bye, 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    mcuflow_frame_t frame;
    size_t i;
    if (mcuflow_get_u32(fuzz_table) != MCUFLOW_TABLE_MAGIC) {
        fuzz_table_init();
    }
    serve_link_init(&link0);
    body_owner = 0;
    if (setjmp(bye) != 0) {
        return 0; /* BYE ends the session */
    }
    for (i = 0; i < size; i++) {
        if (mcuflow_rx_push(&link0.rx, data[i], &frame) == MCUFLOW_RX_FRAME) {
            handle(&link0, &frame);
        }
    }
    /* A final delimiter, so every input ends at least one frame. */
    if (mcuflow_rx_push(&link0.rx, 0u, &frame) == MCUFLOW_RX_FRAME) {
        handle(&link0, &frame);
    }
    return 0;
}

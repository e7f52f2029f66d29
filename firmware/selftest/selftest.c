/* Self-test application: exercises the platform layer and the generated model without the
 * wire protocol. Line-oriented text output, one-letter commands on input:
 *   'r' + MCUFLOW_INPUT_LEN raw bytes  run the head on that input, print the result line
 *   'e' + one byte                      echo the byte back as "echo=XX"
 *   'c' + 4 bytes N (little endian)    calibrate: count a loop of exactly 2*N instructions
 *   'b' + 4 bytes N (little endian)    benchmark: N head runs in one window (finer than one tick)
 *   'l' + 1 byte L + 4 bytes N          benchmark one layer: N runs of layer L's kernel (head, then exits)
 *   'q' + one byte                      exit through semihosting with that status
 *   '?'                                 (hardware only) the banner, result and "ready" again
 * At start it prints a banner and the result for a built-in input. Under QEMU the host is connected
 * before the firmware starts; on a board the host opens the port later and asks with '?'. */
#include <stdint.h>

#include "board_config.h"
#include "mcuflow_model.h"

/* The generated library's layer table (per-layer benchmarks); a hand-made model may not have one. */
#if defined(__has_include)
#if __has_include("mcuflow_internal.h")
#include "mcuflow_internal.h"
#endif
#endif
#include "platform.h"

static int8_t input[MCUFLOW_INPUT_LEN];

static void put_str(const char *s)
{
    const char *e = s;
    while (*e) {
        e++;
    }
    platform_uart_write((const uint8_t *)s, (uint32_t)(e - s));
}

static void put_u32(uint32_t v)
{
    char buf[11];
    int i = 10;
    buf[i] = 0;
    do {
        buf[--i] = (char)('0' + v % 10u);
        v /= 10u;
    } while (v);
    put_str(&buf[i]);
}

static void put_i32(int32_t v)
{
    if (v < 0) {
        put_str("-");
        put_u32((uint32_t)0 - (uint32_t)v);
    } else {
        put_u32((uint32_t)v);
    }
}

static void put_hex8(uint8_t v)
{
    static const char digits[] = "0123456789abcdef";
    char buf[3] = {digits[v >> 4], digits[v & 15u], 0};
    put_str(buf);
}

static void run_and_report(void)
{
    mcuflow_head_result_t res;
    /* An empty window first: its count is the measurement overhead to subtract. */
    platform_counter_reset();
    uint32_t overhead = platform_counter_read();
    platform_counter_reset();
    int rc = mcuflow_head_run(input, &res);
    uint32_t count = platform_counter_read();

    put_str("result rc=");
    put_i32(rc);
    put_str(" exited=");
    put_u32(res.exited);
    if (res.exited) {
        put_str(" exit=");
        put_u32(res.exit_index);
        put_str(" label=");
        put_u32(res.label);
        put_str(" conf=");
        put_u32(res.confidence_q15);
    } else {
        put_str(" zp=");
        put_i32(res.intermediate_zero_point);
        put_str(" inter=");
        for (uint16_t i = 0; i < res.intermediate_len; i++) {
            put_hex8((uint8_t)res.intermediate[i]);
        }
    }
    put_str(" count=");
    put_u32(count);
    put_str(" overhead=");
    put_u32(overhead);
    put_str("\n");
}

static void calibrate(uint32_t n)
{
    /* Two instructions per iteration: checks the board file's counter scale against a known count. */
    platform_counter_reset();
    uint32_t start = platform_counter_read();
#if defined(__ARM_ARCH_6M__)
    /* GCC assembles Thumb-1 inline asm in divided syntax, where SUB sets the flags. */
    __asm__ volatile("1: sub %0, #1\n\tbne 1b" : "+l"(n) : : "cc");
#else
    __asm__ volatile("1: subs %0, %0, #1\n\tbne 1b" : "+l"(n) : : "cc");
#endif
    uint32_t count = platform_counter_read() - start;
    put_str("calib count=");
    put_u32(count);
    put_str("\n");
}

static void benchmark(uint32_t n)
{
    mcuflow_head_result_t res;
    platform_counter_reset();
    for (uint32_t i = 0; i < n; i++) {
        (void)mcuflow_head_run(input, &res);
    }
    uint32_t count = platform_counter_read();
    put_str("bench runs=");
    put_u32(n);
    put_str(" count=");
    put_u32(count);
    put_str("\n");
}

#ifdef MCUFLOW_NUM_LAYERS
static int8_t layer_in[MCUFLOW_MAX_LAYER_IN];
static int8_t layer_out[MCUFLOW_MAX_LAYER_OUT];

static void benchmark_layer(uint32_t index, uint32_t n)
{
    put_str("layer index=");
    put_u32(index);
    if (index >= MCUFLOW_NUM_LAYERS) {
        put_str(" none\n");
        return;
    }
    const mcuflow_layer_entry_t *e = &mcuflow_layer_table[index];
    for (uint32_t i = 0; i < e->n_in; i++) {
        layer_in[i] = (int8_t)((int32_t)((i * 151u + 7u) % 256u) - 128);
    }
    platform_counter_reset();
    uint32_t overhead = platform_counter_read();
    platform_counter_reset();
    for (uint32_t i = 0; i < n; i++) {
        e->run(layer_in, layer_out);
    }
    uint32_t count = platform_counter_read();
    uint32_t sum = 0;
    for (uint32_t i = 0; i < e->n_out; i++) {
        sum = sum * 31u + (uint8_t)layer_out[i];
    }
    put_str(" format=");
    put_str(e->format);
    put_str(" n_in=");
    put_u32(e->n_in);
    put_str(" n_out=");
    put_u32(e->n_out);
    put_str(" runs=");
    put_u32(n);
    put_str(" count=");
    put_u32(count);
    put_str(" overhead=");
    put_u32(overhead);
    put_str(" checksum=");
    put_u32(sum);
    put_str("\n");
}
#else
static void benchmark_layer(uint32_t index, uint32_t n)
{
    (void)n;
    put_str("layer index=");
    put_u32(index);
    put_str(" none\n");
}
#endif

static uint32_t get_u32(void)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        v |= (uint32_t)platform_uart_getc() << (8 * i);
    }
    return v;
}

static void banner(void)
{
    put_str("mcuflow-selftest board=");
    put_str(platform_board_name());
#ifdef BOARD_HAS_CLOCK
    put_str(" unit=" BOARD_COUNTER_UNIT " clock=");
    put_u32(platform_clock_hz()); /* the clock its cycle counts count, as reached */
    put_str(" clock_state=");
    put_u32(platform_clock_state());
    put_str(" input_len=");
#else
    put_str(" unit=" BOARD_COUNTER_UNIT " input_len=");
#endif
    put_u32(MCUFLOW_INPUT_LEN);
    put_str(" hash=" MCUFLOW_MODEL_HASH_HEX "\n");

    for (uint32_t i = 0; i < MCUFLOW_INPUT_LEN; i++) {
        input[i] = (int8_t)((int32_t)((i * 73u + 19u) % 256u) - 128);
    }
    run_and_report();
    put_str("ready\n");
}

void mcuflow_serve(void)
{
    banner();
    for (;;) {
        int cmd = platform_uart_getc();
        if (cmd == 'r') {
            for (uint32_t i = 0; i < MCUFLOW_INPUT_LEN; i++) {
                input[i] = (int8_t)platform_uart_getc();
            }
            run_and_report();
        } else if (cmd == 'e') {
            uint8_t c = (uint8_t)platform_uart_getc();
            put_str("echo=");
            put_hex8(c);
            put_str("\n");
        } else if (cmd == 'c') {
            uint32_t n = get_u32();
            calibrate(n ? n : 1u);
        } else if (cmd == 'b') {
            benchmark(get_u32());
        } else if (cmd == 'l') {
            uint32_t index = (uint32_t)platform_uart_getc();
            benchmark_layer(index, get_u32());
#if !BOARD_SEMIHOSTING
        } else if (cmd == '?') {
            banner();
#endif
        } else if (cmd == 'q') {
            int status = platform_uart_getc();
            put_str("bye\n");
            platform_exit(status);
        }
    }
}

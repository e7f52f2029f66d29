/* Self-test application: exercises the platform layer and the generated model without the
 * wire protocol. Line-oriented text output, one-letter commands on input:
 *   'r' + MCUFLOW_INPUT_LEN raw bytes  run the head on that input, print the result line
 *   'e' + one byte                      echo the byte back as "echo=XX"
 *   'c' + 4 bytes N (little endian)    calibrate: count a loop of exactly 2*N instructions
 *   'b' + 4 bytes N (little endian)    benchmark: N head runs in one window (finer than one tick)
 *   'q' + one byte                      exit through semihosting with that status
 * At start it prints a banner and the result for a built-in input. */
#include <stdint.h>

#include "board_config.h"
#include "mcuflow_model.h"
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

static uint32_t get_u32(void)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        v |= (uint32_t)platform_uart_getc() << (8 * i);
    }
    return v;
}

void mcuflow_serve(void)
{
    put_str("mcuflow-selftest board=");
    put_str(platform_board_name());
    put_str(" unit=" BOARD_COUNTER_UNIT " input_len=");
    put_u32(MCUFLOW_INPUT_LEN);
    put_str(" hash=" MCUFLOW_MODEL_HASH_HEX "\n");

    for (uint32_t i = 0; i < MCUFLOW_INPUT_LEN; i++) {
        input[i] = (int8_t)((int32_t)((i * 73u + 19u) % 256u) - 128);
    }
    run_and_report();
    put_str("ready\n");

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
        } else if (cmd == 'q') {
            int status = platform_uart_getc();
            put_str("bye\n");
            platform_exit(status);
        }
    }
}

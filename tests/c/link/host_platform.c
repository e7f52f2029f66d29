/* The platform layer over stdin/stdout, so mcuflow_serve() runs as a host
 * process the Python side drives through a pipe or a pty.
 * MCUFLOW_FAKE_HASH (64 hex chars) sets the model hash; default bytes 0..31. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host_platform.h"
#include "mcuflow_model.h"
#include "platform.h"

static uint32_t counter;

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

void platform_init(void) {
    const char *hex = getenv("MCUFLOW_FAKE_HASH");
    int i;
    for (i = 0; i < 32; i++) {
        mcuflow_model_hash[i] = (uint8_t)i;
    }
    if (hex != NULL && strlen(hex) == 64) {
        for (i = 0; i < 32; i++) {
            int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
            if (hi < 0 || lo < 0) {
                fprintf(stderr, "bad MCUFLOW_FAKE_HASH\n");
                exit(2);
            }
            mcuflow_model_hash[i] = (uint8_t)(hi * 16 + lo);
        }
    }
}

int platform_uart_getc(void) {
    int c = getchar();
    if (c == EOF) {
        exit(0); /* the host closed the link */
    }
    return c;
}

void platform_uart_write(const uint8_t *buf, uint32_t len) {
    fwrite(buf, 1, len, stdout);
    fflush(stdout);
}

void platform_counter_reset(void) { counter = 0; }
uint32_t platform_counter_read(void) { return counter; }
void host_counter_add(uint32_t n) { counter += n; }
const char *platform_board_name(void) { return "host-fake"; }

void platform_exit(int status) {
    fflush(stdout);
    exit(status);
}

int main(void) {
    platform_init();
    mcuflow_serve();
    return 0;
}

/* The platform layer over stdin/stdout, so mcuflow_serve() runs as a host
 * process the Python side drives through a pipe or a pty.
 * MCUFLOW_FAKE_HASH (64 hex chars) sets the model hash; default bytes 0..31.
 * MCUFLOW_REPLAY_TABLE names a file read at start-up as the input table region of sensor replay. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <sys/select.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "host_platform.h"
#include "mcuflow_model.h"
#include "platform.h"

static uint32_t counter;
static uint8_t *replay_region;
static uint32_t replay_bytes;
/* stdin through our own buffer, so that platform_uart_poll can tell whether a byte waits. */
static uint8_t in_buf[4096];
static size_t in_len, in_pos;

static void load_replay_table(void);

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
    load_replay_table();
}

static int fill_input(int block) {
    ssize_t n;
    if (!block) {
        fd_set fds;
        struct timeval none = {0, 0};
        FD_ZERO(&fds);
        FD_SET(0, &fds);
        if (select(1, &fds, NULL, NULL, &none) <= 0) {
            return 0;
        }
    }
    n = read(0, in_buf, sizeof in_buf);
    if (n <= 0) {
        exit(0); /* the host closed the link */
    }
    in_len = (size_t)n;
    in_pos = 0;
    return 1;
}

int platform_uart_getc(void) {
    if (in_pos == in_len) {
        fill_input(1);
    }
    return in_buf[in_pos++];
}

int platform_uart_poll(void) {
    if (in_pos == in_len && !fill_input(0)) {
        return -1;
    }
    return in_buf[in_pos++];
}

static void load_replay_table(void) {
    const char *path = getenv("MCUFLOW_REPLAY_TABLE");
    FILE *f;
    long size;
    if (path == NULL) {
        return;
    }
    f = fopen(path, "rb");
    if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) <= 0 || fseek(f, 0, SEEK_SET) != 0) {
        fprintf(stderr, "cannot read MCUFLOW_REPLAY_TABLE %s\n", path);
        exit(2);
    }
    replay_region = malloc((size_t)size);
    if (replay_region == NULL || fread(replay_region, 1, (size_t)size, f) != (size_t)size) {
        fprintf(stderr, "cannot read MCUFLOW_REPLAY_TABLE %s\n", path);
        exit(2);
    }
    replay_bytes = (uint32_t)size;
    fclose(f);
}

const uint8_t *platform_replay_table(uint32_t *capacity) {
    *capacity = replay_bytes;
    return replay_region;
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

/* Exposes the device's COBS, CRC and receiver to tests/test_protocol_c.py.
 *   codec enc : stdin raw bytes -> stdout: CRC-16 (u16 LE) then COBS encoding
 *   codec dec : stdin COBS bytes -> stdout: decoded bytes, or exit status 3 if malformed
 *   codec crc32 : stdin bytes -> stdout: CRC-32 (u32 LE), computed in two chained halves
 *   codec rx  : stdin byte stream -> one line per event of mcuflow_rx_push:
 *               "F <type> <seq> <length> <avail> <payload hex>" or "D <dropped count>" */
#include <stdio.h>
#include <string.h>

#include "mcuflow_link.h"

static uint8_t in[1 << 16];
static uint8_t out[(1 << 16) + 512];

int main(int argc, char **argv) {
    size_t n = fread(in, 1, sizeof in, stdin);
    if (argc != 2) {
        return 2;
    }
    if (strcmp(argv[1], "enc") == 0) {
        uint16_t crc = mcuflow_crc16(in, (uint32_t)n);
        uint32_t m = mcuflow_cobs_encode(in, (uint32_t)n, out, sizeof out);
        uint8_t c[2];
        mcuflow_put_u16(c, crc);
        fwrite(c, 1, 2, stdout);
        fwrite(out, 1, m, stdout);
        return 0;
    }
    if (strcmp(argv[1], "dec") == 0) {
        int32_t m = mcuflow_cobs_decode(in, (uint32_t)n, in, (uint32_t)sizeof in);
        if (m < 0) {
            return 3;
        }
        fwrite(in, 1, (size_t)m, stdout);
        return 0;
    }
    if (strcmp(argv[1], "crc32") == 0) {
        uint32_t half = (uint32_t)n / 2u;
        uint8_t c[4];
        mcuflow_put_u32(c, mcuflow_crc32(mcuflow_crc32(0u, in, half), in + half, (uint32_t)n - half));
        fwrite(c, 1, 4, stdout);
        return 0;
    }
    if (strcmp(argv[1], "rx") == 0) {
        static mcuflow_rx_t rx;
        static uint8_t buf[MCUFLOW_LINK_MAX_ENCODED];
        mcuflow_frame_t f;
        size_t i;
        uint32_t k;
        mcuflow_rx_init(&rx, buf, sizeof buf);
        for (i = 0; i < n; i++) {
            int r = mcuflow_rx_push(&rx, in[i], &f);
            if (r == MCUFLOW_RX_FRAME) {
                printf("F %u %u %u %lu ", f.type, f.seq, f.length, (unsigned long)f.payload_avail);
                for (k = 0; k < f.payload_avail; k++) {
                    printf("%02x", f.payload[k]);
                }
                printf("\n");
            } else if (r == MCUFLOW_RX_DROPPED) {
                printf("D %lu\n", (unsigned long)rx.dropped);
            }
        }
        return 0;
    }
    return 2;
}

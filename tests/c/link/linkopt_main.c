/* Exposes the device's OFFLOAD compression (mcuflow_link_codes, _choose, _encode) to
 * tests/test_encodings_c.py. stdin: records of
 *   n u16, zp i8, threshold u8, topk u16, bits u8, shift u8, code_zp u8, then n int8 values;
 * stdout per record: fill u8, n codes, chosen encoding u8, then for each encoding 0..3 its
 * body size u16 and body. Exit status 3 on a truncated record. */
#include <stdio.h>

#include "mcuflow_link.h"

static uint8_t in[1 << 20];
static int8_t q[1024];
static uint8_t codes[1024];
static uint8_t body[4096];

int main(void) {
    size_t len = fread(in, 1, sizeof in, stdin), at = 0;
    while (at < len) {
        mcuflow_linkopt_t opt;
        uint32_t n, i;
        int32_t zp;
        uint8_t fill, enc, e;
        if (len - at < 9u) {
            return 3;
        }
        n = mcuflow_get_u16(in + at);
        zp = (int8_t)in[at + 2];
        opt.threshold = in[at + 3];
        opt.topk = mcuflow_get_u16(in + at + 4);
        opt.bits = in[at + 6];
        opt.shift = in[at + 7];
        opt.code_zp = in[at + 8];
        at += 9u;
        if (n == 0u || n > sizeof q || len - at < n) {
            return 3;
        }
        for (i = 0; i < n; i++) {
            q[i] = (int8_t)in[at + i];
        }
        at += n;
        fill = mcuflow_link_codes(q, n, zp, &opt, codes);
        enc = mcuflow_link_choose(codes, n, opt.bits, fill);
        fwrite(&fill, 1, 1, stdout);
        fwrite(codes, 1, n, stdout);
        fwrite(&enc, 1, 1, stdout);
        for (e = 0; e < MCUFLOW_ENC_COUNT; e++) {
            uint32_t s = mcuflow_link_encode(e, codes, n, opt.bits, fill, body, sizeof body);
            uint8_t sz[2];
            if (s != mcuflow_link_size(e, codes, n, opt.bits, fill)) {
                return 4;
            }
            mcuflow_put_u16(sz, (uint16_t)s);
            fwrite(sz, 1, 2, stdout);
            fwrite(body, 1, s, stdout);
        }
    }
    return 0;
}

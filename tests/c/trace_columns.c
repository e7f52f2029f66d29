/* Prints the columns the index-free kernel regenerates. Reads lines "n_in n_out degree p pass_step"
 * from stdin; for each, runs the kernel library's mcuflow_fc_index_free without a scratch buffer (the walk,
 * traced through trace_hook.h) and prints the n_out * degree traced columns on one line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trace_hook.h"

#include "mcuflow_kernels.h"

unsigned long *mcuflow_trace_buf;
unsigned long mcuflow_trace_len;

void mcuflow_trace(uint32_t col)
{
    mcuflow_trace_buf[mcuflow_trace_len++] = col;
}

int main(void)
{
    unsigned long n_in, n_out, degree, p, jump;
    while (scanf("%lu %lu %lu %lu %lu", &n_in, &n_out, &degree, &p, &jump) == 5) {
        unsigned long i;
        mcuflow_fc_t layer;
        int8_t *w = calloc(n_out * degree, 1);
        int8_t *x = calloc(n_in, 1);
        int8_t *y = calloc(n_out, 1);
        int32_t *bias = calloc(n_out, sizeof(int32_t));
        int32_t *mult = calloc(n_out, sizeof(int32_t));
        uint8_t *rshift = calloc(n_out, 1);
        mcuflow_trace_buf = calloc(n_out * degree, sizeof(unsigned long));
        mcuflow_trace_len = 0;
        for (i = 0; i < n_out; ++i) {
            mult[i] = 1073741824;
            rshift[i] = 31;
        }
        memset(&layer, 0, sizeof layer);
        layer.w = w;
        layer.bias = bias;
        layer.mult = mult;
        layer.rshift = rshift;
        layer.n_in = (uint32_t)n_in;
        layer.n_out = (uint32_t)n_out;
        layer.degree = (uint32_t)degree;
        layer.p = (uint32_t)p;
        layer.pass_step = (uint32_t)jump;
        layer.out_zp = 0;
        layer.act_min = -128;
        layer.act_max = 127;
        mcuflow_fc_index_free(&layer, x, y, NULL);
        for (i = 0; i < mcuflow_trace_len; ++i) {
            printf("%lu%c", mcuflow_trace_buf[i], i + 1 == mcuflow_trace_len ? '\n' : ' ');
        }
        free(w);
        free(x);
        free(y);
        free(bias);
        free(mult);
        free(rshift);
        free(mcuflow_trace_buf);
    }
    return 0;
}

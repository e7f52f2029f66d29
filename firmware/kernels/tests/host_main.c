/* Host entry point of the kernel golden tests: stdio, exit status 1 on any failure.
 *   cc -std=c99 -I firmware/kernels firmware/kernels/tests/kernel_tests.c firmware/kernels/tests/host_main.c
 * (add -DMCUFLOW_EMULATE_DSP=1 for the DSP variant on C models of its instructions). */
#include <stdio.h>

#include "kernel_tests.h"

void mcuflow_test_print(const char *s)
{
    fputs(s, stdout);
}

int main(void)
{
    int failed;
    setvbuf(stdout, NULL, _IOLBF, 0); /* a case that crashes still leaves the lines before it */
    failed = mcuflow_kernel_tests();
    fflush(stdout);
    return failed == 0 ? 0 : 1;
}

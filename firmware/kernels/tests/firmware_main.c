/* Firmware entry point of the kernel golden tests: the application firmware/core/main.c hands over to
 * after platform_init(). Prints over the board's UART, then exits (semihosting under QEMU) with status
 * 0 when every case passed, 1 otherwise. Uses only the platform layer (platform.h). */
#include <stdint.h>

#include "kernel_tests.h"
#include "platform.h"

void mcuflow_test_print(const char *s)
{
    uint32_t n = 0u;
    while (s[n] != '\0') {
        ++n;
    }
    platform_uart_write((const uint8_t *)s, n);
}

void mcuflow_serve(void)
{
    const int failed = mcuflow_kernel_tests();
    platform_exit(failed == 0 ? 0 : 1);
}

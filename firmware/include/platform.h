/* The firmware platform layer: everything the serving loop may use from a port.
 * A port (board + drivers) implements these; see docs/design.md. */
#ifndef MCUFLOW_PLATFORM_H
#define MCUFLOW_PLATFORM_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

void     platform_init(void);
int      platform_uart_getc(void);                 /* blocking, returns 0..255 */
void     platform_uart_write(const uint8_t *buf, uint32_t len);
void     platform_counter_reset(void);
uint32_t platform_counter_read(void);              /* instructions (QEMU) or cycles (hardware) */
const char *platform_board_name(void);
void     platform_exit(int status);                /* semihosting exit under QEMU */

/* Provided by the application (firmware/app or firmware/selftest). */
void mcuflow_serve(void);

#ifdef __cplusplus
}
#endif

#endif /* MCUFLOW_PLATFORM_H */

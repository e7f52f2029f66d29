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
int      platform_uart_poll(void);                 /* never blocks: a byte 0..255, or -1 when none waits */
void     platform_uart_write(const uint8_t *buf, uint32_t len);
void     platform_counter_reset(void);
uint32_t platform_counter_read(void);              /* instructions (QEMU) or cycles (hardware) */
const char *platform_board_name(void);
/* Boards with a clock setup ([clock] in the board file) only: the core clock in use and how it was
 * reached (PLATFORM_CLOCK_*; HELLO_REPLY reports both, docs/protocol.md). */
uint32_t platform_clock_hz(void);
uint8_t  platform_clock_state(void);
void     platform_exit(int status);                /* semihosting exit under QEMU */
/* Where sensor replay reads its inputs (docs/protocol.md "Sensor replay"): the start of the board's
 * input table region and its size in *capacity, or NULL when the build has none. The region holds an
 * mcuflow input table (header + samples) placed there before boot (QEMU's loader) or linked into flash. */
const uint8_t *platform_replay_table(uint32_t *capacity);

#define PLATFORM_CLOCK_RESET     0u /* the reset clock, as the board file asks (full_speed = false) */
#define PLATFORM_CLOCK_FULL      1u /* the board's full-speed clock */
#define PLATFORM_CLOCK_NO_OSC    2u /* fallback to the reset clock: the oscillator did not start */
#define PLATFORM_CLOCK_NO_LOCK   3u /* fallback: the PLL did not lock */
#define PLATFORM_CLOCK_NO_REG    4u /* fallback: the regulator (voltage scale, over-drive) was not ready */
#define PLATFORM_CLOCK_NO_FLASH  5u /* fallback: the flash did not take its wait states */
#define PLATFORM_CLOCK_NO_SWITCH 6u /* fallback: the switch to the new clock was not confirmed */

/* Provided by the application (firmware/app or firmware/selftest). */
void mcuflow_serve(void);

#ifdef __cplusplus
}
#endif

#endif /* MCUFLOW_PLATFORM_H */

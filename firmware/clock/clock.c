/* What every clock setup shares: the state it reached, which the UART driver reads for its divisor
 * (PORT_UART_DIVISOR) and HELLO reports (platform_clock_hz / platform_clock_state). */
#include "platform.h"
#include "port.h"

uint8_t port_clock_state;

uint32_t platform_clock_hz(void)
{
    return port_clock_state == PLATFORM_CLOCK_FULL ? BOARD_CLOCK_HZ : BOARD_CLOCK_RESET_HZ;
}

uint8_t platform_clock_state(void)
{
    return port_clock_state;
}

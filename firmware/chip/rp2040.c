/* RP2040: take IO, pads and UART0 out of reset and route GPIO0/1 to UART0. The clocks (crystal,
 * PLL, clk_peri for the UART) are firmware/clock/rp2040.c's, which runs first. */
#include "port.h"

#define RESETS_BASE 0x4000C000u
#define RESETS_RESET_CLR (RESETS_BASE + 0x3000u + 0x0u) /* atomic clear alias */
#define RESETS_DONE (RESETS_BASE + 0x8u)
#define RESET_IO_BANK0 (1u << 5)
#define RESET_PADS_BANK0 (1u << 8)
#define RESET_UART0 (1u << 22)

#define IO_BANK0_GPIO_CTRL(n) (0x40014000u + 0x04u + 8u * (n))
#define FUNCSEL_UART 2u

void port_chip_init(void)
{
    uint32_t mask = RESET_IO_BANK0 | RESET_PADS_BANK0 | RESET_UART0;
    mmio_write(RESETS_RESET_CLR, mask);
    (void)port_wait(RESETS_DONE, mask, mask); /* bounded: a block that never leaves reset stays silent, not hung */
    mmio_write(IO_BANK0_GPIO_CTRL(0), FUNCSEL_UART);
    mmio_write(IO_BANK0_GPIO_CTRL(1), FUNCSEL_UART);
}

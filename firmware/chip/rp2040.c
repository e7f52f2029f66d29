/* RP2040: run clk_ref/clk_sys from the 12 MHz crystal (the ring oscillator's frequency is too
 * imprecise for a UART), enable clk_peri, take IO and UART0 out of reset, route GPIO0/1 to UART0.
 * Built and checked for size only: not tested on hardware (see docs/results-firmware.md). */
#include "port.h"

#define RESETS_BASE 0x4000C000u
#define RESETS_RESET REG32(RESETS_BASE + 0x0u)
#define RESETS_RESET_CLR REG32(RESETS_BASE + 0x3000u + 0x0u) /* atomic clear alias */
#define RESETS_DONE REG32(RESETS_BASE + 0x8u)
#define RESET_IO_BANK0 (1u << 5)
#define RESET_PADS_BANK0 (1u << 8)
#define RESET_UART0 (1u << 22)

#define XOSC_BASE 0x40024000u
#define XOSC_CTRL REG32(XOSC_BASE + 0x00u)
#define XOSC_STATUS REG32(XOSC_BASE + 0x04u)
#define XOSC_STARTUP REG32(XOSC_BASE + 0x0Cu)

#define CLOCKS_BASE 0x40008000u
#define CLK_REF_CTRL REG32(CLOCKS_BASE + 0x30u)
#define CLK_REF_SELECTED REG32(CLOCKS_BASE + 0x38u)
#define CLK_PERI_CTRL REG32(CLOCKS_BASE + 0x48u)

#define IO_BANK0_GPIO_CTRL(n) REG32(0x40014000u + 0x04u + 8u * (n))
#define FUNCSEL_UART 2u

void port_chip_init(void)
{
    XOSC_STARTUP = (12000000u / 1000u + 255u) / 256u; /* ~1 ms in units of 256 cycles */
    XOSC_CTRL = (0xFABu << 12) | 0xAA0u;           /* ENABLE, FREQ_RANGE 1-15 MHz */
    while (!(XOSC_STATUS & (1u << 31))) {
    }
    CLK_REF_CTRL = 2u; /* clk_ref <- XOSC; clk_sys follows clk_ref after reset */
    while (!(CLK_REF_SELECTED & (1u << 2))) {
    }
    CLK_PERI_CTRL = (1u << 11); /* ENABLE, AUXSRC = clk_sys */

    uint32_t mask = RESET_IO_BANK0 | RESET_PADS_BANK0 | RESET_UART0;
    RESETS_RESET_CLR = mask;
    while ((RESETS_DONE & mask) != mask) {
    }
    IO_BANK0_GPIO_CTRL(0) = FUNCSEL_UART;
    IO_BANK0_GPIO_CTRL(1) = FUNCSEL_UART;
}

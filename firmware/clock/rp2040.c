/* RP2040 clock setup, after the datasheet's 2.15 (clocks), 2.16 (XOSC) and 2.18 (PLL):
 *   1. XOSC: 1-15 MHz range, startup delay ~1 ms, enable, wait STABLE;
 *   2. clk_ref <- XOSC (clk_sys follows clk_ref after reset), wait its SELECTED bit;
 *   3. full speed: PLL_SYS out of reset, REFDIV / FBDIV, power up (PD, VCOPD), wait LOCK, post
 *      dividers, power them up; clk_sys aux <- PLL_SYS, then clk_sys <- aux (the glitchless mux:
 *      the aux source changes only while clk_sys runs from clk_ref), wait SELECTED;
 *   4. clk_peri (the UART's clock) <- clk_sys, enabled.
 * Bounded waits. Without the PLL the firmware runs from the crystal's 12 MHz (the "reset clock"
 * of this board file: the ring oscillator is too imprecise for a UART); without the crystal it
 * stays on the ring oscillator and says so (the UART will not meet its baud then). */
#include "platform.h"
#include "port.h"

#define SET(addr) ((addr) + 0x2000u) /* atomic set / clear aliases of every APB register */
#define CLR(addr) ((addr) + 0x3000u)
#define RESETS_RESET 0x4000C000u
#define RESETS_DONE (0x4000C000u + 0x8u)
#define RESET_PLL_SYS (1u << 12)
#define XOSC_CTRL (0x40024000u + 0x00u)
#define XOSC_STATUS (0x40024000u + 0x04u)
#define XOSC_STARTUP (0x40024000u + 0x0Cu)
#define XOSC_STABLE (1u << 31)
#define XOSC_RANGE_1_15MHZ 0xAA0u
#define XOSC_ENABLE (0xFABu << 12)
#define CLK_REF_CTRL (0x40008000u + 0x30u)
#define CLK_REF_SELECTED (0x40008000u + 0x38u)
#define CLK_SYS_CTRL (0x40008000u + 0x3Cu)
#define CLK_SYS_SELECTED (0x40008000u + 0x44u)
#define CLK_PERI_CTRL (0x40008000u + 0x48u)
#define CLK_REF_SRC_XOSC 2u
#define CLK_SYS_SRC_AUX 1u
#define CLK_SYS_AUXSRC_PLL_SYS (0u << 5)
#define CLK_PERI_ENABLE (1u << 11) /* AUXSRC 0: clk_sys */
#define PLL_CS 0x40028000u
#define PLL_PWR (0x40028000u + 0x4u)
#define PLL_FBDIV_INT (0x40028000u + 0x8u)
#define PLL_PRIM (0x40028000u + 0xCu)
#define PLL_LOCK (1u << 31)
#define PLL_PWR_PD (1u << 0)
#define PLL_PWR_POSTDIVPD (1u << 3)
#define PLL_PWR_VCOPD (1u << 5)

MCUFLOW_FACT(clock_hz, BOARD_CLOCK_HZ);
MCUFLOW_FACT(clock_reset_hz, BOARD_CLOCK_RESET_HZ);
MCUFLOW_FACT(clock_full_speed, BOARD_CLOCK_FULL_SPEED);

static uint8_t crystal(void)
{
    mmio_write(XOSC_CTRL, XOSC_RANGE_1_15MHZ);
    mmio_write(XOSC_STARTUP, (BOARD_CLOCK_SOURCE_HZ / 1000u + 255u) / 256u); /* ~1 ms in 256-cycle units */
    mmio_write(SET(XOSC_CTRL), XOSC_ENABLE);
    if (!port_wait(XOSC_STATUS, XOSC_STABLE, XOSC_STABLE)) {
        return PLATFORM_CLOCK_NO_OSC;
    }
    mmio_write(CLK_REF_CTRL, CLK_REF_SRC_XOSC);
    if (!port_wait(CLK_REF_SELECTED, 1u << CLK_REF_SRC_XOSC, 1u << CLK_REF_SRC_XOSC)) {
        return PLATFORM_CLOCK_NO_SWITCH;
    }
    return PLATFORM_CLOCK_RESET;
}

#if BOARD_CLOCK_FULL_SPEED
static uint8_t pll(void)
{
    mmio_write(SET(RESETS_RESET), RESET_PLL_SYS);
    mmio_write(CLR(RESETS_RESET), RESET_PLL_SYS);
    if (!port_wait(RESETS_DONE, RESET_PLL_SYS, RESET_PLL_SYS)) {
        return PLATFORM_CLOCK_NO_LOCK;
    }
    mmio_write(PLL_CS, BOARD_CLOCK_PLL_M);
    mmio_write(PLL_FBDIV_INT, BOARD_CLOCK_PLL_N);
    mmio_write(CLR(PLL_PWR), PLL_PWR_PD | PLL_PWR_VCOPD);
    if (!port_wait(PLL_CS, PLL_LOCK, PLL_LOCK)) {
        return PLATFORM_CLOCK_NO_LOCK;
    }
    mmio_write(PLL_PRIM, (BOARD_CLOCK_PLL_P << 16) | (BOARD_CLOCK_PLL_Q << 12));
    mmio_write(CLR(PLL_PWR), PLL_PWR_POSTDIVPD);
    mmio_write(CLK_SYS_CTRL, CLK_SYS_AUXSRC_PLL_SYS); /* SRC stays clk_ref while the aux mux changes */
    mmio_write(CLK_SYS_CTRL, CLK_SYS_AUXSRC_PLL_SYS | CLK_SYS_SRC_AUX);
    if (!port_wait(CLK_SYS_SELECTED, 1u << CLK_SYS_SRC_AUX, 1u << CLK_SYS_SRC_AUX)) {
        mmio_write(CLK_SYS_CTRL, 0u); /* back to clk_ref, the crystal */
        return PLATFORM_CLOCK_NO_SWITCH;
    }
    return PLATFORM_CLOCK_FULL;
}
#endif

uint8_t port_clock_init(void)
{
    uint8_t state = crystal();
#if BOARD_CLOCK_FULL_SPEED
    if (state == PLATFORM_CLOCK_RESET) {
        state = pll();
    }
#endif
    mmio_write(CLK_PERI_CTRL, CLK_PERI_ENABLE);
    return state;
}

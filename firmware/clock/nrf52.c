/* nRF52 clock setup (nRF52840 PS 6.4 CLOCK, 6.10 NVMC): the CPU runs at 64 MHz from either HFCLK
 * source; full speed starts the 32 MHz crystal (HFXO, 40 ppm, where the internal HFINT is
 * +-1.5 %, enough to drift a UART off its baud) and turns the flash instruction cache on.
 *   1. clear EVENTS_HFCLKSTARTED, TASKS_HFCLKSTART, wait the event;
 *   2. HFCLKSTAT: source Xtal and running;
 *   3. NVMC ICACHECNF.CACHEEN.
 * Bounded waits; without the crystal the chip stays on HFINT (same 64 MHz, a looser baud). */
#include "platform.h"
#include "port.h"

#define CLOCK_TASKS_HFCLKSTART (0x40000000u + 0x000u)
#define CLOCK_EVENTS_HFCLKSTARTED (0x40000000u + 0x100u)
#define CLOCK_HFCLKSTAT (0x40000000u + 0x40Cu)
#define HFCLKSTAT_XTAL_RUNNING ((1u << 0) | (1u << 16))
#define NVMC_ICACHECNF (0x4001E000u + 0x540u)
#define ICACHECNF_CACHEEN (1u << 0)

MCUFLOW_FACT(clock_hz, BOARD_CLOCK_HZ);
MCUFLOW_FACT(clock_reset_hz, BOARD_CLOCK_RESET_HZ);
MCUFLOW_FACT(clock_full_speed, BOARD_CLOCK_FULL_SPEED);

uint8_t port_clock_init(void)
{
#if BOARD_CLOCK_FULL_SPEED
    mmio_write(CLOCK_EVENTS_HFCLKSTARTED, 0u);
    mmio_write(CLOCK_TASKS_HFCLKSTART, 1u);
    if (!port_wait(CLOCK_EVENTS_HFCLKSTARTED, 1u, 1u)) {
        return PLATFORM_CLOCK_NO_OSC;
    }
    if (!port_wait(CLOCK_HFCLKSTAT, HFCLKSTAT_XTAL_RUNNING, HFCLKSTAT_XTAL_RUNNING)) {
        return PLATFORM_CLOCK_NO_SWITCH;
    }
    mmio_write(NVMC_ICACHECNF, ICACHECNF_CACHEEN);
    return PLATFORM_CLOCK_FULL;
#else
    return PLATFORM_CLOCK_RESET;
#endif
}

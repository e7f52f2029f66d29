/* SysTick-based counter. Under QEMU with -icount shift=0 every instruction advances virtual
 * time by 1 ns, so ticks * 1e9 / systick_hz = instructions (deterministic). On hardware
 * (e.g. Cortex-M0+ without DWT) one tick is one core cycle. The 24-bit counter's wraps are
 * counted in the SysTick interrupt. */
#include "platform.h"
#include "port.h"

#define SYST_CSR REG32(0xE000E010)
#define SYST_RVR REG32(0xE000E014)
#define SYST_CVR REG32(0xE000E018)

#define SYST_ENABLE (1u << 0)
#define SYST_TICKINT (1u << 1)
#define SYST_CLKSOURCE_CPU (1u << 2)
#define SYST_PERIOD (1u << 24)

static volatile uint32_t wraps;

void SysTick_Handler(void)
{
    wraps++;
}

void port_counter_init(void)
{
    SYST_CSR = 0;
    SYST_RVR = SYST_PERIOD - 1u;
    SYST_CVR = 0;
    wraps = 0;
    SYST_CSR = SYST_ENABLE | SYST_TICKINT | SYST_CLKSOURCE_CPU;
}

void platform_counter_reset(void)
{
    /* Writing CVR clears it; the next tick reloads it without an interrupt. */
    SYST_CVR = 0;
    wraps = 0;
}

static uint32_t scale(uint32_t ticks)
{
#if BOARD_TICK_DEN == 1
    return ticks * (uint32_t)BOARD_TICK_NUM;
#else
    /* ticks * NUM / DEN without 64-bit division (no libgcc helper needed). */
    uint32_t q = ticks / (uint32_t)BOARD_TICK_DEN;
    uint32_t r = ticks % (uint32_t)BOARD_TICK_DEN;
    return q * (uint32_t)BOARD_TICK_NUM + (r * (uint32_t)BOARD_TICK_NUM) / (uint32_t)BOARD_TICK_DEN;
#endif
}

uint32_t platform_counter_read(void)
{
    uint32_t w, v;
    do {
        w = wraps;
        v = SYST_CVR;
    } while (w != wraps);
    uint32_t ticks = w * SYST_PERIOD + (v == 0u ? 0u : SYST_PERIOD - v);
    return scale(ticks);
}

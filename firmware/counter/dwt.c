/* DWT cycle counter (Cortex-M3/M4/M7 hardware). QEMU does not emulate it: QEMU boards use
 * counter/systick.c instead. */
#include "platform.h"
#include "port.h"

#define DEMCR REG32(0xE000EDFC)
#define DWT_CTRL REG32(0xE0001000)
#define DWT_CYCCNT REG32(0xE0001004)
#define DWT_LAR REG32(0xE0001FB0)

void port_counter_init(void)
{
    DEMCR |= (1u << 24); /* TRCENA */
    DWT_LAR = 0xC5ACCE55u; /* unlock (needed on Cortex-M7, ignored elsewhere) */
    DWT_CYCCNT = 0;
    DWT_CTRL |= 1u; /* CYCCNTENA */
}

void platform_counter_reset(void)
{
    DWT_CYCCNT = 0;
}

uint32_t platform_counter_read(void)
{
    return DWT_CYCCNT;
}

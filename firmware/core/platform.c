/* Generic part of the platform layer; drivers supply the port_* functions. */
#include "platform.h"
#include "port.h"

void platform_init(void)
{
#ifdef BOARD_HAS_CLOCK
    port_clock_state = port_clock_init(); /* before the UART: its divisor follows the clock reached */
#endif
    port_chip_init();
    port_uart_init();
    port_counter_init();
}

void platform_uart_write(const uint8_t *buf, uint32_t len)
{
    for (uint32_t i = 0; i < len; i++) {
        port_uart_putc(buf[i]);
    }
}

const char *platform_board_name(void)
{
    return BOARD_NAME;
}

void platform_exit(int status)
{
#if BOARD_SEMIHOSTING
    /* SYS_EXIT_EXTENDED (0x20): {ADP_Stopped_ApplicationExit, status}; QEMU exits with `status`. */
    volatile uint32_t block[2] = {0x20026u, (uint32_t)status};
    register uint32_t r0 __asm__("r0") = 0x20u;
    register volatile uint32_t *r1 __asm__("r1") = block;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
#else
    (void)status;
#endif
    /* Hardware (or a semihosting host that returned): park the core. */
    __asm__ volatile("cpsid i" ::: "memory");
    for (;;) {
        __asm__ volatile("wfi");
    }
}

/* The input table of sensor replay: linked into flash by `mcuflow build --replay-inputs` (a self-test on
 * hardware), else the RAM region the board file names for QEMU's loader ([qemu] replay_addr), else none. */
#if defined(MCUFLOW_REPLAY_LINKED)
extern const uint8_t mcuflow_replay_table[];
extern const uint32_t mcuflow_replay_table_bytes;
const uint8_t *platform_replay_table(uint32_t *capacity)
{
    *capacity = mcuflow_replay_table_bytes;
    return mcuflow_replay_table;
}
#elif defined(BOARD_REPLAY_ADDR)
const uint8_t *platform_replay_table(uint32_t *capacity)
{
    *capacity = BOARD_REPLAY_BYTES;
    return (const uint8_t *)(uintptr_t)BOARD_REPLAY_ADDR;
}
#else
const uint8_t *platform_replay_table(uint32_t *capacity)
{
    *capacity = 0u;
    return 0;
}
#endif

/* Internal interface between the generic platform code and the per-peripheral drivers.
 * Each driver file implements one of these groups; the board picks the files. */
#ifndef MCUFLOW_PORT_H
#define MCUFLOW_PORT_H

#include <stdint.h>

#include "board_config.h" /* generated from the board file by mcuflow build */
#include "facts.h"
#include "platform.h"

#define REG32(addr) (*(volatile uint32_t *)(uintptr_t)(addr))

/* Register access for the clock drivers, which the host tests compile against a recording fake
 * register file (tests/c/clock_harness.c, -DMCUFLOW_HOST_MMIO). */
#ifdef MCUFLOW_HOST_MMIO
uint32_t mmio_read(uint32_t addr);
void mmio_write(uint32_t addr, uint32_t value);
#else
static inline uint32_t mmio_read(uint32_t addr) { return REG32(addr); }
static inline void mmio_write(uint32_t addr, uint32_t value) { REG32(addr) = value; }
#endif
static inline void mmio_set(uint32_t addr, uint32_t bits) { mmio_write(addr, mmio_read(addr) | bits); }
static inline void mmio_modify(uint32_t addr, uint32_t clear, uint32_t set)
{
    mmio_write(addr, (mmio_read(addr) & ~clear) | set);
}

/* Every wait on a ready flag gives up after this many reads: far above the slowest start the
 * manuals give (HSE 2 ms at 16 MHz is ~4,000 polls), so a part that never answers costs tens of
 * milliseconds, never a hang. Counted in reads, not time: no timer runs yet. */
#define PORT_WAIT_TRIES 100000u
static inline int port_wait(uint32_t addr, uint32_t mask, uint32_t want)
{
    for (uint32_t i = 0; i < PORT_WAIT_TRIES; i++) {
        if ((mmio_read(addr) & mask) == want) {
            return 1;
        }
    }
    return 0;
}

#define NVIC_ISER(n) REG32(0xE000E100u + 4u * ((n) >> 5))
#define NVIC_ICER(n) REG32(0xE000E180u + 4u * ((n) >> 5))
#define NVIC_ICPR(n) REG32(0xE000E280u + 4u * ((n) >> 5))
#define NVIC_BIT(n) (1u << ((n) & 31u))

/* Waiting for input with BOARD_UART_RX_IRQ: the driver enables its RX interrupt only around a
 * WFI executed with interrupts masked (a pending interrupt still ends WFI), then disables it and
 * clears it in the NVIC before unmasking, so no handler ever runs. An idle emulator then costs
 * no host CPU, and a real chip sleeps instead of spinning. (Measured under QEMU: an interrupt
 * handler feeding a ring buffer is about twice as slow per byte, as exception entry costs more
 * than the register accesses it saves.) */
#define PORT_IRQ_MASK() __asm__ volatile("cpsid i" ::: "memory")
#define PORT_IRQ_UNMASK() __asm__ volatile("cpsie i" ::: "memory")
#define PORT_WFI() __asm__ volatile("wfi" ::: "memory")

void port_uart_init(void);
void port_uart_putc(uint8_t c);
void port_counter_init(void);
/* Hook for chip-specific setup that must run before anything else (clocks, resets). */
void port_chip_init(void);

#ifdef BOARD_HAS_CLOCK
/* The clock setup (firmware/clock/<family>.c), run first: returns PLATFORM_CLOCK_*. */
uint8_t port_clock_init(void);
extern uint8_t port_clock_state;
/* The UART divisor for the clock actually reached: the full-speed one, or the reset clock's. */
#define PORT_UART_DIVISOR(div) \
    (port_clock_state == PLATFORM_CLOCK_FULL ? div(BOARD_UART_CLOCK_HZ) : div(BOARD_UART_RESET_CLOCK_HZ))
#define PORT_UART_CLOCK_FACTS(div)                                    \
    MCUFLOW_FACT(uart_reset_clock_hz, BOARD_UART_RESET_CLOCK_HZ); \
    MCUFLOW_FACT(uart_reset_divisor, div(BOARD_UART_RESET_CLOCK_HZ))
#else
#define PORT_UART_DIVISOR(div) div(BOARD_UART_CLOCK_HZ)
#define PORT_UART_CLOCK_FACTS(div) typedef int port_no_clock_facts
#endif

#endif /* MCUFLOW_PORT_H */

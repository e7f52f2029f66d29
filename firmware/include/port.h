/* Internal interface between the generic platform code and the per-peripheral drivers.
 * Each driver file implements one of these groups; the board picks the files. */
#ifndef MCUFLOW_PORT_H
#define MCUFLOW_PORT_H

#include <stdint.h>

#include "board_config.h" /* generated from the board file by mcuflow build */

#define REG32(addr) (*(volatile uint32_t *)(uintptr_t)(addr))

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

#endif /* MCUFLOW_PORT_H */

/* ARM PL011 UART (RP2040 UART0/1, and other PrimeCell-based chips). */
#include "platform.h"
#include "facts.h"
#include "port.h"

#define UART_DR REG32(BOARD_UART_BASE + 0x000u)
#define UART_FR REG32(BOARD_UART_BASE + 0x018u)
#define UART_IBRD REG32(BOARD_UART_BASE + 0x024u)
#define UART_FBRD REG32(BOARD_UART_BASE + 0x028u)
#define UART_LCR_H REG32(BOARD_UART_BASE + 0x02Cu)
#define UART_CR REG32(BOARD_UART_BASE + 0x030u)
/* Divisor in 1/64ths: 64 * clock / (16 * baud), rounded; IBRD = div >> 6, FBRD = div & 63. */
#define UART_DIVISOR(clk) ((8u * (clk) / BOARD_UART_BAUD + 1u) / 2u)

MCUFLOW_FACT(uart_base, BOARD_UART_BASE);
MCUFLOW_FACT(uart_baud, BOARD_UART_BAUD);
MCUFLOW_FACT(uart_clock_hz, BOARD_UART_CLOCK_HZ);
MCUFLOW_FACT(uart_divisor, UART_DIVISOR(BOARD_UART_CLOCK_HZ));
PORT_UART_CLOCK_FACTS(UART_DIVISOR);
#ifdef BOARD_UART_RX_IRQ
MCUFLOW_FACT(uart_rx_irq, BOARD_UART_RX_IRQ);
#endif

#define FR_RXFE (1u << 4)
#define FR_TXFF (1u << 5)
#define LCR_H_FEN (1u << 4)
#define LCR_H_WLEN8 (3u << 5)
#define CR_UARTEN (1u << 0)
#define CR_TXE (1u << 8)
#define CR_RXE (1u << 9)

void port_uart_init(void)
{
    uint32_t div64 = PORT_UART_DIVISOR(UART_DIVISOR);
    UART_CR = 0;
    UART_IBRD = div64 >> 6;
    UART_FBRD = div64 & 63u;
    UART_LCR_H = LCR_H_WLEN8 | LCR_H_FEN; /* the LCR_H write latches the divisors */
    UART_CR = CR_UARTEN | CR_TXE | CR_RXE;
}

void port_uart_putc(uint8_t c)
{
    while (UART_FR & FR_TXFF) {
    }
    UART_DR = c;
}

int platform_uart_getc(void)
{
    while (UART_FR & FR_RXFE) {
    }
    return (int)(UART_DR & 0xFFu);
}

int platform_uart_poll(void)
{
    return (UART_FR & FR_RXFE) ? -1 : (int)(UART_DR & 0xFFu);
}

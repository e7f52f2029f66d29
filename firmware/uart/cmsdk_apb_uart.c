/* ARM CMSDK APB UART (MPS2 boards and their QEMU models). */
#include "platform.h"
#include "facts.h"
#include "port.h"

#define UART_DATA REG32(BOARD_UART_BASE + 0x00u)
#define UART_STATE REG32(BOARD_UART_BASE + 0x04u)
#define UART_CTRL REG32(BOARD_UART_BASE + 0x08u)
#define UART_INTCLEAR REG32(BOARD_UART_BASE + 0x0Cu)
#define UART_BAUDDIV REG32(BOARD_UART_BASE + 0x10u)
/* BAUDDIV = clock / baud; the CMSDK UART needs BAUDDIV >= 16. */
#define UART_DIVISOR(clk) ((clk) / BOARD_UART_BAUD < 16u ? 16u : (clk) / BOARD_UART_BAUD)

MCUFLOW_FACT(uart_base, BOARD_UART_BASE);
MCUFLOW_FACT(uart_baud, BOARD_UART_BAUD);
MCUFLOW_FACT(uart_clock_hz, BOARD_UART_CLOCK_HZ);
MCUFLOW_FACT(uart_divisor, UART_DIVISOR(BOARD_UART_CLOCK_HZ));
#ifdef BOARD_UART_RX_IRQ
MCUFLOW_FACT(uart_rx_irq, BOARD_UART_RX_IRQ);
#endif

#define STATE_TX_FULL (1u << 0)
#define STATE_RX_FULL (1u << 1)
#define CTRL_TX_EN (1u << 0)
#define CTRL_RX_EN (1u << 1)
#define CTRL_RX_INT_EN (1u << 3)
#define INT_RX (1u << 1)

void port_uart_init(void)
{
    UART_BAUDDIV = UART_DIVISOR(BOARD_UART_CLOCK_HZ);
    UART_CTRL = CTRL_TX_EN | CTRL_RX_EN;
#ifdef BOARD_UART_RX_IRQ
    NVIC_ISER(BOARD_UART_RX_IRQ) = NVIC_BIT(BOARD_UART_RX_IRQ);
#endif
}

void port_uart_putc(uint8_t c)
{
    while (UART_STATE & STATE_TX_FULL) {
    }
    UART_DATA = c;
}

int platform_uart_getc(void)
{
    while (!(UART_STATE & STATE_RX_FULL)) {
#ifdef BOARD_UART_RX_IRQ
        PORT_IRQ_MASK(); /* sleep until the RX interrupt pends: see port.h */
        UART_CTRL |= CTRL_RX_INT_EN;
        if (!(UART_STATE & STATE_RX_FULL)) {
            PORT_WFI();
        }
        UART_CTRL &= ~CTRL_RX_INT_EN;
        UART_INTCLEAR = INT_RX;
        NVIC_ICPR(BOARD_UART_RX_IRQ) = NVIC_BIT(BOARD_UART_RX_IRQ);
        PORT_IRQ_UNMASK();
#endif
    }
    return (int)(UART_DATA & 0xFFu);
}

int platform_uart_poll(void)
{
    return (UART_STATE & STATE_RX_FULL) ? (int)(UART_DATA & 0xFFu) : -1;
}

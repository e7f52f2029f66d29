/* STM32 USART, "v2" register layout (STM32F7/H7/L4/G0: ISR/ICR/RDR/TDR). */
#include "platform.h"
#include "facts.h"
#include "port.h"

#define USART_CR1 REG32(BOARD_UART_BASE + 0x00u)
#define USART_BRR REG32(BOARD_UART_BASE + 0x0Cu)
#define USART_ISR REG32(BOARD_UART_BASE + 0x1Cu)
#define USART_ICR REG32(BOARD_UART_BASE + 0x20u)
#define USART_RDR REG32(BOARD_UART_BASE + 0x24u)
#define USART_TDR REG32(BOARD_UART_BASE + 0x28u)
/* 16x oversampling: BRR = clock / baud. */
#define UART_DIVISOR(clk) (((clk) + BOARD_UART_BAUD / 2u) / BOARD_UART_BAUD)

MCUFLOW_FACT(uart_base, BOARD_UART_BASE);
MCUFLOW_FACT(uart_baud, BOARD_UART_BAUD);
MCUFLOW_FACT(uart_clock_hz, BOARD_UART_CLOCK_HZ);
MCUFLOW_FACT(uart_divisor, UART_DIVISOR(BOARD_UART_CLOCK_HZ));
PORT_UART_CLOCK_FACTS(UART_DIVISOR);
#ifdef BOARD_UART_RX_IRQ
MCUFLOW_FACT(uart_rx_irq, BOARD_UART_RX_IRQ);
#endif

#define CR1_UE (1u << 0)
#define CR1_RE (1u << 2)
#define CR1_TE (1u << 3)
#define ISR_ORE (1u << 3)
#define ISR_RXNE (1u << 5)
#define ISR_TXE (1u << 7)

void port_uart_init(void)
{
    USART_CR1 = 0;
    USART_BRR = PORT_UART_DIVISOR(UART_DIVISOR);
    USART_CR1 = CR1_UE | CR1_TE | CR1_RE;
}

void port_uart_putc(uint8_t c)
{
    while (!(USART_ISR & ISR_TXE)) {
    }
    USART_TDR = c;
}

int platform_uart_getc(void)
{
    for (;;) {
        uint32_t isr = USART_ISR;
        if (isr & ISR_RXNE) {
            return (int)(USART_RDR & 0xFFu);
        }
        if (isr & ISR_ORE) {
            USART_ICR = ISR_ORE; /* an overrun blocks reception until cleared */
        }
    }
}

int platform_uart_poll(void)
{
    uint32_t isr = USART_ISR;
    if (isr & ISR_ORE) {
        USART_ICR = ISR_ORE;
    }
    return (isr & ISR_RXNE) ? (int)(USART_RDR & 0xFFu) : -1;
}

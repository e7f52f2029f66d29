/* STM32 USART, "v1" register layout (STM32F1/F2/F4; QEMU's netduinoplus2 and stm32vldiscovery). */
#include "platform.h"
#include "facts.h"
#include "port.h"

#define USART_SR REG32(BOARD_UART_BASE + 0x00u)
#define USART_DR REG32(BOARD_UART_BASE + 0x04u)
#define USART_BRR REG32(BOARD_UART_BASE + 0x08u)
#define USART_CR1 REG32(BOARD_UART_BASE + 0x0Cu)
/* With 16x oversampling the mantissa/fraction encoding of BRR equals clock / baud. */
#define UART_DIVISOR(clk) (((clk) + BOARD_UART_BAUD / 2u) / BOARD_UART_BAUD)

MCUFLOW_FACT(uart_base, BOARD_UART_BASE);
MCUFLOW_FACT(uart_baud, BOARD_UART_BAUD);
MCUFLOW_FACT(uart_clock_hz, BOARD_UART_CLOCK_HZ);
MCUFLOW_FACT(uart_divisor, UART_DIVISOR(BOARD_UART_CLOCK_HZ));
PORT_UART_CLOCK_FACTS(UART_DIVISOR);
#ifdef BOARD_UART_RX_IRQ
MCUFLOW_FACT(uart_rx_irq, BOARD_UART_RX_IRQ);
#endif

#define CR1_RXNEIE (1u << 5)
#define SR_RXNE (1u << 5)
#define SR_TXE (1u << 7)
#define CR1_RE (1u << 2)
#define CR1_TE (1u << 3)
#define CR1_UE (1u << 13)

void port_uart_init(void)
{
    USART_BRR = PORT_UART_DIVISOR(UART_DIVISOR);
    USART_CR1 = CR1_UE | CR1_TE | CR1_RE;
#ifdef BOARD_UART_RX_IRQ
    NVIC_ISER(BOARD_UART_RX_IRQ) = NVIC_BIT(BOARD_UART_RX_IRQ);
#endif
}

void port_uart_putc(uint8_t c)
{
    while (!(USART_SR & SR_TXE)) {
    }
    USART_DR = c;
}

int platform_uart_getc(void)
{
    /* Reading SR then DR also clears an overrun, so a lost byte cannot wedge the receiver. */
#ifdef BOARD_UART_RX_IRQ
    /* Poll a while before sleeping: QEMU's STM32 USART model re-arms its socket input only
     * when the status register is read, so sleeping right away costs one timer tick per byte. */
    for (uint32_t spin = 0; spin < 20000u && !(USART_SR & SR_RXNE); spin++) {
    }
#endif
    while (!(USART_SR & SR_RXNE)) {
#ifdef BOARD_UART_RX_IRQ
        PORT_IRQ_MASK(); /* see port.h */
        USART_CR1 |= CR1_RXNEIE;
        if (!(USART_SR & SR_RXNE)) {
            PORT_WFI();
        }
        USART_CR1 &= ~CR1_RXNEIE;
        NVIC_ICPR(BOARD_UART_RX_IRQ) = NVIC_BIT(BOARD_UART_RX_IRQ);
        PORT_IRQ_UNMASK();
#endif
    }
    return (int)(USART_DR & 0xFFu);
}

int platform_uart_poll(void)
{
    return (USART_SR & SR_RXNE) ? (int)(USART_DR & 0xFFu) : -1;
}

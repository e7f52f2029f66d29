/* nRF52 UARTE (EasyDMA UART). DMA can only read RAM, so output goes through a small RAM buffer.
 * Reception uses one-byte DMA transfers; the UARTE's internal RX FIFO holds a few bytes between
 * them, which is enough for the request/response protocol at 115200 baud. */
#include "platform.h"
#include "facts.h"
#include "port.h"

#define UARTE_TASKS_STARTRX REG32(BOARD_UART_BASE + 0x000u)
#define UARTE_TASKS_STARTTX REG32(BOARD_UART_BASE + 0x008u)
#define UARTE_EVENTS_ENDRX REG32(BOARD_UART_BASE + 0x110u)
#define UARTE_EVENTS_ENDTX REG32(BOARD_UART_BASE + 0x120u)
#define UARTE_ENABLE REG32(BOARD_UART_BASE + 0x500u)
#define UARTE_PSEL_TXD REG32(BOARD_UART_BASE + 0x50Cu)
#define UARTE_PSEL_RXD REG32(BOARD_UART_BASE + 0x514u)
#define UARTE_BAUDRATE REG32(BOARD_UART_BASE + 0x524u)
#define UARTE_RXD_PTR REG32(BOARD_UART_BASE + 0x534u)
#define UARTE_RXD_MAXCNT REG32(BOARD_UART_BASE + 0x538u)
#define UARTE_TXD_PTR REG32(BOARD_UART_BASE + 0x544u)
#define UARTE_TXD_MAXCNT REG32(BOARD_UART_BASE + 0x548u)
#define UARTE_CONFIG REG32(BOARD_UART_BASE + 0x56Cu)

MCUFLOW_FACT(uart_base, BOARD_UART_BASE);
MCUFLOW_FACT(uart_baud, BOARD_UART_BAUD);
MCUFLOW_FACT(uart_clock_hz, BOARD_UART_CLOCK_HZ);
MCUFLOW_FACT(uart_divisor, BOARD_UART_BAUD_REG);
/* The UARTE's baud generator runs from HFCLK / 4 whichever oscillator drives it: one divisor. */
#define UART_SAME_DIVISOR(clk) BOARD_UART_BAUD_REG
PORT_UART_CLOCK_FACTS(UART_SAME_DIVISOR);
#ifdef BOARD_UART_RX_IRQ
MCUFLOW_FACT(uart_rx_irq, BOARD_UART_RX_IRQ);
#endif

#define UARTE_ENABLED 8u

static uint8_t rx_byte;
static uint8_t tx_byte;

static void start_rx(void)
{
    UARTE_EVENTS_ENDRX = 0;
    UARTE_RXD_PTR = (uint32_t)(uintptr_t)&rx_byte;
    UARTE_RXD_MAXCNT = 1;
    UARTE_TASKS_STARTRX = 1;
}

void port_uart_init(void)
{
    UARTE_ENABLE = 0;
    UARTE_PSEL_TXD = BOARD_UART_TX_PIN;
    UARTE_PSEL_RXD = BOARD_UART_RX_PIN;
    UARTE_BAUDRATE = BOARD_UART_BAUD_REG;
    UARTE_CONFIG = 0; /* 8N1, no flow control */
    UARTE_ENABLE = UARTE_ENABLED;
    start_rx();
}

void port_uart_putc(uint8_t c)
{
    tx_byte = c;
    UARTE_EVENTS_ENDTX = 0;
    UARTE_TXD_PTR = (uint32_t)(uintptr_t)&tx_byte;
    UARTE_TXD_MAXCNT = 1;
    UARTE_TASKS_STARTTX = 1;
    while (!UARTE_EVENTS_ENDTX) {
    }
}

int platform_uart_getc(void)
{
    while (!UARTE_EVENTS_ENDRX) {
    }
    int c = rx_byte;
    start_rx();
    return c;
}

int platform_uart_poll(void)
{
    int c;
    if (!UARTE_EVENTS_ENDRX) {
        return -1;
    }
    c = rx_byte;
    start_rx();
    return c;
}

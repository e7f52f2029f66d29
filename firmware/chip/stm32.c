/* STM32: enable the bus clocks the board file lists, then route the UART pins to their
 * alternate function. GPIO registers are laid out alike on F2/F4/F7/H7 (not F1). */
#include "port.h"

#define GPIO_MODER(base) REG32((base) + 0x00u)
#define GPIO_AFR(base, pin) REG32((base) + 0x20u + 4u * ((pin) >> 3))

typedef struct {
    uint32_t addr;
    uint32_t mask;
} clock_enable_t;

typedef struct {
    uint32_t gpio;
    uint8_t pin;
    uint8_t af;
} uart_pin_t;

static const clock_enable_t clock_enables[] = BOARD_CLOCK_ENABLES;
static const uart_pin_t uart_pins[] = BOARD_UART_PINS;

void port_chip_init(void)
{
    for (uint32_t i = 0; i < sizeof clock_enables / sizeof clock_enables[0]; i++) {
        if (clock_enables[i].addr != 0u) {
            REG32(clock_enables[i].addr) |= clock_enables[i].mask;
            (void)REG32(clock_enables[i].addr); /* read back: the clock must be running before use */
        }
    }
    for (uint32_t i = 0; i < sizeof uart_pins / sizeof uart_pins[0]; i++) {
        const uart_pin_t *p = &uart_pins[i];
        if (p->gpio == 0u) {
            continue;
        }
        uint32_t shift2 = 2u * p->pin;
        uint32_t shift4 = 4u * (p->pin & 7u);
        GPIO_AFR(p->gpio, p->pin) = (GPIO_AFR(p->gpio, p->pin) & ~(0xFu << shift4)) | ((uint32_t)p->af << shift4);
        GPIO_MODER(p->gpio) = (GPIO_MODER(p->gpio) & ~(3u << shift2)) | (2u << shift2); /* alternate function */
    }
}

/* Cortex-M startup: vector table, .data/.bss initialisation, weak default handlers.
 * Plain C, no vendor SDK; the linker script (generated from the board file) provides the symbols. */
#include <stdint.h>

#include "port.h"

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _estack;

int main(void);
void Reset_Handler(void);

static void default_handler(void)
{
    /* An unexpected exception: stop here so a debugger shows where. */
    for (;;) {
    }
}

void NMI_Handler(void) __attribute__((weak, alias("default_handler")));
void HardFault_Handler(void) __attribute__((weak, alias("default_handler")));
void MemManage_Handler(void) __attribute__((weak, alias("default_handler")));
void BusFault_Handler(void) __attribute__((weak, alias("default_handler")));
void UsageFault_Handler(void) __attribute__((weak, alias("default_handler")));
void SVC_Handler(void) __attribute__((weak, alias("default_handler")));
void DebugMon_Handler(void) __attribute__((weak, alias("default_handler")));
void PendSV_Handler(void) __attribute__((weak, alias("default_handler")));
void SysTick_Handler(void) __attribute__((weak, alias("default_handler")));

#if BOARD_NUM_IRQS > 0
/* A peripheral interrupt is only ever enabled to wake WFI (see port.h) and never taken; should
 * one be taken anyway, disable it rather than run away. */
static void irq_guard_handler(void)
{
    uint32_t irq;
    __asm__ volatile("mrs %0, ipsr" : "=r"(irq));
    irq -= 16u;
    NVIC_ICER(irq) = NVIC_BIT(irq);
}
#endif

/* The 16 architectural entries, plus entries up to the one peripheral interrupt the board uses
 * (the rest of the vendor table would be dead weight in flash). */
__attribute__((section(".vectors"), used)) void (*const vector_table[16 + BOARD_NUM_IRQS])(void) = {
    (void (*)(void))(uintptr_t)&_estack,
    Reset_Handler,
    NMI_Handler,
    HardFault_Handler,
    MemManage_Handler,
    BusFault_Handler,
    UsageFault_Handler,
    0,
    0,
    0,
    0,
    SVC_Handler,
    DebugMon_Handler,
    0,
    PendSV_Handler,
    SysTick_Handler,
#if BOARD_NUM_IRQS > 0
    [16 ... 15 + BOARD_NUM_IRQS] = irq_guard_handler,
#endif
};

void Reset_Handler(void)
{
#if defined(__ARM_FP)
    /* Grant full access to CP10/CP11 before any compiler-generated FPU instruction runs. */
    REG32(0xE000ED88) |= (0xFu << 20);
    __asm__ volatile("dsb\n\tisb" ::: "memory");
#endif
    uint32_t *src = &_sidata;
    for (uint32_t *dst = &_sdata; dst < &_edata;) {
        *dst++ = *src++;
    }
    for (uint32_t *dst = &_sbss; dst < &_ebss;) {
        *dst++ = 0;
    }
    (void)main();
    for (;;) {
    }
}

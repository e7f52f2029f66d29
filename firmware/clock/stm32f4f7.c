/* STM32F4 / STM32F7 clock setup: the main PLL from HSI or HSE to the board's rated speed, after
 * the sequence of RM0390 (F446) 5.1.4 / 6.3 and RM0385 (F7) 5.1.4 / 5.3, which the F401's RM0368
 * shares without over-drive:
 *   1. PWR clock on, regulator voltage scale (VOS may change only while the PLL is off);
 *   2. the PLL's source ready (HSI runs from reset; HSE started, with its bypass first);
 *   3. PLLCFGR M/N/P/Q and source (other bits kept: the F446's PLLR), PLLON, wait PLLRDY;
 *   4. wait VOSRDY (valid once the PLL runs), then over-drive: ODEN, wait ODRDY, ODSWEN, wait ODSWRDY;
 *   5. flash wait states for the new HCLK, read back (the manual's "check by reading FLASH_ACR");
 *   6. AHB/APB prescalers (the APBs must not exceed their maxima once SYSCLK rises);
 *   7. SW = PLL, wait SWS = PLL.
 * Each wait is bounded (port_wait). A step that does not complete leaves the chip on HSI: SW back
 * to HSI, prescalers /1, PLL (and HSE) off; extra flash wait states and the regulator settings are
 * harmless at 16 MHz and stay. QEMU's STM32F405 leaves the RCC unimplemented (reads 0): there the
 * first wait fails and the image runs on at the reset clock, as on a chip whose PLL never locks. */
#include "platform.h"
#include "port.h"

#define RCC_BASE 0x40023800u
#define RCC_CR (RCC_BASE + 0x00u)
#define RCC_PLLCFGR (RCC_BASE + 0x04u)
#define RCC_CFGR (RCC_BASE + 0x08u)
#define RCC_APB1ENR (RCC_BASE + 0x40u)
#define PWR_CR (0x40007000u + 0x00u) /* PWR_CR1 on the F7 */
#define PWR_CSR (0x40007000u + 0x04u) /* PWR_CSR1 on the F7 */
#define FLASH_ACR (0x40023C00u + 0x00u)

#define CR_HSIRDY (1u << 1)
#define CR_HSEON (1u << 16)
#define CR_HSERDY (1u << 17)
#define CR_HSEBYP (1u << 18)
#define CR_PLLON (1u << 24)
#define CR_PLLRDY (1u << 25)
#define PLLCFGR_MASK (0x3Fu | (0x1FFu << 6) | (3u << 16) | (1u << 22) | (0xFu << 24))
#define PLLCFGR_SRC_HSE (1u << 22)
#define CFGR_SW_MASK 3u
#define CFGR_SW_PLL 2u
#define CFGR_SWS_MASK (3u << 2)
#define CFGR_SWS_HSI (0u << 2)
#define CFGR_SWS_PLL (2u << 2)
#define CFGR_PRESCALERS ((0xFu << 4) | (7u << 10) | (7u << 13))
#define APB1ENR_PWREN (1u << 28)
#define PWR_VOS_MASK (3u << 14)
#define PWR_ODEN (1u << 16)
#define PWR_ODSWEN (1u << 17)
#define CSR_VOSRDY (1u << 14)
#define CSR_ODRDY (1u << 16)
#define CSR_ODSWRDY (1u << 17)
#define ACR_LATENCY_MASK 0xFu
#define ACR_PRFTEN (1u << 8)
#if defined(BOARD_CLOCK_STM32F7)
#define ACR_CACHES (1u << 9) /* ARTEN: the ART accelerator on the ITCM flash path */
#else
#define ACR_CACHES ((1u << 9) | (1u << 10)) /* ICEN | DCEN */
#endif

/* Register encodings (RM: RCC_CFGR HPRE, PPREx; PLLCFGR PLLP; PWR_CR VOS "scale N"). */
#define HPRE(div) ((div) == 1u ? 0u : (div) == 2u ? 8u : (div) == 4u ? 9u : (div) == 8u ? 10u : (div) == 16u ? 11u \
                   : (div) == 64u ? 12u : (div) == 128u ? 13u : (div) == 256u ? 14u : 15u)
#define PPRE(div) ((div) == 1u ? 0u : (div) == 2u ? 4u : (div) == 4u ? 5u : (div) == 8u ? 6u : 7u)
#define VOS(scale) ((4u - (scale)) << 14)
#define PLLCFGR_VALUE                                                                                 \
    (BOARD_CLOCK_PLL_M | (BOARD_CLOCK_PLL_N << 6) | ((BOARD_CLOCK_PLL_P / 2u - 1u) << 16) |          \
     (BOARD_CLOCK_HSE ? PLLCFGR_SRC_HSE : 0u) | (BOARD_CLOCK_PLL_Q << 24))
#define CFGR_PRESCALER_VALUE \
    ((HPRE(BOARD_CLOCK_AHB_DIV) << 4) | (PPRE(BOARD_CLOCK_APB1_DIV) << 10) | (PPRE(BOARD_CLOCK_APB2_DIV) << 13))

MCUFLOW_FACT(clock_hz, BOARD_CLOCK_HZ);
MCUFLOW_FACT(clock_reset_hz, BOARD_CLOCK_RESET_HZ);
MCUFLOW_FACT(clock_flash_latency, BOARD_CLOCK_FLASH_LATENCY);
MCUFLOW_FACT(clock_full_speed, BOARD_CLOCK_FULL_SPEED);

#if BOARD_CLOCK_FULL_SPEED
static uint8_t full_speed(void)
{
    mmio_set(RCC_APB1ENR, APB1ENR_PWREN);
    (void)mmio_read(RCC_APB1ENR); /* the PWR clock runs before PWR is written */
    mmio_modify(PWR_CR, PWR_VOS_MASK, VOS(BOARD_CLOCK_VOLTAGE_SCALE));

#if BOARD_CLOCK_HSE
#if BOARD_CLOCK_HSE_BYPASS
    mmio_set(RCC_CR, CR_HSEBYP); /* an external clock, not a crystal: bypass before HSEON */
#endif
    mmio_set(RCC_CR, CR_HSEON);
    if (!port_wait(RCC_CR, CR_HSERDY, CR_HSERDY)) {
        return PLATFORM_CLOCK_NO_OSC;
    }
#else
    if (!port_wait(RCC_CR, CR_HSIRDY, CR_HSIRDY)) {
        return PLATFORM_CLOCK_NO_OSC;
    }
#endif

    mmio_modify(RCC_PLLCFGR, PLLCFGR_MASK, PLLCFGR_VALUE);
    mmio_set(RCC_CR, CR_PLLON);
    if (!port_wait(RCC_CR, CR_PLLRDY, CR_PLLRDY)) {
        return PLATFORM_CLOCK_NO_LOCK;
    }
    if (!port_wait(PWR_CSR, CSR_VOSRDY, CSR_VOSRDY)) {
        return PLATFORM_CLOCK_NO_REG;
    }
#if BOARD_CLOCK_OVERDRIVE
    mmio_set(PWR_CR, PWR_ODEN);
    if (!port_wait(PWR_CSR, CSR_ODRDY, CSR_ODRDY)) {
        return PLATFORM_CLOCK_NO_REG;
    }
    mmio_set(PWR_CR, PWR_ODSWEN);
    if (!port_wait(PWR_CSR, CSR_ODSWRDY, CSR_ODSWRDY)) {
        return PLATFORM_CLOCK_NO_REG;
    }
#endif

    mmio_write(FLASH_ACR, BOARD_CLOCK_FLASH_LATENCY | ACR_PRFTEN | ACR_CACHES);
    if ((mmio_read(FLASH_ACR) & ACR_LATENCY_MASK) != BOARD_CLOCK_FLASH_LATENCY) {
        return PLATFORM_CLOCK_NO_FLASH;
    }
    mmio_modify(RCC_CFGR, CFGR_PRESCALERS, CFGR_PRESCALER_VALUE);
    mmio_modify(RCC_CFGR, CFGR_SW_MASK, CFGR_SW_PLL);
    if (!port_wait(RCC_CFGR, CFGR_SWS_MASK, CFGR_SWS_PLL)) {
        return PLATFORM_CLOCK_NO_SWITCH;
    }
    return PLATFORM_CLOCK_FULL;
}

static void back_to_hsi(void)
{
    mmio_modify(RCC_CFGR, CFGR_SW_MASK | CFGR_PRESCALERS, 0u); /* SW = HSI, every prescaler /1 */
    (void)port_wait(RCC_CFGR, CFGR_SWS_MASK, CFGR_SWS_HSI);
    mmio_modify(RCC_CR, CR_PLLON | (BOARD_CLOCK_HSE ? CR_HSEON : 0u), 0u);
}

#endif

uint8_t port_clock_init(void)
{
#if BOARD_CLOCK_FULL_SPEED
    uint8_t state = full_speed();
    if (state != PLATFORM_CLOCK_FULL) {
        back_to_hsi();
    }
    return state;
#else
    return PLATFORM_CLOCK_RESET;
#endif
}

/* STM32H7 (H743/H753/H750) clock setup: PLL1 from HSI or HSE to the board's speed, after RM0433
 * 6.8.4 (supply), 6.6.2 (voltage scaling) and 8.5 (RCC):
 *   1. supply: LDO on, bypass off, SCUEN cleared (locks the supply configuration), wait ACTVOSRDY;
 *   2. voltage scale (PWR_D3CR VOS), wait VOSRDY;
 *   3. the PLL's source ready (HSI 64 MHz runs from reset; HSE started, bypass first);
 *   4. PLL1: source and DIVM1 (PLLCKSELR), input range and VCO (PLLCFGR), DIVN1/P1/Q1/R1 (PLL1DIVR),
 *      PLL1ON, wait PLL1RDY;
 *   5. flash wait states and WRHIGHFREQ for the AXI clock, read back;
 *   6. D1CPRE / HPRE / D1PPRE, D2PPRE1/2, D3PPRE;
 *   7. SW = PLL1, wait SWS = PLL1.
 * Bounded waits; a step that does not complete goes back to HSI with every prescaler /1 and PLL1
 * off (the supply and voltage settings stay: they are valid at 64 MHz). */
#include "platform.h"
#include "port.h"

#define PWR_BASE 0x58024800u
#define PWR_CSR1 (PWR_BASE + 0x04u)
#define PWR_CR3 (PWR_BASE + 0x0Cu)
#define PWR_D3CR (PWR_BASE + 0x18u)
#define RCC_BASE 0x58024400u
#define RCC_CR (RCC_BASE + 0x00u)
#define RCC_CFGR (RCC_BASE + 0x10u)
#define RCC_D1CFGR (RCC_BASE + 0x18u)
#define RCC_D2CFGR (RCC_BASE + 0x1Cu)
#define RCC_D3CFGR (RCC_BASE + 0x20u)
#define RCC_PLLCKSELR (RCC_BASE + 0x28u)
#define RCC_PLLCFGR (RCC_BASE + 0x2Cu)
#define RCC_PLL1DIVR (RCC_BASE + 0x30u)
#define FLASH_ACR (0x52002000u + 0x00u)

#define CR3_BYPASS (1u << 0)
#define CR3_LDOEN (1u << 1)
#define CR3_SCUEN (1u << 2)
#define CSR1_ACTVOSRDY (1u << 13)
#define D3CR_VOS_MASK (3u << 14)
#define D3CR_VOSRDY (1u << 13)
#define CR_HSIRDY (1u << 2)
#define CR_HSEON (1u << 16)
#define CR_HSERDY (1u << 17)
#define CR_HSEBYP (1u << 18)
#define CR_PLL1ON (1u << 24)
#define CR_PLL1RDY (1u << 25)
#define CFGR_SW_MASK 7u
#define CFGR_SW_PLL1 3u
#define CFGR_SWS_MASK (7u << 3)
#define CFGR_SWS_HSI (0u << 3)
#define CFGR_SWS_PLL1 (3u << 3)
#define PLLCKSELR_MASK (3u | (0x3Fu << 4)) /* PLLSRC, DIVM1 */
#define PLLCKSELR_HSE 2u
#define PLLCFGR_PLL1_MASK 0xFu /* PLL1FRACEN, PLL1VCOSEL, PLL1RGE */
#define PLLCFGR_DIV1EN ((1u << 16) | (1u << 17) | (1u << 18)) /* DIVP1EN, DIVQ1EN, DIVR1EN */
#define ACR_MASK 0x3Fu /* LATENCY, WRHIGHFREQ */

#define PLL_IN_HZ (BOARD_CLOCK_SOURCE_HZ / BOARD_CLOCK_PLL_M)
/* PLL1RGE: the input range, 1-2 / 2-4 / 4-8 / 8-16 MHz; PLL1VCOSEL 0: the wide VCO (192-836 MHz). */
#define PLL1RGE (PLL_IN_HZ > 8000000u ? 3u : PLL_IN_HZ > 4000000u ? 2u : PLL_IN_HZ > 2000000u ? 1u : 0u)
#define PLL1DIVR_VALUE                                                                           \
    ((BOARD_CLOCK_PLL_N - 1u) | ((BOARD_CLOCK_PLL_P - 1u) << 9) | ((BOARD_CLOCK_PLL_Q - 1u) << 16) | \
     ((BOARD_CLOCK_PLL_R - 1u) << 24))
/* Flash programming delay for the AXI clock at VOS1 (RM0433 table 17). */
#define WRHIGHFREQ (BOARD_CLOCK_AHB_HZ > 185000000u ? 2u : BOARD_CLOCK_AHB_HZ > 70000000u ? 1u : 0u)
#define HPRE(div) ((div) == 1u ? 0u : (div) == 2u ? 8u : (div) == 4u ? 9u : (div) == 8u ? 10u : (div) == 16u ? 11u \
                   : (div) == 64u ? 12u : (div) == 128u ? 13u : (div) == 256u ? 14u : 15u)
#define PPRE(div) ((div) == 1u ? 0u : (div) == 2u ? 4u : (div) == 4u ? 5u : (div) == 8u ? 6u : 7u)
#define VOS(scale) ((4u - (scale)) << 14)

MCUFLOW_FACT(clock_hz, BOARD_CLOCK_HZ);
MCUFLOW_FACT(clock_reset_hz, BOARD_CLOCK_RESET_HZ);
MCUFLOW_FACT(clock_flash_latency, BOARD_CLOCK_FLASH_LATENCY);
MCUFLOW_FACT(clock_full_speed, BOARD_CLOCK_FULL_SPEED);

#if BOARD_CLOCK_FULL_SPEED
static uint8_t full_speed(void)
{
    mmio_modify(PWR_CR3, CR3_SCUEN | CR3_LDOEN | CR3_BYPASS, CR3_LDOEN);
    if (!port_wait(PWR_CSR1, CSR1_ACTVOSRDY, CSR1_ACTVOSRDY)) {
        return PLATFORM_CLOCK_NO_REG;
    }
    mmio_modify(PWR_D3CR, D3CR_VOS_MASK, VOS(BOARD_CLOCK_VOLTAGE_SCALE));
    if (!port_wait(PWR_D3CR, D3CR_VOSRDY, D3CR_VOSRDY)) {
        return PLATFORM_CLOCK_NO_REG;
    }

#if BOARD_CLOCK_HSE
#if BOARD_CLOCK_HSE_BYPASS
    mmio_set(RCC_CR, CR_HSEBYP);
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

    mmio_modify(RCC_PLLCKSELR, PLLCKSELR_MASK, (BOARD_CLOCK_HSE ? PLLCKSELR_HSE : 0u) | (BOARD_CLOCK_PLL_M << 4));
    mmio_modify(RCC_PLLCFGR, PLLCFGR_PLL1_MASK, (PLL1RGE << 2) | PLLCFGR_DIV1EN);
    mmio_write(RCC_PLL1DIVR, PLL1DIVR_VALUE);
    mmio_set(RCC_CR, CR_PLL1ON);
    if (!port_wait(RCC_CR, CR_PLL1RDY, CR_PLL1RDY)) {
        return PLATFORM_CLOCK_NO_LOCK;
    }

    mmio_modify(FLASH_ACR, ACR_MASK, BOARD_CLOCK_FLASH_LATENCY | (WRHIGHFREQ << 4));
    if ((mmio_read(FLASH_ACR) & ACR_MASK) != (BOARD_CLOCK_FLASH_LATENCY | (WRHIGHFREQ << 4))) {
        return PLATFORM_CLOCK_NO_FLASH;
    }
    /* D1CPRE [11:8] takes HPRE's encoding; D1PPRE (APB3) [6:4]. */
    mmio_write(RCC_D1CFGR,
               HPRE(BOARD_CLOCK_CORE_DIV) << 8 | HPRE(BOARD_CLOCK_AHB_DIV) | PPRE(BOARD_CLOCK_APB1_DIV) << 4);
    mmio_write(RCC_D2CFGR, PPRE(BOARD_CLOCK_APB1_DIV) << 4 | PPRE(BOARD_CLOCK_APB1_DIV) << 8);
    mmio_write(RCC_D3CFGR, PPRE(BOARD_CLOCK_APB1_DIV) << 4);
    mmio_modify(RCC_CFGR, CFGR_SW_MASK, CFGR_SW_PLL1);
    if (!port_wait(RCC_CFGR, CFGR_SWS_MASK, CFGR_SWS_PLL1)) {
        return PLATFORM_CLOCK_NO_SWITCH;
    }
    return PLATFORM_CLOCK_FULL;
}

static void back_to_hsi(void)
{
    mmio_modify(RCC_CFGR, CFGR_SW_MASK, 0u);
    (void)port_wait(RCC_CFGR, CFGR_SWS_MASK, CFGR_SWS_HSI);
    mmio_write(RCC_D1CFGR, 0u);
    mmio_write(RCC_D2CFGR, 0u);
    mmio_write(RCC_D3CFGR, 0u);
    mmio_modify(RCC_CR, CR_PLL1ON | (BOARD_CLOCK_HSE ? CR_HSEON : 0u), 0u);
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

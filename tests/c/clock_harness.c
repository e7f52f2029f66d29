/* Host harness for the clock setups (firmware/clock/<family>.c), compiled with -DMCUFLOW_HOST_MMIO
 * against a board's generated board_config.h. mmio_read/mmio_write go to a fake register file that
 * records every write and answers ready flags by rules given on the command line, or refuses to:
 *   init ADDR VALUE                      a register's reset value
 *   ready ADDR MASK CADDR CMASK CVALUE   ADDR reads with MASK set iff (CADDR & CMASK) == CVALUE
 *   mirror ADDR SHIFT WIDTH SADDR SSHIFT ADDR's field reads as SADDR's (a switch status)
 *   onehot ADDR SADDR SSHIFT SWIDTH      ADDR reads as 1 << SADDR's field (RP2040 SELECTED)
 *   refuse ADDR MASK                     those bits never set (a PLL that does not lock)
 *   zero                                 every read is 0 (QEMU's unimplemented STM32 RCC)
 *   aliases                              RP2040 atomic set/clear aliases (+0x2000 / +0x3000)
 * Prints "W addr value" per write (the resolved register and its new value), "P addr n" for the
 * reads of each polled register, "state N" (PLATFORM_CLOCK_*), then the UART divisor registers
 * the board's UART driver writes at that clock ("uart offset value"), the UART page mapped at its
 * real address so the driver's own REG32 accesses land in it. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "platform.h"
#include "port.h"

#define MAX 128

static struct {
    uint32_t addr, value, reads;
} regs[MAX];
static int nregs;
static struct {
    char kind;
    uint32_t a[5];
} rules[MAX];
static int nrules;
static int all_zero, rp2040_aliases;

static uint32_t *reg(uint32_t addr)
{
    for (int i = 0; i < nregs; i++) {
        if (regs[i].addr == addr) {
            return &regs[i].value;
        }
    }
    if (nregs == MAX) {
        fprintf(stderr, "too many registers\n");
        exit(2);
    }
    regs[nregs].addr = addr;
    regs[nregs].value = 0;
    return &regs[nregs++].value;
}

static uint32_t field(uint32_t v, uint32_t shift, uint32_t width)
{
    return (v >> shift) & ((1u << width) - 1u);
}

uint32_t mmio_read(uint32_t addr)
{
    uint32_t v = *reg(addr);
    for (int i = 0; i < nregs; i++) {
        if (regs[i].addr == addr) {
            regs[i].reads++;
        }
    }
    if (all_zero) {
        return 0;
    }
    for (int i = 0; i < nrules; i++) {
        uint32_t *a = rules[i].a;
        if (a[0] != addr) {
            continue;
        }
        if (rules[i].kind == 'r') {
            v = ((*reg(a[2]) & a[3]) == a[4]) ? (v | a[1]) : (v & ~a[1]);
        } else if (rules[i].kind == 'm') {
            uint32_t mask = ((1u << a[2]) - 1u) << a[1];
            v = (v & ~mask) | (field(*reg(a[3]), a[4], a[2]) << a[1]);
        } else if (rules[i].kind == 'o') {
            v = 1u << field(*reg(a[1]), a[2], a[3]);
        }
    }
    for (int i = 0; i < nrules; i++) {
        if (rules[i].kind == 'x' && rules[i].a[0] == addr) {
            v &= ~rules[i].a[1];
        }
    }
    return v;
}

void mmio_write(uint32_t addr, uint32_t value)
{
    if (rp2040_aliases && addr >= 0x40000000u && addr < 0x50000000u && (addr & 0x3000u)) {
        uint32_t base = addr & ~0x3000u, *r = reg(base);
        uint32_t alias = addr & 0x3000u;
        *r = alias == 0x2000u ? (*r | value) : alias == 0x3000u ? (*r & ~value) : (*r ^ value);
        printf("W 0x%08x 0x%08x\n", base, *r);
        return;
    }
    *reg(addr) = value;
    printf("W 0x%08x 0x%08x\n", addr, value);
}

static uint32_t num(const char *s)
{
    return (uint32_t)strtoul(s, NULL, 0);
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *k = argv[i];
        int n = !strcmp(k, "ready") ? 5 : !strcmp(k, "mirror") ? 5 : !strcmp(k, "onehot") ? 4 : !strcmp(k, "refuse") ? 2
              : !strcmp(k, "init") ? 2 : 0;
        if (!strcmp(k, "zero")) {
            all_zero = 1;
            continue;
        }
        if (!strcmp(k, "aliases")) {
            rp2040_aliases = 1;
            continue;
        }
        if (n == 0 || i + n > argc - 1) {
            fprintf(stderr, "bad rule %s\n", k);
            return 2;
        }
        if (!strcmp(k, "init")) {
            *reg(num(argv[i + 1])) = num(argv[i + 2]);
        } else {
            rules[nrules].kind = !strcmp(k, "ready") ? 'r' : !strcmp(k, "mirror") ? 'm' : !strcmp(k, "onehot") ? 'o' : 'x';
            for (int j = 0; j < n; j++) {
                rules[nrules].a[j] = num(argv[i + 1 + j]);
            }
            nrules++;
        }
        i += n;
    }
    for (int i = 0; i < nregs; i++) {
        regs[i].reads = 0;
    }
    port_clock_state = port_clock_init();
    for (int i = 0; i < nregs; i++) {
        if (regs[i].reads) {
            printf("P 0x%08x %u\n", regs[i].addr, regs[i].reads);
        }
    }
    printf("state %u\n", port_clock_state);
    printf("hz %u\n", platform_clock_hz());

    /* The UART driver at the clock reached: map its page where the firmware addresses it. */
    uintptr_t page = BOARD_UART_BASE & ~(uintptr_t)0xFFFu;
    void *m = mmap((void *)page, 0x1000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (m != (void *)page) {
        fprintf(stderr, "cannot map the UART page at 0x%08lx\n", (unsigned long)page);
        return 3;
    }
    port_uart_init();
    for (uint32_t off = 0; off < 0x1000u - (BOARD_UART_BASE & 0xFFFu); off += 4u) {
        uint32_t v = REG32(BOARD_UART_BASE + off);
        if (v != 0u) {
            printf("uart 0x%03x 0x%08x\n", off, v);
        }
    }
    return 0;
}

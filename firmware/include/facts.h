/* Build facts: name/value pairs the image carries for `mcuflow.imagecheck` (the UART base, IRQ
 * and divisor, the clock the firmware sets up). They are what the preprocessor gave the drivers,
 * read back from the linked ELF, so the check compares the board file with the image itself, not
 * with a second copy of the board file. The linker script makes .mcuflow.facts an INFO section:
 * it stays in the ELF and never reaches flash (.bin/.hex and the size figures do not change). */
#ifndef MCUFLOW_FACTS_H
#define MCUFLOW_FACTS_H

#include <stdint.h>

typedef struct {
    char name[28]; /* NUL-padded */
    uint32_t value;
} mcuflow_fact_t;

#define MCUFLOW_FACT(id, v)                                                                     \
    __attribute__((section(".mcuflow.facts"), used, aligned(4))) static const mcuflow_fact_t \
        mcuflow_fact_##id = {#id, (uint32_t)(v)}

#endif /* MCUFLOW_FACTS_H */

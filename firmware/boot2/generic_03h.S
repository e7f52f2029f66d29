/* RP2040 second-stage boot loader ("boot2"): the most conservative flash setup, written for
 * mcuflow after the RP2040 datasheet (2.8.1 boot sequence, 4.10 SSI). The boot ROM copies the
 * first 256 bytes of flash to SRAM at 0x20041F00, checks their CRC-32 (the last 4 bytes, stamped
 * by `mcuflow build`) and calls this code with lr = 0. It sets the XIP SSI to standard SPI (one
 * data line) with the 03h READ command, 24 address bits and no mode bits or dummy cycles, which
 * every 25-series SPI NOR flash answers, the Pico's W25Q080 included; then it points VTOR at the
 * vector table after it (0x10000100) and starts the image from there. Slower than quad mode, but
 * the model's weights are read a few KiB per inference.
 *
 * SSI clock: clk_sys / 4 (BAUDR). clk_sys is the ring oscillator (~6 MHz) here and at most
 * 133 MHz later, so SCK stays under the 50 MHz 03h READ allows. Position-independent: only
 * PC-relative literal loads, so it runs wherever the ROM put it. */
    .syntax unified
    .cpu cortex-m0plus
    .thumb

    .equ XIP_BASE,        0x10000000
    .equ XIP_SSI_BASE,    0x18000000
    .equ SSI_CTRLR0,      0x00
    .equ SSI_CTRLR1,      0x04
    .equ SSI_SSIENR,      0x08
    .equ SSI_BAUDR,       0x14
    .equ SSI_SPI_CTRLR0,  0xF4
    .equ M0PLUS_VTOR,     0xE000ED08
    .equ CLKDIV,          4

    /* CTRLR0: SPI_FRF [22:21] = 0 (standard SPI), DFS_32 [20:16] = 31 (32-bit frames),
     * TMOD [9:8] = 3 (EEPROM read: send command + address, then receive). */
    .equ CTRLR0_XIP,      (0 << 21) | (31 << 16) | (3 << 8)
    /* SPI_CTRLR0: XIP_CMD [31:24] = 0x03, INST_L [9:8] = 2 (8-bit command), ADDR_L [5:2] = 6
     * (24 address bits, in units of 4), WAIT_CYCLES [15:11] = 0, TRANS_TYPE [1:0] = 0 (command
     * and address on one line). */
    .equ SPI_CTRLR0_XIP,  (0x03 << 24) | (2 << 8) | (6 << 2) | 0

    .section .text.boot2, "ax"
    .global boot2_entry
    .type boot2_entry, %function
    .thumb_func
boot2_entry:
    push {lr}
    ldr r3, =XIP_SSI_BASE
    movs r1, #0
    str r1, [r3, #SSI_SSIENR]       /* the SSI takes its settings only while disabled */
    movs r1, #CLKDIV
    str r1, [r3, #SSI_BAUDR]
    ldr r1, =CTRLR0_XIP
    str r1, [r3, #SSI_CTRLR0]
    ldr r1, =SPI_CTRLR0_XIP
    ldr r0, =XIP_SSI_BASE + SSI_SPI_CTRLR0  /* past a 16-bit STR's reach from r3 */
    str r1, [r0]
    movs r1, #0
    str r1, [r3, #SSI_CTRLR1]       /* NDF = 0: one 32-bit frame per XIP access */
    movs r1, #1
    str r1, [r3, #SSI_SSIENR]       /* XIP: reads of 0x10000000.. now go to the flash */

    pop {r0}
    cmp r0, #0                      /* lr = 0: entered from the boot ROM */
    beq vector_into_flash
    bx r0                           /* called as a function (e.g. after a flash erase): return */
vector_into_flash:
    ldr r0, =XIP_BASE + 0x100
    ldr r1, =M0PLUS_VTOR
    str r0, [r1]
    ldmia r0, {r0, r1}              /* the image's initial SP and reset vector */
    msr msp, r0
    bx r1
    .ltorg
    .size boot2_entry, . - boot2_entry

/* The boot2 slot: the stage `mcuflow build` assembled, padded to 252 bytes and CRC-stamped
 * (boot2.padded.bin in the build directory, found on the include path), as section .boot2,
 * which the linker script places at the start of flash. */
    .section .boot2, "ax"
    .incbin "boot2.padded.bin"

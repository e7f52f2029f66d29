/* Chips that need no setup before the UART is used (the MPS2 FPGA images, nRF52 whose UARTE
 * runs from the internal oscillator). */
#include "port.h"

void port_chip_init(void)
{
}

#ifndef MCUFLOW_HOST_PLATFORM_H
#define MCUFLOW_HOST_PLATFORM_H
#include <stdint.h>
void host_counter_add(uint32_t n);
#endif

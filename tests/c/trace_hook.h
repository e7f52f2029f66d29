/* Force-included into mcuflow_kernels.c by the index-free generator test. */
#include <stdint.h>
void mcuflow_trace(uint32_t col);
#define MCUFLOW_TRACE_COLUMN(col) mcuflow_trace(col)

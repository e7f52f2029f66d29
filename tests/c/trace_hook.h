/* Included before the kernel library by the index-free generator test: records every column the walk reads. */
#include <stdint.h>
void mcuflow_trace(uint32_t col);
#define MCUFLOW_TRACE_COLUMN(col) mcuflow_trace(col)

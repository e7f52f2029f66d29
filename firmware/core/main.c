/* The firmware entry point: bring up the board, then hand over to the application. */
#include "platform.h"

int main(void)
{
    platform_init();
    mcuflow_serve();
    platform_exit(0);
    return 0;
}

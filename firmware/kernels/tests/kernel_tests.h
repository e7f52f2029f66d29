/* Golden tests of the kernel library: hand-made cases with hand-derived expected outputs.
 *
 * The cases (kernel_tests.c) use no stdio: they print through mcuflow_test_print, which each entry
 * point implements once (host_main.c with stdio, firmware_main.c over the board's UART). Output, one
 * line per case and a summary:
 *
 *   ok <name>
 *   FAIL <name>: index <i> got <g> want <w>
 *   summary cases=<n> failed=<f> variant=<reference|dsp|dsp-emulated>
 */
#ifndef MCUFLOW_KERNEL_TESTS_H
#define MCUFLOW_KERNEL_TESTS_H

/* Writes a NUL-terminated string (no newline added). Provided by the entry point. */
void mcuflow_test_print(const char *s);

/* Runs every case; returns the number of failed cases (0: all passed). */
int mcuflow_kernel_tests(void);

#endif /* MCUFLOW_KERNEL_TESTS_H */

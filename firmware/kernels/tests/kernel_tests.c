/* Golden tests of the kernel library (TFLM style): small hand-made cases, every input, weight, bias,
 * multiplier/shift and expected output written as a literal, the expected values derived by hand in the
 * comment beside each case (never by mcuflow's numpy reference). Both variants must give these exact
 * integers; the build chooses which one runs (mcuflow_kernel_config.h).
 *
 * Requantisation: y = clamp(floor((acc * mult + 2^(rshift - 1)) / 2^rshift) + zp, lo, hi). The cases use
 * multipliers that make this easy to check by hand:
 *   mult = 2^30, rshift = 30:  y = floor(acc + 1/2) = acc                    (the identity)
 *   mult = 2^30, rshift = 31:  y = floor((acc + 1) / 2)  = round-half-up(acc / 2)
 *   mult = 2^30, rshift = 30+k: y = floor((acc + 2^(k-1)) / 2^k) = round-half-up(acc / 2^k)
 *   mult = 3 * 2^29 (0.75 * 2^31), rshift = 31: y = floor((3 * acc + 2) / 4) = round-half-up(0.75 * acc)
 * Output buffers hold one guard byte past n_out (and scratch buffers guard entries past what a kernel may
 * use): a case also fails when a kernel writes beyond its output.
 *
 * Weight order on the device: dense rows store weights in groups of four as (w0, w2, w1, w3), a partial
 * last group as is (they meet int16 inputs); index_free, fixed and csr rows keep the natural order. The
 * comments give the natural order; the arrays hold the stored one. */
#include <stddef.h>
#include <stdint.h>

#include "kernel_tests.h"
#include "mcuflow_kernels.h"

#define Q30 1073741824        /* 2^30 */
#define Q29X3 1610612736      /* 3 * 2^29 */
#define QMAX 2147483647       /* 2^31 - 1 */
#define GUARD8 90             /* untouched output guard byte */
#define GUARD_SCRATCH 0x7a   /* untouched scratch byte */
#define SCRATCH_LEN 128       /* bytes */
#define MAX_FAIL_LINES 8      /* mismatches printed per case */

/* -DMCUFLOW_TESTS_BREAK_ONE=1 spoils one expected value (row 2 of the n_in = 8 dense layer: 11 instead
 * of 10, in its two cases), so a test can see that failures are reported (FAIL lines, the count, the
 * exit status). */
#ifndef MCUFLOW_TESTS_BREAK_ONE
#define MCUFLOW_TESTS_BREAK_ONE 0
#endif

/* ---------------------------------------------------------------------------------------------------
 * Reporting (no stdio: everything goes through mcuflow_test_print). */

static uint32_t cases_run;
static uint32_t cases_failed;
static const char *case_name;
static uint32_t case_mismatches;

static void put(const char *s)
{
    mcuflow_test_print(s);
}

static void put_i32(int32_t v)
{
    char buf[12];
    uint32_t u = v < 0 ? (uint32_t)0 - (uint32_t)v : (uint32_t)v;
    int i = 11;
    buf[i] = '\0';
    do {
        buf[--i] = (char)('0' + (int)(u % 10u));
        u /= 10u;
    } while (u != 0u);
    if (v < 0) {
        buf[--i] = '-';
    }
    put(&buf[i]);
}

static void begin(const char *name)
{
    case_name = name;
    case_mismatches = 0u;
}

static void mismatch(const char *what, uint32_t i, int32_t got, int32_t want)
{
    if (case_mismatches < MAX_FAIL_LINES) {
        put("FAIL ");
        put(case_name);
        put(": ");
        put(what);
        put("index ");
        put_i32((int32_t)i);
        put(" got ");
        put_i32(got);
        put(" want ");
        put_i32(want);
        put("\n");
    }
    ++case_mismatches;
}

static void expect_i8(const int8_t *got, const int8_t *want, uint32_t n)
{
    uint32_t i;
    for (i = 0u; i < n; ++i) {
        if (got[i] != want[i]) {
            mismatch("", i, got[i], want[i]);
        }
    }
}

static void expect_i32(const int32_t *got, const int32_t *want, uint32_t n)
{
    uint32_t i;
    for (i = 0u; i < n; ++i) {
        if (got[i] != want[i]) {
            mismatch("", i, got[i], want[i]);
        }
    }
}

/* Scratch bytes from `from` on must be untouched. */
static void expect_scratch_guard(const uint8_t *scratch, uint32_t from)
{
    uint32_t i;
    for (i = from; i < SCRATCH_LEN; ++i) {
        if (scratch[i] != GUARD_SCRATCH) {
            mismatch("scratch ", i, scratch[i], GUARD_SCRATCH);
        }
    }
}

static void end(void)
{
    ++cases_run;
    if (case_mismatches == 0u) {
        put("ok ");
        put(case_name);
        put("\n");
    } else {
        ++cases_failed;
    }
}

static void fill_i8(int8_t *y, uint32_t n, int8_t v)
{
    uint32_t i;
    for (i = 0u; i < n; ++i) {
        y[i] = v;
    }
}

static uint8_t scratch[SCRATCH_LEN] MCUFLOW_ALIGNED(8);

static uint8_t *fresh_scratch(void)
{
    uint32_t i;
    for (i = 0u; i < SCRATCH_LEN; ++i) {
        scratch[i] = GUARD_SCRATCH;
    }
    return scratch;
}

/* ---------------------------------------------------------------------------------------------------
 * mcuflow_requantize: rows of (acc, mult, rshift, zp, lo, hi) -> want. */

typedef struct {
    int32_t acc;
    int32_t mult;
    uint32_t rshift;
    int32_t zp;
    int32_t lo;
    int32_t hi;
    int32_t want;
} rq_row_t;

static void run_requant(const char *name, const rq_row_t *rows, uint32_t n)
{
    uint32_t i;
    begin(name);
    for (i = 0u; i < n; ++i) {
        const rq_row_t *c = &rows[i];
        const int32_t got = mcuflow_requantize(c->acc, c->mult, c->rshift, c->zp, c->lo, c->hi);
        if (got != c->want) {
            mismatch("", i, got, c->want);
        }
        if (c->rshift >= 33u) { /* the short form (a layer whose every rshift is >= 33) gives the same */
            const int32_t short_form = mcuflow_requantize_gt32(c->acc, c->mult, c->rshift - 33u, c->zp, c->lo, c->hi);
            if (short_form != c->want) {
                mismatch("short form ", i, short_form, c->want);
            }
        }
    }
    end();
}

#define RQ_RUN(name, rows) run_requant(name, rows, (uint32_t)(sizeof(rows) / sizeof(rows[0])))

/* rshift <= 32 path. 2^30 / 2^30: y = acc exactly (floor(acc + 1/2)). */
static const rq_row_t rq_le32_identity[] = {
    {0, Q30, 30, 0, -128, 127, 0},       {5, Q30, 30, 0, -128, 127, 5},     {-7, Q30, 30, 0, -128, 127, -7},
    {127, Q30, 30, 0, -128, 127, 127},   {-128, Q30, 30, 0, -128, 127, -128},
};

/* 2^30 / 2^31: y = floor((acc + 1) / 2), halves round up (towards +inf), also for negative acc. */
static const rq_row_t rq_le32_half[] = {
    {3, Q30, 31, 0, -128, 127, 2},   /* 1.5 -> 2: floor(4 / 2) */
    {-3, Q30, 31, 0, -128, 127, -1}, /* -1.5 -> -1: floor(-2 / 2) */
    {-4, Q30, 31, 0, -128, 127, -2}, /* -2 exactly: floor(-3 / 2) = -2 */
    {5, Q30, 31, 0, -128, 127, 3},   /* 2.5 -> 3 */
    {-5, Q30, 31, 0, -128, 127, -2}, /* -2.5 -> -2: floor(-4 / 2) */
    {1, Q30, 31, 0, -128, 127, 1},   /* 0.5 -> 1 */
    {-1, Q30, 31, 0, -128, 127, 0},  /* -0.5 -> 0: floor(0 / 2) */
    {0, Q30, 31, 0, -128, 127, 0},
};

/* rshift = 32, the last shift on the 64-bit path: y = floor((acc + 2) / 4). */
static const rq_row_t rq_le32_shift32[] = {
    {6, Q30, 32, 0, -128, 127, 2},   /* 1.5 -> 2: floor(8 / 4) */
    {-6, Q30, 32, 0, -128, 127, -1}, /* -1.5 -> -1: floor(-4 / 4) */
    {-7, Q30, 32, 0, -128, 127, -2}, /* -1.75 -> -2: floor(-5 / 4) */
    {2, Q30, 32, 0, -128, 127, 1},   /* 0.5 -> 1 */
    {-2, Q30, 32, 0, -128, 127, 0},  /* -0.5 -> 0 */
    {1, Q30, 32, 0, -128, 127, 0},   /* 0.25 -> 0: floor(3 / 4) */
};

/* rshift > 32 path (rounding bit added to the high word). 2^30 / 2^33: y = floor((acc + 4) / 8). */
static const rq_row_t rq_gt32_shift33[] = {
    {12, Q30, 33, 0, -128, 127, 2},   /* 1.5 -> 2: floor(16 / 8) */
    {-12, Q30, 33, 0, -128, 127, -1}, /* -1.5 -> -1: floor(-8 / 8) */
    {-13, Q30, 33, 0, -128, 127, -2}, /* -1.625 -> -2: floor(-9 / 8) */
    {3, Q30, 33, 0, -128, 127, 0},    /* 0.375 -> 0: floor(7 / 8) */
    {4, Q30, 33, 0, -128, 127, 1},    /* 0.5 -> 1 */
    {-4, Q30, 33, 0, -128, 127, 0},   /* -0.5 -> 0 */
    {-5, Q30, 33, 0, -128, 127, -1},  /* -0.625 -> -1: floor(-1 / 8) */
};

/* 2^30 / 2^34: y = floor((acc + 8) / 16). */
static const rq_row_t rq_gt32_shift34[] = {
    {24, Q30, 34, 0, -128, 127, 2},      /* 1.5 -> 2: floor(32 / 16) */
    {-24, Q30, 34, 0, -128, 127, -1},    /* -1.5 -> -1: floor(-16 / 16) */
    {-25, Q30, 34, 0, -128, 127, -2},    /* floor(-17 / 16) */
    {23, Q30, 34, 0, -128, 127, 1},      /* floor(31 / 16) */
    {-8, Q30, 34, 0, -128, 127, 0},      /* -0.5 -> 0 */
    {-9, Q30, 34, 0, -128, 127, -1},     /* floor(-1 / 16) */
    {1000, Q30, 34, 0, -128, 127, 63},   /* 62.5 -> 63: floor(1008 / 16) */
    {-1000, Q30, 34, 0, -128, 127, -62}, /* -62.5 -> -62: floor(-992 / 16) */
};

/* A multiplier that is not a power of two, 3 * 2^29 = 0.75 * 2^31, on both paths.
 * rshift 31: y = floor((3 acc + 2) / 4) = round-half-up(0.75 acc);
 * rshift 35: y = floor((3 acc * 2^29 + 2^34) / 2^35) = floor((3 acc + 32) / 64) = round-half-up(3 acc / 64). */
static const rq_row_t rq_mult_three_quarters[] = {
    {10, Q29X3, 31, 0, -128, 127, 8},   /* 7.5 -> 8: floor(32 / 4) */
    {-10, Q29X3, 31, 0, -128, 127, -7}, /* -7.5 -> -7: floor(-28 / 4) */
    {4, Q29X3, 31, 0, -128, 127, 3},    /* 3 exactly: floor(14 / 4) */
    {-4, Q29X3, 31, 0, -128, 127, -3},  /* -3 exactly: floor(-10 / 4) */
    {2, Q29X3, 31, 0, -128, 127, 2},    /* 1.5 -> 2: floor(8 / 4) */
    {-2, Q29X3, 31, 0, -128, 127, -1},  /* -1.5 -> -1: floor(-4 / 4) */
    {64, Q29X3, 35, 0, -128, 127, 3},   /* 3 exactly: floor(224 / 64) */
    {32, Q29X3, 35, 0, -128, 127, 2},   /* 1.5 -> 2: floor(128 / 64) */
    {-32, Q29X3, 35, 0, -128, 127, -1}, /* -1.5 -> -1: floor(-64 / 64) */
    {-33, Q29X3, 35, 0, -128, 127, -2}, /* -1.546875 -> -2: floor(-67 / 64) */
};

/* The largest shift and the extreme accumulators (the 64-bit product near +-2^62):
 *   (2^31-1) * (2^31-1) = 2^62 - 2^32 + 1; + 2^61 -> floor(1.5 - 2^-30 + 2^-62) = 1
 *   -2^31 * (2^31-1) = -2^62 + 2^31; + 2^61 -> floor(-0.5 + 2^-31) = -1 (the true value -1 + 2^-31 rounds to -1)
 *   2^30 * (2^31-1) = 2^61 - 2^30; + 2^61 = 2^62 - 2^30 -> 0 (0.49999.. rounds to 0)
 *   -2^30 * (2^31-1) + 2^61 = 2^30 -> 0 (-0.49999.. rounds to 0)
 *   -2^31 * 2^30 + 2^61 = 0 -> 0 (exactly -1/2: half up, to 0) */
static const rq_row_t rq_shift62_extremes[] = {
    {INT32_MAX, QMAX, 62, 0, -128, 127, 1}, {INT32_MIN, QMAX, 62, 0, -128, 127, -1},
    {Q30, QMAX, 62, 0, -128, 127, 0},       {-Q30, QMAX, 62, 0, -128, 127, 0},
    {INT32_MIN, Q30, 62, 0, -128, 127, 0},
};

/* The output zero point is added after rounding. */
static const rq_row_t rq_zero_point[] = {
    {10, Q30, 30, -5, -128, 127, 5},       {-100, Q30, 30, -5, -128, 127, -105}, {0, Q30, 30, -5, -128, 127, -5},
    {-3, Q30, 31, 3, -128, 127, 2},        /* floor(-2 / 2) = -1, + 3 */
    {255, Q30, 30, -128, -128, 127, 127},  /* 255 - 128 = 127 exactly */
    {-24, Q30, 34, 100, -128, 127, 99},    /* -1 + 100 */
};

/* The int8 clamp on both paths; on the 64-bit path the value is first held to +-65535 (|zp| <= 128, so
 * the result is the same as clamping the exact value). */
static const rq_row_t rq_clamp_int8[] = {
    {127, Q30, 30, 0, -128, 127, 127},        {128, Q30, 30, 0, -128, 127, 127},
    {-128, Q30, 30, 0, -128, 127, -128},      {-129, Q30, 30, 0, -128, 127, -128},
    {200, Q30, 30, 0, -128, 127, 127},        {-200, Q30, 30, 0, -128, 127, -128},
    {100000, Q30, 30, 0, -128, 127, 127},     {-100000, Q30, 30, 0, -128, 127, -128},
    {70000, Q30, 30, -128, -128, 127, 127},   /* 65535 - 128 = 65407 -> 127 */
    {-70000, Q30, 30, 100, -128, 127, -128},  /* -65535 + 100 -> -128 */
    {INT32_MAX, Q30, 33, 0, -128, 127, 127},  /* floor((2^31 - 1 + 4) / 8) = 2^28 */
    {INT32_MIN, Q30, 33, 0, -128, 127, -128}, /* -2^28 */
    {INT32_MAX, QMAX, 40, 0, -128, 127, 127}, /* about 2^62 / 2^40 = 2^22 */
};

/* A fused ReLU raises act_min to the output zero point (a real 0). zp = -20: */
static const rq_row_t rq_relu[] = {
    {-5, Q30, 30, -20, -20, 127, -20}, /* -25 -> -20 */
    {0, Q30, 30, -20, -20, 127, -20},  /* -20: at the clamp */
    {1, Q30, 30, -20, -20, 127, -19},  {5, Q30, 30, -20, -20, 127, -15},
    {200, Q30, 30, -20, -20, 127, 127}, /* 180 -> 127 */
    {-1, Q30, 31, -20, -20, 127, -20},  /* floor(0 / 2) = 0 -> -20 */
    {-3, Q30, 31, -20, -20, 127, -20},  /* -1 - 20 = -21 -> -20 */
    {-50, Q30, 30, 10, 10, 127, 10},    /* zp = 10: -40 -> 10 */
    {-50, Q30, 34, -20, -20, 127, -20},     /* floor(-42 / 16) = -3; -3 - 20 = -23 -> -20 */
};

/* act_max below 127 (a clamped activation) and act_min above -128 without a ReLU. */
static const rq_row_t rq_act_range[] = {
    {150, Q30, 30, -20, -20, 100, 100}, /* 130 -> 100 */
    {110, Q30, 30, -20, -20, 100, 90},  {120, Q30, 30, -20, -20, 100, 100}, /* at the clamp */
    {121, Q30, 30, -20, -20, 100, 100}, /* 101 -> 100 */
    {-101, Q30, 30, 0, -100, 50, -100}, {-100, Q30, 30, 0, -100, 50, -100},
    {51, Q30, 30, 0, -100, 50, 50},     {0, Q30, 30, 0, -100, 50, 0},
    {1000, Q30, 34, 0, -100, 50, 50},   /* 63 -> 50 */
};

static void test_requantize(void)
{
    RQ_RUN("requant.le32_identity", rq_le32_identity);
    RQ_RUN("requant.le32_half_round", rq_le32_half);
    RQ_RUN("requant.le32_shift32", rq_le32_shift32);
    RQ_RUN("requant.gt32_shift33", rq_gt32_shift33);
    RQ_RUN("requant.gt32_shift34", rq_gt32_shift34);
    RQ_RUN("requant.mult_three_quarters", rq_mult_three_quarters);
    RQ_RUN("requant.shift62_extremes", rq_shift62_extremes);
    RQ_RUN("requant.zero_point", rq_zero_point);
    RQ_RUN("requant.clamp_int8", rq_clamp_int8);
    RQ_RUN("requant.relu_clamp", rq_relu);
    RQ_RUN("requant.act_range_clamp", rq_act_range);
}

/* ---------------------------------------------------------------------------------------------------
 * The fully connected kernels. run_fc runs one layer into a guarded output and checks it. */

typedef void (*fc_kernel_t)(const mcuflow_fc_t *l, const int8_t *x, int8_t *y, void *scratch);

/* scratch_used: bytes the kernel may write (the rest must stay untouched); ~0u for no scratch. */
static void run_fc(const char *name, fc_kernel_t kernel, const mcuflow_fc_t *l, const int8_t *x, const int8_t *want,
                   uint32_t scratch_used)
{
    int8_t y[32];
    uint8_t *s = scratch_used == ~0u ? NULL : fresh_scratch();
    begin(name);
    fill_i8(y, sizeof y, GUARD8);
    kernel(l, x, y, s);
    expect_i8(y, want, l->n_out);
    if (y[l->n_out] != GUARD8) {
        mismatch("", l->n_out, y[l->n_out], GUARD8);
    }
    if (s != NULL) {
        expect_scratch_guard(s, scratch_used);
    }
    end();
}

#define NO_SCRATCH (~0u)

/* Identity rows and rows with the rshift > 32 path share these per-row constants. */
static const uint8_t shift30x16[16] = {30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30};
static const int32_t q30x16[16] = {Q30, Q30, Q30, Q30, Q30, Q30, Q30, Q30, Q30, Q30, Q30, Q30, Q30, Q30, Q30, Q30};

/* fc_dense, n_in = 8 (whole groups, w_aligned: LDRD on the DSP variant), three rows with three shifts.
 * x = [1, -2, 3, -4, 5, -6, 7, -8]
 * row 0: w [1, 2, 3, 4, 5, 6, 7, 8]:   1 - 4 + 9 - 16 + 25 - 36 + 49 - 64 = -36; acc = 10 - 36 = -26;
 *        mult 2^30, rshift 30: y = -26
 * row 1: w [-1, 0, 2, -3, 1, 1, -2, 4]: -1 + 0 + 6 + 12 + 5 - 6 - 14 - 32 = -30; acc = -5 - 30 = -35;
 *        rshift 31: floor(-34 / 2) = -17
 * row 2: w [3, -3, 3, -3, 2, -2, 1, -1]: 3 + 6 + 9 + 12 + 10 + 12 + 7 + 8 = 67; acc = 100 + 67 = 167;
 *        rshift 34: floor(175 / 16) = 10 */
static const int8_t dense8_x[8] = {1, -2, 3, -4, 5, -6, 7, -8};
static const int8_t dense8_w[24] MCUFLOW_ALIGNED(8) = {
    1, 3, 2, 4, 5, 7, 6, 8,         /* row 0, stored (w0, w2, w1, w3) */
    -1, 2, 0, -3, 1, -2, 1, 4,      /* row 1 */
    3, 3, -3, -3, 2, 1, -2, -1,     /* row 2 */
};
static const int32_t dense8_bias[3] = {10, -5, 100};
static const int32_t dense8_mult[3] = {Q30, Q30, Q30};
static const uint8_t dense8_shift[3] = {30, 31, 34};
static const mcuflow_fc_t dense8 = {
    .w = dense8_w, .bias = dense8_bias, .mult = dense8_mult, .rshift = dense8_shift, .n_in = 8, .n_out = 3,
    .degree = 8, .w_aligned = 1, .out_zp = 0, .act_min = -128, .act_max = 127,
};
static const int8_t dense8_want[3] = {-26, -17, 10 + MCUFLOW_TESTS_BREAK_ONE};

/* fc_dense, n_in = 13 (unaligned rows: 3 groups + 1 left over; on the DSP variant 8 + 4 + 1).
 * x = [c - 6] = [-6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6]
 * row 0: w [-3, 2, 3, -2, 3, 1, -1, -3, 2, 3, -2, 3, 1]:
 *        18 - 10 - 12 + 6 - 6 - 1 + 0 - 3 + 4 + 9 - 8 + 15 + 6 = 18; acc = 1 + 18 = 19; identity: 19
 * row 1: w [3, -2, 3, 1, -1, -3, 2, 3, -2, 3, 1, -1, -3]:
 *        -18 + 10 - 12 - 3 + 2 + 3 + 0 + 3 - 4 + 9 + 4 - 5 - 18 = -29; acc = -2 - 29 = -31;
 *        mult 3 * 2^29, rshift 31: floor((3 * -31 + 2) / 4) = floor(-91 / 4) = -23 (0.75 * -31 = -23.25)
 * row 2: w [3, 1, -1, -3, 2, 3, -2, 3, 1, -1, -3, 2, 3]:
 *        -18 - 5 + 4 + 9 - 4 - 3 + 0 + 3 + 2 - 3 - 12 + 10 + 18 = 1; acc = 3 + 1 = 4; identity: 4 */
static const int8_t dense13_x[13] = {-6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6};
static const int8_t dense13_w[39] MCUFLOW_ALIGNED(8) = {
    -3, 3, 2, -2, 3, -1, 1, -3, 2, -2, 3, 3, 1,   /* row 0 (last entry: the partial group, as is) */
    3, 3, -2, 1, -1, 2, -3, 3, -2, 1, 3, -1, -3,  /* row 1 */
    3, -1, 1, -3, 2, -2, 3, 3, 1, -3, -1, 2, 3,   /* row 2 */
};
static const int32_t dense13_bias[3] = {1, -2, 3};
static const int32_t dense13_mult[3] = {Q30, Q29X3, Q30};
static const uint8_t dense13_shift[3] = {30, 31, 30};
static const mcuflow_fc_t dense13 = {
    .w = dense13_w, .bias = dense13_bias, .mult = dense13_mult, .rshift = dense13_shift, .n_in = 13,
    .n_out = 3, .degree = 13, .out_zp = 0, .act_min = -128, .act_max = 127,
};
static const int8_t dense13_want[3] = {19, -23, 4};

/* fc_dense, n_in = 7 (one group and a partial group of 3), output zero point 0, identity.
 * x = [3, -1, 4, -1, 5, -9, 2]
 * row 0: w [2, -7, 1, 8, -2, 8, 1]: 6 + 7 + 4 - 8 - 10 - 72 + 2 = -71; acc = -20 - 71 = -91
 * row 1: w [-1 x 7]: -(3 - 1 + 4 - 1 + 5 - 9 + 2) = -3; acc = -3 */
static const int8_t dense7_x[7] = {3, -1, 4, -1, 5, -9, 2};
static const int8_t dense7_w[14] = {
    2, 1, -7, 8, -2, 8, 1,       /* row 0: group (2, 1, -7, 8) stored, then -2, 8, 1 as is */
    -1, -1, -1, -1, -1, -1, -1,  /* row 1 */
};
static const int32_t dense7_bias[2] = {-20, 0};
static const mcuflow_fc_t dense7 = {
    .w = dense7_w, .bias = dense7_bias, .mult = q30x16, .rshift = shift30x16, .n_in = 7, .n_out = 2,
    .degree = 7, .out_zp = 0, .act_min = -128, .act_max = 127,
};
static const int8_t dense7_want[2] = {-91, -3};

static void test_fc_dense(void)
{
    /* scratch: the DSP variant widens the n_in inputs into it (int16: 2 * n_in bytes); the reference ignores it */
    run_fc("fc_dense.n8_aligned", mcuflow_fc_dense, &dense8, dense8_x, dense8_want, 16u);
    run_fc("fc_dense.n8_no_scratch", mcuflow_fc_dense, &dense8, dense8_x, dense8_want, NO_SCRATCH);
    run_fc("fc_dense.n13_unaligned", mcuflow_fc_dense, &dense13, dense13_x, dense13_want, 26u);
    run_fc("fc_dense.n7_partial_group", mcuflow_fc_dense, &dense7, dense7_x, dense7_want, 14u);
    run_fc("fc_dense.n7_no_scratch", mcuflow_fc_dense, &dense7, dense7_x, dense7_want, NO_SCRATCH);
}

/* fc_fixed, 1-byte columns: n_in = 10, degree 5 (a gather of four and one left over), natural order.
 * x = [3c - 13] = [-13, -10, -7, -4, -1, 2, 5, 8, 11, 14]
 * row 0: cols [9, 0, 4, 2, 7], w [1, -2, 3, -4, 5]: 14 + 26 - 3 + 28 + 40 = 105; acc = 105; identity
 * row 1: cols [3, 8, 5, 1, 6], w [-1, -1, 2, 2, 1]: 4 - 11 + 4 - 20 + 5 = -18; acc = 7 - 18 = -11
 * row 2: cols [0, 9, 2, 4, 7], w [4, 3, -2, -1, 1]: -52 + 42 + 14 + 1 + 8 = 13; acc = -3 + 13 = 10;
 *        rshift 33: floor((10 + 4) / 8) = 1 */
static const int8_t x10[10] = {-13, -10, -7, -4, -1, 2, 5, 8, 11, 14};
static const int8_t fixed8_w[15] = {1, -2, 3, -4, 5, -1, -1, 2, 2, 1, 4, 3, -2, -1, 1};
static const uint8_t fixed8_cols[15] = {9, 0, 4, 2, 7, 3, 8, 5, 1, 6, 0, 9, 2, 4, 7};
static const int32_t fixed8_bias[3] = {0, 7, -3};
static const uint8_t fixed8_shift[3] = {30, 30, 33};
static const mcuflow_fc_t fixed8 = {
    .w = fixed8_w, .cols = fixed8_cols, .bias = fixed8_bias, .mult = q30x16, .rshift = fixed8_shift,
    .n_in = 10, .n_out = 3, .degree = 5, .col_bytes = 1, .out_zp = 0, .act_min = -128, .act_max = 127,
};
static const int8_t fixed8_want[3] = {105, -11, 1};

/* A 300-wide input, zero but for eight columns (so 2-byte columns are needed):
 * x[0] = -7, x[1] = 9, x[100] = 3, x[255] = -2, x[256] = 11, x[257] = -5, x[298] = 6, x[299] = -1. */
static const int8_t x300[300] = {[0] = -7, [1] = 9, [100] = 3, [255] = -2, [256] = 11, [257] = -5, [298] = 6, [299] = -1};

/* fc_fixed, 2-byte columns: n_in = 300, degree 6.
 * row 0: cols [299, 256, 0, 255, 1, 257], w [2, 3, -1, 4, -5, 1]: -2 + 33 + 7 - 8 - 45 - 5 = -20;
 *        acc = 1 - 20 = -19
 * row 1: cols [257, 100, 298, 0, 256, 299], w [-3, 2, 1, 1, -2, 6]: 15 + 6 + 6 - 7 - 22 - 6 = -8;
 *        acc = -1 - 8 = -9 */
static const int8_t fixed16_w[12] = {2, 3, -1, 4, -5, 1, -3, 2, 1, 1, -2, 6};
static const uint16_t fixed16_cols[12] = {299, 256, 0, 255, 1, 257, 257, 100, 298, 0, 256, 299};
static const int32_t fixed16_bias[2] = {1, -1};
static const mcuflow_fc_t fixed16 = {
    .w = fixed16_w, .cols = fixed16_cols, .bias = fixed16_bias, .mult = q30x16, .rshift = shift30x16,
    .n_in = 300, .n_out = 2, .degree = 6, .col_bytes = 2, .out_zp = 0, .act_min = -128, .act_max = 127,
};
static const int8_t fixed16_want[2] = {-19, -9};

/* fc_fixed, 4-byte columns: n_in = 6, degree 4 (exactly one gather of four), rshift 31.
 * x = [10, -20, 30, -40, 50, -60]
 * row 0: cols [5, 0, 3, 1], w [1, 1, 1, 1]: -60 + 10 - 40 - 20 = -110; floor(-109 / 2) = -55
 * row 1: cols [2, 4, 1, 5], w [2, -1, 0, 1]: 60 - 50 + 0 - 60 = -50; acc = 3 - 50 = -47; floor(-46 / 2) = -23 */
static const int8_t x6[6] = {10, -20, 30, -40, 50, -60};
static const int8_t fixed32_w[8] = {1, 1, 1, 1, 2, -1, 0, 1};
static const uint32_t fixed32_cols[8] = {5, 0, 3, 1, 2, 4, 1, 5};
static const int32_t fixed32_bias[2] = {0, 3};
static const uint8_t fixed32_shift[2] = {31, 31};
static const mcuflow_fc_t fixed32 = {
    .w = fixed32_w, .cols = fixed32_cols, .bias = fixed32_bias, .mult = q30x16, .rshift = fixed32_shift,
    .n_in = 6, .n_out = 2, .degree = 4, .col_bytes = 4, .out_zp = 0, .act_min = -128, .act_max = 127,
};
static const int8_t fixed32_want[2] = {-55, -23};

static void test_fc_fixed(void)
{
    run_fc("fc_fixed.cols_u8", mcuflow_fc_fixed, &fixed8, x10, fixed8_want, NO_SCRATCH);
    run_fc("fc_fixed.cols_u16", mcuflow_fc_fixed, &fixed16, x300, fixed16_want, NO_SCRATCH);
    run_fc("fc_fixed.cols_u32", mcuflow_fc_fixed, &fixed32, x6, fixed32_want, NO_SCRATCH);
}

/* fc_csr, 1-byte columns and row pointers: n_in = 9, rows of 5, 0 (bias only), 1 and 6 entries.
 * x = [c^2 - 20] = [-20, -19, -16, -11, -4, 5, 16, 29, 44]
 * row 0: cols [8, 0, 3, 5, 1], w [1, -1, 1, 2, -2]: 44 + 20 - 11 + 10 + 38 = 101; acc = 5 + 101 = 106
 * row 1: empty: acc = bias = -9
 * row 2: cols [4], w [-7]: 28; acc = 2 + 28 = 30; rshift 31: floor(31 / 2) = 15
 * row 3: cols [0, 1, 2, 6, 7, 8], w [1, 1, 1, -1, -1, -1]: -20 - 19 - 16 - 16 - 29 - 44 = -144;
 *        identity -144, clamped to -128 */
static const int8_t x9[9] = {-20, -19, -16, -11, -4, 5, 16, 29, 44};
static const int8_t csr8_w[12] = {1, -1, 1, 2, -2, -7, 1, 1, 1, -1, -1, -1};
static const uint8_t csr8_cols[12] = {8, 0, 3, 5, 1, 4, 0, 1, 2, 6, 7, 8};
static const uint8_t csr8_rows[5] = {0, 5, 5, 6, 12};
static const int32_t csr8_bias[4] = {5, -9, 2, 0};
static const uint8_t csr8_shift[4] = {30, 30, 31, 30};
static const mcuflow_fc_t csr8 = {
    .w = csr8_w, .cols = csr8_cols, .row_ptr = csr8_rows, .bias = csr8_bias, .mult = q30x16,
    .rshift = csr8_shift, .n_in = 9, .n_out = 4, .col_bytes = 1, .row_ptr_bytes = 1, .out_zp = 0,
    .act_min = -128, .act_max = 127,
};
static const int8_t csr8_want[4] = {106, -9, 15, -128};

/* fc_csr, 2-byte columns over x300: rows of 3, 5 and 0 entries.
 * row 0: cols [256, 1, 299], w [1, 2, 3]: 11 + 18 - 3 = 26; acc = 26
 * row 1: cols [0, 100, 255, 257, 298], w [-1, 2, -3, 4, -5]: 7 + 6 + 6 - 20 - 30 = -31; acc = -1 - 31 = -32
 * row 2: empty: acc = bias = 42
 * The same layer with 2-byte and with 4-byte row pointers. */
static const int8_t csr16_w[8] = {1, 2, 3, -1, 2, -3, 4, -5};
static const uint16_t csr16_cols[8] = {256, 1, 299, 0, 100, 255, 257, 298};
static const uint16_t csr16_rows16[4] = {0, 3, 8, 8};
static const uint32_t csr16_rows32[4] = {0, 3, 8, 8};
static const int32_t csr16_bias[3] = {0, -1, 42};
static const mcuflow_fc_t csr16 = {
    .w = csr16_w, .cols = csr16_cols, .row_ptr = csr16_rows16, .bias = csr16_bias, .mult = q30x16,
    .rshift = shift30x16, .n_in = 300, .n_out = 3, .col_bytes = 2, .row_ptr_bytes = 2, .out_zp = 0,
    .act_min = -128, .act_max = 127,
};
static const mcuflow_fc_t csr16_rp32 = {
    .w = csr16_w, .cols = csr16_cols, .row_ptr = csr16_rows32, .bias = csr16_bias, .mult = q30x16,
    .rshift = shift30x16, .n_in = 300, .n_out = 3, .col_bytes = 2, .row_ptr_bytes = 4, .out_zp = 0,
    .act_min = -128, .act_max = 127,
};
static const int8_t csr16_want[3] = {26, -32, 42};

static void test_fc_csr(void)
{
    run_fc("fc_csr.cols_u8_rows_u8", mcuflow_fc_csr, &csr8, x9, csr8_want, NO_SCRATCH);
    run_fc("fc_csr.cols_u16_rows_u16", mcuflow_fc_csr, &csr16, x300, csr16_want, NO_SCRATCH);
    run_fc("fc_csr.cols_u16_rows_u32", mcuflow_fc_csr, &csr16_rp32, x300, csr16_want, NO_SCRATCH);
}

/* ---------------------------------------------------------------------------------------------------
 * fc_index_free. The closed-form pattern (mcuflow/sparsity/patterns.py): edge t = r * degree + k of pass
 * q = t / n reads column col = u * p mod n with u = (t + q * s) mod n. Inside a pass u steps by one; at a
 * pass boundary it jumps by 1 + s. Each case runs on the permuted path (scratch: n + degree - 1 entries
 * may be written, the rest must stay untouched) and on the walk (scratch == NULL).
 * The permutation xp[u] = x[u * p mod n] is built in perm_m residue classes of u; within a class the
 * column steps by perm_delta = perm_m * p mod n (taken in (-n, n)). The (m, delta) below are what the
 * export chooses (mcuflow.codegen.kernels.permutation_plan), each with a class that wraps around n. */

/* Case A: n = 7 (odd: x_aligned = 0), degree 3 (below one group of four: weights as is), 7 rows =
 * 3 passes, p = 3, s = 2, pass_step = s * p mod 7 = 6. x = [2c - 6] = [-6, -4, -2, 0, 2, 4, 6].
 * xp[u] = x[3u mod 7]: u 0..6 -> cols 0, 3, 6, 2, 5, 1, 4.
 * Plan (m, delta) = (2, -1): class 0 (u = 0, 2, 4, 6) reads cols 0, 6, 5, 4: it wraps from 0 to 6 at once
 * (negative delta); class 1 (u = 1, 3, 5) reads 3, 2, 1.
 * row 0: t = 0..2, pass 0; u = [0, 1, 2]; cols [0, 3, 6]
 *   w [-5, -2, 1] . x [-6, 0, 6] = 30 + 0 + 6 = 36; acc = -3 + 36 = 33; y = 33
 * row 1: t = 3..5, pass 0; u = [3, 4, 5]; cols [2, 5, 1]
 *   w [5, 3, -5] . x [-2, 4, -4] = -10 + 12 + 20 = 22; acc = -2 + 22 = 20
 * row 2: t = 6..8, straddles passes 0|1 after 1 edge; u = [6, 2, 3] (6 + 1 + s = 9 = 2 mod 7); cols [4, 6, 2]
 *   w [5, -3, 5] . x [2, 6, -2] = 10 - 18 - 10 = -18; acc = -1 - 18 = -19
 * row 3: t = 9..11, pass 1; u = [4, 5, 6]; cols [5, 1, 4]
 *   w [-1, 2, 5] . x [4, -4, 2] = -4 - 8 + 10 = -2; acc = 0 - 2 = -2
 * row 4: t = 12..14, straddles passes 1|2 after 2 edges; u = [0, 1, 4]; cols [0, 3, 5]
 *   w [4, -4, -1] . x [-6, 0, 4] = -24 + 0 - 4 = -28; acc = 1 - 28 = -27
 * row 5: t = 15..17, pass 2; u = [5, 6, 0]; cols [1, 4, 0]
 *   w [-2, 1, 4] . x [-4, 2, -6] = 8 + 2 - 24 = -14; acc = 2 - 14 = -12
 * row 6: t = 18..20, pass 2; u = [1, 2, 3]; cols [3, 6, 2]
 *   w [3, -5, -2] . x [0, 6, -2] = 0 - 30 + 4 = -26; acc = 3 - 26 = -23; rshift 31: floor(-22 / 2) = -11 */
static const int8_t ifA_x[7] = {-6, -4, -2, 0, 2, 4, 6};
static const int8_t ifA_w[21] = {-5, -2, 1, 5, 3, -5, 5, -3, 5, -1, 2, 5, 4, -4, -1, -2, 1, 4, 3, -5, -2};
static const int32_t ifA_bias[7] = {-3, -2, -1, 0, 1, 2, 3};
static const uint8_t ifA_shift[7] = {30, 30, 30, 30, 30, 30, 31};
static const mcuflow_fc_t ifA = {
    .w = ifA_w, .bias = ifA_bias, .mult = q30x16, .rshift = ifA_shift, .n_in = 7, .n_out = 7, .degree = 3,
    .p = 3, .s = 2, .pass_step = 6, .perm_m = 2, .perm_delta = -1, .out_zp = 0, .act_min = -128,
    .act_max = 127,
};
static const int8_t ifA_want[7] = {33, 20, -19, -2, -27, -12, -11};

/* Case B: n = 11 (odd), degree 6 (one group of four + a partial group of 2), 11 rows = 6 passes,
 * p = 5, s = 3, pass_step = 15 mod 11 = 4. Rows 1, 3, 5, 7, 9 straddle a pass boundary after 5, 4, 3, 2
 * and 1 edges: the boundary cuts the partial group (5), falls between the groups (4), and cuts the
 * group of four after 3, 2 and 1 entries.
 * x = [c - 5] = [-5, -4, ..., 5]. xp[u] = x[5u mod 11]: u 0..10 -> cols 0, 5, 10, 4, 9, 3, 8, 2, 7, 1, 6.
 * Plan (2, -1): class 0 (u even, 6 entries) reads 0, 10, 9, 8, 7, 6 (wraps at once); class 1 (u odd, 5
 * entries) reads 5, 4, 3, 2, 1. The same layer also runs with the valid plan (4, -2) (20 mod 11 = 9 = -2;
 * 3 entries per class, span 2 * 2 < 11): classes read [0, 9, 7] (wraps), [5, 3, 1], [10, 8, 6], [4, 2].
 * row 0: t = 0..5, pass 0; u = [0, 1, 2, 3, 4, 5]; cols [0, 5, 10, 4, 9, 3]
 *   w [-4, 1, -3, 2, -2, 3] . x [-5, 0, 5, -1, 4, -2] = 20 + 0 - 15 - 2 - 8 - 6 = -11; acc = 5 - 11 = -6
 * row 1: t = 6..11, straddles passes 0|1 after 5 edges; u = [6, 7, 8, 9, 10, 3]; cols [8, 2, 7, 1, 6, 4]
 *   w [3, -1, 4, 4, -4, 1] . x [3, -3, 2, -4, 1, -1] = 9 + 3 + 8 - 16 - 4 - 1 = -1; acc = 4 - 1 = 3
 * row 2: t = 12..17, pass 1; u = [4, 5, 6, 7, 8, 9]; cols [9, 3, 8, 2, 7, 1]
 *   w [1, -3, 2, -2, 3, -1] . x [4, -2, 3, -3, 2, -4] = 4 + 6 + 6 + 6 + 6 + 4 = 32; acc = 3 + 32 = 35
 * row 3: t = 18..23, straddles passes 1|2 after 4 edges; u = [10, 0, 1, 2, 6, 7]; cols [6, 0, 5, 10, 8, 2]
 *   w [-1, 4, 4, -4, 1, -3] . x [1, -5, 0, 5, 3, -3] = -1 - 20 + 0 - 20 + 3 + 9 = -29; acc = 2 - 29 = -27
 * row 4: t = 24..29, pass 2; u = [8, 9, 10, 0, 1, 2]; cols [7, 1, 6, 0, 5, 10]
 *   w [-3, 2, -2, 3, -1, 4] . x [2, -4, 1, -5, 0, 5] = -6 - 8 - 2 - 15 + 0 + 20 = -11; acc = 1 - 11 = -10
 * row 5: t = 30..35, straddles passes 2|3 after 3 edges; u = [3, 4, 5, 9, 10, 0]; cols [4, 9, 3, 1, 6, 0]
 *   w [4, 4, -4, 1, -3, 2] . x [-1, 4, -2, -4, 1, -5] = -4 + 16 + 8 - 4 - 3 - 10 = 3; acc = 0 + 3 = 3
 * row 6: t = 36..41, pass 3; u = [1, 2, 3, 4, 5, 6]; cols [5, 10, 4, 9, 3, 8]
 *   w [2, -2, 3, -1, 4, 4] . x [0, 5, -1, 4, -2, 3] = 0 - 10 - 3 - 4 - 8 + 12 = -13; acc = -1 - 13 = -14
 * row 7: t = 42..47, straddles passes 3|4 after 2 edges; u = [7, 8, 1, 2, 3, 4]; cols [2, 7, 5, 10, 4, 9]
 *   w [4, -4, 1, -3, 2, -2] . x [-3, 2, 0, 5, -1, 4] = -12 - 8 + 0 - 15 - 2 - 8 = -45; acc = -2 - 45 = -47
 * row 8: t = 48..53, pass 4; u = [5, 6, 7, 8, 9, 10]; cols [3, 8, 2, 7, 1, 6]
 *   w [-2, 3, -1, 4, 4, -4] . x [-2, 3, -3, 2, -4, 1] = 4 + 9 + 3 + 8 - 16 - 4 = 4; acc = -3 + 4 = 1
 * row 9: t = 54..59, straddles passes 4|5 after 1 edge; u = [0, 4, 5, 6, 7, 8]; cols [0, 9, 3, 8, 2, 7]
 *   w [-4, 1, -3, 2, -2, 3] . x [-5, 4, -2, 3, -3, 2] = 20 + 4 + 6 + 6 + 6 + 6 = 48; acc = -4 + 48 = 44
 * row 10: t = 60..65, pass 5; u = [9, 10, 0, 1, 2, 3]; cols [1, 6, 0, 5, 10, 4]
 *   w [3, -1, 4, 4, -4, 1] . x [-4, 1, -5, 0, 5, -1] = -12 - 1 - 20 + 0 - 20 - 1 = -54; acc = -5 - 54 = -59;
 *   rshift 33: floor((-59 + 4) / 8) = floor(-6.875) = -7 */
static const int8_t ifB_x[11] = {-5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5};
static const int8_t ifB_w[66] = {
    -4, 1, -3, 2, -2, 3,  /* row 0 */
    3, -1, 4, 4, -4, 1,   /* row 1 */
    1, -3, 2, -2, 3, -1,  /* row 2 */
    -1, 4, 4, -4, 1, -3,  /* row 3 */
    -3, 2, -2, 3, -1, 4,  /* row 4 */
    4, 4, -4, 1, -3, 2,   /* row 5 */
    2, -2, 3, -1, 4, 4,   /* row 6 */
    4, -4, 1, -3, 2, -2,  /* row 7 */
    -2, 3, -1, 4, 4, -4,  /* row 8 */
    -4, 1, -3, 2, -2, 3,  /* row 9 */
    3, -1, 4, 4, -4, 1,   /* row 10 */
};
static const int32_t ifB_bias[11] = {5, 4, 3, 2, 1, 0, -1, -2, -3, -4, -5};
static const uint8_t ifB_shift[11] = {30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 33};
static const mcuflow_fc_t ifB = {
    .w = ifB_w, .bias = ifB_bias, .mult = q30x16, .rshift = ifB_shift, .n_in = 11, .n_out = 11, .degree = 6,
    .p = 5, .s = 3, .pass_step = 4, .perm_m = 2, .perm_delta = -1, .out_zp = 0, .act_min = -128,
    .act_max = 127,
};
static const mcuflow_fc_t ifB_m4 = {
    .w = ifB_w, .bias = ifB_bias, .mult = q30x16, .rshift = ifB_shift, .n_in = 11, .n_out = 11, .degree = 6,
    .p = 5, .s = 3, .pass_step = 4, .perm_m = 4, .perm_delta = -2, .out_zp = 0, .act_min = -128,
    .act_max = 127,
};
static const int8_t ifB_want[11] = {-6, 3, 35, -27, -10, 3, -14, -47, 1, 44, -7};

/* Case C: n = 24, degree 16, 3 rows = 2 passes, p = 13, s = 6, pass_step = 78 mod 24 = 6. The shift
 * is not a multiple of 4, so row 2's window starts at u = 14: x_aligned = 0 (int8 windows on word
 * boundaries need width, degree and shift multiples of 4; case E has them); w_aligned = 1, unroll = 1. Row 1 straddles the pass boundary after 8 edges; row 2's
 * window xp[14 .. 30) runs into the repeated head xp[24 ..].
 * x = [c - 12] = [-12, ..., 11]. xp[u] = x[13u mod 24].
 * Plan (2, 2): class 0 (u even) reads cols 0, 2, ..., 22; class 1 (u odd) reads 13, 15, ..., 23, then
 * wraps (positive delta) to 1, 3, ..., 11.
 * row 0: t = 0..15, pass 0; u = 0..15; cols [0, 13, 2, 15, 4, 17, 6, 19, 8, 21, 10, 23, 12, 1, 14, 3]
 *   w [1, 2, 2, -2, -1, -1, 1, -2, 1, 2, 2, -2, -1, -1, 1, -2]
 *   . x [-12, 1, -10, 3, -8, 5, -6, 7, -4, 9, -2, 11, 0, -11, 2, -9]
 *   = -12 + 2 - 20 - 6 + 8 - 5 - 6 - 14 - 4 + 18 - 4 - 22 + 0 + 11 + 2 + 18 = -34; acc = 7 - 34 = -27
 * row 1: t = 16..31, straddles passes 0|1 after 8 edges; u = 16..23, then 6..13 (24 + s = 30 = 6 mod 24)
 *   cols [16, 5, 18, 7, 20, 9, 22, 11, 6, 19, 8, 21, 10, 23, 12, 1]
 *   w [-2, 1, 2, 2, -2, -1, -1, 1, -2, 1, 2, 2, -2, -1, -1, 1]
 *   . x [4, -7, 6, -5, 8, -3, 10, -1, -6, 7, -4, 9, -2, 11, 0, -11]
 *   = -8 - 7 + 12 - 10 - 16 + 3 - 10 - 1 + 12 + 7 - 8 + 18 + 4 - 11 + 0 - 11 = -26; acc = -9 - 26 = -35
 * row 2: t = 32..47, pass 1; u = 14..23, 0..5; cols [14, 3, 16, 5, 18, 7, 20, 9, 22, 11, 0, 13, 2, 15, 4, 17]
 *   w [1, -2, 1, 2, 2, -2, -1, -1, 1, -2, 1, 2, 2, -2, -1, -1]
 *   . x [2, -9, 4, -7, 6, -5, 8, -3, 10, -1, -12, 1, -10, 3, -8, 5]
 *   = 2 + 18 + 4 - 14 + 12 + 10 - 8 + 3 + 10 + 2 - 12 + 2 - 20 - 6 + 8 - 5 = 6; acc = 20 + 6 = 26 */
static const int8_t ifC_x[24] = {-12, -11, -10, -9, -8, -7, -6, -5, -4, -3, -2, -1,
                                 0,   1,   2,   3,  4,  5,  6,  7,  8,  9,  10, 11};
static const int8_t ifC_w[48] MCUFLOW_ALIGNED(8) = {
    1, 2, 2, -2, -1, -1, 1, -2, 1, 2, 2, -2, -1, -1, 1, -2,   /* row 0 */
    -2, 1, 2, 2, -2, -1, -1, 1, -2, 1, 2, 2, -2, -1, -1, 1,   /* row 1 */
    1, -2, 1, 2, 2, -2, -1, -1, 1, -2, 1, 2, 2, -2, -1, -1,   /* row 2 */
};
static const int32_t ifC_bias[3] = {7, -9, 20};
static const mcuflow_fc_t ifC = {
    .w = ifC_w, .bias = ifC_bias, .mult = q30x16, .rshift = shift30x16, .n_in = 24, .n_out = 3, .degree = 16,
    .p = 13, .s = 6, .pass_step = 6, .perm_m = 2, .perm_delta = 2, .w_aligned = 1, .x_aligned = 0,
    .unroll = 1, .out_zp = 0, .act_min = -128, .act_max = 127,
};
static const int8_t ifC_want[3] = {-27, -35, 26};

/* Case D: n = 5 (odd), degree 4 (exactly one group), 5 rows = 4 passes, p = 2, s = 1, pass_step = 2.
 * Rows 1, 2, 3 straddle after 1, 2 and 3 edges (the boundary cuts the group each time); row 4's window
 * starts at u = 4 = n - 1, so it reads the last entry of the repeated head, xp[n + degree - 2] = xp[7].
 * x = [3c - 7] = [-7, -4, -1, 2, 5]. xp[u] = x[2u mod 5]: u 0..4 -> cols 0, 2, 4, 1, 3.
 * Plan (2, -1): class 0 (u = 0, 2, 4) reads cols 0, 4, 3 (wraps at once); class 1 (u = 1, 3) reads 2, 1.
 * row 0: t = 0..3, pass 0; u = [0, 1, 2, 3]; cols [0, 2, 4, 1]
 *   w [2, -3, 1, -1] . x [-7, -1, 5, -4] = -14 + 3 + 5 + 4 = -2; acc = 0 - 2 = -2
 * row 1: t = 4..7, straddles passes 0|1 after 1 edge; u = [4, 1, 2, 3] (4 + 1 + s = 6 = 1 mod 5); cols [3, 2, 4, 1]
 *   w [-1, 3, -2, 1] . x [2, -1, 5, -4] = -2 - 3 - 10 - 4 = -19; acc = 1 - 19 = -18
 * row 2: t = 8..11, straddles passes 1|2 after 2 edges; u = [4, 0, 2, 3]; cols [3, 0, 4, 1]
 *   w [1, 2, 2, -3] . x [2, -7, 5, -4] = 2 - 14 + 10 + 12 = 10; acc = 2 + 10 = 12
 * row 3: t = 12..15, straddles passes 2|3 after 3 edges; u = [4, 0, 1, 3]; cols [3, 0, 2, 1]
 *   w [-3, 1, -1, 3] . x [2, -7, -1, -4] = -6 - 7 + 1 - 12 = -24; acc = 3 - 24 = -21
 * row 4: t = 16..19, pass 3; u = [4, 0, 1, 2]; cols [3, 0, 2, 4]
 *   w [3, -2, 1, 2] . x [2, -7, -1, 5] = 6 + 14 - 1 + 10 = 29; acc = 4 + 29 = 33 */
static const int8_t ifD_x[5] = {-7, -4, -1, 2, 5};
static const int8_t ifD_w[20] MCUFLOW_ALIGNED(8) = {
    2, -3, 1, -1,  /* row 0 */
    -1, 3, -2, 1,  /* row 1 */
    1, 2, 2, -3,   /* row 2 */
    -3, 1, -1, 3,  /* row 3 */
    3, -2, 1, 2,   /* row 4 */
};
static const int32_t ifD_bias[5] = {0, 1, 2, 3, 4};
static const mcuflow_fc_t ifD = {
    .w = ifD_w, .bias = ifD_bias, .mult = q30x16, .rshift = shift30x16, .n_in = 5, .n_out = 5, .degree = 4,
    .p = 2, .s = 1, .pass_step = 2, .perm_m = 2, .perm_delta = -1, .w_aligned = 1, .out_zp = 0,
    .act_min = -128, .act_max = 127,
};
static const int8_t ifD_want[5] = {-2, -18, 12, -21, 33};

/* Case E: a padded input read in place, rows in runs, the short requantisation. n = 16 columns of which
 * the first n_x = 13 are inputs (13..15: padding, whose weights the export sets to 0 after folding them into
 * the bias), degree 8, 4 rows = 2 passes, p = 3, s = 4, pass_step = 12. Width, degree and shift are
 * multiples of 4: every window starts on a word (x_aligned = 1, w_aligned = 1: the DSP variant's LDRD
 * blocks). No row straddles a pass boundary (16 = 2 * 8), so the rows run in runs of (rows, first window):
 * rows 0, 1 at u = 0, 8; the second pass starts s = 4 further on: rows 2, 3 at u = 4, 12, row 3's window
 * xp[12 .. 20) running into the repeated head. Runs {(2, 0), (2, 4)}.
 * Plan (m, delta) = (5, -1): class 0 (u = 0, 5, 10, 15) reads cols 0, 15, 14, 13: one input, then it wraps
 * into the padding, which it skips (those xp entries keep the scratch's guard bytes, times weight 0);
 * classes 1..4 read 3, 2, 1 / 6, 5, 4 / 9, 8, 7 / 12, 11, 10.
 * x = [3c - 19] = [-19, -16, -13, -10, -7, -4, -1, 2, 5, 8, 11, 14, 17] (13 inputs, no padding stored).
 * rshift 33..35 (>= 33: shift_gt32), mult 2^30: y = floor((acc + 2^(k-1)) / 2^k) + zp with k = rshift - 30;
 * zp 10, clamp 0..12.
 * row 0: u = 0..7, cols [0, 3, 6, 9, 12, 15, 2, 5]; w [1, 2, 2, -2, -1, 0, 3, 3]
 *   . x [-19, -10, -1, 8, 17, -, -13, -4] = -19 - 20 - 2 - 16 - 17 + 0 - 39 - 12 = -125; acc = 40 - 125 = -85;
 *   k 3: floor(-81 / 8) = -11; + 10 = -1 -> 0
 * row 1: u = 8..15, cols [8, 11, 14, 1, 4, 7, 10, 13]; w [-1, 1, 0, 2, -2, -1, -3, 0]
 *   . x [5, 14, -, -16, -7, 2, 11, -] = -5 + 14 + 0 - 32 + 14 - 2 - 33 + 0 = -44; acc = -25 - 44 = -69;
 *   k 4: floor(-61 / 16) = -4; + 10 = 6
 * row 2: pass 1, u = 4..11, cols [12, 15, 2, 5, 8, 11, 14, 1]; w [1, 0, 1, 2, 2, -2, 0, -3]
 *   . x [17, -, -13, -4, 5, 14, -, -16] = 17 + 0 - 13 - 8 + 10 - 28 + 0 + 48 = 26; acc = 7 + 26 = 33;
 *   k 3: floor(37 / 8) = 4; + 10 = 14 -> 12
 * row 3: u = 12..19 (16.. = 0..3), cols [4, 7, 10, 13, 0, 3, 6, 9]; w [3, 1, -1, 0, 2, 2, -2, -1]
 *   . x [-7, 2, 11, -, -19, -10, -1, 8] = -21 + 2 - 11 + 0 - 38 - 20 + 2 - 8 = -94; acc = 100 - 94 = 6;
 *   k 5: floor(22 / 32) = 0; + 10 = 10
 * The walk (no scratch) reads the padded input: the same x then 3 padding entries (any value: weight 0). */
static const int8_t ifE_x[13] = {-19, -16, -13, -10, -7, -4, -1, 2, 5, 8, 11, 14, 17};
static const int8_t ifE_x_padded[16] = {-19, -16, -13, -10, -7, -4, -1, 2, 5, 8, 11, 14, 17, 99, -99, 99};
static const int8_t ifE_w[32] MCUFLOW_ALIGNED(8) = {
    1, 2, 2, -2, -1, 0, 3, 3,     /* row 0 */
    -1, 1, 0, 2, -2, -1, -3, 0,   /* row 1 */
    1, 0, 1, 2, 2, -2, 0, -3,     /* row 2 */
    3, 1, -1, 0, 2, 2, -2, -1,    /* row 3 */
};
static const int32_t ifE_bias[4] = {40, -25, 7, 100};
static const uint8_t ifE_shift[4] = {33, 34, 33, 35};
static const uint8_t ifE_shift_less33[4] = {0, 1, 0, 2}; /* as the export stores a shift_gt32 layer's */
static const uint16_t ifE_runs[4] = {2, 0, 2, 4};
static const mcuflow_fc_t ifE = {
    .w = ifE_w, .bias = ifE_bias, .mult = q30x16, .rshift = ifE_shift_less33, .n_in = 16, .n_out = 4, .degree = 8,
    .p = 3, .s = 4, .pass_step = 12, .perm_m = 5, .perm_delta = -1, .n_x = 13, .w_aligned = 1,
    .x_aligned = 1, .unroll = 1, .runs = ifE_runs, .n_runs = 2, .shift_gt32 = 1, .out_zp = 10, .act_min = 0,
    .act_max = 12,
};
/* The same layer through the general row loop (no runs) and the general requantisation. */
static const mcuflow_fc_t ifE_general = {
    .w = ifE_w, .bias = ifE_bias, .mult = q30x16, .rshift = ifE_shift, .n_in = 16, .n_out = 4, .degree = 8,
    .p = 3, .s = 4, .pass_step = 12, .perm_m = 5, .perm_delta = -1, .n_x = 13, .w_aligned = 1,
    .x_aligned = 1, .unroll = 1, .out_zp = 10, .act_min = 0, .act_max = 12,
};
static const int8_t ifE_want[4] = {0, 6, 12, 10};

static void test_fc_index_free(void)
{
    run_fc("index_free.n7_d3_permuted", mcuflow_fc_index_free, &ifA, ifA_x, ifA_want, 7u + 3u - 1u);
    run_fc("index_free.n7_d3_walk", mcuflow_fc_index_free, &ifA, ifA_x, ifA_want, NO_SCRATCH);
    run_fc("index_free.n11_d6_permuted", mcuflow_fc_index_free, &ifB, ifB_x, ifB_want, 11u + 6u - 1u);
    run_fc("index_free.n11_d6_permuted_plan_m4", mcuflow_fc_index_free, &ifB_m4, ifB_x, ifB_want, 11u + 6u - 1u);
    run_fc("index_free.n11_d6_walk", mcuflow_fc_index_free, &ifB, ifB_x, ifB_want, NO_SCRATCH);
    run_fc("index_free.n24_d16_aligned_permuted", mcuflow_fc_index_free, &ifC, ifC_x, ifC_want, 24u + 16u - 1u);
    run_fc("index_free.n24_d16_walk", mcuflow_fc_index_free, &ifC, ifC_x, ifC_want, NO_SCRATCH);
    run_fc("index_free.n5_d4_permuted", mcuflow_fc_index_free, &ifD, ifD_x, ifD_want, 5u + 4u - 1u);
    run_fc("index_free.n5_d4_walk", mcuflow_fc_index_free, &ifD, ifD_x, ifD_want, NO_SCRATCH);
    run_fc("index_free.n16_nx13_runs_permuted", mcuflow_fc_index_free, &ifE, ifE_x, ifE_want, 16u + 8u - 1u);
    run_fc("index_free.n16_nx13_general_permuted", mcuflow_fc_index_free, &ifE_general, ifE_x, ifE_want,
           16u + 8u - 1u);
    run_fc("index_free.n16_nx13_walk", mcuflow_fc_index_free, &ifE, ifE_x_padded, ifE_want, NO_SCRATCH);
}

/* ---------------------------------------------------------------------------------------------------
 * mcuflow_exit_decide. The table is Q15 exp(-d * ln 2) = 32768 / 2^d for a logit gap d < 16 (exact), 0
 * from d = 16 on (below one half). Confidence q = min(32767, floor((2^30 + S / 2) / S)) =
 * round-half-up(2^30 / S) with S = sum_j lut[max - l_j]; the exit answers when q >= threshold. Each case
 * checks (label, confidence, answered). */
static const uint16_t lut_ln2[256] = {32768, 16384, 8192, 4096, 2048, 1024, 512, 256,
                                      128,   64,    32,   16,   8,    4,    2,   1};

static void run_exit(const char *name, const int8_t *logits, uint32_t num_classes, uint32_t threshold,
                     const int32_t want[3])
{
    mcuflow_exit_t e;
    uint8_t label = 255u;
    uint16_t conf = 0u;
    int32_t got[3];
    e.lut = lut_ln2;
    e.lut_last = 0u; /* the whole table */
    e.num_classes = num_classes;
    e.threshold_q15 = threshold;
    begin(name);
    got[2] = mcuflow_exit_decide(&e, logits, &label, &conf);
    got[0] = label;
    got[1] = conf;
    expect_i32(got, want, 3u);
    end();
}

/* Tie for the maximum at indices 1 and 2: the lowest index wins.
 * logits [3, 7, 7, 1]: gaps [4, 0, 0, 6]: S = 2048 + 32768 + 32768 + 512 = 68096;
 * 2^30 / 68096 = 15768.06 (68096 * 15768 = 1073737728, remainder 4096 < 34048): q = 15768 < 16000: no answer */
static const int8_t exit_tie_logits[4] = {3, 7, 7, 1};
static const int32_t exit_tie_want[3] = {1, 15768, 0};

/* Tie between the first and the last logit: label 0.
 * logits [9, -1, 2, 9]: gaps [0, 10, 7, 0]: S = 32768 + 32 + 256 + 32768 = 65824;
 * 65824 * 16312 = 1073721088, 2^30 - that = 20736 < 32912 = S / 2: q = 16312 (2^30 / S = 16312.32),
 * which reaches the threshold 16000: answers */
static const int8_t exit_tie_first_logits[4] = {9, -1, 2, 9};
static const int32_t exit_tie_first_want[3] = {0, 16312, 1};

/* One class far ahead: gaps [0, 255, 128, 27] (the whole int8 range: lut[255]), S = 32768;
 * (2^30 + 16384) / 32768 = 32768.5 -> 32768, clamped to 32767, which meets the threshold 32767. */
static const int8_t exit_clamp_logits[4] = {127, -128, -1, 100};
static const int32_t exit_clamp_want[3] = {0, 32767, 1};

/* logits [5, 4, 0, 0]: gaps [0, 1, 5, 5]: S = 32768 + 16384 + 1024 + 1024 = 51200;
 * 2^30 / 51200 = 20971.52 -> 20972 ((2^30 + 25600) / 51200 = 20972.02). Threshold 20972: answers;
 * threshold 20973: does not (label and confidence are still set). */
static const int8_t exit_thr_logits[4] = {5, 4, 0, 0};
static const int32_t exit_at_thr_want[3] = {0, 20972, 1};
static const int32_t exit_below_thr_want[3] = {0, 20972, 0};

/* Two negative logits, the maximum last: gaps [1, 0]: S = 49152; 2^30 / 49152 = 21845.33 -> 21845. */
static const int8_t exit_two_logits[2] = {-4, -3};
static const int32_t exit_two_want[3] = {1, 21845, 1};

/* The same decision with the table cut where it reached 0: lut_ln2 is 0 from d = 16 on, so the device
 * keeps its first 32 entries (lut_last = 31, the shortest 2^k with a 0 at index 2^k - 1 and after) and
 * clamps larger gaps to 31. logits [100, -100, 90, 99]: gaps [0, 200, 10, 1] (200 -> 31: lut 0):
 * S = 32768 + 0 + 32 + 16384 = 49184; 2^30 / 49184 = 21831.1 ((2^30 + 24592) / 49184 = 21831.6 -> 21831). */
static const int8_t exit_cut_logits[4] = {100, -100, 90, 99};
static const int32_t exit_cut_want[3] = {0, 21831, 1};

static void run_exit_cut(void)
{
    mcuflow_exit_t e;
    uint8_t label = 255u;
    uint16_t conf = 0u;
    int32_t got[3];
    e.lut = lut_ln2;
    e.lut_last = 31u;
    e.num_classes = 4u;
    e.threshold_q15 = 20000u;
    begin("exit.table_cut");
    got[2] = mcuflow_exit_decide(&e, exit_cut_logits, &label, &conf);
    got[0] = label;
    got[1] = conf;
    expect_i32(got, exit_cut_want, 3u);
    end();
}

static void test_exit_decide(void)
{
    run_exit("exit.tie_lowest_index", exit_tie_logits, 4u, 16000u, exit_tie_want);
    run_exit("exit.tie_first_and_last", exit_tie_first_logits, 4u, 16000u, exit_tie_first_want);
    run_exit("exit.clamp_32767", exit_clamp_logits, 4u, 32767u, exit_clamp_want);
    run_exit("exit.at_threshold", exit_thr_logits, 4u, 20972u, exit_at_thr_want);
    run_exit("exit.below_threshold", exit_thr_logits, 4u, 20973u, exit_below_thr_want);
    run_exit("exit.two_classes", exit_two_logits, 2u, 1u, exit_two_want);
    run_exit_cut();
}

/* ---------------------------------------------------------------------------------------------------
 * mcuflow_pad: y = x then n_out - n_in copies of fill; the byte after n_out is a guard. */
static void test_pad(void)
{
    static const int8_t x[3] = {1, -2, 3};
    int8_t y[9];
    int8_t buf[7] = {4, 5, 6, 7, 99, 99, 99};

    /* copying: 3 inputs, 8 outputs, fill -128 (the zero point of an input in [0, 1]) */
    static const int8_t copy_want[9] = {1, -2, 3, -128, -128, -128, -128, -128, GUARD8};
    begin("pad.copy");
    fill_i8(y, 9u, GUARD8);
    mcuflow_pad(x, y, 3u, 8u, -128);
    expect_i8(y, copy_want, 9u);
    end();

    /* in place (x == y): the 4 inputs stay, 2 entries of fill -3, the guard (99) is untouched */
    {
        static const int8_t in_place_want[7] = {4, 5, 6, 7, -3, -3, 99};
        begin("pad.in_place");
        mcuflow_pad(buf, buf, 4u, 6u, -3);
        expect_i8(buf, in_place_want, 7u);
        end();
    }

    /* nothing to pad (n_out == n_in): a copy only, fill 17 never written */
    {
        static const int8_t none_want[4] = {1, -2, 3, GUARD8};
        begin("pad.no_padding");
        fill_i8(y, 9u, GUARD8);
        mcuflow_pad(x, y, 3u, 3u, 17);
        expect_i8(y, none_want, 4u);
        end();
    }
}

/* --------------------------------------------------------------------------------------------------- */

#include "conv_cases.h" /* conv and pooling */

int mcuflow_kernel_tests(void)
{
    cases_run = 0u;
    cases_failed = 0u;
    test_requantize();
    test_fc_dense();
    test_fc_fixed();
    test_fc_csr();
    test_fc_index_free();
    test_exit_decide();
    test_pad();
    test_conv();
    test_pool();
    put("summary cases=");
    put_i32((int32_t)cases_run);
    put(" failed=");
    put_i32((int32_t)cases_failed);
#if MCUFLOW_KERNELS_DSP && MCUFLOW_DSP_EMULATED
    put(" variant=dsp-emulated\n");
#elif MCUFLOW_KERNELS_DSP
    put(" variant=dsp\n");
#else
    put(" variant=reference\n");
#endif
    return (int)cases_failed;
}

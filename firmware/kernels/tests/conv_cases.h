/* Golden cases of the convolutional kernels (conv.h, pool.h), included by kernel_tests.c after its
 * reporting helpers. Every expected value is derived by hand in the comment beside its case.
 * Feature maps are HWC: x[(y * W + x) * C + c]. mcuflow_conv uses two patches of scratch (pixel pairs;
 * an odd last pixel alone), so the pair path and the single path both run in these cases. Conv weights are stored per output channel, channel-major
 * over its window (for each input channel of the window, its kh * kw taps row by row), in groups of four
 * as (w0, w2, w1, w3), a partial last group as is. */

typedef void (*conv_kernel_t)(const mcuflow_conv_t *l, const int8_t *x, int8_t *y, void *scratch);

static void run_conv(const char *name, const mcuflow_conv_t *l, const int8_t *x, const int8_t *want,
                     uint32_t scratch_used /* int16 entries */)
{
    int8_t y[32];
    const uint32_t n_out = l->out_h * l->out_w * l->c_out;
    uint8_t *s = fresh_scratch();
    begin(name);
    fill_i8(y, sizeof y, GUARD8);
    mcuflow_conv(l, x, y, s);
    expect_i8(y, want, n_out);
    if (y[n_out] != GUARD8) {
        mismatch("", n_out, y[n_out], GUARD8);
    }
    expect_scratch_guard(s, 2u * scratch_used); /* int16 entries, in bytes */
    end();
}

/* conv.dense_2x2_c2: 3x3x2 input, 2x2 kernel, 2 -> 1 channels, no padding, identity requantisation.
 * channel 0: [[1, 2, 3], [4, 5, 6], [7, 8, 9]]   weights [[1, 2], [3, 4]]
 * channel 1: [[-1, 0, 1], [2, -2, 3], [0, 1, -1]] weights [[2, 2], [2, 2]]; bias 10
 * out(0,0) = 10 + (1 + 4 + 12 + 20) + 2 * (-1 + 0 + 2 - 2) = 10 + 37 - 2 = 45
 * out(0,1) = 10 + (2 + 6 + 15 + 24) + 2 * (0 + 1 - 2 + 3)  = 10 + 47 + 4 = 61
 * out(1,0) = 10 + (4 + 10 + 21 + 32) + 2 * (2 - 2 + 0 + 1) = 10 + 67 + 2 = 79
 * out(1,1) = 10 + (5 + 12 + 24 + 36) + 2 * (-2 + 3 + 1 - 1) = 10 + 77 + 2 = 89
 * The row is 8 weights: aligned (LDRD on the DSP variant). */
static const int8_t conv_a_x[18] = {1, -1, 2, 0, 3, 1, 4, 2, 5, -2, 6, 3, 7, 0, 8, 1, 9, -1};
static const int8_t conv_a_w[8] MCUFLOW_ALIGNED(8) = {1, 3, 2, 4, 2, 2, 2, 2};
static const int32_t conv_a_bias[1] = {10};
static const mcuflow_conv_t conv_a = {
    .w = conv_a_w, .bias = conv_a_bias, .mult = q30x16, .rshift = shift30x16, .in_h = 3, .in_w = 3, .c_in = 2,
    .out_h = 2, .out_w = 2, .c_out = 1, .kh = 2, .kw = 2, .stride_h = 1, .stride_w = 1, .d_in = 2, .p = 1,
    .s = 0, .u_count = 2, .row_pad = 0, .in_zp = 0, .out_zp = 0, .act_min = -128, .act_max = 127,
    .w_aligned = 1, .x_aligned = 1,
};
static const int8_t conv_a_want[4] = {45, 61, 79, 89};

/* conv.pad_zero_point: 2x2x1 input [[1, 2], [3, 4]], 3x3 kernel w[i][j] = 3i + j + 1 (1..9), padding 1 on
 * every side with the input zero point -3, stride 1 -> 2x2x1; bias 0, identity.
 * out(0,0): inside w5*1 + w6*2 + w8*3 + w9*4 = 5 + 12 + 24 + 36 = 77; padding (w1+w2+w3+w4+w7) * -3 = -51: 26
 * out(0,1): inside w4*1 + w5*2 + w7*3 + w8*4 = 67; padding (w1+w2+w3+w6+w9) * -3 = -63: 4
 * out(1,0): inside w2*1 + w3*2 + w5*3 + w6*4 = 47; padding (w1+w4+w7+w8+w9) * -3 = -87: -40
 * out(1,1): inside w1*1 + w2*2 + w4*3 + w5*4 = 37; padding (w3+w6+w7+w8+w9) * -3 = -99: -62
 * The 9 weights are padded with 3 zeros to 12 (row_pad 3, as the export does for dense rows): the
 * patch is 9 entries + 3 zeros. */
static const int8_t conv_b_x[4] = {1, 2, 3, 4};
static const int8_t conv_b_w[12] MCUFLOW_ALIGNED(8) = {1, 3, 2, 4, 5, 7, 6, 8, 9, 0, 0, 0};
static const int32_t conv_b_bias[1] = {0};
static const mcuflow_conv_t conv_b = {
    .w = conv_b_w, .bias = conv_b_bias, .mult = q30x16, .rshift = shift30x16, .in_h = 2, .in_w = 2, .c_in = 1,
    .out_h = 2, .out_w = 2, .c_out = 1, .kh = 3, .kw = 3, .stride_h = 1, .stride_w = 1, .pad_top = 1,
    .pad_left = 1, .d_in = 1, .p = 1, .s = 0, .u_count = 1, .row_pad = 3, .in_zp = -3, .out_zp = 0,
    .act_min = -128, .act_max = 127, .w_aligned = 1, .x_aligned = 1,
};
static const int8_t conv_b_want[4] = {26, 4, -40, -62};

/* conv.sparse_straddle: 1x2x3 input, 1x1 kernel, 3 -> 3 channels, in-degree 2, p = 2, s = 1.
 * Edges t = 2o + k: u = (t + (t / 3) * s) mod 3 = 0, 1, 2, 1, 2, 0; channel (u * p) mod 3: u 0 -> 0, 1 -> 2,
 * 2 -> 1. Output 0 reads u {0, 1} = channels {0, 2}; output 1 reads u {2} then, past the pass boundary,
 * u {1}: channels {1, 2} in two pieces; output 2 reads u {2, 3 = 0}: channels {1, 0} (the repeated head:
 * u_count 4).
 * weights: o0 [1, 2], o1 [3] + [-1], o2 [2, -3]; biases [0, 1, -2]; shifts [30, 31, 30]
 * pixel 0 = [10, 20, 30]: o0 10 + 60 = 70; o1 1 + 60 - 30 = 31 -> floor(32 / 2) = 16; o2 -2 + 40 - 30 = 8
 * pixel 1 = [-5, 7, 1]:   o0 -5 + 2 = -3;  o1 1 + 21 - 1 = 21 -> floor(22 / 2) = 11; o2 -2 + 14 + 15 = 27 */
static const int8_t conv_c_x[6] = {10, 20, 30, -5, 7, 1};
static const int8_t conv_c_w[6] = {1, 2, 3, -1, 2, -3};
static const int32_t conv_c_bias[3] = {0, 1, -2};
static const uint8_t conv_c_shift[3] = {30, 31, 30};
static const mcuflow_conv_t conv_c = {
    .w = conv_c_w, .bias = conv_c_bias, .mult = q30x16, .rshift = conv_c_shift, .in_h = 1, .in_w = 2, .c_in = 3,
    .out_h = 1, .out_w = 2, .c_out = 3, .kh = 1, .kw = 1, .stride_h = 1, .stride_w = 1, .d_in = 2, .p = 2,
    .s = 1, .u_count = 4, .row_pad = 0, .in_zp = 0, .out_zp = 0, .act_min = -128, .act_max = 127,
};
static const int8_t conv_c_want[6] = {70, 16, 8, -3, 11, 27};

/* conv.stride2_relu: the 3x3x2 input of conv_a, 2x2 kernel, stride 2 -> one output pixel (0,0) = 45 - 10 + bias;
 * with bias -40: 37 - 2 - 40 = -5; act_min 0 (a fused ReLU at zero point 0) clamps it to 0. A second output
 * channel with the same weights and bias 0 gives 35. */
static const int8_t conv_d_w[16] MCUFLOW_ALIGNED(8) = {1, 3, 2, 4, 2, 2, 2, 2, 1, 3, 2, 4, 2, 2, 2, 2};
static const int32_t conv_d_bias[2] = {-40, 0};
static const mcuflow_conv_t conv_d = {
    .w = conv_d_w, .bias = conv_d_bias, .mult = q30x16, .rshift = shift30x16, .in_h = 3, .in_w = 3, .c_in = 2,
    .out_h = 1, .out_w = 1, .c_out = 2, .kh = 2, .kw = 2, .stride_h = 2, .stride_w = 2, .d_in = 2, .p = 1,
    .s = 0, .u_count = 2, .row_pad = 0, .in_zp = 0, .out_zp = 0, .act_min = 0, .act_max = 127,
    .w_aligned = 1, .x_aligned = 1,
};
static const int8_t conv_d_want[2] = {0, 35};

static void test_conv(void)
{
    run_conv("conv.dense_2x2_c2", &conv_a, conv_a_x, conv_a_want, 16u);
    run_conv("conv.pad_zero_point", &conv_b, conv_b_x, conv_b_want, 24u);
    run_conv("conv.sparse_straddle", &conv_c, conv_c_x, conv_c_want, 8u);
    run_conv("conv.stride2_relu", &conv_d, conv_a_x, conv_d_want, 16u);
}

/* Pooling on a 2x4x2 input (HWC):
 *   y0: (1, -8) (5, -3) (-2, 0) (-7, -128)
 *   y1: (3, -4) (0, -9) (-1, -6) (-5, -100)
 * max 2x2 stride 2: window 0 c0 max(1, 5, 3, 0) = 5, c1 max(-8, -3, -4, -9) = -3;
 *                   window 1 c0 max(-2, -7, -1, -5) = -1, c1 max(0, -128, -6, -100) = 0
 * with act_min -2 (a ReLU at zero point -2): 5, -2, -1, 0
 * avg 2x2 stride 2, floor((sum + 2) / 4): c0 9 -> 2 (2.25); c1 -24 -> -6 (exactly -6);
 *                   c0 -15 -> -4 (-3.75); c1 -234 -> -58 (-58.5 rounds half up)
 * global avg 2x4, floor((sum + 4) / 8): c0 -6 -> -1 (-0.75); c1 -258 -> -32 (-32.25) */
static const int8_t pool_x[16] = {1, -8, 5, -3, -2, 0, -7, -128, 3, -4, 0, -9, -1, -6, -5, -100};
static const mcuflow_pool_t pool_2x2 = {
    .in_h = 2, .in_w = 4, .c = 2, .out_h = 1, .out_w = 2, .kh = 2, .kw = 2, .stride_h = 2, .stride_w = 2,
    .act_min = -128,
};
static const mcuflow_pool_t pool_2x2_relu = {
    .in_h = 2, .in_w = 4, .c = 2, .out_h = 1, .out_w = 2, .kh = 2, .kw = 2, .stride_h = 2, .stride_w = 2,
    .act_min = -2,
};
static const mcuflow_pool_t pool_global = {
    .in_h = 2, .in_w = 4, .c = 2, .out_h = 1, .out_w = 1, .kh = 2, .kw = 4, .stride_h = 2, .stride_w = 4,
    .act_min = -128,
};

typedef void (*pool_kernel_t)(const mcuflow_pool_t *l, const int8_t *x, int8_t *y, void *scratch);

static void run_pool(const char *name, pool_kernel_t kernel, const mcuflow_pool_t *l, const int8_t *want, int in_place)
{
    int8_t y[20];
    const uint32_t n_out = l->out_h * l->out_w * l->c;
    uint32_t i;
    begin(name);
    fill_i8(y, sizeof y, GUARD8);
    if (in_place) {
        for (i = 0u; i < 16u; ++i) {
            y[i] = pool_x[i];
        }
        kernel(l, y, y, NULL);
    } else {
        kernel(l, pool_x, y, NULL);
        if (y[n_out] != GUARD8) {
            mismatch("", n_out, y[n_out], GUARD8);
        }
    }
    expect_i8(y, want, n_out);
    end();
}

static void test_pool(void)
{
    static const int8_t max_want[4] = {5, -3, -1, 0};
    static const int8_t max_relu_want[4] = {5, -2, -1, 0};
    static const int8_t avg_want[4] = {2, -6, -4, -58};
    static const int8_t global_want[2] = {-1, -32};
    run_pool("pool.max_2x2", mcuflow_maxpool, &pool_2x2, max_want, 0);
    run_pool("pool.max_relu", mcuflow_maxpool, &pool_2x2_relu, max_relu_want, 0);
    run_pool("pool.max_in_place", mcuflow_maxpool, &pool_2x2, max_want, 1);
    run_pool("pool.avg_2x2_rounding", mcuflow_avgpool, &pool_2x2, avg_want, 0);
    run_pool("pool.avg_global", mcuflow_avgpool, &pool_global, global_want, 0);
}

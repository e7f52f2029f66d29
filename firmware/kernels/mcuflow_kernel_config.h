/* mcuflow kernel library: which variant this build compiles, and the compiler attributes the kernels use.
 *
 * MCUFLOW_KERNELS_DSP = 1 selects the Armv7E-M variant (dsp/): packed 16-bit multiply-accumulates
 * (SMLAD, SMLABB/SMLATB on SXTB16-unpacked words). It is on when the compiler targets a core with the
 * DSP extension (arm-none-eabi-gcc defines __ARM_FEATURE_DSP for -mcpu=cortex-m4/m7/m33, so a board
 * file's cpu selects it), unless -DMCUFLOW_HAS_DSP=0. On the host, -DMCUFLOW_EMULATE_DSP=1 compiles the
 * same variant on C models of those instructions, so host tests cover both variants.
 * MCUFLOW_KERNELS_DSP = 0 is the portable reference variant (reference/): plain C99. */
#ifndef MCUFLOW_KERNEL_CONFIG_H
#define MCUFLOW_KERNEL_CONFIG_H

#if defined(MCUFLOW_EMULATE_DSP) && MCUFLOW_EMULATE_DSP
#define MCUFLOW_KERNELS_DSP 1
#define MCUFLOW_DSP_EMULATED 1
#elif defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP && !(defined(MCUFLOW_HAS_DSP) && !MCUFLOW_HAS_DSP)
#define MCUFLOW_KERNELS_DSP 1
#define MCUFLOW_DSP_EMULATED 0
#else
#define MCUFLOW_KERNELS_DSP 0
#define MCUFLOW_DSP_EMULATED 0
#endif

/* Kernels are inlined where a layer calls them, so that its shape and constants (a static const
 * mcuflow_fc_t) fold into immediates and the compiler unrolls loops over the in-degree. */
#if defined(__GNUC__) || defined(__clang__)
#define MCUFLOW_INLINE static inline __attribute__((always_inline, unused))
#define MCUFLOW_NOINLINE __attribute__((noinline))
#define MCUFLOW_LIKELY(c) __builtin_expect(!!(c), 1)
#define MCUFLOW_ALIGNED(n) __attribute__((aligned(n)))
#else
#define MCUFLOW_INLINE static inline
#define MCUFLOW_NOINLINE
#define MCUFLOW_LIKELY(c) (c)
#define MCUFLOW_ALIGNED(n)
#endif

#if defined(__GNUC__) && !defined(__clang__)
#define MCUFLOW_PRAGMA_UNROLL2 _Pragma("GCC unroll 2")
#define MCUFLOW_PRAGMA_UNROLL4 _Pragma("GCC unroll 4")
#define MCUFLOW_PRAGMA_UNROLL16 _Pragma("GCC unroll 16")
#else
#define MCUFLOW_PRAGMA_UNROLL2
#define MCUFLOW_PRAGMA_UNROLL4
#define MCUFLOW_PRAGMA_UNROLL16
#endif

/* Tests record the columns the index-free walk regenerates (-DMCUFLOW_TRACE_COLUMN(col)=...). */
#ifdef MCUFLOW_TRACE_COLUMN
#define MCUFLOW_TRACE(col) MCUFLOW_TRACE_COLUMN(col)
#else
#define MCUFLOW_TRACE(col) ((void)0)
#endif

#endif /* MCUFLOW_KERNEL_CONFIG_H */

// The CPU vector kernels for AVX-512, 16 lanes (compiled with -mavx512f -mavx512cd -mavx512dq
// -mavx512bw -mavx512vl -mfma). On Zen 4, whose 512-bit units are double-pumped 256-bit ones, the
// forward loop still runs about twice as fast as AVX2: half the instructions per path and 32 vector
// registers instead of 16, so the mixture's sums no longer spill.
#define TAEP_ISA avx512
#define TAEP_ISA_ARCH Avx512
#include "host/cpu/isa_kernels.inc"

// The CPU vector kernels for AVX2 + FMA, 8 lanes (compiled with -mavx2 -mfma).
#define TAEP_ISA avx2
#define TAEP_ISA_ARCH Avx2
#include "host/cpu/isa_kernels.inc"

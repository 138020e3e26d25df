// The reverse-process vector loop for AVX-512, 16 lanes (compiled with the AVX-512 flags of
// isa_avx512.cpp and -ffp-contract=off).
#define TAEP_ISA avx512
#define TAEP_ISA_ARCH Avx512
#include "host/cpu/isa_reverse.inc"

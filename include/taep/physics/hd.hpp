#pragma once
// TAEP_HD marks every physics function: __host__ __device__ under nvcc, nothing under a plain C++
// compiler, so the CPU backend and the CUDA kernels call the same code.
#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define TAEP_HD __host__ __device__ __forceinline__
#define TAEP_DEVICE_CODE 1
#else
#define TAEP_HD inline
#endif

namespace taep {
namespace physics {

TAEP_HD float exp_(float x) { return ::expf(x); }
TAEP_HD double exp_(double x) { return ::exp(x); }
TAEP_HD float log_(float x) { return ::logf(x); }
TAEP_HD double log_(double x) { return ::log(x); }
TAEP_HD float sqrt_(float x) { return ::sqrtf(x); }
TAEP_HD double sqrt_(double x) { return ::sqrt(x); }
TAEP_HD float abs_(float x) { return ::fabsf(x); }
TAEP_HD double abs_(double x) { return ::fabs(x); }
TAEP_HD bool isfinite_(double x) { return (x - x) == 0.0; }  // false for inf and nan, even under -ffast-math-ish flags

constexpr double kPi = 3.14159265358979323846;
constexpr double kLog2Pi = 1.83787706640934548356;

}  // namespace physics
}  // namespace taep

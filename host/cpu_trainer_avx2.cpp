// The CPU trainer's elementwise kernels for AVX2 (see host/cpu_trainer_simd.hpp).
#define TAEP_ISA_UNIT 1

#include "cpu_trainer_simd.hpp"

namespace taep {
namespace detail {
namespace avx2 {

void train_bias_silu(int rows, int width, float* z, const float* bias, float* deriv) {
  train_kernels::bias_silu<Avx2>(rows, width, z, bias, deriv);
}

void train_column_sums(int rows, int width, const float* x, float* sums) {
  train_kernels::column_sums<Avx2>(rows, width, x, sums);
}

void train_multiply(long n, float* a, const float* b) { train_kernels::multiply<Avx2>(n, a, b); }

}  // namespace avx2
}  // namespace detail
}  // namespace taep

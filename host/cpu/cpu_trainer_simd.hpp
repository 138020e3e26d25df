#pragma once
// The elementwise parts of the CPU trainer's forward pass on SIMD packets (host/cpu/cpu_trainer.cpp):
// one unit per instruction set (host/cpu/isa_avx2.cpp, host/cpu/isa_avx512.cpp, built with
// the flags of host/cpu/isa_*.cpp and entered only where the CPU has them, as detail::mlp_cpu_isa
// says). The arithmetic is physics::silu_and_derivative on packets of floats; each element's
// result depends only on its value and its column position, never on the thread, so the trainer
// stays bitwise deterministic for any thread count.
namespace taep {
namespace detail {

// train_bias_silu: z[r * width + c] <- SiLU(z + bias[c]), deriv[r * width + c] <- SiLU'(z + bias[c]).
// train_column_sums: sums[c] = sum over r = 0..rows-1, in row order, of x[r * width + c] (the
//   bias gradient; the same bits as the scalar loop, since each column is summed in the same order).
// train_multiply: a[i] *= b[i] for i < n (the backward pass through SiLU).
#define TAEP_TRAIN_KERNELS                                                                  \
  void train_bias_silu(int rows, int width, float* z, const float* bias, float* deriv);   \
  void train_column_sums(int rows, int width, const float* x, float* sums);               \
  void train_multiply(long n, float* a, const float* b);
namespace avx2 {
TAEP_TRAIN_KERNELS
}  // namespace avx2
namespace avx512 {
TAEP_TRAIN_KERNELS
}  // namespace avx512
#undef TAEP_TRAIN_KERNELS

}  // namespace detail
}  // namespace taep

#if defined(TAEP_ISA_UNIT)
#include "host/cpu/simd.hpp"
#include "taep/physics/mlp_elementwise.hpp"

namespace taep {
namespace detail {
namespace train_kernels {

template <class A>
void bias_silu(int rows, int width, float* z, const float* bias, float* deriv) {
  using P = FloatPacket<A>;
  constexpr int L = int(P::size);
  const int full = width / L * L;
  for (int r = 0; r < rows; ++r) {
    float* zr = z + static_cast<long>(r) * width;
    float* dr = deriv + static_cast<long>(r) * width;
    for (int c = 0; c < full; c += L) {
      const P v = P::load_unaligned(zr + c) + P::load_unaligned(bias + c);
      P a, dv;
      physics::silu_and_derivative(v, a, dv);
      a.store_unaligned(zr + c);
      dv.store_unaligned(dr + c);
    }
    for (int c = full; c < width; ++c) physics::silu_and_derivative(zr[c] + bias[c], zr[c], dr[c]);
  }
}

template <class A>
void column_sums(int rows, int width, const float* x, float* sums) {
  using P = FloatPacket<A>;
  constexpr int L = int(P::size);
  const int full = width / L * L;
  for (int c = 0; c < full; c += L) {
    P acc(0.f);
    for (int r = 0; r < rows; ++r) acc += P::load_unaligned(x + static_cast<long>(r) * width + c);
    acc.store_unaligned(sums + c);
  }
  for (int c = full; c < width; ++c) {
    float acc = 0.f;
    for (int r = 0; r < rows; ++r) acc += x[static_cast<long>(r) * width + c];
    sums[c] = acc;
  }
}

template <class A>
void multiply(long n, float* a, const float* b) {
  using P = FloatPacket<A>;
  constexpr long L = long(P::size);
  const long full = n / L * L;
  for (long i = 0; i < full; i += L)
    (P::load_unaligned(a + i) * P::load_unaligned(b + i)).store_unaligned(a + i);
  for (long i = full; i < n; ++i) a[i] *= b[i];
}

}  // namespace train_kernels
}  // namespace detail
}  // namespace taep
#endif

#pragma once
// The elementwise parts of the learned-score MLP (docs/physics.md section 7), shared by the CPU evaluator
// (around CPU BLAS GEMMs) and the CUDA kernels (around cuBLAS GEMMs).
#include "taep/physics/hd.hpp"

namespace taep {
namespace physics {

// SiLU(z) = z sigmoid(z) and its derivative sigmoid(z) (1 + z (1 - sigmoid(z))). T: float, or a
// packet of floats with one point per lane (hd.hpp, "Lane types"; the CPU's vector kernels).
template <class T>
TAEP_HD void silu_and_derivative(T z, T& act, T& deriv) {
  const T sig = 1.f / (1.f + exp_(-z));
  act = z * sig;
  deriv = sig * (1.f + z * (1.f - sig));
}

// Sinusoidal embedding: out[i] = sin(a f_i), out[E/2 + i] = cos(a f_i), a = time_scale t,
// f_i = exp(-ln(max_period) i / (E/2)). In double: it is computed once per step, not per path.
TAEP_HD void time_embedding(double t, int E, double time_scale, double max_period, double* out) {
  const int half = E / 2;
  for (int i = 0; i < half; ++i) {
    const double f = exp_(-log_(max_period) * i / half);
    const double a = time_scale * t * f;
    out[i] = ::sin(a);
    out[half + i] = ::cos(a);
  }
}

}  // namespace physics
}  // namespace taep

#pragma once
// The elementwise parts of the learned-score MLP (docs/physics.md section 7), shared by the CPU evaluator
// (around CPU BLAS GEMMs) and the CUDA kernels (around cuBLAS GEMMs).
#include <cstddef>

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

// Frequency i of the sinusoidal embedding of width E: f_i = exp(-ln(max_period) i / (E/2)).
TAEP_HD double embedding_frequency(int i, int E, double max_period) {
  return exp_(-log_(max_period) * i / (E / 2));
}

// Sinusoidal embedding: out[i] = sin(a f_i), out[E/2 + i] = cos(a f_i), a = time_scale t. In
// double: it is computed once per step, not per path.
TAEP_HD void time_embedding(double t, int E, double time_scale, double max_period, double* out) {
  const int half = E / 2;
  for (int i = 0; i < half; ++i) {
    const double a = time_scale * t * embedding_frequency(i, E, max_period);
    out[i] = ::sin(a);
    out[half + i] = ::cos(a);
  }
}

// Layer 0's bias at time t with the embedding folded in (docs/physics.md section 7):
// bias0[j] = b_0[j] + sum_e W_0[j][d + e] emb(t)_e, j < out, summed in double (e ascending) and
// rounded once. w0: layer 0's row-major weight (out x in, in = d + E); emb: E doubles of scratch.
TAEP_HD void fold_time_bias(double t, int d, int E, double time_scale, double max_period, int out,
                            int in, const float* w0, const float* b0, double* emb, float* bias0) {
  time_embedding(t, E, time_scale, max_period, emb);
  for (int j = 0; j < out; ++j) {
    double b = b0[j];
    const float* w = w0 + std::size_t(j) * in + d;
    for (int e = 0; e < E; ++e) b += double(w[e]) * emb[e];
    bias0[j] = float(b);
  }
}

// The eps-parameterization's output factor: score = -eps / sqrt(n(t)), n the schedule's noise
// variance at t (1 - abar for VP; docs/physics.md section 7), in double.
TAEP_HD double eps_score_factor(double noise) { return -1.0 / sqrt_(noise); }
// The factor that turns the network's output into the score at noise variance n(t): 1 for a score
// network, eps_score_factor for an eps-prediction network (rounded to float once per step).
TAEP_HD float output_scale(bool eps_parameterization, double noise) {
  return eps_parameterization ? float(eps_score_factor(noise)) : 1.f;
}

}  // namespace physics
}  // namespace taep

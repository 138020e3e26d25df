#pragma once
// The per-path parts of a learned-score (MLP) forward path, shared by the CPU backend and the CUDA
// kernels. The network itself is evaluated step-synchronously over a batch of paths with GEMMs
// (CPU BLAS / cuBLAS); around it every path does, at step k:
//   1. draw its d noise values (stream kForwardNoise, values k*d .. k*d+d-1 — the same numbers an
//      exact-score path with the same id uses) and, for Hutchinson, its P*d probe values (stream
//      kHutchinson, values k*P*d ..);
//   2. evaluate the target's analytic score and divergence;
//   3. after the network: average the probe estimates, add the TAEP increment, take the EM step.
#include <cstdint>
#include <utility>

#include "taep/physics/forward_taep.hpp"
#include "taep/physics/taep_increment.hpp"

namespace taep {
namespace physics {

// Rademacher value of a word: its top bit picks the sign.
TAEP_HD float rademacher(std::uint32_t word) { return (word >> 31) ? -1.f : 1.f; }
// The same for a packet of words, lane by lane (1 - 2 * top bit: exactly +1 or -1).
template <class U>
TAEP_HD auto rademacher(const U& word) {
  return 1.f - 2.f * to_float_(word >> 31);
}

// Score and divergence of the target alone at x and step k, and with `dw` (Milstein) also its
// quadratic form dw.(grad s_*).dw. T: float, or a packet of floats.
template <int D, class T>
TAEP_HD void target_score(const ForwardView& V, int k, float sqrt_abar, const T* x,
                          ScoreEval<D, T>& p, const T* dw = nullptr) {
  const int d = D > 0 ? D : V.d;
  MixtureSums<D, T> sums, unused;
  unused.clear(d);
  const bool quad = dw != nullptr;
  accumulate_mixture<D>(d, V.target.K, V.target.mean, V.target.comp + k * V.target.K, nullptr,
                        sqrt_abar, x, quad ? dw : x, quad, sums, unused);
  p.finish(sums, quad ? dw : x, d, quad);
}

// The Milstein correction for a learned score (docs/physics.md section 4) needs dW.(grad s_theta).dW
// besides the exact divergence. Carrying the d tangents of an orthonormal basis whose first vector
// is dW/|dW| gives both for the cost of the exact trace alone: the trace of J is the sum of
// v_q.J v_q over any orthonormal basis, and dW.J dW = |dW|^2 v_0.J v_0. The basis is the columns of
// the Householder reflection H = I - w w^T / (1 + |u_0|), w = u + sign(u_0) e_0, u = dW/|dW| (its
// column 0 is -sign(u_0) u; the sign is immaterial to a quadratic form). basis[q*d + i] is component
// i of vector q. Returns |dW|^2 (for dW = 0, the standard basis). Only the symmetric part of J enters
// a quadratic form: for a network, whose J is not exactly symmetric, the correction removes the
// symmetric part's O(h) error per step and leaves the antisymmetric part's (Levy-area) term.
TAEP_HD float milstein_basis(int d, const float* dw, float* basis) {
  float r2 = 0.f;
  for (int i = 0; i < d; ++i) r2 += dw[i] * dw[i];
  for (int q = 0; q < d; ++q)
    for (int i = 0; i < d; ++i) basis[q * d + i] = q == i ? 1.f : 0.f;
  if (!(r2 > 0.f)) return r2;
  const float inv_r = 1.f / sqrt_(r2);
  const float u0 = dw[0] * inv_r;
  const float sign = u0 >= 0.f ? 1.f : -1.f;
  const float c = 1.f / (1.f + sign * u0);
  for (int q = 0; q < d; ++q) {
    const float wq = dw[q] * inv_r + (q == 0 ? sign : 0.f);
    for (int i = 0; i < d; ++i) {
      const float wi = dw[i] * inv_r + (i == 0 ? sign : 0.f);
      basis[q * d + i] -= c * wq * wi;
    }
  }
  return r2;
}

// The trace from the estimates v_q.J v_q of a milstein_basis (q ascending: one fixed order).
template <class T>
TAEP_HD T milstein_trace(int d, const T* est) {
  T tr = est[0];
  for (int q = 1; q < d; ++q) tr = tr + est[q];
  return tr;
}

// Mean of P Hutchinson estimates and the probe-noise variance their spread implies for this step's
// TAEP increment: the divergence enters S as beta h div, so Var = (beta h)^2 s^2 / P with s^2 the
// unbiased sample variance of the estimates (needs P >= 2; 0 otherwise).
struct ProbeAverage {
  float mean;
  double noise_variance;
};
TAEP_HD ProbeAverage average_probes(const float* est, int P, float half_beta, float h) {
  float sum = 0.f;
  for (int j = 0; j < P; ++j) sum += est[j];
  const float mean = sum / float(P);
  double var = 0.0;
  if (P >= 2) {
    for (int j = 0; j < P; ++j) var += double(est[j] - mean) * double(est[j] - mean);
    var /= double(P - 1);
    const double bh = 2.0 * double(half_beta) * double(h);
    var = bh * bh * var / double(P);
  }
  return {mean, var};
}

}  // namespace physics
}  // namespace taep

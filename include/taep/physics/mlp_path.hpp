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

// Score and divergence of the target alone at x and step k. T: float, or a packet of floats.
template <int D, class T>
TAEP_HD void target_score(const ForwardView& V, int k, float sqrt_abar, const T* x,
                          ScoreEval<D, T>& p) {
  const int d = D > 0 ? D : V.d;
  MixtureSums<D, T> sums, unused;
  unused.clear(d);
  accumulate_mixture<D>(d, V.target.K, V.target.mean, V.target.comp + k * V.target.K, nullptr,
                        sqrt_abar, x, x, false, sums, unused);
  p.finish(sums, x, d, false);
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

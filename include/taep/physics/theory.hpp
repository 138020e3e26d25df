#pragma once
// Closed-form predictions the engine and the experiment compare the Monte Carlo against
// (docs/physics.md section 5). Host-only plain C++.
#include <cmath>
#include <cstddef>

namespace taep {
namespace physics {

// Eq. 53, well-separated modes where model and target share means and widths: S per path is
// L_k = log(p_k / q_k) of the mode k the path ends in, so its mean is sum_k p_k L_k (the relative
// entropy of the weights) and its variance sum_k p_k L_k^2 - (sum_k p_k L_k)^2. p and q are the
// normalized target and model weights; a mode with p_k = 0 is never reached and adds nothing.
struct Eq53Moments {
  double mean = 0;
  double variance = 0;
};

inline Eq53Moments eq53_moments(const double* p, const double* q, std::size_t K) {
  double m1 = 0.0, m2 = 0.0;
  for (std::size_t k = 0; k < K; ++k) {
    if (p[k] == 0) continue;
    const double L = std::log(p[k] / q[k]);
    m1 += p[k] * L;
    m2 += p[k] * L * L;
  }
  return {m1, m2 - m1 * m1};
}

// Any container with data() and size() (std::vector<double>).
template <class Weights>
Eq53Moments eq53_moments(const Weights& p, const Weights& q) {
  return eq53_moments(p.data(), q.data(), p.size());
}

// Eq. 55, the m-mode collapse of K equal modes (eq. 53 with q_k = eps for k < m and
// (1 - m eps)/(K - m) otherwise): Var = m (K - m)/K^2 [log((1 - m eps)/((K - m) eps))]^2; 0 for m = 0.
inline double eq55_variance(int m, double eps, int K) {
  if (m == 0) return 0.0;
  const double l = std::log((1.0 - m * eps) / ((K - m) * eps));
  return double(m) * (K - m) / double(K * K) * l * l;
}

}  // namespace physics
}  // namespace taep

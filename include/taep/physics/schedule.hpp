#pragma once
// Variance-preserving forward SDE (docs/physics.md section 1):
//   dx = -1/2 beta(t) x dt + sqrt(beta(t)) dW,  beta(t) = beta_min + t (beta_max - beta_min),
//   abar(t) = exp(-(beta_min t + 1/2 (beta_max - beta_min) t^2)).
#include "taep/physics/hd.hpp"

namespace taep {
namespace physics {

struct VpSchedule {
  double beta_min = 0.1;
  double beta_max = 20.0;

  TAEP_HD double beta(double t) const { return beta_min + t * (beta_max - beta_min); }
  TAEP_HD double log_abar(double t) const {
    return -(beta_min * t + 0.5 * (beta_max - beta_min) * t * t);
  }
  TAEP_HD double abar(double t) const { return exp_(log_abar(t)); }
};

// Variance of a Gaussian of variance sigma2 diffused to abar = abar(t): abar sigma^2 + 1 - abar
// (docs/physics.md section 2).
TAEP_HD double diffused_variance(double sigma2, double abar) { return abar * sigma2 + (1.0 - abar); }

// Uniform time grid t_k = t_min + k h, k = 0..steps.
struct TimeGrid {
  double t_min = 1e-3;
  double t_max = 1.0;
  int steps = 1000;
  TAEP_HD double h() const { return (t_max - t_min) / steps; }
  TAEP_HD double t(int k) const { return t_min + k * h(); }
};

}  // namespace physics
}  // namespace taep

#pragma once
// The forward SDE dx = -a(t) x dt + g(t) dW and its Gaussian transitions (docs/physics.md
// section 1), for the two schedules taep knows:
//   vp (variance preserving): a = beta/2, g^2 = beta(t) = beta_min + t (beta_max - beta_min),
//      abar(t) = exp(-(beta_min t + 1/2 (beta_max - beta_min) t^2)); x_t | x_0 ~ N(sqrt(abar) x_0,
//      (1 - abar) I); prior N(0, I).
//   ve (variance exploding): a = 0, sigma(t) = sigma_min (sigma_max / sigma_min)^t,
//      g^2 = d sigma^2 / dt = 2 ln(sigma_max / sigma_min) sigma(t)^2; x_t | x_0 ~ N(x_0,
//      (sigma(t)^2 - sigma_min^2) I) (no noise at t = 0); prior N(0, (sigma_max^2 - sigma_min^2) I).
// Every consumer goes through drift_rate, g2 and marginal, so no formula of a schedule appears
// anywhere else.
#include "taep/physics/hd.hpp"

namespace taep {
namespace physics {

enum class ScheduleType { vp, ve };

// The transition from time 0 to t: x_t = scale x_0 + sqrt(noise) z, z ~ N(0, I).
struct Marginal {
  double scale2 = 1;  // scale^2 (abar for VP, 1 for VE)
  double scale = 1;
  double noise = 0;   // the variance added (1 - abar for VP, sigma^2 - sigma_min^2 for VE)
};

// Variance of a Gaussian of variance sigma2 carried by the transition m: scale^2 sigma^2 + noise
// (docs/physics.md section 2).
TAEP_HD double diffused_variance(double sigma2, const Marginal& m) {
  return m.scale2 * sigma2 + m.noise;
}

struct Schedule {
  ScheduleType type = ScheduleType::vp;
  double beta_min = 0.1;  // vp
  double beta_max = 20.0;
  double sigma_min = 0.01;  // ve
  double sigma_max = 50.0;

  // ve: the score-SDE tutorial's g(t) = s^t, i.e. sigma_min = 1/sqrt(2 ln s), sigma_max = s sigma_min,
  // noise (s^{2t} - 1) / (2 ln s).
  static Schedule ve_tutorial(double s) {
    Schedule r;
    r.type = ScheduleType::ve;
    r.sigma_min = 1.0 / ::sqrt(2.0 * ::log(s));
    r.sigma_max = s * r.sigma_min;
    return r;
  }

  TAEP_HD bool ve() const { return type == ScheduleType::ve; }
  // vp: beta(t).
  TAEP_HD double beta(double t) const { return beta_min + t * (beta_max - beta_min); }
  // vp: log abar(t).
  TAEP_HD double log_abar(double t) const {
    return -(beta_min * t + 0.5 * (beta_max - beta_min) * t * t);
  }
  // vp: abar(t), the signal factor.
  TAEP_HD double abar(double t) const { return exp_(log_abar(t)); }
  // ve: 2 ln(sigma_max / sigma_min) and sigma(t)^2 / sigma_min^2 - 1 (by expm1, accurate at small t).
  TAEP_HD double two_log_ratio() const { return 2.0 * log_(sigma_max / sigma_min); }
  TAEP_HD double ve_growth(double t) const { return ::expm1(two_log_ratio() * t); }

  // a(t) of the drift f = -a x.
  TAEP_HD double drift_rate(double t) const { return ve() ? 0.0 : 0.5 * beta(t); }
  // g(t)^2.
  TAEP_HD double g2(double t) const {
    return ve() ? two_log_ratio() * sigma_min * sigma_min * (1.0 + ve_growth(t)) : beta(t);
  }
  // The transition from 0 to t. 1 - abar by -expm1(log abar), which keeps its relative accuracy as
  // abar -> 1 at small t.
  TAEP_HD Marginal marginal(double t) const {
    Marginal m;
    if (ve()) {
      m.noise = sigma_min * sigma_min * ve_growth(t);
    } else {
      const double la = log_abar(t);
      m.scale2 = exp_(la);
      m.scale = sqrt_(m.scale2);
      m.noise = -::expm1(la);
    }
    return m;
  }
  // The log signal-to-noise ratio ln(c^2 / n) at t (decreasing in t), and the time of a value of it.
  TAEP_HD double log_snr(double t) const {
    const Marginal m = marginal(t);
    return log_(m.scale2) - log_(m.noise);
  }
  TAEP_HD double time_of_log_snr(double lambda) const {
    if (ve())  // n = exp(-lambda) = sigma_min^2 expm1(2 t ln r)
      return ::log1p(exp_(-lambda) / (sigma_min * sigma_min)) / two_log_ratio();
    // abar = 1 / (1 + e^-lambda): beta_min t + (beta_max - beta_min) t^2 / 2 = L = log1p(e^-lambda),
    // solved in the form that is stable at small t.
    const double L = ::log1p(exp_(-lambda)), db = beta_max - beta_min;
    return 2.0 * L / (beta_min + sqrt_(beta_min * beta_min + 2.0 * db * L));
  }
  // The variance of the prior N(0, prior_variance I) the reverse process and the PF-ODE start from.
  TAEP_HD double prior_variance() const {
    return ve() ? sigma_max * sigma_max - sigma_min * sigma_min : 1.0;
  }
};

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

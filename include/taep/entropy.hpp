#pragma once
// Entropy rates of the diffusion and the thermodynamic NLL bound (docs/entropy-rates.md; Kodama and
// Hinczewski, arXiv 2510.06174): on a time grid uniform in log SNR = ln(c^2/n) from t_min to t_max,
// `draws` exact draws x ~ p(x, t) of the target at each grid point (stream kRatesDraw), the model's
// score s_theta and divergence there (exact-score mixture; MLP with the exact trace or Hutchinson
// probes, stream kRatesProbe), and from their means:
//   the estimators E|s_theta|^2, E div s_theta, E x.s_theta, E|x|^2 and, when the target's score s*
//   is known (analytic or empirical reference), E|s_theta - s*|^2;
//   the plug-in system rates F, D, G (the cross-entropy rate), H (section 3 of the doc);
//   the forward process's system, intrinsic and exchange rates and those of the generative process
//   driven by s_theta (self-consistent plug-in, section 2), with the ratio Sdot_e / Sdot_i;
//   their trapezoid integrals over t with standard errors;
//   S0 = H(p(t_min)) (-E log p by the draws at t_min, when the target's density is known) or the
//   user's value, S1 = H(prior), the bound (S0 + S1)/2 - int Sdot_G / 2, Song et al.'s likelihood
//   upper bound CE(p(t_max), prior) - int Sdot_G, and optionally the PF-ODE NLL of drawn points.
// CPU only; results do not depend on run.threads.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "taep/config.hpp"
#include "taep/nll.hpp"
#include "taep/problem.hpp"
#include "taep/result.hpp"

namespace taep {

struct RatesOptions {
  int grid_points = 65;          // grid points t_0 = t_min .. t_{M-1} = t_max, >= 3
  std::uint64_t draws = 4096;    // exact draws per grid point, >= 2
  std::optional<double> data_entropy;  // S0 in nats, overriding the estimate (e.g. d ln(b - a))
  std::uint64_t nll_points = 0;  // > 0: also the PF-ODE NLL of this many points drawn at t_min
  // > 0: also the per-path entropies of this many forward paths of `taep run` (paths 0..n-1, the
  // config's steps and seed): medium -(2a/g^2) int x o dx (VP: -(|x_N|^2 - |x_0|^2)/2; VE: 0),
  // system log p(x_0, t_min) - log p(x_N, t_max) (target density known), and their sum.
  std::uint64_t paths = 0;
  NllOptions nll;                // its solver settings
  std::string command;
  std::function<void(std::uint64_t, std::uint64_t)> on_progress;  // (grid points done, in all)
};

// A mean over the draws and its standard error.
struct Estimate {
  double mean = 0, stderr_ = 0;
};

// The rates of docs/entropy-rates.md at one grid point, in nats per unit time (forward time).
struct RatePoint {
  double t = 0, log_snr = 0, g2 = 0, drift = 0, noise = 0;
  Estimate score_sq, divergence, x_dot_score, x_sq;
  std::optional<Estimate> score_error_sq;  // E|s_theta - s*|^2 (target's score known)
  // Plug-in system-entropy rates: E div f + g^2/2 [a E|s|^2 - b E div s] (F: a=1 b=0; D: a=0 b=1;
  // G: a=-1 b=2, the cross-entropy rate d/dt CE(p_t, q_t); H: a=2 b=-1).
  Estimate rate_F, rate_D, rate_G, rate_H;
  // Forward (noising) process with s_theta for grad log p: system = F, intrinsic, exchange.
  Estimate forward_intrinsic, forward_exchange;
  // Generative process dx = [a x + g^2 s_theta] dtau + g dW, self-consistent plug-in.
  Estimate generative_intrinsic, generative_exchange, generative_system;
  double exchange_ratio = 0;  // generative_exchange / generative_intrinsic (-2 for VE, exact score)
};

struct RatesResult {
  int d = 0;
  std::uint64_t draws = 0;
  std::vector<RatePoint> points;
  // Trapezoid integrals over t of the rates above.
  Estimate int_F, int_D, int_G, int_H;
  Estimate int_forward_intrinsic, int_forward_exchange;
  Estimate int_generative_intrinsic, int_generative_exchange, int_generative_system;
  std::optional<Estimate> int_score_error;  // int g^2/2 E|s_theta - s*|^2 (= <S> of eq. 33)
  // Entropies (nats): S0 = H(p(t_min)) (estimated, or given), H(p(t_max)) (estimated), S1 = H(prior).
  std::optional<Estimate> data_entropy;
  bool data_entropy_given = false;
  std::optional<Estimate> end_entropy;
  double prior_entropy = 0;
  Estimate prior_cross_entropy;  // CE(p(t_max), prior) = E[-log prior(x)] over the draws at t_max
  // The bound (S0 + S1)/2 - int G/2 with S1 = H(prior) (eq. 1) and with S1 = H(p(t_max)).
  std::optional<double> bound, bound_end_entropy;
  double song_upper_bound = 0;  // CE(p(t_max), prior) - int G
  std::optional<NllResult> nll;  // nll_points > 0
  // paths > 0: means over forward paths of the per-path entropy changes (nats).
  std::uint64_t paths = 0;
  std::optional<Estimate> path_medium, path_system, path_total;
  PerformanceSummary performance;
  Provenance provenance;
  Config config;
  std::vector<std::string> warnings;
};

// ConfigError("grid_points"), ("draws"), ("data_entropy"), ("paths") for bad options; ("model.type") for a
// callback model; run.backend "cuda" throws BackendUnavailable.
RatesResult entropy_rates(const Problem& problem, const RatesOptions& options = {});

// The result JSON (README.md, "taep rates").
std::string rates_result_to_json(const RatesResult& result, int indent = 2);

}  // namespace taep

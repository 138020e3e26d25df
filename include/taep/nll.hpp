#pragma once
// Negative log-likelihood of data points under a model by the probability-flow ODE
// (docs/likelihood.md): per point x0, log q(x0) = log pi(x(t_max)) + int_{t_min}^{t_max} div v dt
// along dx/dt = v = f - g^2/2 s_theta, from t_min to t_max of config.schedule. The model is
// config.model: an exact-score mixture (analytic score and divergence) or an MLP (exact divergence
// by d forward-mode tangents, or model.divergence "hutchinson": model.probes fixed probes per point
// for the whole solve, stream kNllProbe). CPU only; run.threads threads over points (results do not
// depend on it); run.backend "cuda" throws BackendUnavailable.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "taep/config.hpp"
#include "taep/problem.hpp"
#include "taep/result.hpp"

namespace taep {

enum class OdeSolver { dopri5, rk4 };
// What log pi(x(t_max)) is: the SDE's prior N(0, I) (standard), or the exact-score model's own
// marginal q(x, t_max) (model_marginal: then log q(x0, t_min) is exact, the oracle of
// docs/likelihood.md section 4; exact-score models only).
enum class NllPrior { standard, model_marginal };

const char* to_string(OdeSolver s);
const char* to_string(NllPrior p);

struct NllOptions {
  OdeSolver solver = OdeSolver::dopri5;
  double rtol = 1e-5, atol = 1e-5;  // dopri5 (the score-SDE reference implementation's defaults)
  int ode_steps = 1000;             // rk4: fixed steps from t_min to t_max
  int max_steps = 100000;           // dopri5: attempted steps per point before the point fails
  NllPrior prior = NllPrior::standard;
  std::string command;  // the command line, for the provenance
  // Called now and then with (points done, points in all); from the calling thread.
  std::function<void(std::uint64_t, std::uint64_t)> on_progress;
};

struct NllResult {
  int d = 0;
  std::uint64_t count = 0;  // points
  OdeSolver solver = OdeSolver::dopri5;
  double rtol = 0, atol = 0;
  int ode_steps = 0;  // rk4
  NllPrior prior = NllPrior::standard;
  std::string divergence;  // "analytic" (exact-score mixture), "exact" (MLP tangents), "hutchinson"
  int probes = 0;          // hutchinson
  std::string probe_distribution;
  // Over the points whose solve finished (finite): NLL in nats, its standard error, bits per
  // dimension NLL / (d ln 2) and its standard error.
  double nll_mean = 0, nll_stderr = 0;
  double bits_per_dim = 0, bits_per_dim_stderr = 0;
  double nfe_mean = 0;  // right-hand-side evaluations per point (each one score and divergence)
  std::uint64_t nfe_max = 0;
  std::uint64_t failures = 0;             // points whose solve did not finish: NaN in `nll`
  std::vector<std::uint64_t> failed;      // their indices (the first kMaxListedFailures)
  static constexpr std::size_t kMaxListedFailures = 100;
  // Per point, in input order: NLL (nats), the point carried to t_max (count * d), nfe.
  std::vector<double> nll;
  std::vector<double> latent;
  std::vector<std::uint32_t> nfe;
  PerformanceSummary performance;
  Provenance provenance;
  Config config;
  std::vector<std::string> warnings;
};

// The NLL of `points` (row-major, points.size() / d rows of dimension d, taken as x(t_min)).
// ConfigError("points") when d is not the problem's dimension or points is empty or ragged or not
// finite; ConfigError("prior") for model_marginal with a learned model; ConfigError("solver") for
// bad tolerances or steps; ConfigError("model.type") for a callback model.
NllResult nll(const Problem& problem, const std::vector<double>& points, int d,
              const NllOptions& options = {});
// The same for `count` points drawn exactly from the target diffused to t_min: point i is the start
// x(t_min) of forward path i with seed run.seed (stream kInitialState). ConfigError("count") unless
// 1 <= count < 2^40.
NllResult nll(const Problem& problem, std::uint64_t count, const NllOptions& options = {});
// Those points (count * d, row-major).
std::vector<double> target_points(const Problem& problem, std::uint64_t count);

// The result JSON (README.md, "taep nll").
std::string nll_result_to_json(const NllResult& result, int indent = 2);

}  // namespace taep

// NLL by the probability-flow ODE (taep/nll.hpp, docs/likelihood.md): each point its own solve
// (physics/ode.hpp), in double, with the model's score and divergence at every stage; OpenMP over
// points, each thread its own evaluator. A point's values depend on nothing but the point, its
// index (Hutchinson probes) and the settings, never on the thread count or schedule.
#include "taep/nll.hpp"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <limits>
#include <memory>
#include <optional>

#include "host/cpu/mlp_cpu.hpp"
#include "host/io/json_out.hpp"
#include "host/engine/point_score.hpp"
#include "host/problem/forward_problem.hpp"
#include "taep/error.hpp"
#include "taep/physics/forward_taep.hpp"
#include "taep/physics/mixture.hpp"
#include "taep/physics/mlp_path.hpp"
#include "taep/physics/ode.hpp"
#include "taep/physics/philox.hpp"
#include "taep/physics/rng_streams.hpp"

namespace taep {
namespace {

using detail::ForwardProblem;
using detail::MixtureTablesHost;
using detail::MixtureScore;
using detail::MlpScore;
constexpr int kStateMax = physics::kMaxDim + 1;  // x and the log-density integral

// log q(x, t) of an exact-score model's mixture carried by the transition m from 0 to t.
double model_log_density(const MixtureTablesHost& q, int d, const physics::Marginal& m,
                         const double* x) {
  return physics::mixture_log_density(d, q.K, q.mean_d.data(), q.log_w.data(), q.sigma2.data(), m, x);
}

struct PointOutcome {
  double nll;
  std::uint32_t nfe;
  bool ok;
};

// One point's solve: y = (x0, 0) carried to t_max, then NLL = -(log pi(latent) + l).
template <class Score>
PointOutcome solve_point(Score& score, const physics::Schedule& sched, const ForwardProblem& P,
                         const NllOptions& o, const double* x0, double* latent) {
  const int d = P.d, n = d + 1;
  double y[kStateMax];
  for (int i = 0; i < d; ++i) y[i] = x0[i];
  y[d] = 0.0;
  const auto rhs = [&](double t, const double* yy, double* dy) {
    double s[physics::kMaxDim], div = 0.0;
    score(t, yy, s, div);
    physics::pf_ode_rhs(sched, t, d, yy, s, div, dy);
  };
  const double t0 = P.grid.t_min, t1 = P.grid.t_max;
  const physics::OdeStats st =
      o.solver == OdeSolver::rk4
          ? physics::rk4_solve<kStateMax>(rhs, n, y, t0, t1, o.ode_steps)
          : physics::dopri5_solve<kStateMax>(rhs, n, y, t0, t1, o.rtol, o.atol, o.max_steps);
  for (int i = 0; i < d; ++i) latent[i] = y[i];
  if (!st.ok) return {std::numeric_limits<double>::quiet_NaN(), std::uint32_t(st.nfe), false};
  double log_prior;
  if (o.prior == NllPrior::model_marginal) {
    log_prior = model_log_density(P.model, d, sched.marginal(t1), y);
  } else {
    double xx = 0.0;
    for (int i = 0; i < d; ++i) xx += y[i] * y[i];
    const double v = sched.prior_variance();
    log_prior = -0.5 * xx / v - physics::gaussian_log_norm(d, v);
  }
  const double value = -(log_prior + y[d]);
  const bool ok = std::isfinite(value);
  return {ok ? value : std::numeric_limits<double>::quiet_NaN(), std::uint32_t(st.nfe), ok};
}

void check_options(const NllOptions& o, const ForwardProblem& P, const Config& config) {
  if (config.run.backend == Backend::cuda)
    throw BackendUnavailable(
        "run.backend: taep nll runs on the CPU only (the CUDA backend has no probability-flow ODE)");
  if (P.callback) throw ConfigError("model.type", "taep nll takes an exact or an mlp model, not a callback");
  if (o.solver == OdeSolver::dopri5) {
    if (!(o.rtol > 0 && o.rtol < 1) || !(o.atol > 0 && o.atol < 1))
      throw ConfigError("solver", "rtol and atol must be in (0, 1)");
    if (o.max_steps < 1) throw ConfigError("solver", "max_steps must be >= 1");
  } else if (o.ode_steps < 1 || o.ode_steps > 100000000) {
    throw ConfigError("solver", "ode_steps must be in [1, 1e8] (got " + std::to_string(o.ode_steps) + ")");
  }
  if (o.prior == NllPrior::model_marginal && P.mlp)
    throw ConfigError("prior", "\"model-marginal\" needs an exact-score model (a learned model has no "
                               "closed-form marginal)");
}

}  // namespace

const char* to_string(OdeSolver s) { return s == OdeSolver::rk4 ? "rk4" : "dopri5"; }
const char* to_string(NllPrior p) {
  return p == NllPrior::model_marginal ? "model-marginal" : "standard";
}

std::vector<double> target_points(const Problem& problem, std::uint64_t count) {
  if (count < 1 || count >= rng::kMaxPaths)
    throw ConfigError("count", "must be an integer in [1, 2^40) (got " + std::to_string(count) + ")");
  const ForwardProblem& P = problem.forward();
  const physics::ForwardView V = P.view([](const auto& v) { return v.data(); });
  std::vector<double> points(count * std::uint64_t(P.d));
  float x[physics::kMaxDim];
  for (std::uint64_t i = 0; i < count; ++i) {
    rng::PhiloxHostStream init(V.seed, rng::subsequence(rng::kInitialState, i));
    physics::sample_initial_state<0>(V, init, x);
    for (int j = 0; j < P.d; ++j) points[i * P.d + j] = x[j];
  }
  return points;
}

NllResult nll(const Problem& problem, std::uint64_t count, const NllOptions& options) {
  return nll(problem, target_points(problem, count), problem.forward().d, options);
}

NllResult nll(const Problem& problem, const std::vector<double>& points, int d,
              const NllOptions& options) {
  const ForwardProblem& P = problem.forward();
  const Config& config = problem.config();
  check_options(options, P, config);
  if (d != P.d)
    throw ConfigError("points", "have dimension " + std::to_string(d) + ", the config's target " +
                                    std::to_string(P.d));
  if (points.empty() || points.size() % std::size_t(d) != 0)
    throw ConfigError("points", "must be a non-empty count x d array");
  for (double v : points)
    if (!std::isfinite(v)) throw ConfigError("points", "must be finite");

  const auto t_start = std::chrono::steady_clock::now();
  const std::uint64_t count = points.size() / std::size_t(d);
  const int threads = config.run.threads > 0 ? config.run.threads : std::max(1, omp_get_max_threads());
  const physics::Schedule& sched = P.schedule;
  const detail::MlpIsa isa = detail::point_engine_isa(bool(P.mlp));

  NllResult r;
  r.d = d;
  r.count = count;
  r.solver = options.solver;
  r.rtol = options.rtol;
  r.atol = options.atol;
  r.ode_steps = options.ode_steps;
  r.prior = options.prior;
  r.config = config;
  if (P.mlp) {
    r.divergence = P.mlp->hutchinson() ? "hutchinson" : "exact";
    if (P.mlp->hutchinson()) {
      r.probes = P.mlp->probes;
      r.probe_distribution = to_string(P.mlp->probe_distribution);
    }
  } else {
    r.divergence = "analytic";
  }
  r.nll.assign(count, 0.0);
  r.latent.assign(count * std::uint64_t(d), 0.0);
  r.nfe.assign(count, 0);
  std::vector<char> ok(count, 0);

  std::atomic<std::uint64_t> done{0};
  std::atomic<bool> failed{false};
  std::exception_ptr error;
#pragma omp parallel num_threads(threads)
  {
    std::optional<MixtureScore> mixture;
    std::optional<MlpScore> net;
    try {
      if (P.mlp)
        net.emplace(*P.mlp, sched, isa);
      else
        mixture.emplace(P.model, P.d, sched);
    } catch (...) {
#pragma omp critical
      if (!error) error = std::current_exception();
      failed = true;
    }
#pragma omp for schedule(dynamic, 16)
    for (std::int64_t i = 0; i < std::int64_t(count); ++i) {
      if (failed) continue;
      try {
        const double* x0 = points.data() + std::size_t(i) * d;
        double* latent = r.latent.data() + std::size_t(i) * d;
        PointOutcome out;
        if (net) {
          net->set_probes(P.seed, rng::kNllProbe, std::uint64_t(i));
          out = solve_point(*net, sched, P, options, x0, latent);
        } else {
          out = solve_point(*mixture, sched, P, options, x0, latent);
        }
        r.nll[std::size_t(i)] = out.nll;
        r.nfe[std::size_t(i)] = out.nfe;
        ok[std::size_t(i)] = out.ok;
      } catch (...) {
#pragma omp critical
        if (!error) error = std::current_exception();
        failed = true;
      }
      const std::uint64_t now = ++done;
      if (omp_get_thread_num() == 0 && options.on_progress) options.on_progress(now, count);
    }
  }
  if (error) std::rethrow_exception(error);

  // Statistics in point order (two passes), so they do not depend on the threads.
  std::uint64_t finite = 0, nfe_total = 0;
  double sum = 0.0;
  for (std::uint64_t i = 0; i < count; ++i) {
    nfe_total += r.nfe[i];
    r.nfe_max = std::max<std::uint64_t>(r.nfe_max, r.nfe[i]);
    if (ok[i]) {
      ++finite;
      sum += r.nll[i];
    } else {
      ++r.failures;
      if (r.failed.size() < NllResult::kMaxListedFailures) r.failed.push_back(i);
    }
  }
  const double nan = std::numeric_limits<double>::quiet_NaN();
  r.nll_mean = finite ? sum / double(finite) : nan;
  double ss = 0.0;
  for (std::uint64_t i = 0; i < count; ++i)
    if (ok[i]) ss += (r.nll[i] - r.nll_mean) * (r.nll[i] - r.nll_mean);
  r.nll_stderr = finite >= 2 ? std::sqrt(ss / double(finite - 1) / double(finite)) : nan;
  const double per_dim = 1.0 / (d * std::log(2.0));
  r.bits_per_dim = r.nll_mean * per_dim;
  r.bits_per_dim_stderr = r.nll_stderr * per_dim;
  r.nfe_mean = double(nfe_total) / double(count);
  if (r.failures > 0)
    r.warnings.push_back(std::to_string(r.failures) + " of " + std::to_string(count) +
                         " points did not finish their ODE solve (non-finite state, or more than " +
                         "max_steps steps); their nll is NaN and they are left out of the mean");

  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
  r.performance = detail::point_engine_performance(bool(P.mlp), isa, threads, seconds, double(nfe_total));
  r.provenance = make_provenance(r.performance.backend, r.performance.device, options.command);
  return r;
}

std::string nll_result_to_json(const NllResult& r, int indent) {
  using detail::ojson;
  const auto number = [](double v) { return std::isfinite(v) ? ojson(v) : ojson(nullptr); };
  ojson j;
  j["nll"] = {{"units", "nats"},
              {"count", r.count - r.failures},
              {"mean", number(r.nll_mean)},
              {"stderr", number(r.nll_stderr)},
              {"bits_per_dim", number(r.bits_per_dim)},
              {"bits_per_dim_stderr", number(r.bits_per_dim_stderr)},
              {"bits_per_dim_note",
               "mean NLL / (d ln 2) of the continuous density at t_min; no dequantization, so not "
               "comparable with bits/dim of discrete (image) data"}};
  ojson solver = {{"method", to_string(r.solver)}};
  if (r.solver == OdeSolver::dopri5) {
    solver["rtol"] = r.rtol;
    solver["atol"] = r.atol;
  } else {
    solver["steps"] = r.ode_steps;
  }
  solver["t_min"] = r.config.schedule.t_min;
  solver["t_max"] = r.config.schedule.t_max;
  j["solver"] = solver;
  j["prior"] = to_string(r.prior);
  ojson div = {{"method", r.divergence}};
  if (r.divergence == "hutchinson") {
    div["probes"] = r.probes;
    div["distribution"] = r.probe_distribution;
  }
  j["divergence"] = div;
  j["count"] = r.count;
  j["dimension"] = r.d;
  j["nfe"] = {{"mean", r.nfe_mean}, {"max", r.nfe_max}};
  j["failures"] = {{"count", r.failures}, {"points", r.failed}};
  j["warnings"] = r.warnings;
  const PerformanceSummary& p = r.performance;
  j["performance"] = {{"backend", p.backend},
                      {"device", p.device},
                      {"wall_seconds", p.wall_seconds},
                      {"threads", p.threads},
                      {"points_per_second", p.wall_seconds > 0 ? r.count / p.wall_seconds : 0.0},
                      {"evaluations_per_second", p.path_steps_per_second}};
  j["provenance"] = detail::to_json(r.provenance);
  j["config"] = detail::to_json(r.config);
  return detail::dump(j, indent);
}

}  // namespace taep

// Entropy rates and the NLL bound (taep/entropy.hpp, docs/entropy-rates.md). At each grid point the
// draws are evaluated in parallel into per-draw arrays and reduced in draw order, so nothing
// depends on the thread count.
#include "taep/entropy.hpp"

#include <omp.h>

#include <chrono>
#include <cmath>
#include <exception>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "host/engine/point_score.hpp"
#include "host/io/json_out.hpp"
#include "host/problem/forward_problem.hpp"
#include "taep/engine.hpp"
#include "taep/error.hpp"
#include "taep/physics/mixture.hpp"
#include "taep/physics/philox.hpp"
#include "taep/physics/rng_streams.hpp"

namespace taep {
namespace {

using detail::ForwardProblem;
using detail::MixtureScore;
using detail::MlpScore;
constexpr double kPi = 3.14159265358979323846;

// Per-draw values at one grid point.
struct Draw {
  double ss, div, xs, xx, err, log_p, log_prior;
};

// A rate as a linear function of the per-draw values: c0 + c_ss |s|^2 + c_div div s + c_xs x.s +
// c_xx |x|^2 (docs/entropy-rates.md sections 2 and 3).
struct Linear {
  double c0 = 0, ss = 0, div = 0, xs = 0, xx = 0;
  double at(const Draw& w) const { return c0 + ss * w.ss + div * w.div + xs * w.xs + xx * w.xx; }
};

// The entropy changes of one forward path (docs/entropy-rates.md section 5).
struct PathChange {
  double medium, system;
};

template <class V, class F>
Estimate estimate(const std::vector<V>& values, F&& f) {
  const double n = double(values.size());
  double sum = 0;
  for (const V& w : values) sum += f(w);
  const double mean = sum / n;
  double ss = 0;
  for (const V& w : values) ss += (f(w) - mean) * (f(w) - mean);
  return {mean, std::sqrt(ss / (n - 1) / n)};
}

Estimate linear_estimate(const std::vector<Draw>& draws, const Linear& l) {
  return estimate(draws, [&](const Draw& w) { return l.at(w); });
}

// Trapezoid weights of the nodes t.
std::vector<double> trapezoid_weights(const std::vector<double>& t) {
  const std::size_t m = t.size();
  std::vector<double> w(m, 0.0);
  for (std::size_t k = 0; k + 1 < m; ++k) {
    const double h = t[k + 1] - t[k];
    w[k] += 0.5 * h;
    w[k + 1] += 0.5 * h;
  }
  return w;
}

Estimate integrate(const std::vector<double>& w, const std::vector<Estimate>& e) {
  double s = 0, v = 0;
  for (std::size_t k = 0; k < w.size(); ++k) {
    s += w[k] * e[k].mean;
    v += w[k] * w[k] * e[k].stderr_ * e[k].stderr_;
  }
  return {s, std::sqrt(v)};
}

void check_options(const RatesOptions& o, const Config& config, const ForwardProblem& P) {
  if (config.run.backend == Backend::cuda)
    throw BackendUnavailable("run.backend: taep rates runs on the CPU only");
  if (P.callback) throw ConfigError("model.type", "\"callback\" is not available for taep rates");
  if (o.grid_points < 3 || o.grid_points > 100000)
    throw ConfigError("grid_points", "must be an integer in [3, 100000] (got " +
                                         std::to_string(o.grid_points) + ")");
  if (o.draws < 2 || o.draws > (std::uint64_t(1) << 30))
    throw ConfigError("draws", "must be an integer in [2, 2^30] (got " + std::to_string(o.draws) + ")");
  if (std::uint64_t(o.grid_points) * o.draws >= rng::kMaxPaths)
    throw ConfigError("draws", "grid_points * draws must be below 2^40");
  if (o.paths >= rng::kMaxPaths)
    throw ConfigError("paths", "must be below 2^40 (got " + std::to_string(o.paths) + ")");
  if (o.data_entropy && !std::isfinite(*o.data_entropy))
    throw ConfigError("data_entropy", "must be a finite number of nats");
}

}  // namespace

RatesResult entropy_rates(const Problem& problem, const RatesOptions& options) {
  const auto t_start = std::chrono::steady_clock::now();
  const ForwardProblem& P = problem.forward();
  const Config& config = problem.config();
  check_options(options, config, P);
  const physics::Schedule& sched = P.schedule;
  const int d = P.d, M = options.grid_points;
  const std::uint64_t N = options.draws;
  const bool known_target = P.analytic_target;  // its density and score are closed forms
  const int threads = config.run.threads > 0 ? config.run.threads : omp_get_max_threads();
  const detail::MlpIsa isa = detail::point_engine_isa(bool(P.mlp));

  RatesResult r;
  r.d = d;
  r.draws = N;
  r.config = config;
  // Grid uniform in log SNR, ends exactly at t_min and t_max.
  const double l0 = sched.log_snr(P.grid.t_min), l1 = sched.log_snr(P.grid.t_max);
  std::vector<double> t(static_cast<std::size_t>(M));
  for (int k = 0; k < M; ++k)
    t[std::size_t(k)] = k == 0       ? P.grid.t_min
                        : k == M - 1 ? P.grid.t_max
                                     : sched.time_of_log_snr(l0 + (l1 - l0) * k / (M - 1));
  const double prior_v = sched.prior_variance();

  std::vector<Draw> draws(N);
  std::vector<std::vector<Estimate>> series(12, std::vector<Estimate>(std::size_t(M)));
  std::vector<Estimate> error_series(static_cast<std::size_t>(M));
  std::exception_ptr error;
  for (int k = 0; k < M; ++k) {
    const double tk = t[std::size_t(k)];
    const physics::Marginal mk = sched.marginal(tk);
#pragma omp parallel num_threads(threads)
    {
      std::optional<MlpScore> net;
      std::optional<MixtureScore> model, target;
      try {
        if (P.mlp)
          net.emplace(*P.mlp, sched, isa);
        else
          model.emplace(P.model, d, sched);
        if (known_target) target.emplace(P.target, d, sched);
      } catch (...) {
#pragma omp critical
        if (!error) error = std::current_exception();
      }
      double x[physics::kMaxDim], s[physics::kMaxDim], sr[physics::kMaxDim];
#pragma omp for schedule(static)
      for (std::int64_t i = 0; i < std::int64_t(N); ++i) {
        if (error) continue;
        const std::uint64_t id = std::uint64_t(k) * N + std::uint64_t(i);
        // x ~ p(x, t_k): a component (a row, for a data file) by weight, then c m + sqrt(v) z.
        rng::PhiloxHostStream stream(P.seed, rng::subsequence(rng::kRatesDraw, id));
        const rng::U4 w = stream.next_u4();
        const int c = physics::pick_component(rng::uniform_open(w.x), P.init_cum_w.data(), P.target.K);
        const double sd = std::sqrt(physics::diffused_variance(P.target.sigma2[std::size_t(c)], mk));
        physics::NormalSource<rng::PhiloxHostStream> z(stream);
        for (int j = 0; j < d; ++j)
          x[j] = mk.scale * P.target.mean_d[std::size_t(c) * d + j] + sd * double(z.next());
        double div = 0;
        if (net) {
          net->set_probes(P.seed, rng::kRatesProbe, id);
          (*net)(tk, x, s, div);
        } else {
          (*model)(tk, x, s, div);
        }
        Draw dr{0, div, 0, 0, 0, 0, 0};
        for (int j = 0; j < d; ++j) {
          dr.ss += s[j] * s[j];
          dr.xs += x[j] * s[j];
          dr.xx += x[j] * x[j];
        }
        if (target) {
          double unused = 0;
          (*target)(tk, x, sr, unused);
          for (int j = 0; j < d; ++j) dr.err += (s[j] - sr[j]) * (s[j] - sr[j]);
          if (k == 0 || k == M - 1)
            dr.log_p = physics::mixture_log_density(d, P.target.K, P.target.mean_d.data(),
                                                    P.target.log_w.data(), P.target.sigma2.data(), mk, x);
        }
        dr.log_prior = -0.5 * dr.xx / prior_v - physics::gaussian_log_norm(d, prior_v);
        draws[std::size_t(i)] = dr;
      }
    }
    if (error) std::rethrow_exception(error);

    RatePoint pt;
    const double a = sched.drift_rate(tk), g2 = sched.g2(tk), div_f = -a * d;
    pt.t = tk;
    pt.log_snr = sched.log_snr(tk);
    pt.g2 = g2;
    pt.drift = a;
    pt.noise = mk.noise;
    pt.score_sq = linear_estimate(draws, {0, 1, 0, 0, 0});
    pt.divergence = linear_estimate(draws, {0, 0, 1, 0, 0});
    pt.x_dot_score = linear_estimate(draws, {0, 0, 0, 1, 0});
    pt.x_sq = linear_estimate(draws, {0, 0, 0, 0, 1});
    pt.rate_F = linear_estimate(draws, {div_f, 0.5 * g2, 0, 0, 0});
    pt.rate_D = linear_estimate(draws, {div_f, 0, -0.5 * g2, 0, 0});
    pt.rate_G = linear_estimate(draws, {div_f, -0.5 * g2, -g2, 0, 0});
    pt.rate_H = linear_estimate(draws, {div_f, g2, 0.5 * g2, 0, 0});
    const double axx = 2 * a * a / g2;
    pt.forward_intrinsic = linear_estimate(draws, {0, 0.5 * g2, 0, 2 * a, axx});
    pt.forward_exchange = linear_estimate(draws, {a * d, 0, 0, 0, -axx});
    pt.generative_intrinsic = pt.forward_intrinsic;
    pt.generative_exchange = linear_estimate(draws, {-a * d, -2 * g2, -g2, -4 * a, -axx});
    pt.generative_system = linear_estimate(draws, {-a * d, -1.5 * g2, -g2, -2 * a, 0});
    pt.exchange_ratio = pt.generative_exchange.mean / pt.generative_intrinsic.mean;
    if (known_target) {
      pt.score_error_sq = estimate(draws, [](const Draw& w) { return w.err; });
      error_series[std::size_t(k)] = {0.5 * g2 * pt.score_error_sq->mean, 0.5 * g2 * pt.score_error_sq->stderr_};
    }
    const Estimate* rates[] = {&pt.rate_F, &pt.rate_D, &pt.rate_G, &pt.rate_H,
                               &pt.forward_intrinsic, &pt.forward_exchange,
                               &pt.generative_intrinsic, &pt.generative_exchange,
                               &pt.generative_system};
    for (std::size_t q = 0; q < 9; ++q) series[q][std::size_t(k)] = *rates[q];
    if (k == 0 && known_target)
      r.data_entropy = estimate(draws, [](const Draw& w) { return -w.log_p; });
    if (k == M - 1) {
      if (known_target) r.end_entropy = estimate(draws, [](const Draw& w) { return -w.log_p; });
      r.prior_cross_entropy = estimate(draws, [](const Draw& w) { return -w.log_prior; });
    }
    r.points.push_back(pt);
    if (options.on_progress) options.on_progress(std::uint64_t(k + 1), std::uint64_t(M));
  }

  const std::vector<double> w = trapezoid_weights(t);
  Estimate* integrals[] = {&r.int_F, &r.int_D, &r.int_G, &r.int_H,
                           &r.int_forward_intrinsic, &r.int_forward_exchange,
                           &r.int_generative_intrinsic, &r.int_generative_exchange,
                           &r.int_generative_system};
  for (std::size_t q = 0; q < 9; ++q) *integrals[q] = integrate(w, series[q]);
  if (known_target) r.int_score_error = integrate(w, error_series);
  if (options.data_entropy) {
    r.data_entropy = Estimate{*options.data_entropy, 0};
    r.data_entropy_given = true;
  }
  r.prior_entropy = 0.5 * d * std::log(2 * kPi * std::exp(1.0) * prior_v);
  if (r.data_entropy) {
    r.bound = 0.5 * (r.data_entropy->mean + r.prior_entropy) - 0.5 * r.int_G.mean;
    if (r.end_entropy)
      r.bound_end_entropy = 0.5 * (r.data_entropy->mean + r.end_entropy->mean) - 0.5 * r.int_G.mean;
  } else {
    r.warnings.push_back("the target's density is not known (reference.type \"mlp\"): no S0 and no "
                         "bound; give the data entropy (--data-entropy) to get them");
  }
  r.song_upper_bound = r.prior_cross_entropy.mean - r.int_G.mean;
  if (options.paths > 0) {
    // Per-path entropies from the endpoints of forward paths (docs/entropy-rates.md section 5).
    const PathValues pv = simulate_paths(problem, Backend::cpu, 0, options.paths);
    const physics::Marginal m0 = sched.marginal(P.grid.t_min), m1 = sched.marginal(P.grid.t_max);
    std::vector<PathChange> ends(options.paths);
    for (std::uint64_t i = 0; i < options.paths; ++i) {
      double x0[physics::kMaxDim], x1[physics::kMaxDim], xx0 = 0, xx1 = 0;
      for (int j = 0; j < d; ++j) {
        x0[j] = pv.x0[i * d + j];
        x1[j] = pv.xN[i * d + j];
        xx0 += x0[j] * x0[j];
        xx1 += x1[j] * x1[j];
      }
      PathChange& e = ends[std::size_t(i)];
      e.medium = sched.ve() ? 0.0 : -0.5 * (xx1 - xx0);  // 2a/g^2 = 1 for VP, a = 0 for VE
      e.system = 0;
      if (known_target) {
        const auto log_p = [&](const physics::Marginal& m, const double* x) {
          return physics::mixture_log_density(d, P.target.K, P.target.mean_d.data(),
                                              P.target.log_w.data(), P.target.sigma2.data(), m, x);
        };
        e.system = log_p(m0, x0) - log_p(m1, x1);
      }
    }
    r.paths = options.paths;
    r.path_medium = estimate(ends, [](const PathChange& e) { return e.medium; });
    if (known_target) {
      r.path_system = estimate(ends, [](const PathChange& e) { return e.system; });
      r.path_total = estimate(ends, [](const PathChange& e) { return e.medium + e.system; });
    }
  }
  if (options.nll_points > 0) {
    NllOptions o = options.nll;
    o.command = options.command;
    r.nll = nll(problem, options.nll_points, o);
  }

  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
  r.performance = detail::point_engine_performance(bool(P.mlp), isa, threads, seconds,
                                                   double(std::uint64_t(M) * N));
  r.provenance = make_provenance(r.performance.backend, r.performance.device, options.command);
  return r;
}

std::string rates_result_to_json(const RatesResult& r, int indent) {
  using detail::ojson;
  const auto num = [](double v) { return std::isfinite(v) ? ojson(v) : ojson(nullptr); };
  const auto est = [&](const Estimate& e) { return ojson{{"mean", num(e.mean)}, {"stderr", num(e.stderr_)}}; };
  const auto opt = [&](const std::optional<Estimate>& e) { return e ? est(*e) : ojson(nullptr); };
  ojson j;
  j["units"] = "nats (entropies), nats per unit time (rates)";
  j["dimension"] = r.d;
  j["draws_per_point"] = r.draws;
  ojson grid = ojson::array();
  for (const RatePoint& p : r.points)
    grid.push_back({{"t", p.t},
                    {"log_snr", num(p.log_snr)},
                    {"g2", p.g2},
                    {"drift_rate", p.drift},
                    {"noise_variance", p.noise},
                    {"score_sq", est(p.score_sq)},
                    {"divergence", est(p.divergence)},
                    {"x_dot_score", est(p.x_dot_score)},
                    {"x_sq", est(p.x_sq)},
                    {"score_error_sq", opt(p.score_error_sq)},
                    {"rate_F", est(p.rate_F)},
                    {"rate_D", est(p.rate_D)},
                    {"rate_G", est(p.rate_G)},
                    {"rate_H", est(p.rate_H)},
                    {"forward_intrinsic", est(p.forward_intrinsic)},
                    {"forward_exchange", est(p.forward_exchange)},
                    {"generative_intrinsic", est(p.generative_intrinsic)},
                    {"generative_exchange", est(p.generative_exchange)},
                    {"generative_system", est(p.generative_system)},
                    {"exchange_ratio", num(p.exchange_ratio)}});
  j["grid"] = grid;
  j["integrals"] = {{"rate_F", est(r.int_F)},
                    {"rate_D", est(r.int_D)},
                    {"rate_G", est(r.int_G)},
                    {"rate_H", est(r.int_H)},
                    {"forward_intrinsic", est(r.int_forward_intrinsic)},
                    {"forward_exchange", est(r.int_forward_exchange)},
                    {"generative_intrinsic", est(r.int_generative_intrinsic)},
                    {"generative_exchange", est(r.int_generative_exchange)},
                    {"generative_system", est(r.int_generative_system)},
                    {"score_error", opt(r.int_score_error)}};
  ojson ent = {{"data_entropy", opt(r.data_entropy)},
               {"data_entropy_source", r.data_entropy_given ? "given" : (r.data_entropy ? "estimated" : "none")},
               {"end_entropy", opt(r.end_entropy)},
               {"prior_entropy", r.prior_entropy},
               {"prior_cross_entropy", est(r.prior_cross_entropy)}};
  j["entropies"] = ent;
  ojson bound = {{"rate", "G (cross-entropy rate)"},
                 {"bound", r.bound ? num(*r.bound) : ojson(nullptr)},
                 {"bound_end_entropy", r.bound_end_entropy ? num(*r.bound_end_entropy) : ojson(nullptr)},
                 {"song_upper_bound", num(r.song_upper_bound)}};
  // The same bound with the other plug-in rates (docs/entropy-rates.md section 3: they can fail).
  for (const auto& [name, e] : {std::pair<const char*, const Estimate*>{"bound_F", &r.int_F},
                                {"bound_D", &r.int_D}, {"bound_H", &r.int_H}})
    bound[name] = r.data_entropy ? num(0.5 * (r.data_entropy->mean + r.prior_entropy) - 0.5 * e->mean)
                                 : ojson(nullptr);
  if (r.nll) {
    bound["nll"] = {{"mean", num(r.nll->nll_mean)}, {"stderr", num(r.nll->nll_stderr)},
                    {"points", r.nll->count - r.nll->failures}, {"failures", r.nll->failures},
                    {"solver", to_string(r.nll->solver)}};
    bound["nll_minus_bound"] = r.bound ? num(r.nll->nll_mean - *r.bound) : ojson(nullptr);
  } else {
    bound["nll"] = nullptr;
  }
  j["bound"] = bound;
  j["paths"] = r.paths == 0 ? ojson(nullptr)
                            : ojson{{"count", r.paths},
                                    {"medium", opt(r.path_medium)},
                                    {"system", opt(r.path_system)},
                                    {"total", opt(r.path_total)}};
  j["warnings"] = r.warnings;
  const PerformanceSummary& p = r.performance;
  j["performance"] = {{"backend", p.backend}, {"device", p.device}, {"wall_seconds", p.wall_seconds},
                      {"threads", p.threads}, {"evaluations_per_second", p.path_steps_per_second}};
  j["provenance"] = detail::to_json(r.provenance);
  j["config"] = detail::to_json(r.config);
  return detail::dump(j, indent);
}

}  // namespace taep

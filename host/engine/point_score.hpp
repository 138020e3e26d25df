#pragma once
// Score and divergence of a model at one point (x, t), in double at the interface: the exact-score
// mixture (analytic) and the MLP (exact trace or Hutchinson), as the per-point engines (taep nll,
// taep rates) evaluate them; each thread owns its own evaluator.
#include <cblas.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "host/cpu/cpu_simd.hpp"
#include "taep/result.hpp"

#include "host/cpu/mlp_cpu.hpp"
#include "host/problem/forward_problem.hpp"
#include "taep/physics/mixture.hpp"
#include "taep/physics/mlp_path.hpp"
#include "taep/physics/philox.hpp"
#include "taep/physics/rng_streams.hpp"
#include "taep/physics/schedule.hpp"

namespace taep {
namespace detail {

// Score and divergence of an exact-score mixture model at (x, t) (docs/physics.md section 2), by
// the one-pass evaluation of physics/mixture.hpp in float with this t's component tables.
class MixtureScore {
 public:
  MixtureScore(const MixtureTablesHost& m, int d, const physics::Schedule& sched)
      : m_(m), d_(d), sched_(sched), comp_(std::size_t(m.K)) {}
  void operator()(double t, const double* x, double* s, double& div) {
    const physics::Marginal mt = sched_.marginal(t);
    const double c = mt.scale;
    for (int k = 0; k < m_.K; ++k)
      comp_[std::size_t(k)] = physics::component_step_at(d_, m_.log_w[k], m_.sigma2[k], mt);
    float xf[physics::kMaxDim];
    for (int i = 0; i < d_; ++i) xf[i] = float(x[i]);
    physics::MixtureSums<0, float> sums, unused;
    physics::accumulate_mixture<0>(d_, m_.K, m_.mean.data(), comp_.data(), nullptr, float(c), xf, xf,
                                   false, sums, unused);
    physics::ScoreEval<0, float> e;
    e.finish(sums, xf, d_, false);
    for (int i = 0; i < d_; ++i) s[i] = e.s[i];
    div = e.div;
  }

 private:
  const MixtureTablesHost& m_;
  int d_;
  physics::Schedule sched_;
  std::vector<physics::ComponentStep> comp_;
};

// Score and divergence of an MLP at (x, t): the exact trace by d tangents, or the mean of v^T J v
// over the point's fixed probes (set_probes before its solve).
class MlpScore {
 public:
  MlpScore(const MlpSetup& mlp, const physics::Schedule& sched, MlpIsa isa)
      : net_(mlp.model, isa), sched_(sched), d_(mlp.model.dim),
        probes_(mlp.hutchinson() ? mlp.probes : 0),
        rademacher_(mlp.probe_distribution == ProbeDistribution::rademacher),
        v_(std::size_t(probes_) * d_), divs_(std::size_t(std::max(probes_, 1))) {}
  // The probes of point i (for taep nll fixed for its whole solve, as in FFJORD and score-SDE):
  // stream `stream` (rng_streams.hpp), path `point`.
  void set_probes(std::uint64_t seed, std::uint32_t stream_id, std::uint64_t point) {
    if (probes_ == 0) return;
    rng::PhiloxHostStream stream(seed, rng::subsequence(stream_id, point));
    physics::ProbeSource<rng::PhiloxHostStream> source(stream, rademacher_);
    for (float& v : v_) v = source.next();
  }
  void operator()(double t, const double* x, double* s, double& div) {
    net_.set_time(t, sched_.marginal(t).noise);
    float xf[physics::kMaxDim], sf[physics::kMaxDim];
    for (int i = 0; i < d_; ++i) xf[i] = float(x[i]);
    net_.evaluate(1, xf, sf, divs_.data(), probes_, probes_ ? v_.data() : nullptr);
    for (int i = 0; i < d_; ++i) s[i] = sf[i];
    if (probes_ == 0) {
      div = divs_[0];
      return;
    }
    double sum = 0.0;
    for (int p = 0; p < probes_; ++p) sum += divs_[std::size_t(p)];
    div = sum / probes_;
  }

 private:
  MlpCpuEvaluator net_;
  physics::Schedule sched_;
  int d_, probes_;
  bool rademacher_;
  std::vector<float> v_, divs_;
};

// The MLP kernels a per-point engine evaluates with (blas for a mixture model). OpenMP runs over
// points, so OpenBLAS gets one thread.
inline MlpIsa point_engine_isa(bool mlp) {
  const MlpIsa isa = mlp ? mlp_cpu_isa() : MlpIsa::blas;
  if (mlp && isa == MlpIsa::blas) openblas_set_num_threads(1);
  return isa;
}

// The performance record of a per-point engine: `evaluations` score-and-divergence evaluations in
// `seconds` on `threads` CPU threads.
inline PerformanceSummary point_engine_performance(bool mlp, MlpIsa isa, int threads,
                                                   double seconds, double evaluations) {
  PerformanceSummary p;
  p.backend = "cpu";
  p.device = cpu_device(mlp ? (isa == MlpIsa::blas ? "MLP via OpenBLAS"
                                                   : std::string("MLP by ") + to_string(isa) + " kernels")
                            : std::string("exact-score mixture"),
                        threads);
  p.wall_seconds = seconds;
  p.path_steps_per_second = seconds > 0 ? evaluations / seconds : 0.0;
  p.threads = threads;
  return p;
}

}  // namespace detail
}  // namespace taep

#pragma once
// The validated config turned into the flat tables every backend reads (host memory). A backend maps
// each table to its own memory and builds a physics::ForwardView over it.
#include <cstdint>
#include <memory>
#include <vector>

#include "taep/config.hpp"
#include "taep/mlp.hpp"
#include "taep/physics/forward_taep.hpp"
#include "taep/physics/schedule.hpp"
#include "taep/score_callback.hpp"

namespace taep {
namespace detail {

struct MixtureTablesHost {
  int K = 0;
  std::vector<float> mean;
  std::vector<double> mean_d, log_w, sigma2, weight;
  std::vector<physics::ComponentStep> comp;  // steps * K
};

struct HistogramSpec {
  double lo = 0, hi = 1;
  int bins = 1;
  double inv_width() const { return bins / (hi - lo); }
};

// A learned score model and how its divergence is taken.
struct MlpSetup {
  MlpModel model;
  Divergence divergence = Divergence::exact;
  int probes = 1;
  ProbeDistribution probe_distribution = ProbeDistribution::rademacher;
  MathMode math = MathMode::fp32;
  bool hutchinson() const { return divergence == Divergence::hutchinson; }
  // Tangent directions carried through the network per point: e_1..e_d, or the P probes.
  int tangents() const { return hutchinson() ? probes : model.dim; }
};

// A score model given as a function (taep/score_callback.hpp) and how its divergence is taken:
// exact (the function gives it) or Hutchinson with `probes` probes of taep's stream.
struct CallbackSetup {
  ScoreCallback callback;
  Divergence divergence = Divergence::exact;
  int probes = 1;
  ProbeDistribution probe_distribution = ProbeDistribution::rademacher;
  bool hutchinson() const { return divergence == Divergence::hutchinson; }
};

struct ForwardProblem {
  int d = 0;
  int steps = 0;
  bool milstein = false;
  bool reference = false;
  bool shared = false;
  std::uint64_t seed = 0;
  physics::Schedule schedule;
  physics::TimeGrid grid;
  MixtureTablesHost target, model;
  std::vector<float> ratio;
  std::vector<physics::StepScalars> step;
  std::vector<double> init_cum_w;
  std::vector<float> init_std;
  float init_mean_scale = 1.f;
  physics::Marginal marginal_start, marginal_end;  // the transitions from 0 to t_min and t_max
  float prior_std = 1.f;
  // Set for model.type "mlp" (then `model` is empty and there is no closed-form reference).
  std::shared_ptr<const MlpSetup> mlp;
  // Set for model.type "callback" (then, as for "mlp", `model` is empty and there is no reference).
  std::shared_ptr<const CallbackSetup> callback;
  // Set for reference.type "mlp": the network that plays s* (with the model's tangents: the same
  // probes, or the exact trace). The target's tables then serve only the paths' starts (its
  // per-step component tables are not built) and analytic_target is false.
  std::shared_ptr<const MlpModel> reference_mlp;
  bool analytic_target = true;

  // `map(vec)` returns the pointer a backend's code should use for a host vector.
  template <class Map>
  physics::ForwardView view(Map&& map) const {
    physics::ForwardView v;
    v.d = d;
    v.steps = steps;
    v.milstein = milstein;
    v.reference = reference;
    v.shared = shared;
    v.analytic_target = analytic_target;
    v.target = tables(target, map);
    v.model = tables(model, map);
    v.ratio = shared ? map(ratio) : nullptr;
    v.step = map(step);
    v.init_cum_w = map(init_cum_w);
    v.init_std = map(init_std);
    v.init_mean_scale = init_mean_scale;
    v.marginal_start = marginal_start;
    v.marginal_end = marginal_end;
    v.prior_std = prior_std;
    v.seed = seed;
    return v;
  }

 private:
  template <class Map>
  static physics::MixtureTables tables(const MixtureTablesHost& m, Map& map) {
    physics::MixtureTables t;
    t.K = m.K;
    t.mean = map(m.mean);
    t.mean_d = map(m.mean_d);
    t.log_w = map(m.log_w);
    t.sigma2 = map(m.sigma2);
    t.comp = map(m.comp);
    return t;
  }
};

// Builds the tables of a validated config whose target is resolved (a preset's mixture filled in),
// with `network` the model of an "mlp" config (unused otherwise). Opens no file: build_problem
// (taep/problem.hpp) loads the inputs and calls this.
ForwardProblem build_forward_problem(const Config& config, MlpModel network);
// For tests and tools: the tables of build_problem(config) (validates; loads an MLP weight file).
ForwardProblem build_forward_problem(const Config& config);

// Supported dimensions of the compiled fixed-size paths (others use the dynamic path, d <= kMaxDim).
constexpr int kFixedDims[] = {1, 2, 3, 4, 8, 16};

}  // namespace detail
}  // namespace taep

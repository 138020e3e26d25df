#include "host/problem/forward_problem.hpp"

#include <cmath>
#include <numeric>

#include "taep/error.hpp"

namespace taep {
namespace detail {
namespace {

// Normalized mixture with zero-weight components dropped (they contribute nothing, and log 0 would
// poison the streaming softmax).
MixtureSpec normalized(const MixtureSpec& m) {
  const double total = std::accumulate(m.weights.begin(), m.weights.end(), 0.0);
  MixtureSpec out;
  for (int k = 0; k < m.components(); ++k) {
    if (m.weights[k] <= 0.0) continue;
    out.weights.push_back(m.weights[k] / total);
    out.means.push_back(m.means[k]);
    out.sigmas.push_back(m.sigmas[k]);
  }
  return out;
}

// with_steps false: no per-step component tables (a target whose score a reference network gives).
MixtureTablesHost tables(const MixtureSpec& m, const physics::Schedule& sched,
                         const physics::TimeGrid& grid, bool with_steps = true) {
  const int K = m.components(), d = m.dim();
  MixtureTablesHost t;
  t.K = K;
  for (int k = 0; k < K; ++k) {
    for (int i = 0; i < d; ++i) {
      t.mean.push_back(float(m.means[k][i]));
      t.mean_d.push_back(m.means[k][i]);
    }
    t.weight.push_back(m.weights[k]);
    t.log_w.push_back(std::log(m.weights[k]));
    t.sigma2.push_back(m.sigmas[k] * m.sigmas[k]);
  }
  if (!with_steps) return t;
  t.comp.resize(std::size_t(grid.steps) * K);
  for (int s = 0; s < grid.steps; ++s) {
    const physics::Marginal mt = sched.marginal(grid.t(s));
    for (int k = 0; k < K; ++k)
      t.comp[std::size_t(s) * K + k] = physics::component_step_at(d, t.log_w[k], t.sigma2[k], mt);
  }
  return t;
}

bool same_geometry(const MixtureSpec& a, const MixtureSpec& b) {
  return a.means == b.means && a.sigmas == b.sigmas;
}

}  // namespace

ForwardProblem build_forward_problem(const Config& config, MlpModel network) {
  ForwardProblem P;
  const MixtureSpec target = normalized(config.target.mixture);
  const bool mlp = config.model.type == "mlp";
  const bool callback = config.model.type == "callback";  // build_problem sets P.callback
  P.d = target.dim();
  TAEP_EXPECTS(P.d >= 1 && P.d <= physics::kMaxDim, "dimension out of range");
  P.steps = config.schedule.steps;
  P.milstein = config.schedule.scheme == Scheme::milstein;
  P.reference = !mlp && !callback;  // exact-score models have the closed form of docs/physics.md section 5
  P.seed = config.run.seed;
  P.schedule = config.schedule.sde;
  P.grid = {config.schedule.t_min, config.schedule.t_max, config.schedule.steps};

  P.analytic_target = reference_type(config) != ReferenceType::mlp;
  P.target = tables(target, P.schedule, P.grid, P.analytic_target);
  if (mlp) {
    auto setup = std::make_shared<MlpSetup>();
    setup->model = std::move(network);
    TAEP_EXPECTS(setup->model.dim == P.d, "MLP dimension differs from target dimension");
    setup->divergence = config.model.divergence;
    setup->probes = config.model.probes;
    setup->probe_distribution = config.model.probe_distribution;
    setup->math = config.model.math;
    P.mlp = std::move(setup);
  } else if (!callback) {
    const MixtureSpec model = normalized(
        config.model.collapse ? collapse(config.target.mixture, *config.model.collapse)
                              : *config.model.mixture);
    TAEP_EXPECTS(model.dim() == P.d, "model dimension differs from target dimension");
    P.model = tables(model, P.schedule, P.grid);
    // One streaming pass serves both mixtures when they share components; the model's weights are
    // then carried as ratios to the target's, bounded so that e * ratio cannot overflow a float.
    P.shared = same_geometry(target, model);
  }
  if (P.shared) {
    for (int k = 0; k < P.target.K; ++k) {
      const double r = P.model.weight[k] / P.target.weight[k];
      if (!(r <= 1e20)) P.shared = false;
      P.ratio.push_back(float(r));
    }
    if (!P.shared) P.ratio.clear();
  }

  for (int s = 0; s < P.steps; ++s) P.step.push_back(physics::step_scalars_at(P.schedule, P.grid, s));

  P.marginal_start = P.schedule.marginal(P.grid.t_min);
  P.marginal_end = P.schedule.marginal(P.grid.t_max);
  P.init_mean_scale = float(P.marginal_start.scale);
  P.prior_std = float(std::sqrt(P.schedule.prior_variance()));
  double cum = 0.0;
  for (int k = 0; k < P.target.K; ++k) {
    cum += P.target.weight[k];
    P.init_cum_w.push_back(k + 1 == P.target.K ? 1.0 : cum);
    P.init_std.push_back(float(std::sqrt(physics::diffused_variance(P.target.sigma2[k], P.marginal_start))));
  }
  return P;
}

}  // namespace detail
}  // namespace taep

// build_problem (taep/problem.hpp): validate once, load the inputs once; and the Config overloads of
// the engine's entry points, which build the Problem and hand it on.
#include "taep/problem.hpp"

#include <string>
#include <utility>

#include "host/io/json_fields.hpp"
#include "host/io/safetensors.hpp"
#include "host/problem/forward_problem.hpp"
#include "taep/engine.hpp"
#include "taep/error.hpp"
#include "taep/sample.hpp"
#include "taep/score_callback.hpp"

namespace taep {
namespace {

std::shared_ptr<Config> resolved(const Config& config) {
  validate(config);
  auto c = std::make_shared<Config>(config);
  fields::resolve_preset(c->target);
  return c;
}

// The checks of the weight file against the config that validate() cannot make without it.
void check_mlp_against_target(const MlpModel& model, const Config& c) {
  const int d = c.target.mixture.dim();
  if (model.dim != d)
    fields::fail("model.weights", "the MLP's dimension d = " + std::to_string(model.dim) +
                                      " must equal the target's dimension " + std::to_string(d));
  const bool recorded = model.trained_beta_max > 0;
  if (model.parameterization == Parameterization::eps && recorded &&
      (model.trained_beta_min != c.schedule.beta_min || model.trained_beta_max != c.schedule.beta_max))
    fields::fail("model.weights",
                 "an eps-prediction model trained with schedule.beta_min = " +
                     fields::show(model.trained_beta_min) + ", schedule.beta_max = " +
                     fields::show(model.trained_beta_max) + " cannot run on schedule.beta_min = " +
                     fields::show(c.schedule.beta_min) + ", schedule.beta_max = " +
                     fields::show(c.schedule.beta_max) +
                     ": its noise prediction becomes a score through the schedule it was trained with");
}

}  // namespace

Problem::Problem(std::shared_ptr<const Config> config,
                 std::shared_ptr<const detail::ForwardProblem> forward)
    : config_(std::move(config)), forward_(std::move(forward)) {}

const Config& Problem::config() const { return *config_; }
const detail::ForwardProblem& Problem::forward() const { return *forward_; }
const MlpModel* Problem::mlp() const { return forward_->mlp ? &forward_->mlp->model : nullptr; }

Problem build_problem(const Config& config, MlpModel model) {
  std::shared_ptr<Config> c = resolved(config);
  if (c->model.type != "mlp")
    fields::fail("model.type", "must be \"mlp\" for a model given in memory (got " +
                                   fields::show(c->model.type) + ")");
  detail::check_mlp(model, "model.weights");  // what load_mlp checks of a file
  check_mlp_against_target(model, *c);
  auto forward = std::make_shared<detail::ForwardProblem>(
      detail::build_forward_problem(*c, std::move(model)));
  return Problem(std::move(c), std::move(forward));
}

Problem build_problem(const Config& config, ScoreCallback callback) {
  std::shared_ptr<Config> c = resolved(config);
  if (c->model.type != "callback")
    fields::fail("model.type", "must be \"callback\" for a score function given in code (got " +
                                   fields::show(c->model.type) + ")");
  if (!callback.evaluate) fields::fail("model.type", "\"callback\" needs a score function (got none)");
  if (callback.batch < 1 || callback.batch > (1 << 20))
    fields::fail("batch", "must be 1 .. 1048576 paths per call (got " +
                              std::to_string(callback.batch) + ")");
  auto forward =
      std::make_shared<detail::ForwardProblem>(detail::build_forward_problem(*c, MlpModel{}));
  auto setup = std::make_shared<detail::CallbackSetup>();
  setup->callback = std::move(callback);
  setup->divergence = c->model.divergence;
  setup->probes = c->model.probes;
  setup->probe_distribution = c->model.probe_distribution;
  forward->callback = std::move(setup);
  return Problem(std::move(c), std::move(forward));
}

Problem build_problem(const Config& config) {
  std::shared_ptr<Config> c = resolved(config);
  if (c->model.type == "callback")
    fields::fail("model.type", "\"callback\" needs the score function: build_problem(config, "
                               "ScoreCallback), or from Python taep.run(config, score=fn)");
  MlpModel model;
  if (c->model.type == "mlp") {
    try {
      model = load_mlp(c->model.weights);
    } catch (const ConfigError& e) {  // the loader names the file; the config names the field
      fields::fail("model.weights", e.what());
    }
    check_mlp_against_target(model, *c);
  }
  auto forward = std::make_shared<detail::ForwardProblem>(
      detail::build_forward_problem(*c, std::move(model)));
  return Problem(std::move(c), std::move(forward));
}

namespace detail {
ForwardProblem build_forward_problem(const Config& config) { return build_problem(config).forward(); }
}  // namespace detail

// ---- the Config overloads: build once, then the Problem overloads -------------------------------

RunResult run(const Config& config, const RunOptions& options) {
  return run(build_problem(config), options);
}

PathValues simulate_paths(const Config& config, Backend backend, std::uint64_t first,
                          std::uint64_t count) {
  return simulate_paths(build_problem(config), backend, first, count);
}

SampleResult sample(const Config& config, std::uint64_t count, const RunOptions& options) {
  return sample(build_problem(config), count, options);
}

DetailedFtResult detailed_ft(const Config& config, const RunOptions& options,
                             std::uint64_t min_count) {
  return detailed_ft(build_problem(config), options, min_count);
}

ReversePathValues simulate_reverse_paths(const Config& config, Backend backend, std::uint64_t first,
                                         std::uint64_t count, bool with_taep) {
  return simulate_reverse_paths(build_problem(config), backend, first, count, with_taep);
}

}  // namespace taep

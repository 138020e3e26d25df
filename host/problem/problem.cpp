// build_problem (taep/problem.hpp): validate once, load the inputs once; and the Config overloads of
// the engine's entry points, which build the Problem and hand it on.
#include "taep/problem.hpp"

#include <string>
#include <utility>

#include "host/io/json_fields.hpp"
#include "host/config/config_json.hpp"
#include "host/io/safetensors.hpp"
#include "host/io/samples_file.hpp"
#include "host/problem/forward_problem.hpp"
#include "taep/engine.hpp"
#include "taep/error.hpp"
#include "taep/sample.hpp"
#include "taep/score_callback.hpp"

namespace taep {
namespace {

// The per-step component tables of a mixture target hold steps x K entries; a samples target's K
// is its row count, so its file is bounded by the tables it implies (1 GiB).
constexpr std::uint64_t kMaxTargetTable = std::uint64_t(1) << 27;

// A samples target's rows as the mixture of equal-weight, zero-width components at them
// (docs/physics.md section 2): diffused, it is the empirical distribution's p(x, t).
MixtureSpec samples_mixture(const Config& c) {
  const detail::SampleTable rows = detail::read_sample_file(c.target.samples, "target.samples");
  const std::uint64_t N = rows.rows();
  if (reference_type(c) != ReferenceType::mlp && N * std::uint64_t(c.schedule.steps) > kMaxTargetTable)
    fields::fail("target.samples",
                 "\"" + c.target.samples + "\" holds " + std::to_string(N) + " samples: with " +
                     std::to_string(c.schedule.steps) + " steps the empirical score's tables need " +
                     "steps x N <= " + std::to_string(kMaxTargetTable) +
                     " entries; use fewer samples or steps, or reference.type \"mlp\"");
  MixtureSpec m;
  m.weights.assign(N, 1.0);
  m.sigmas.assign(N, 0.0);
  m.means.reserve(N);
  for (std::uint64_t r = 0; r < N; ++r)
    m.means.emplace_back(rows.values.begin() + std::ptrdiff_t(r * rows.d),
                         rows.values.begin() + std::ptrdiff_t((r + 1) * rows.d));
  return m;
}

// Validates, resolves a preset, reads a samples target once and checks the model against it.
std::shared_ptr<Config> resolved(const Config& config) {
  validate(config);
  auto c = std::make_shared<Config>(config);
  fields::resolve_preset(c->target);
  if (c->target.from_samples()) {
    c->target.mixture = samples_mixture(*c);
    if (c->model.type == "exact") detail::check_model_against_target(c->model, c->target.mixture);
  }
  return c;
}

// The checks of a weight file (the model's, or the reference network's) against the config that
// validate() cannot make without it.
void check_mlp_against_target(const MlpModel& model, const Config& c,
                              const std::string& field = "model.weights") {
  const int d = c.target.mixture.dim();
  if (model.dim != d)
    fields::fail(field, "the MLP's dimension d = " + std::to_string(model.dim) +
                            " must equal the target's dimension " + std::to_string(d));
  if (model.parameterization == Parameterization::eps && model.trained_schedule &&
      !fields::same_sde(*model.trained_schedule, c.schedule.sde))
    fields::fail(field,
                 "an eps-prediction model trained with " + fields::describe_sde(*model.trained_schedule) +
                     " cannot run on " + fields::describe_sde(c.schedule.sde) +
                     ": its noise prediction becomes a score through the schedule it was trained with");
}

// A weight file named by `field` ("model.weights", "reference.weights"), loaded and checked.
MlpModel load_network(const std::string& path, const Config& c, const std::string& field) {
  MlpModel model;
  try {
    model = load_mlp(path);
  } catch (const ConfigError& e) {  // the loader names the file; the config names the field
    fields::fail(field, e.what());
  }
  check_mlp_against_target(model, c, field);
  return model;
}

// The forward tables, with the reference network of reference.type "mlp" loaded (once).
std::shared_ptr<detail::ForwardProblem> forward_problem(const Config& c, MlpModel model) {
  auto forward = std::make_shared<detail::ForwardProblem>(
      detail::build_forward_problem(c, std::move(model)));
  if (reference_type(c) == ReferenceType::mlp)
    forward->reference_mlp = std::make_shared<const MlpModel>(
        load_network(c.reference.weights, c, "reference.weights"));
  return forward;
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
  auto forward = forward_problem(*c, std::move(model));
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
  if (c->model.type == "mlp") model = load_network(c->model.weights, *c, "model.weights");
  auto forward = forward_problem(*c, std::move(model));
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

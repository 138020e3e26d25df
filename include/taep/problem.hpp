#pragma once
// A run config with every input it names loaded once. Building a Problem is the only place a run,
// sample or detailed-FT computation opens an input file (the MLP weight file); everything
// downstream (engine.hpp, sample.hpp) takes the built Problem, so one run reads each file once.
#include <memory>

#include "taep/config.hpp"
#include "taep/mlp.hpp"

namespace taep {
namespace detail {
struct ForwardProblem;
}
struct ScoreCallback;  // taep/score_callback.hpp

class Problem {
 public:
  // The validated config, a preset target's mixture filled in.
  const Config& config() const;
  // The tables the backends read (engine-internal: host/problem/forward_problem.hpp).
  const detail::ForwardProblem& forward() const;
  // The learned score model of an "mlp" config; nullptr for exact models.
  const MlpModel* mlp() const;

 private:
  Problem(std::shared_ptr<const Config> config, std::shared_ptr<const detail::ForwardProblem> forward);
  friend Problem build_problem(const Config& config);
  friend Problem build_problem(const Config& config, MlpModel model);
  friend Problem build_problem(const Config& config, ScoreCallback callback);
  // Immutable and shared: copies of a Problem are cheap and see the same tables.
  std::shared_ptr<const Config> config_;
  std::shared_ptr<const detail::ForwardProblem> forward_;
};

// Validates the config, then loads its inputs once: for model.type "mlp" the weight file, which
// must hold a valid MLP of the target's dimension (else ConfigError naming model.weights).
Problem build_problem(const Config& config);
// The same with the "mlp" model already in memory (trained, or loaded by the caller): no file is
// opened, config.model.weights only names it. ConfigError("model.weights") when its dimension is
// not the target's; ConfigError("model.type") for a config whose model is not "mlp".
Problem build_problem(const Config& config, MlpModel model);

}  // namespace taep

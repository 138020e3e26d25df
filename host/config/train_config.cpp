// TrainConfig: the JSON reader, validate() and the canonical JSON form (train.hpp; README.md,
// "taep train"). The samples file is read by build_train_problem (host/problem/train_problem.cpp).
//
// As for the run config (host/config/config.cpp): parse_train_config checks JSON shape (keys, types,
// integers that fit their field) and copies values, with the run config's readers for the shared
// sections (host/io/json_fields.hpp); validate() checks every value range, pure (no file is read,
// nothing changed), so a config built in code or changed by CLI flags gets the same checks. Every
// error is a ConfigError naming the field by its dotted JSON path.
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "host/config/config_json.hpp"
#include "host/config/train_config.hpp"
#include "host/io/json_fields.hpp"
#include "taep/error.hpp"
#include "taep/physics/rng_streams.hpp"
#include "taep/train.hpp"

namespace taep {
namespace {

using namespace fields;
using ojson = nlohmann::ordered_json;

// ---- limits ---------------------------------------------------------------------------------------

constexpr IntRange kTrainStepsRange{1, 1'000'000'000};
constexpr IntRange kBatchRange{1, 1 << 20};
constexpr IntRange kLogEveryRange{1, kU64Max};
constexpr IntRange kWidthRange{1, 8192};
constexpr IntRange kEmbeddingRange{2, 1024};
constexpr std::size_t kMaxHiddenLayers = 16;
constexpr std::uint64_t kMaxParameters = std::uint64_t(1) << 27;
constexpr double kInf = std::numeric_limits<double>::infinity();

constexpr Named<Parameterization> kParameterizations[] = {{"score", Parameterization::score},
                                                          {"eps", Parameterization::eps}};

// ---- JSON reader ----------------------------------------------------------------------------------

void read_data(const json& j, TrainDataConfig& out) {
  const std::string p = "data";
  check_keys(j, p, {"target", "collapse", "samples"});
  const bool samples = j.contains("samples");
  if (samples && (j.contains("target") || (j.contains("collapse") && !j["collapse"].is_null())))
    fail(p, "give either target (with an optional collapse) or samples, not both");
  if (samples) {
    read_string(j, "samples", p, out.samples);
    // An empty path would read as "no samples file" and train on the default target instead.
    if (out.samples.empty())
      fail("data.samples", "must name a CSV file of samples (got \"\"); leave it out to train on "
                           "data.target");
    return;
  }
  if (const json* t = section(j, "target", p)) read_target(*t, "data.target", out.target);
  auto c = j.find("collapse");
  if (c != j.end() && !c->is_null()) {
    if (!c->is_object()) fail("data.collapse", "must be an object or null (got " + show(*c) + ")");
    check_keys(*c, "data.collapse", {"modes", "eps"});
    CollapseSpec spec;
    read_int(*c, "modes", "data.collapse", spec.modes, IntRange{1, 1u << 30});
    read_real(*c, "eps", "data.collapse", spec.eps);
    out.collapse = spec;
  }
}

void read_network(const json& j, NetworkConfig& out) {
  const std::string p = "network";
  check_keys(j, p, {"hidden", "embedding_dim", "time_scale", "max_period", "parameterization"});
  auto h = j.find("hidden");
  if (h != j.end()) {
    if (!h->is_array())
      fail("network.hidden", "must be an array of layer widths (got " + show(*h) + ")");
    out.hidden.clear();
    for (std::size_t i = 0; i < h->size(); ++i) {
      int w = 0;
      read_int_value((*h)[i], index("network.hidden", i), w, kWidthRange);
      out.hidden.push_back(w);
    }
  }
  read_int(j, "embedding_dim", p, out.embedding_dim, kEmbeddingRange);
  read_real(j, "time_scale", p, out.time_scale);
  read_real(j, "max_period", p, out.max_period);
  read_enum(j, "parameterization", p, out.parameterization, kParameterizations);
}

void read_optimizer(const json& j, OptimizerConfig& out) {
  const std::string p = "optimizer";
  check_keys(j, p, {"steps", "batch", "lr", "beta1", "beta2", "eps", "clip_norm", "ema_decay"});
  read_int(j, "steps", p, out.steps, kTrainStepsRange);
  read_int(j, "batch", p, out.batch, kBatchRange);
  read_real(j, "lr", p, out.lr);
  read_real(j, "beta1", p, out.beta1);
  read_real(j, "beta2", p, out.beta2);
  read_real(j, "eps", p, out.adam_eps);
  read_real(j, "clip_norm", p, out.clip_norm);
  read_real(j, "ema_decay", p, out.ema_decay);
}

// The run config's section readers, over the keys the training config has (README "taep train").
void read_schedule(const json& j, TrainConfig& out) {
  ScheduleConfig s;
  s.sde = out.sde;
  s.t_min = out.t_min;
  fields::read_schedule(j, "schedule",
                        {"type", "beta_min", "beta_max", "sigma_min", "sigma_max", "sigma", "t_min"}, s);
  out.sde = s.sde;
  out.t_min = s.t_min;
}

void read_run(const json& j, TrainConfig& out) {
  const std::string p = "run";
  check_keys(j, p, {"seed", "backend", "threads", "log_every"});
  read_run_common(j, p, out.seed, out.backend, out.threads);
  read_int(j, "log_every", p, out.log_every, kLogEveryRange);
}


}  // namespace

// ---- public API -----------------------------------------------------------------------------------

const char* to_string(Parameterization p) { return p == Parameterization::eps ? "eps" : "score"; }

TrainConfig default_train_config() {
  TrainConfig c;
  c.data.target.preset = "ring8";
  c.data.target.mixture = ring8();
  return c;
}

void detail::check_network_size(const NetworkConfig& n, int d) {
  // The parameters (and the trainer's four copies of them: weights, two Adam moments, EMA).
  std::uint64_t parameters = 0, in = std::uint64_t(d + n.embedding_dim);
  for (int w : n.hidden) {
    parameters += (in + 1) * std::uint64_t(w);
    in = std::uint64_t(w);
  }
  parameters += (in + 1) * std::uint64_t(d);
  if (parameters > kMaxParameters)
    fail("network.hidden", "the network must have at most " + std::to_string(kMaxParameters) +
                               " parameters (got " + std::to_string(parameters) + ")");
}

void validate(const TrainConfig& c) {
  // data (a samples file is read by build_train_problem, which checks its contents)
  const TrainDataConfig& data = c.data;
  int d = 0;
  if (!data.samples.empty()) {
    if (data.collapse)
      fail("data.collapse", "applies to a mixture target, not to a samples file");
  } else {
    const MixtureSpec target = target_mixture(data.target, "data.target");
    if (data.collapse) check_collapse(*data.collapse, target.components(), "data.collapse");
    d = target.dim();
  }

  // network
  const NetworkConfig& n = c.network;
  if (n.hidden.empty() || n.hidden.size() > kMaxHiddenLayers)
    fail("network.hidden", "must list 1 to " + std::to_string(kMaxHiddenLayers) +
                               " hidden layer widths (got " + std::to_string(n.hidden.size()) + ")");
  for (std::size_t i = 0; i < n.hidden.size(); ++i)
    check_int(index("network.hidden", i), n.hidden[i], kWidthRange);
  check_int("network.embedding_dim", n.embedding_dim, kEmbeddingRange);
  if (n.embedding_dim % 2 != 0)
    fail("network.embedding_dim", "must be even (got " + std::to_string(n.embedding_dim) + ")");
  check_interval("network.time_scale", n.time_scale, 0.0, true, kInf, true);
  check_interval("network.max_period", n.max_period, 1.0, true, kInf, true);
  check_enum("network.parameterization", kParameterizations, n.parameterization);
  if (d > 0) detail::check_network_size(n, d);

  // optimizer
  const OptimizerConfig& o = c.optimizer;
  check_int("optimizer.steps", o.steps, kTrainStepsRange);
  check_int("optimizer.batch", o.batch, kBatchRange);
  if (o.steps * std::uint64_t(o.batch) >= rng::kMaxPaths)
    fail("optimizer.steps", "steps x batch must be < 2^40, the examples' counter range (got " +
                                std::to_string(o.steps) + " x " + std::to_string(o.batch) + ")");
  check_interval("optimizer.lr", o.lr, 0.0, true, kInf, true);
  check_interval("optimizer.beta1", o.beta1, 0.0, false, 1.0, true);
  check_interval("optimizer.beta2", o.beta2, 0.0, false, 1.0, true);
  check_interval("optimizer.eps", o.adam_eps, 0.0, true, kInf, true);
  check_interval("optimizer.clip_norm", o.clip_norm, 0.0, false, kInf, true);
  check_interval("optimizer.ema_decay", o.ema_decay, 0.0, false, 1.0, true);

  // schedule
  check_sde(c.sde, "schedule");
  check_interval("schedule.t_min", c.t_min, 0.0, true, 1.0, true);

  // run
  check_enum("run.backend", kBackends, c.backend);
  check_int("run.threads", c.threads, kThreadsRange);
  check_int("run.log_every", c.log_every, kLogEveryRange);
}

TrainConfig parse_train_config(const std::string& json_text) {
  const json root = parse_object(json_text);
  check_keys(root, "", {"data", "network", "optimizer", "schedule", "run"});
  TrainConfig c = default_train_config();
  if (const json* j = section(root, "data", "")) {
    // A config's data replaces the default's (its target unless samples are given).
    c.data = TrainDataConfig{};
    c.data.target.preset = "ring8";
    read_data(*j, c.data);
    resolve_preset(c.data.target);
  }
  if (const json* j = section(root, "network", "")) read_network(*j, c.network);
  if (const json* j = section(root, "optimizer", "")) read_optimizer(*j, c.optimizer);
  if (const json* j = section(root, "schedule", "")) read_schedule(*j, c);
  if (const json* j = section(root, "run", "")) read_run(*j, c);
  validate(c);
  return c;
}

nlohmann::ordered_json detail::train_config_json(const TrainConfig& c) {
  ojson data = ojson::object();
  if (!c.data.samples.empty()) {
    data["samples"] = c.data.samples;
  } else {
    data["target"] = target_json(c.data.target);
    data["collapse"] = c.data.collapse ? ojson{{"modes", c.data.collapse->modes},
                                               {"eps", c.data.collapse->eps}}
                                       : ojson(nullptr);
  }
  const NetworkConfig& n = c.network;
  const OptimizerConfig& o = c.optimizer;
  const char* backend = name_or_invalid(kBackends, c.backend);
  ojson schedule = sde_json(c.sde);
  schedule["t_min"] = c.t_min;
  ojson out{
      {"data", data},
      {"network",
       {{"hidden", n.hidden}, {"embedding_dim", n.embedding_dim}, {"time_scale", n.time_scale},
        {"max_period", n.max_period}, {"parameterization", to_string(n.parameterization)}}},
      {"optimizer",
       {{"steps", o.steps}, {"batch", o.batch}, {"lr", o.lr}, {"beta1", o.beta1},
        {"beta2", o.beta2}, {"eps", o.adam_eps}, {"clip_norm", o.clip_norm},
        {"ema_decay", o.ema_decay}}},
      {"schedule", schedule},
      {"run",
       {{"seed", c.seed}, {"backend", backend}, {"threads", c.threads}, {"log_every", c.log_every}}},
  };
  return out;
}

std::string train_config_to_json(const TrainConfig& c, int indent) {
  return detail::train_config_json(c).dump(indent, ' ', false, ojson::error_handler_t::replace);
}

}  // namespace taep

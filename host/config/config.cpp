// Config parsing, validation and the canonical JSON form (config.hpp).
//
// Two layers, so that a config built in code or overridden by CLI flags gets the same checks as one
// read from JSON: parse_config only checks JSON shape (keys, types, integers that fit their field)
// and copies values into the structs (resolving a preset target); validate() checks every value
// range, pure: no file is read (build_problem reads model.weights) and nothing is changed. Both
// throw ConfigError naming the field by its dotted JSON path (host/io/json_fields.hpp).
#include "taep/config.hpp"

#include <cmath>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "host/config/config_json.hpp"
#include "host/io/json_fields.hpp"
#include "taep/error.hpp"
#include "taep/physics/accumulators.hpp"
#include "taep/physics/mixture.hpp"
#include "taep/physics/rng_streams.hpp"

namespace taep {
namespace {

using namespace fields;

// ---- limits (shared by the JSON reader and validate) ------------------------------------------

constexpr IntRange kPathsRange{1, rng::kMaxPaths - 1};
constexpr IntRange kChunkPathsRange{0, rng::kMaxPaths};
constexpr IntRange kBinsRange{1, 1'000'000};
constexpr IntRange kModesShape{1, kIntMax};  // the JSON reader's bound; validate() bounds by K - 1

constexpr Named<Divergence> kDivergences[] = {{"exact", Divergence::exact},
                                              {"hutchinson", Divergence::hutchinson}};
constexpr Named<ProbeDistribution> kProbeDistributions[] = {
    {"rademacher", ProbeDistribution::rademacher}, {"gaussian", ProbeDistribution::gaussian}};
constexpr Named<MathMode> kMathModes[] = {{"fp32", MathMode::fp32}, {"tf32", MathMode::tf32}};
constexpr const char* kModelTypes[] = {"exact", "mlp", "callback"};
constexpr Named<ReferenceType> kReferenceTypes[] = {{"analytic", ReferenceType::analytic},
                                                    {"empirical", ReferenceType::empirical},
                                                    {"mlp", ReferenceType::mlp}};
constexpr IntRange kProbesRange{1, 64};

template <std::size_t N>
bool is_one_of(const char* const (&names)[N], const std::string& s) {
  for (const char* n : names)
    if (s == n) return true;
  return false;
}

// What can be checked without the weight file; build_problem checks the file against the target.
void validate_mlp_model(const ModelConfig& m, Scheme scheme) {
  if (m.mixture || m.collapse)
    fail("model", "an mlp model takes weights, not mixture or collapse");
  if (m.weights.empty()) fail("model.weights", "must name a safetensors file (got none)");
  check_int("model.probes", m.probes, kProbesRange);
  // Milstein for a network: the quadratic form comes from the d exact tangents (a rotated basis,
  // physics::milstein_basis); only the symmetric part of the Jacobian enters it (README).
  if (scheme == Scheme::milstein && m.divergence != Divergence::exact)
    fail("schedule.scheme", "\"milstein\" needs model.divergence \"exact\" for an mlp model (the "
                            "correction's quadratic form comes from the d exact tangents)");
}

// A score function given in code (taep/score_callback.hpp): the config holds only how its divergence
// is taken; build_problem(config) refuses it without the function.
void validate_callback_model(const ModelConfig& m, Scheme scheme) {
  if (m.mixture || m.collapse || !m.weights.empty())
    fail("model", "a callback model takes no mixture, collapse or weights (the score is a function "
                  "given with the call)");
  check_int("model.probes", m.probes, kProbesRange);
  if (scheme == Scheme::milstein)
    fail("schedule.scheme", "\"milstein\" is not available for a callback model (its correction "
                            "needs the model's Jacobian along dW); use \"euler\"");
}

// ---- JSON reader --------------------------------------------------------------------------------

void read_mlp_model(const json& m, ModelConfig& out) {
  check_keys(m, "model", {"type", "weights", "divergence", "probes", "probe_distribution", "math"});
  read_string(m, "weights", "model", out.weights);
  read_enum(m, "divergence", "model", out.divergence, kDivergences);
  read_int(m, "probes", "model", out.probes, kProbesRange);
  read_enum(m, "probe_distribution", "model", out.probe_distribution, kProbeDistributions);
  read_enum(m, "math", "model", out.math, kMathModes);
}

void read_model(const json& m, ModelConfig& out) {
  out = ModelConfig{};
  read_string(m, "type", "model", out.type);
  if (out.type == "mlp") return read_mlp_model(m, out);
  if (out.type == "callback") {
    check_keys(m, "model", {"type", "divergence", "probes", "probe_distribution"});
    read_enum(m, "divergence", "model", out.divergence, kDivergences);
    read_int(m, "probes", "model", out.probes, kProbesRange);
    read_enum(m, "probe_distribution", "model", out.probe_distribution, kProbeDistributions);
    return;
  }
  check_keys(m, "model", {"type", "mixture", "collapse"});
  const json* mixture = section(m, "mixture", "model");
  const json* collapse = section(m, "collapse", "model");
  if (bool(mixture) == bool(collapse))
    fail("model", std::string("must have exactly one of mixture or collapse (got ") +
                      (mixture ? "both" : "neither") + ")");
  if (mixture) {
    check_keys(*mixture, "model.mixture", {"weights", "means", "sigmas"});
    out.mixture = to_mixture(*mixture, "model.mixture");
  } else {
    check_keys(*collapse, "model.collapse", {"modes", "eps"});
    CollapseSpec c;
    read_int(*collapse, "modes", "model.collapse", c.modes, kModesShape);
    read_real(*collapse, "eps", "model.collapse", c.eps);
    out.collapse = c;
  }
}

// A run config's target: a mixture or preset (as training's data.target), or a samples file.
void read_run_target(const json& t, TargetConfig& out) {
  if (!t.contains("samples")) return read_target(t, "target", out);
  if (t.size() > 1)
    fail("target", "give either samples or a preset or weights/means/sigmas, not more than one");
  out = TargetConfig{};
  read_string(t, "samples", "target", out.samples);
}

void read_reference(const json& r, ReferenceConfig& out) {
  check_keys(r, "reference", {"type", "weights"});
  out = ReferenceConfig{};
  read_enum(r, "type", "reference", out.type, kReferenceTypes);
  read_string(r, "weights", "reference", out.weights);
}

void read_run(const json& r, RunSettings& out) {
  const std::string p = "run";
  check_keys(r, p, {"paths", "seed", "backend", "chunk_paths", "threads", "devices", "allow_nonfinite"});
  read_int(r, "paths", p, out.paths, kPathsRange);
  read_run_common(r, p, out.seed, out.backend, out.threads);
  read_int(r, "chunk_paths", p, out.chunk_paths, kChunkPathsRange);
  read_int(r, "devices", p, out.devices, kDevicesRange);
  read_bool(r, "allow_nonfinite", p, out.allow_nonfinite);
}

constexpr const char* kRangeRule = "must be [lo, hi] with finite lo < hi and a finite width hi - lo, or null for automatic";

void read_histogram(const json& h, HistogramConfig& out) {
  check_keys(h, "histogram", {"bins", "range"});
  read_int(h, "bins", "histogram", out.bins, kBinsRange);
  auto it = h.find("range");
  if (it == h.end()) return;
  out.lo.reset();
  out.hi.reset();
  if (it->is_null()) return;
  if (!it->is_array() || it->size() != 2 || !(*it)[0].is_number() || !(*it)[1].is_number())
    fail("histogram.range", std::string(kRangeRule) + " (got " + show(*it) + ")");
  out.lo = (*it)[0].get<double>();
  out.hi = (*it)[1].get<double>();
}

using ojson = nlohmann::ordered_json;

}  // namespace

// ---- public API ---------------------------------------------------------------------------------

const char* to_string(Scheme s) { return name_or_invalid(kSchemes, s); }

const char* to_string(Divergence d) { return name_or_invalid(kDivergences, d); }

const char* to_string(ProbeDistribution p) { return name_or_invalid(kProbeDistributions, p); }

const char* to_string(MathMode m) { return name_or_invalid(kMathModes, m); }

const char* to_string(Backend b) { return name_or_invalid(kBackends, b); }

const char* to_string(ReferenceType r) {
  return r == ReferenceType::automatic ? "automatic" : name_or_invalid(kReferenceTypes, r);
}

ReferenceType reference_type(const Config& c) {
  if (c.reference.type != ReferenceType::automatic) return c.reference.type;
  return c.target.from_samples() ? ReferenceType::empirical : ReferenceType::analytic;
}

MixtureSpec ring8() {
  constexpr int K = 8;
  MixtureSpec m;
  for (int k = 0; k < K; ++k) {
    const double angle = 2 * physics::kPi * k / K;
    m.weights.push_back(1.0 / K);
    m.means.push_back({4 * std::cos(angle), 4 * std::sin(angle)});
    m.sigmas.push_back(0.25);
  }
  return m;
}

MixtureSpec collapse(const MixtureSpec& target, const CollapseSpec& c) {
  const int K = target.components();
  check_collapse(c, K, "model.collapse");
  MixtureSpec q = target;
  const double rest = (1 - c.modes * c.eps) / (K - c.modes);
  for (int k = 0; k < K; ++k) q.weights[k] = k < c.modes ? c.eps : rest;
  return q;
}

Config default_config() {
  Config c;
  c.target.preset = "ring8";
  c.target.mixture = ring8();
  c.model.collapse = CollapseSpec{};
  return c;
}

void detail::check_model_against_target(const ModelConfig& m, const MixtureSpec& target) {
  if (m.mixture) {
    if (m.mixture->dim() != target.dim())
      fail("model.mixture.means", "must have the target's dimension " +
                                      std::to_string(target.dim()) + " (got " +
                                      std::to_string(m.mixture->dim()) + ")");
  } else if (m.collapse) {
    check_collapse(*m.collapse, target.components(), "model.collapse");
  }
}

void validate(const Config& c) {
  // target (a preset's mixture is computed here, not stored: validate changes nothing). A samples
  // target's file is read by build_problem, which makes the checks that need its rows.
  const bool samples = c.target.from_samples();
  if (samples && !c.target.preset.empty())
    fail("target", "give either samples or a preset or weights/means/sigmas, not more than one");
  const MixtureSpec target = samples ? MixtureSpec{} : target_mixture(c.target, "target");

  // reference
  const ReferenceConfig& ref = c.reference;
  if (ref.type != ReferenceType::automatic) check_enum("reference.type", kReferenceTypes, ref.type);
  const ReferenceType rt = reference_type(c);
  if (rt == ReferenceType::analytic && samples)
    fail("reference.type", "\"analytic\" needs a mixture target (its score is known in closed "
                           "form); a samples target takes \"empirical\" (the default) or \"mlp\"");
  if (rt == ReferenceType::empirical && !samples)
    fail("reference.type", "\"empirical\" needs target.samples (a data file); for a mixture "
                           "target the analytic score is the exact one");
  if (rt == ReferenceType::mlp) {
    if (ref.weights.empty()) fail("reference.weights", "must name a safetensors file (got none)");
    if (c.model.type != "mlp")
      fail("reference.type", "\"mlp\" (a reference network) needs model.type \"mlp\" (got " +
                                 show(c.model.type) + ")");
    if (c.schedule.scheme == Scheme::milstein)
      fail("schedule.scheme", "\"milstein\" is not available with reference.type \"mlp\" (its "
                              "correction needs the reference's Jacobian along dW); use \"euler\"");
  } else if (!ref.weights.empty()) {
    fail("reference.weights", "is for reference.type \"mlp\" only (got type " +
                                  std::string(to_string(rt)) + ")");
  }

  // model
  const ModelConfig& m = c.model;
  if (!is_one_of(kModelTypes, m.type))
    fail("model.type", "must be one of " + join(kModelTypes) + " (got " + show(m.type) + ")");
  if (m.type == "mlp") {
    validate_mlp_model(m, c.schedule.scheme);
  } else if (m.type == "callback") {
    validate_callback_model(m, c.schedule.scheme);
  } else if (m.mixture.has_value() == m.collapse.has_value()) {
    fail("model", std::string("must have exactly one of mixture or collapse (got ") +
                      (m.mixture ? "both" : "neither") + ")");
  } else if (!m.weights.empty()) {
    fail("model.weights", "is for model.type \"mlp\" only (got type " + show(m.type) + ")");
  } else {
    if (m.mixture) check_mixture(*m.mixture, "model.mixture");
    if (!samples || !c.target.mixture.means.empty())
      detail::check_model_against_target(m, samples ? c.target.mixture : target);
    else if (m.collapse)
      check_collapse(*m.collapse, std::numeric_limits<int>::max(), "model.collapse");
  }

  // schedule
  const ScheduleConfig& s = c.schedule;
  check_sde(s.sde, "schedule");
  check_lower("schedule.t_min", s.t_min, 0.0, true);
  check_lower("schedule.t_max", s.t_max, s.t_min, true, "schedule.t_min");
  check_int("schedule.steps", s.steps, kStepsRange);
  check_enum("schedule.scheme", kSchemes, s.scheme);

  // run
  const RunSettings& r = c.run;
  check_int("run.paths", r.paths, kPathsRange);
  check_int("run.seed", r.seed, kSeedRange);
  check_enum("run.backend", kBackends, r.backend);
  check_int("run.chunk_paths", r.chunk_paths, kChunkPathsRange);
  check_int("run.threads", r.threads, kThreadsRange);
  check_int("run.devices", r.devices, kDevicesRange);

  // histogram
  const HistogramConfig& h = c.histogram;
  check_int("histogram.bins", h.bins, kBinsRange);
  if (h.lo.has_value() != h.hi.has_value() ||
      (h.lo && !physics::histogram_range_usable(*h.lo, *h.hi, h.bins))) {
    auto side = [](const std::optional<double>& x) { return x ? show(*x) : std::string("none"); };
    fail("histogram.range", std::string(kRangeRule) + " (got [" + side(h.lo) + ", " + side(h.hi) + "])");
  }
}

Config parse_config(const std::string& json_text) {
  const json root = parse_object(json_text);
  check_keys(root, "", {"target", "reference", "model", "schedule", "run", "histogram"});

  Config c = default_config();
  if (const json* t = section(root, "target", "")) read_run_target(*t, c.target);
  if (const json* r = section(root, "reference", "")) read_reference(*r, c.reference);
  if (const json* m = section(root, "model", "")) read_model(*m, c.model);
  if (const json* s = section(root, "schedule", ""))
    read_schedule(*s, "schedule",
                  {"type", "beta_min", "beta_max", "sigma_min", "sigma_max", "sigma", "t_min",
                   "t_max", "steps", "scheme"},
                  c.schedule);
  if (const json* r = section(root, "run", "")) read_run(*r, c.run);
  if (const json* h = section(root, "histogram", "")) read_histogram(*h, c.histogram);
  validate(c);
  return c;
}

nlohmann::ordered_json detail::config_json(const Config& c) {
  const ojson target =
      c.target.from_samples() ? ojson{{"samples", c.target.samples}} : target_json(c.target);
  ojson reference{{"type", to_string(reference_type(c))}};
  if (reference_type(c) == ReferenceType::mlp) reference["weights"] = c.reference.weights;
  ojson model{{"type", c.model.type}};
  if (c.model.type == "mlp") {
    model["weights"] = c.model.weights;
    model["divergence"] = to_string(c.model.divergence);
    model["probes"] = c.model.probes;
    model["probe_distribution"] = to_string(c.model.probe_distribution);
    model["math"] = to_string(c.model.math);
  }
  if (c.model.type == "callback") {
    model["divergence"] = to_string(c.model.divergence);
    model["probes"] = c.model.probes;
    model["probe_distribution"] = to_string(c.model.probe_distribution);
  }
  if (c.model.mixture) model["mixture"] = mixture_json(*c.model.mixture);
  if (c.model.collapse)
    model["collapse"] = ojson{{"modes", c.model.collapse->modes}, {"eps", c.model.collapse->eps}};
  const ScheduleConfig& s = c.schedule;
  const RunSettings& r = c.run;
  const HistogramConfig& h = c.histogram;
  ojson range = (h.lo && h.hi) ? ojson::array({*h.lo, *h.hi}) : ojson(nullptr);

  ojson schedule = sde_json(s.sde);
  schedule["t_min"] = s.t_min;
  schedule["t_max"] = s.t_max;
  schedule["steps"] = s.steps;
  schedule["scheme"] = to_string(s.scheme);
  ojson out{
      {"target", target},
      {"reference", reference},
      {"model", model},
      {"schedule", schedule},
      {"run",
       {{"paths", r.paths}, {"seed", r.seed}, {"backend", to_string(r.backend)},
        {"chunk_paths", r.chunk_paths}, {"threads", r.threads}, {"devices", r.devices},
        {"allow_nonfinite", r.allow_nonfinite}}},
      {"histogram", {{"bins", h.bins}, {"range", range}}},
  };
  return out;
}

std::string config_to_json(const Config& c, int indent) {
  return detail::config_json(c).dump(indent, ' ', false, ojson::error_handler_t::replace);
}

}  // namespace taep

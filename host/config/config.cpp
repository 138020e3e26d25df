// Config parsing, validation and the canonical JSON form (config.hpp).
//
// Two layers, so that a config built in code or overridden by CLI flags gets the same checks as one
// read from JSON: parse_config only checks JSON shape (keys, types, integers that fit their field)
// and copies values into the structs; validate() checks every value range. Both throw ConfigError
// naming the field by its dotted JSON path.
#include "taep/config.hpp"

#include <charconv>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "taep/error.hpp"
#include "taep/mlp.hpp"
#include "taep/physics/mixture.hpp"
#include "taep/physics/rng_streams.hpp"

namespace taep {
namespace {

using nlohmann::json;

// ---- limits (shared by the JSON reader and validate) ------------------------------------------

struct IntRange {
  std::uint64_t lo, hi;
};
constexpr std::uint64_t kU64Max = std::numeric_limits<std::uint64_t>::max();
constexpr std::uint64_t kIntMax = std::uint64_t(std::numeric_limits<int>::max());

constexpr IntRange kStepsRange{1, 10'000'000};
constexpr IntRange kPathsRange{1, rng::kMaxPaths - 1};
constexpr IntRange kSeedRange{0, kU64Max};
constexpr IntRange kChunkPathsRange{0, rng::kMaxPaths};
constexpr IntRange kThreadsRange{0, 65536};
constexpr IntRange kBinsRange{1, 1'000'000};
constexpr IntRange kModesShape{1, kIntMax};  // the JSON reader's bound; validate() bounds by K - 1

template <class E>
struct Named {
  const char* name;
  E value;
};
constexpr Named<Scheme> kSchemes[] = {{"euler", Scheme::euler}, {"milstein", Scheme::milstein}};
constexpr Named<Backend> kBackends[] = {
    {"auto", Backend::automatic}, {"cpu", Backend::cpu}, {"cuda", Backend::cuda}};
constexpr Named<Divergence> kDivergences[] = {{"exact", Divergence::exact},
                                              {"hutchinson", Divergence::hutchinson}};
constexpr Named<ProbeDistribution> kProbeDistributions[] = {
    {"rademacher", ProbeDistribution::rademacher}, {"gaussian", ProbeDistribution::gaussian}};
constexpr Named<MathMode> kMathModes[] = {{"fp32", MathMode::fp32}, {"tf32", MathMode::tf32}};
constexpr const char* kModelTypes[] = {"exact", "mlp"};
constexpr IntRange kProbesRange{1, 64};

struct Preset {
  const char* name;
  MixtureSpec (*make)();
};
constexpr Preset kPresets[] = {{"ring8", ring8}};

const Preset* find_preset(const std::string& name) {
  for (const auto& p : kPresets)
    if (name == p.name) return &p;
  return nullptr;
}

// ---- messages -----------------------------------------------------------------------------------

[[noreturn]] void fail(const std::string& field, const std::string& message) {
  throw ConfigError(field, message);
}

std::string show(const json& j) {
  std::string s = j.dump(-1, ' ', false, json::error_handler_t::replace);
  return s.size() > 60 ? s.substr(0, 57) + "..." : s;
}
std::string show(double x) {
  if (std::isnan(x)) return "nan";
  if (std::isinf(x)) return x > 0 ? "inf" : "-inf";
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof buf, x);  // shortest form that reads back exactly
  return std::string(buf, r.ptr);
}
std::string show(const std::string& s) { return show(json(s)); }

std::string index(const std::string& field, std::size_t i) {
  return field + "[" + std::to_string(i) + "]";
}

template <class List>
std::string join(const List& names) {
  std::string out;
  for (const auto& n : names) {
    if (!out.empty()) out += ", ";
    if constexpr (std::is_convertible_v<decltype(n), const char*>)
      out += '"' + std::string(n) + '"';
    else
      out += '"' + std::string(n.name) + '"';
  }
  return out;
}

std::string describe(IntRange r) {
  if (r.hi == kU64Max) return "an integer >= " + std::to_string(r.lo);
  return "an integer in [" + std::to_string(r.lo) + ", " + std::to_string(r.hi) + "]";
}

// ---- value checks (validate) --------------------------------------------------------------------

template <class T>
void check_int(const std::string& field, T v, IntRange r) {
  bool ok;
  if constexpr (std::is_signed_v<T>)
    ok = v >= 0 && std::uint64_t(v) >= r.lo && std::uint64_t(v) <= r.hi;
  else
    ok = std::uint64_t(v) >= r.lo && std::uint64_t(v) <= r.hi;
  if (!ok) fail(field, "must be " + describe(r) + " (got " + std::to_string(v) + ")");
}

void check_finite(const std::string& field, double x) {
  if (!std::isfinite(x)) fail(field, "must be a finite number (got " + show(x) + ")");
}

// x > bound (strict) or x >= bound; `bound_name` names the bound when it is another field.
void check_lower(const std::string& field, double x, double bound, bool strict,
                 const std::string& bound_name = "") {
  if (std::isfinite(x) && (strict ? x > bound : x >= bound)) return;
  std::string b = bound_name.empty() ? show(bound) : bound_name + " = " + show(bound);
  fail(field, std::string("must be a finite number ") + (strict ? "> " : ">= ") + b + " (got " +
                  show(x) + ")");
}

template <class E, std::size_t N>
const char* name_of(const Named<E> (&table)[N], E value) {
  for (const auto& n : table)
    if (n.value == value) return n.name;
  return nullptr;
}

template <class E, std::size_t N>
const char* name_or_invalid(const Named<E> (&table)[N], E value) {
  const char* n = name_of(table, value);
  return n ? n : "invalid";
}

template <std::size_t N>
bool is_one_of(const char* const (&names)[N], const std::string& s) {
  for (const char* n : names)
    if (s == n) return true;
  return false;
}

bool same_mixture(const MixtureSpec& a, const MixtureSpec& b) {
  return a.weights == b.weights && a.means == b.means && a.sigmas == b.sigmas;
}
bool empty_mixture(const MixtureSpec& m) {
  return m.weights.empty() && m.means.empty() && m.sigmas.empty();
}

// `path` is "target" or "model.mixture".
void check_mixture(const MixtureSpec& m, const std::string& path) {
  const std::size_t K = m.weights.size();
  if (K < 1) fail(path + ".weights", "must have at least 1 component (got 0)");
  auto check_count = [&](const char* key, std::size_t n) {
    if (n != K)
      fail(path + "." + key, "must have " + std::to_string(K) + " entries, one per weight (got " +
                                 std::to_string(n) + ")");
  };
  check_count("means", m.means.size());
  check_count("sigmas", m.sigmas.size());

  const std::size_t d = m.means.front().size();
  for (std::size_t k = 0; k < K; ++k) {
    const std::string mk = index(path + ".means", k);
    const std::size_t dk = m.means[k].size();
    if (k == 0 && (d < 1 || d > std::size_t(physics::kMaxDim)))
      fail(mk, "must have dimension d in [1, " + std::to_string(physics::kMaxDim) + "] (got " +
                   std::to_string(d) + ")");
    if (dk != d)
      fail(mk, "must have dimension " + std::to_string(d) + " like " + path + ".means[0] (got " +
                   std::to_string(dk) + ")");
    for (std::size_t i = 0; i < d; ++i) check_finite(index(mk, i), m.means[k][i]);
  }

  double sum = 0;
  for (std::size_t k = 0; k < K; ++k) {
    check_lower(index(path + ".weights", k), m.weights[k], 0.0, false);
    check_lower(index(path + ".sigmas", k), m.sigmas[k], 0.0, true);
    sum += m.weights[k];
  }
  if (!(sum > 0) || !std::isfinite(sum))
    fail(path + ".weights", "must sum to a finite positive value (got " + show(sum) + ")");
}

void check_collapse(const CollapseSpec& c, int K) {
  if (c.modes < 1 || c.modes >= K)
    fail("model.collapse.modes", "must be an integer in [1, K-1] where K = " + std::to_string(K) +
                                     " is the target's component count (got " +
                                     std::to_string(c.modes) + ")");
  if (!(std::isfinite(c.eps) && c.eps > 0 && c.modes * c.eps < 1))
    fail("model.collapse.eps", "must be a finite number in (0, 1/modes) = (0, " +
                                   show(1.0 / c.modes) + ") (got " + show(c.eps) + ")");
}

void validate_mlp_model(const ModelConfig& m, int target_dim, Scheme scheme) {
  if (m.mixture || m.collapse)
    fail("model", "an mlp model takes weights, not mixture or collapse");
  if (m.weights.empty()) fail("model.weights", "must name a safetensors file (got none)");
  check_int("model.probes", m.probes, kProbesRange);
  MlpModel mlp;
  try {
    mlp = load_mlp(m.weights);
  } catch (const ConfigError& e) {  // the loader names the file; the config names the field
    fail("model.weights", e.what());
  }
  if (mlp.dim != target_dim)
    fail("model.weights", "the MLP's dimension d = " + std::to_string(mlp.dim) +
                              " must equal the target's dimension " + std::to_string(target_dim));
  // Milstein for a network: the quadratic form comes from the d exact tangents (a rotated basis,
  // physics::milstein_basis); only the symmetric part of the Jacobian enters it (README).
  if (scheme == Scheme::milstein && m.divergence != Divergence::exact)
    fail("schedule.scheme", "\"milstein\" needs model.divergence \"exact\" for an mlp model (the "
                            "correction's quadratic form comes from the d exact tangents)");
}

// ---- JSON reader --------------------------------------------------------------------------------

std::string child(const std::string& path, const char* key) {
  return path.empty() ? key : path + "." + key;
}

void check_keys(const json& obj, const std::string& path, std::initializer_list<const char*> allowed) {
  for (const auto& item : obj.items()) {
    bool known = false;
    for (const char* a : allowed) known = known || item.key() == a;
    if (!known) fail(child(path, item.key().c_str()), "unknown key; allowed: " + join(allowed));
  }
}

// The object at obj[key], nullptr when absent.
const json* section(const json& obj, const char* key, const std::string& path) {
  auto it = obj.find(key);
  if (it == obj.end()) return nullptr;
  if (!it->is_object()) fail(child(path, key), "must be an object (got " + show(*it) + ")");
  return &*it;
}

std::optional<std::uint64_t> as_uint64(const json& j) {
  if (j.is_number_unsigned()) return j.get<std::uint64_t>();
  if (j.is_number_integer()) {
    auto v = j.get<std::int64_t>();
    if (v >= 0) return std::uint64_t(v);
  }
  if (j.is_number_float()) {  // 1e6 is an integer too
    double x = j.get<double>();
    if (x >= 0 && x < 18446744073709551616.0 && std::floor(x) == x) return std::uint64_t(x);
  }
  return std::nullopt;
}

template <class T>
void read_int(const json& obj, const char* key, const std::string& path, T& out, IntRange r) {
  static_assert(std::is_integral_v<T>);
  auto it = obj.find(key);
  if (it == obj.end()) return;
  auto v = as_uint64(*it);
  if (!v || *v < r.lo || *v > r.hi)
    fail(child(path, key), "must be " + describe(r) + " (got " + show(*it) + ")");
  out = static_cast<T>(*v);
}

double to_number(const json& j, const std::string& field) {
  if (!j.is_number()) fail(field, "must be a number (got " + show(j) + ")");
  return j.get<double>();
}

void read_real(const json& obj, const char* key, const std::string& path, double& out) {
  auto it = obj.find(key);
  if (it != obj.end()) out = to_number(*it, child(path, key));
}

void read_string(const json& obj, const char* key, const std::string& path, std::string& out) {
  auto it = obj.find(key);
  if (it == obj.end()) return;
  if (!it->is_string()) fail(child(path, key), "must be a string (got " + show(*it) + ")");
  out = it->get<std::string>();
}

template <class E, std::size_t N>
void read_enum(const json& obj, const char* key, const std::string& path, E& out,
               const Named<E> (&table)[N]) {
  auto it = obj.find(key);
  if (it == obj.end()) return;
  if (it->is_string())
    for (const auto& n : table)
      if (it->get<std::string>() == n.name) {
        out = n.value;
        return;
      }
  fail(child(path, key), "must be one of " + join(table) + " (got " + show(*it) + ")");
}

std::vector<double> to_numbers(const json& j, const std::string& field) {
  if (!j.is_array()) fail(field, "must be an array of numbers (got " + show(j) + ")");
  std::vector<double> out;
  out.reserve(j.size());
  for (std::size_t i = 0; i < j.size(); ++i) out.push_back(to_number(j[i], index(field, i)));
  return out;
}

constexpr const char* kMixtureKeys[] = {"weights", "means", "sigmas"};

bool has_mixture_key(const json& obj) {
  for (const char* k : kMixtureKeys)
    if (obj.contains(k)) return true;
  return false;
}

MixtureSpec to_mixture(const json& obj, const std::string& path) {
  for (const char* k : kMixtureKeys)
    if (!obj.contains(k))
      fail(child(path, k), "missing: a mixture needs weights, means and sigmas");
  MixtureSpec m;
  m.weights = to_numbers(obj["weights"], path + ".weights");
  m.sigmas = to_numbers(obj["sigmas"], path + ".sigmas");
  const json& means = obj["means"];
  const std::string field = path + ".means";
  if (!means.is_array()) fail(field, "must be an array of mean vectors (got " + show(means) + ")");
  for (std::size_t k = 0; k < means.size(); ++k) m.means.push_back(to_numbers(means[k], index(field, k)));
  return m;
}

void read_target(const json& t, TargetConfig& out) {
  check_keys(t, "target", {"preset", "weights", "means", "sigmas"});
  const bool preset = t.contains("preset"), mixture = has_mixture_key(t);
  if (preset == mixture)
    fail("target", preset ? "give either preset or weights/means/sigmas, not both"
                          : "must have a preset or weights, means and sigmas (got neither)");
  out = TargetConfig{};
  if (preset)
    read_string(t, "preset", "target", out.preset);
  else
    out.mixture = to_mixture(t, "target");
}

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

void read_schedule(const json& s, ScheduleConfig& out) {
  const std::string p = "schedule";
  check_keys(s, p, {"beta_min", "beta_max", "t_min", "t_max", "steps", "scheme"});
  read_real(s, "beta_min", p, out.beta_min);
  read_real(s, "beta_max", p, out.beta_max);
  read_real(s, "t_min", p, out.t_min);
  read_real(s, "t_max", p, out.t_max);
  read_int(s, "steps", p, out.steps, kStepsRange);
  read_enum(s, "scheme", p, out.scheme, kSchemes);
}

void read_run(const json& r, RunSettings& out) {
  const std::string p = "run";
  check_keys(r, p, {"paths", "seed", "backend", "chunk_paths", "threads"});
  read_int(r, "paths", p, out.paths, kPathsRange);
  read_int(r, "seed", p, out.seed, kSeedRange);
  read_enum(r, "backend", p, out.backend, kBackends);
  read_int(r, "chunk_paths", p, out.chunk_paths, kChunkPathsRange);
  read_int(r, "threads", p, out.threads, kThreadsRange);
}

constexpr const char* kRangeRule = "must be [lo, hi] with finite lo < hi, or null for automatic";

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

// ---- JSON writer --------------------------------------------------------------------------------

using ojson = nlohmann::ordered_json;

ojson mixture_json(const MixtureSpec& m) {
  return ojson{{"weights", m.weights}, {"means", m.means}, {"sigmas", m.sigmas}};
}

}  // namespace

// ---- public API ---------------------------------------------------------------------------------

const char* to_string(Scheme s) { return name_or_invalid(kSchemes, s); }

const char* to_string(Divergence d) { return name_or_invalid(kDivergences, d); }

const char* to_string(ProbeDistribution p) { return name_or_invalid(kProbeDistributions, p); }

const char* to_string(MathMode m) { return name_or_invalid(kMathModes, m); }

const char* to_string(Backend b) { return name_or_invalid(kBackends, b); }

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
  check_collapse(c, K);
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

void validate(Config& c) {
  // target
  TargetConfig& t = c.target;
  if (!t.preset.empty()) {
    const Preset* p = find_preset(t.preset);
    if (!p) fail("target.preset", "must be one of " + join(kPresets) + " (got " + show(t.preset) + ")");
    MixtureSpec preset = p->make();
    if (empty_mixture(t.mixture))
      t.mixture = std::move(preset);
    else if (!same_mixture(t.mixture, preset))
      fail("target", "give either preset or weights/means/sigmas, not both");
  }
  check_mixture(t.mixture, "target");

  // model
  const ModelConfig& m = c.model;
  if (!is_one_of(kModelTypes, m.type))
    fail("model.type", "must be one of " + join(kModelTypes) + " (got " + show(m.type) + ")");
  if (m.type == "mlp") {
    validate_mlp_model(m, t.mixture.dim(), c.schedule.scheme);
  } else if (m.mixture.has_value() == m.collapse.has_value()) {
    fail("model", std::string("must have exactly one of mixture or collapse (got ") +
                      (m.mixture ? "both" : "neither") + ")");
  } else if (!m.weights.empty()) {
    fail("model.weights", "is for model.type \"mlp\" only (got type " + show(m.type) + ")");
  } else if (m.mixture) {
    check_mixture(*m.mixture, "model.mixture");
    if (m.mixture->dim() != t.mixture.dim())
      fail("model.mixture.means", "must have the target's dimension " +
                                      std::to_string(t.mixture.dim()) + " (got " +
                                      std::to_string(m.mixture->dim()) + ")");
  } else {
    check_collapse(*m.collapse, t.mixture.components());
  }

  // schedule
  const ScheduleConfig& s = c.schedule;
  check_lower("schedule.beta_min", s.beta_min, 0.0, true);
  check_lower("schedule.beta_max", s.beta_max, s.beta_min, false, "schedule.beta_min");
  check_lower("schedule.t_min", s.t_min, 0.0, true);
  check_lower("schedule.t_max", s.t_max, s.t_min, true, "schedule.t_min");
  check_int("schedule.steps", s.steps, kStepsRange);
  if (!name_of(kSchemes, s.scheme))
    fail("schedule.scheme", "must be one of " + join(kSchemes) + " (got an invalid enum value)");

  // run
  const RunSettings& r = c.run;
  check_int("run.paths", r.paths, kPathsRange);
  check_int("run.seed", r.seed, kSeedRange);
  if (!name_of(kBackends, r.backend))
    fail("run.backend", "must be one of " + join(kBackends) + " (got an invalid enum value)");
  check_int("run.chunk_paths", r.chunk_paths, kChunkPathsRange);
  check_int("run.threads", r.threads, kThreadsRange);

  // histogram
  const HistogramConfig& h = c.histogram;
  check_int("histogram.bins", h.bins, kBinsRange);
  if (h.lo.has_value() != h.hi.has_value() ||
      (h.lo && !(std::isfinite(*h.lo) && std::isfinite(*h.hi) && *h.lo < *h.hi))) {
    auto side = [](const std::optional<double>& x) { return x ? show(*x) : std::string("none"); };
    fail("histogram.range", std::string(kRangeRule) + " (got [" + side(h.lo) + ", " + side(h.hi) + "])");
  }
}

Config parse_config(const std::string& json_text) {
  json root;
  try {
    root = json::parse(json_text);
  } catch (const json::exception& e) {
    // parse_error: "[json.exception.parse_error.101] parse error at line L, column C: ...";
    // out_of_range (1e400): "[json.exception.out_of_range.406] number overflow parsing '1e400'"
    std::string what = e.what();
    auto pos = what.find("] ");
    fail("config", "malformed JSON: " + (pos == std::string::npos ? what : what.substr(pos + 2)));
  }
  if (!root.is_object()) fail("config", "must be a JSON object (got " + show(root) + ")");
  check_keys(root, "", {"target", "model", "schedule", "run", "histogram"});

  Config c = default_config();
  if (const json* t = section(root, "target", "")) read_target(*t, c.target);
  if (const json* m = section(root, "model", "")) read_model(*m, c.model);
  if (const json* s = section(root, "schedule", "")) read_schedule(*s, c.schedule);
  if (const json* r = section(root, "run", "")) read_run(*r, c.run);
  if (const json* h = section(root, "histogram", "")) read_histogram(*h, c.histogram);
  validate(c);
  return c;
}

std::string config_to_json(const Config& c, int indent) {
  ojson target = c.target.preset.empty() ? mixture_json(c.target.mixture)
                                         : ojson{{"preset", c.target.preset}};
  ojson model{{"type", c.model.type}};
  if (c.model.type == "mlp") {
    model["weights"] = c.model.weights;
    model["divergence"] = to_string(c.model.divergence);
    model["probes"] = c.model.probes;
    model["probe_distribution"] = to_string(c.model.probe_distribution);
    model["math"] = to_string(c.model.math);
  }
  if (c.model.mixture) model["mixture"] = mixture_json(*c.model.mixture);
  if (c.model.collapse)
    model["collapse"] = ojson{{"modes", c.model.collapse->modes}, {"eps", c.model.collapse->eps}};
  const ScheduleConfig& s = c.schedule;
  const RunSettings& r = c.run;
  const HistogramConfig& h = c.histogram;
  ojson range = (h.lo && h.hi) ? ojson::array({*h.lo, *h.hi}) : ojson(nullptr);

  ojson out{
      {"target", target},
      {"model", model},
      {"schedule",
       {{"beta_min", s.beta_min},
        {"beta_max", s.beta_max},
        {"t_min", s.t_min},
        {"t_max", s.t_max},
        {"steps", s.steps},
        {"scheme", to_string(s.scheme)}}},
      {"run",
       {{"paths", r.paths},
        {"seed", r.seed},
        {"backend", to_string(r.backend)},
        {"chunk_paths", r.chunk_paths},
        {"threads", r.threads}}},
      {"histogram", {{"bins", h.bins}, {"range", range}}},
  };
  return out.dump(indent, ' ', false, ojson::error_handler_t::replace);
}

}  // namespace taep

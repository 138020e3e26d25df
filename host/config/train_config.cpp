// TrainConfig: the JSON reader, validate() and the canonical JSON form (train.hpp; README.md,
// "taep train"), and the reader of a CSV file of samples.
//
// As for the run config (host/config/config.cpp): parse_train_config checks JSON shape (keys, types,
// integers that fit their field) and copies values; validate() checks every value range, so a
// config built in code or changed by CLI flags gets the same checks. Every error is a ConfigError
// naming the field by its dotted JSON path.
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <initializer_list>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "taep/error.hpp"
#include "taep/physics/mixture.hpp"
#include "taep/physics/rng_streams.hpp"
#include "taep/train.hpp"

namespace taep {
namespace {

using nlohmann::json;
using ojson = nlohmann::ordered_json;

// ---- limits ---------------------------------------------------------------------------------------

struct IntRange {
  std::uint64_t lo, hi;
};
constexpr std::uint64_t kU64Max = std::numeric_limits<std::uint64_t>::max();

constexpr IntRange kTrainStepsRange{1, 1'000'000'000};
constexpr IntRange kBatchRange{1, 1 << 20};
constexpr IntRange kSeedRange{0, kU64Max};
constexpr IntRange kThreadsRange{0, 65536};
constexpr IntRange kLogEveryRange{1, kU64Max};
constexpr IntRange kWidthRange{1, 8192};
constexpr IntRange kEmbeddingRange{2, 1024};
constexpr std::size_t kMaxHiddenLayers = 16;
constexpr std::uint64_t kMaxSamples = std::uint64_t(1) << 31;
constexpr std::uint64_t kMaxParameters = std::uint64_t(1) << 27;

constexpr const char* kBackendNames[] = {"auto", "cpu", "cuda"};
constexpr Backend kBackendValues[] = {Backend::automatic, Backend::cpu, Backend::cuda};
constexpr const char* kParameterizationNames[] = {"score", "eps"};

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
  auto r = std::to_chars(buf, buf + sizeof buf, x);
  return std::string(buf, r.ptr);
}
std::string index(const std::string& field, std::size_t i) {
  return field + "[" + std::to_string(i) + "]";
}
template <std::size_t N>
std::string join(const char* const (&names)[N]) {
  std::string out;
  for (const char* n : names) out += (out.empty() ? "\"" : ", \"") + std::string(n) + '"';
  return out;
}
std::string join(std::initializer_list<const char*> names) {
  std::string out;
  for (const char* n : names) out += (out.empty() ? "\"" : ", \"") + std::string(n) + '"';
  return out;
}
std::string describe(IntRange r) {
  if (r.hi == kU64Max) return "an integer >= " + std::to_string(r.lo);
  return "an integer in [" + std::to_string(r.lo) + ", " + std::to_string(r.hi) + "]";
}

// ---- value checks ---------------------------------------------------------------------------------

template <class T>
void check_int(const std::string& field, T v, IntRange r) {
  bool ok;
  if constexpr (std::is_signed_v<T>)
    ok = v >= 0 && std::uint64_t(v) >= r.lo && std::uint64_t(v) <= r.hi;
  else
    ok = std::uint64_t(v) >= r.lo && std::uint64_t(v) <= r.hi;
  if (!ok) fail(field, "must be " + describe(r) + " (got " + std::to_string(v) + ")");
}

// lo < x (or lo <= x) and x < hi (or x <= hi), finite.
void check_interval(const std::string& field, double x, double lo, bool lo_open, double hi,
                    bool hi_open) {
  const bool ok = std::isfinite(x) && (lo_open ? x > lo : x >= lo) && (hi_open ? x < hi : x <= hi);
  if (ok) return;
  const std::string range = std::string(lo_open ? "(" : "[") + show(lo) + ", " +
                            (std::isinf(hi) ? "inf" : show(hi)) + (hi_open ? ")" : "]");
  fail(field, "must be a finite number in " + range + " (got " + show(x) + ")");
}
constexpr double kInf = std::numeric_limits<double>::infinity();

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
    if (k == 0 && (d < 1 || d > std::size_t(physics::kMaxDim)))
      fail(mk, "must have dimension d in [1, " + std::to_string(physics::kMaxDim) + "] (got " +
                   std::to_string(d) + ")");
    if (m.means[k].size() != d)
      fail(mk, "must have dimension " + std::to_string(d) + " like " + path + ".means[0] (got " +
                   std::to_string(m.means[k].size()) + ")");
    for (std::size_t i = 0; i < d; ++i)
      if (!std::isfinite(m.means[k][i]))
        fail(index(mk, i), "must be a finite number (got " + show(m.means[k][i]) + ")");
  }
  double sum = 0;
  for (std::size_t k = 0; k < K; ++k) {
    check_interval(index(path + ".weights", k), m.weights[k], 0.0, false, kInf, true);
    check_interval(index(path + ".sigmas", k), m.sigmas[k], 0.0, true, kInf, true);
    sum += m.weights[k];
  }
  if (!(sum > 0) || !std::isfinite(sum))
    fail(path + ".weights", "must sum to a finite positive value (got " + show(sum) + ")");
}

// ---- the samples file -----------------------------------------------------------------------------

// Splits a line at commas and whitespace into numbers; false if a token is not a number.
bool parse_row(const std::string& line, std::vector<double>& row) {
  row.clear();
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ',' || std::isspace(static_cast<unsigned char>(line[i]))))
      ++i;
    if (i >= line.size()) break;
    std::size_t j = i;
    while (j < line.size() && line[j] != ',' && !std::isspace(static_cast<unsigned char>(line[j])))
      ++j;
    const std::string token = line.substr(i, j - i);
    char* end = nullptr;
    const double v = std::strtod(token.c_str(), &end);
    if (end != token.c_str() + token.size()) return false;
    row.push_back(v);
    i = j;
  }
  return true;
}

std::vector<std::vector<double>> read_samples(const std::string& path) {
  const std::string field = "data.samples";
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(field, "cannot read the samples file \"" + path + "\"");
  std::vector<std::vector<double>> rows;
  std::string line;
  std::vector<double> row;
  std::uint64_t line_no = 0;
  bool seen_data_line = false;
  while (std::getline(in, line)) {
    ++line_no;
    const auto hash = line.find('#');
    if (hash != std::string::npos) line.resize(hash);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t,") == std::string::npos) continue;
    const std::string where = "\"" + path + "\" line " + std::to_string(line_no);
    if (!parse_row(line, row)) {
      if (!seen_data_line) {  // a header line (column names)
        seen_data_line = true;
        continue;
      }
      fail(field, where + ": expected numbers separated by commas or spaces");
    }
    seen_data_line = true;
    if (row.size() < 1 || row.size() > std::size_t(physics::kMaxDim))
      fail(field, where + ": a sample must have d in [1, " + std::to_string(physics::kMaxDim) +
                      "] values (got " + std::to_string(row.size()) + ")");
    if (!rows.empty() && row.size() != rows.front().size())
      fail(field, where + ": has " + std::to_string(row.size()) + " values, the first sample " +
                      std::to_string(rows.front().size()));
    for (double v : row)
      if (!std::isfinite(v) || std::fabs(v) > 1e30)
        fail(field, where + ": values must be finite floats (got " + show(v) + ")");
    if (rows.size() >= kMaxSamples)
      fail(field, "at most " + std::to_string(kMaxSamples) + " samples");
    rows.push_back(row);
  }
  if (rows.empty()) fail(field, "the samples file \"" + path + "\" holds no samples");
  return rows;
}

// ---- JSON reader ----------------------------------------------------------------------------------

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
  if (j.is_number_float()) {
    double x = j.get<double>();
    if (x >= 0 && x < 18446744073709551616.0 && std::floor(x) == x) return std::uint64_t(x);
  }
  return std::nullopt;
}

template <class T>
void read_int_value(const json& j, const std::string& field, T& out, IntRange r) {
  auto v = as_uint64(j);
  if (!v || *v < r.lo || *v > r.hi) fail(field, "must be " + describe(r) + " (got " + show(j) + ")");
  out = static_cast<T>(*v);
}
template <class T>
void read_int(const json& obj, const char* key, const std::string& path, T& out, IntRange r) {
  auto it = obj.find(key);
  if (it != obj.end()) read_int_value(*it, child(path, key), out, r);
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
std::vector<double> to_numbers(const json& j, const std::string& field) {
  if (!j.is_array()) fail(field, "must be an array of numbers (got " + show(j) + ")");
  std::vector<double> out;
  for (std::size_t i = 0; i < j.size(); ++i) out.push_back(to_number(j[i], index(field, i)));
  return out;
}

void read_target(const json& t, TargetConfig& out) {
  const std::string p = "data.target";
  check_keys(t, p, {"preset", "weights", "means", "sigmas"});
  const bool preset = t.contains("preset");
  const bool mixture = t.contains("weights") || t.contains("means") || t.contains("sigmas");
  if (preset == mixture)
    fail(p, preset ? "give either preset or weights/means/sigmas, not both"
                   : "must have a preset or weights, means and sigmas (got neither)");
  out = TargetConfig{};
  if (preset) {
    read_string(t, "preset", p, out.preset);
    return;
  }
  for (const char* k : {"weights", "means", "sigmas"})
    if (!t.contains(k)) fail(child(p, k), "missing: a mixture needs weights, means and sigmas");
  out.mixture.weights = to_numbers(t["weights"], p + ".weights");
  out.mixture.sigmas = to_numbers(t["sigmas"], p + ".sigmas");
  const json& means = t["means"];
  if (!means.is_array()) fail(p + ".means", "must be an array of mean vectors (got " + show(means) + ")");
  for (std::size_t k = 0; k < means.size(); ++k)
    out.mixture.means.push_back(to_numbers(means[k], index(p + ".means", k)));
}

void read_data(const json& j, TrainDataConfig& out) {
  const std::string p = "data";
  check_keys(j, p, {"target", "collapse", "samples"});
  const bool samples = j.contains("samples");
  if (samples && (j.contains("target") || (j.contains("collapse") && !j["collapse"].is_null())))
    fail(p, "give either target (with an optional collapse) or samples, not both");
  if (samples) {
    read_string(j, "samples", p, out.samples);
    return;
  }
  if (const json* t = section(j, "target", p)) read_target(*t, out.target);
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
  auto it = j.find("parameterization");
  if (it != j.end()) {
    if (it->is_string() && it->get<std::string>() == "score")
      out.parameterization = Parameterization::score;
    else if (it->is_string() && it->get<std::string>() == "eps")
      out.parameterization = Parameterization::eps;
    else
      fail("network.parameterization",
           "must be one of " + join(kParameterizationNames) + " (got " + show(*it) + ")");
  }
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

void read_schedule(const json& j, TrainConfig& out) {
  const std::string p = "schedule";
  check_keys(j, p, {"beta_min", "beta_max", "t_min"});
  read_real(j, "beta_min", p, out.beta_min);
  read_real(j, "beta_max", p, out.beta_max);
  read_real(j, "t_min", p, out.t_min);
}

void read_run(const json& j, TrainConfig& out) {
  const std::string p = "run";
  check_keys(j, p, {"seed", "backend", "threads", "log_every"});
  read_int(j, "seed", p, out.seed, kSeedRange);
  auto it = j.find("backend");
  if (it != j.end()) {
    bool found = false;
    for (std::size_t i = 0; i < 3 && it->is_string(); ++i)
      if (it->get<std::string>() == kBackendNames[i]) {
        out.backend = kBackendValues[i];
        found = true;
      }
    if (!found) fail("run.backend", "must be one of " + join(kBackendNames) + " (got " + show(*it) + ")");
  }
  read_int(j, "threads", p, out.threads, kThreadsRange);
  read_int(j, "log_every", p, out.log_every, kLogEveryRange);
}

ojson mixture_json(const MixtureSpec& m) {
  return ojson{{"weights", m.weights}, {"means", m.means}, {"sigmas", m.sigmas}};
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

void validate(TrainConfig& c) {
  // data
  TrainDataConfig& data = c.data;
  int d = 0;
  if (!data.samples.empty()) {
    if (data.collapse)
      fail("data.collapse", "applies to a mixture target, not to a samples file");
    data.loaded = read_samples(data.samples);
    d = int(data.loaded.front().size());
  } else {
    data.loaded.clear();
    TargetConfig& t = data.target;
    if (!t.preset.empty()) {
      if (t.preset != "ring8")
        fail("data.target.preset", "must be one of \"ring8\" (got \"" + t.preset + "\")");
      const bool empty = t.mixture.weights.empty() && t.mixture.means.empty() && t.mixture.sigmas.empty();
      const MixtureSpec preset = ring8();
      if (empty)
        t.mixture = preset;
      else if (t.mixture.weights != preset.weights || t.mixture.means != preset.means ||
               t.mixture.sigmas != preset.sigmas)
        fail("data.target", "give either preset or weights/means/sigmas, not both");
    }
    check_mixture(t.mixture, "data.target");
    if (data.collapse) {
      const int K = t.mixture.components();
      const CollapseSpec& cs = *data.collapse;
      if (cs.modes < 1 || cs.modes >= K)
        fail("data.collapse.modes", "must be an integer in [1, K-1] where K = " + std::to_string(K) +
                                        " is the target's component count (got " +
                                        std::to_string(cs.modes) + ")");
      if (!(std::isfinite(cs.eps) && cs.eps > 0 && cs.modes * cs.eps < 1))
        fail("data.collapse.eps", "must be a finite number in (0, 1/modes) = (0, " +
                                      show(1.0 / cs.modes) + ") (got " + show(cs.eps) + ")");
    }
    d = t.mixture.dim();
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
  if (n.parameterization != Parameterization::score && n.parameterization != Parameterization::eps)
    fail("network.parameterization", "must be one of \"score\", \"eps\" (got an invalid enum value)");
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
  check_interval("schedule.beta_min", c.beta_min, 0.0, true, kInf, true);
  if (!(std::isfinite(c.beta_max) && c.beta_max >= c.beta_min))
    fail("schedule.beta_max", "must be a finite number >= schedule.beta_min = " + show(c.beta_min) +
                                  " (got " + show(c.beta_max) + ")");
  check_interval("schedule.t_min", c.t_min, 0.0, true, 1.0, true);

  // run
  if (c.backend != Backend::automatic && c.backend != Backend::cpu && c.backend != Backend::cuda)
    fail("run.backend", "must be one of " + join(kBackendNames) + " (got an invalid enum value)");
  check_int("run.threads", c.threads, kThreadsRange);
  check_int("run.log_every", c.log_every, kLogEveryRange);
}

TrainConfig parse_train_config(const std::string& json_text) {
  json root;
  try {
    root = json::parse(json_text);
  } catch (const json::exception& e) {
    std::string what = e.what();
    auto pos = what.find("] ");
    fail("config", "malformed JSON: " + (pos == std::string::npos ? what : what.substr(pos + 2)));
  }
  if (!root.is_object()) fail("config", "must be a JSON object (got " + show(root) + ")");
  check_keys(root, "", {"data", "network", "optimizer", "schedule", "run"});
  TrainConfig c = default_train_config();
  if (const json* j = section(root, "data", "")) {
    // A config's data replaces the default's (its target unless samples are given).
    c.data = TrainDataConfig{};
    c.data.target.preset = "ring8";
    read_data(*j, c.data);
  }
  if (const json* j = section(root, "network", "")) read_network(*j, c.network);
  if (const json* j = section(root, "optimizer", "")) read_optimizer(*j, c.optimizer);
  if (const json* j = section(root, "schedule", "")) read_schedule(*j, c);
  if (const json* j = section(root, "run", "")) read_run(*j, c);
  validate(c);
  return c;
}

std::string train_config_to_json(const TrainConfig& c, int indent) {
  ojson data = ojson::object();
  if (!c.data.samples.empty()) {
    data["samples"] = c.data.samples;
  } else {
    data["target"] = c.data.target.preset.empty() ? mixture_json(c.data.target.mixture)
                                                  : ojson{{"preset", c.data.target.preset}};
    data["collapse"] = c.data.collapse ? ojson{{"modes", c.data.collapse->modes},
                                               {"eps", c.data.collapse->eps}}
                                       : ojson(nullptr);
  }
  const NetworkConfig& n = c.network;
  const OptimizerConfig& o = c.optimizer;
  const char* backend = "auto";
  for (std::size_t i = 0; i < 3; ++i)
    if (c.backend == kBackendValues[i]) backend = kBackendNames[i];
  ojson out{
      {"data", data},
      {"network",
       {{"hidden", n.hidden},
        {"embedding_dim", n.embedding_dim},
        {"time_scale", n.time_scale},
        {"max_period", n.max_period},
        {"parameterization", to_string(n.parameterization)}}},
      {"optimizer",
       {{"steps", o.steps},
        {"batch", o.batch},
        {"lr", o.lr},
        {"beta1", o.beta1},
        {"beta2", o.beta2},
        {"eps", o.adam_eps},
        {"clip_norm", o.clip_norm},
        {"ema_decay", o.ema_decay}}},
      {"schedule", {{"beta_min", c.beta_min}, {"beta_max", c.beta_max}, {"t_min", c.t_min}}},
      {"run",
       {{"seed", c.seed}, {"backend", backend}, {"threads", c.threads}, {"log_every", c.log_every}}},
  };
  return out.dump(indent, ' ', false, ojson::error_handler_t::replace);
}

}  // namespace taep

// The JSON field toolkit (json_fields.hpp).
#include "host/io/json_fields.hpp"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <set>
#include <vector>

#include "taep/physics/mixture.hpp"

namespace taep {
namespace fields {
namespace {

struct Preset {
  const char* name;
  MixtureSpec (*make)();
};
const Preset kPresets[] = {{"ring8", ring8}};

const Preset* find_preset(const std::string& name) {
  for (const auto& p : kPresets)
    if (name == p.name) return &p;
  return nullptr;
}

bool same_mixture(const MixtureSpec& a, const MixtureSpec& b) {
  return a.weights == b.weights && a.means == b.means && a.sigmas == b.sigmas;
}
bool empty_mixture(const MixtureSpec& m) {
  return m.weights.empty() && m.means.empty() && m.sigmas.empty();
}

constexpr const char* kMixtureKeys[] = {"weights", "means", "sigmas"};

}  // namespace

const Named<Scheme> kSchemes[2] = {{"euler", Scheme::euler}, {"milstein", Scheme::milstein}};
const Named<physics::ScheduleType> kScheduleTypes[2] = {{"vp", physics::ScheduleType::vp},
                                                        {"ve", physics::ScheduleType::ve}};
const Named<Backend> kBackends[3] = {
    {"auto", Backend::automatic}, {"cpu", Backend::cpu}, {"cuda", Backend::cuda}};

// ---- messages -----------------------------------------------------------------------------------

void fail(const std::string& field, const std::string& message) { throw ConfigError(field, message); }

std::string shorten(std::string s, std::size_t max) {
  if (s.size() <= max) return s;
  // Cut before a character, never inside one, so that valid UTF-8 stays valid.
  std::size_t cut = max - 3;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
  return s.substr(0, cut) + "...";
}

namespace {

// Length of the valid UTF-8 sequence at s[i], 0 when the bytes there are not one.
std::size_t utf8_length(const std::string& s, std::size_t i) {
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned c = b(i);
  std::size_t n;
  unsigned lo = 0x80, hi = 0xBF;  // the second byte's range (overlongs and surrogates excluded)
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) n = 2;
  else if (c >= 0xE0 && c <= 0xEF) { n = 3; if (c == 0xE0) lo = 0xA0; if (c == 0xED) hi = 0x9F; }
  else if (c >= 0xF0 && c <= 0xF4) { n = 4; if (c == 0xF0) lo = 0x90; if (c == 0xF4) hi = 0x8F; }
  else return 0;
  if (i + n > s.size()) return 0;
  if (b(i + 1) < lo || b(i + 1) > hi) return 0;
  for (std::size_t k = 2; k < n; ++k)
    if (b(i + k) < 0x80 || b(i + k) > 0xBF) return 0;
  return n;
}

std::string hex_byte(unsigned char c) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "\\x%02X", c);
  return buf;
}

// A JSON string literal of s: control characters escaped as JSON does, bytes that are not UTF-8 as
// \xNN (so an error line never carries invalid UTF-8), cut after about `max` characters.
void quote_into(std::string& out, const std::string& s, std::size_t max) {
  out += '"';
  for (std::size_t i = 0; i < s.size();) {
    if (out.size() >= max) {
      out += "...";
      break;
    }
    const unsigned char c = static_cast<unsigned char>(s[i]);
    const std::size_t n = utf8_length(s, i);
    if (n == 0) {
      out += hex_byte(c);
      ++i;
      continue;
    }
    if (c == '"' || c == '\\') {
      out += '\\';
      out += char(c);
    } else if (c < 0x20) {  // as nlohmann's dump writes them
      const char* shortform = c == '\b' ? "\\b" : c == '\f' ? "\\f" : c == '\n' ? "\\n"
                            : c == '\r' ? "\\r" : c == '\t' ? "\\t" : nullptr;
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += shortform ? shortform : buf;
    } else {
      out.append(s, i, n);
    }
    i += n;
  }
  out += '"';
}

// A bounded dump: stops once `out` reaches `max` characters, so neither its length nor its depth of
// recursion depends on the size or nesting of the value (each level writes at least one character).
void dump_into(std::string& out, const json& j, std::size_t max) {
  if (out.size() >= max) return;
  if (j.is_string()) return quote_into(out, j.get_ref<const std::string&>(), max);
  if (j.is_structured()) {
    const bool object = j.is_object();
    out += object ? '{' : '[';
    for (auto it = j.begin(); it != j.end() && out.size() < max; ++it) {
      if (it != j.begin()) out += ',';
      if (object) {
        quote_into(out, it.key(), max);
        out += ':';
      }
      dump_into(out, it.value(), max);
    }
    out += object ? '}' : ']';
    return;
  }
  out += j.dump();  // a number, a boolean or null: short
}

}  // namespace

std::string escape_bytes(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size();) {
    const std::size_t n = utf8_length(s, i);
    if (n == 0) {
      out += hex_byte(static_cast<unsigned char>(s[i]));
      ++i;
    } else {
      out.append(s, i, n);
      i += n;
    }
  }
  return out;
}

std::string show(const json& j, std::size_t max) {
  std::string out;
  dump_into(out, j, max);
  return shorten(std::move(out), max);
}
std::string show(double x) {
  if (std::isnan(x)) return "nan";
  if (std::isinf(x)) return x > 0 ? "inf" : "-inf";
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof buf, x);
  return std::string(buf, r.ptr);
}
std::string show(const std::string& s) { return show(json(s)); }

std::string index(const std::string& field, std::size_t i) {
  return field + "[" + std::to_string(i) + "]";
}
std::string child(const std::string& path, const char* key) {
  // Keys come from the input: escaped and bounded like any value shown in a message (control
  // characters too, so that a key cannot break the message's line or reach the terminal raw).
  std::string text;
  for (const char* p = key; *p; ++p)
    text += static_cast<unsigned char>(*p) < 0x20 ? hex_byte(static_cast<unsigned char>(*p)) : std::string(1, *p);
  const std::string k = shorten(escape_bytes(text), 80);
  return path.empty() ? k : path + "." + k;
}

std::string describe(IntRange r) {
  if (r.hi == kU64Max) return "an integer >= " + std::to_string(r.lo);
  return "an integer in [" + std::to_string(r.lo) + ", " + std::to_string(r.hi) + "]";
}

// ---- value checks -------------------------------------------------------------------------------

void check_finite(const std::string& field, double x) {
  if (!std::isfinite(x)) fail(field, "must be a finite number (got " + show(x) + ")");
}

void check_lower(const std::string& field, double x, double bound, bool strict,
                 const std::string& bound_name) {
  if (std::isfinite(x) && (strict ? x > bound : x >= bound)) return;
  std::string b = bound_name.empty() ? show(bound) : bound_name + " = " + show(bound);
  fail(field, std::string("must be a finite number ") + (strict ? "> " : ">= ") + b + " (got " +
                  show(x) + ")");
}

void check_interval(const std::string& field, double x, double lo, bool lo_open, double hi,
                    bool hi_open) {
  const bool ok = std::isfinite(x) && (lo_open ? x > lo : x >= lo) && (hi_open ? x < hi : x <= hi);
  if (ok) return;
  const std::string range = std::string(lo_open ? "(" : "[") + show(lo) + ", " +
                            (std::isinf(hi) ? "inf" : show(hi)) + (hi_open ? ")" : "]");
  fail(field, "must be a finite number in " + range + " (got " + show(x) + ")");
}

// ---- JSON shape ---------------------------------------------------------------------------------

// nlohmann keeps the last of duplicate keys silently, but its parser callback sees every key, so
// this tracks the keys of each open container (as safetensors.cpp does for weight headers). The
// depth limit keeps a hostile file from building a tree whose use (dump, destruction) recurses
// without bound. Errors thrown from the callback propagate out of the parser.
json parse_object(const std::string& text) {
  struct Open {
    std::string path;  // the dotted path of this container; empty for the root
    bool object;
    std::set<std::string> keys;
    std::size_t next = 0;  // the index of an array's next element
  };
  std::vector<Open> open;
  std::string last_key;
  const auto slot = [&]() -> std::string {  // the path of the value being read now
    if (open.empty()) return "";
    const Open& o = open.back();
    return o.object ? child(o.path, last_key.c_str()) : index(o.path, o.next);
  };
  const auto done = [&] {  // a value of the innermost container is complete
    if (!open.empty() && !open.back().object) ++open.back().next;
  };
  auto callback = [&](int, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
      case json::parse_event_t::array_start:
        if (open.size() >= std::size_t(kMaxConfigNesting))
          fail("config", "must nest at most " + std::to_string(kMaxConfigNesting) +
                             " levels of objects and arrays (at " + (slot().empty() ? "the top" : slot()) +
                             ")");
        open.push_back({slot(), event == json::parse_event_t::object_start, {}, 0});
        break;
      case json::parse_event_t::key:
        last_key = parsed.get<std::string>();
        if (!open.back().keys.insert(last_key).second)
          fail(slot(), "duplicate key: it appears more than once in " +
                           (open.back().path.empty() ? std::string("the config") : open.back().path));
        break;
      case json::parse_event_t::object_end:
      case json::parse_event_t::array_end:
        open.pop_back();
        done();
        break;
      case json::parse_event_t::value:
        done();
        break;
    }
    return true;
  };
  json root;
  try {
    root = json::parse(text, callback);
  } catch (const json::exception& e) {
    // parse_error: "[json.exception.parse_error.101] parse error at line L, column C: ...";
    // out_of_range (1e400): "[json.exception.out_of_range.406] number overflow parsing '1e400'"
    std::string what = e.what();
    auto pos = what.find("] ");
    if (pos != std::string::npos) what.erase(0, pos + 2);
    fail("config", "malformed JSON: " + shorten(escape_bytes(what), 200));
  }
  if (!root.is_object()) fail("config", "must be a JSON object (got " + show(root) + ")");
  return root;
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

std::optional<std::uint64_t> as_uint64(const json& j, bool integral_floats) {
  if (j.is_number_unsigned()) return j.get<std::uint64_t>();
  if (j.is_number_integer()) {
    auto v = j.get<std::int64_t>();
    if (v >= 0) return std::uint64_t(v);
  }
  if (integral_floats && j.is_number_float()) {  // 1e6 is an integer too
    double x = j.get<double>();
    if (x >= 0 && x < 18446744073709551616.0 && std::floor(x) == x) return std::uint64_t(x);
  }
  return std::nullopt;
}

double to_number(const json& j, const std::string& field) {
  if (!j.is_number()) fail(field, "must be a number (got " + show(j) + ")");
  return j.get<double>();
}

std::vector<double> to_numbers(const json& j, const std::string& field) {
  if (!j.is_array()) fail(field, "must be an array of numbers (got " + show(j) + ")");
  std::vector<double> out;
  out.reserve(j.size());
  for (std::size_t i = 0; i < j.size(); ++i) out.push_back(to_number(j[i], index(field, i)));
  return out;
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

void read_bool(const json& obj, const char* key, const std::string& path, bool& out) {
  auto it = obj.find(key);
  if (it == obj.end()) return;
  if (!it->is_boolean()) fail(child(path, key), "must be true or false (got " + show(*it) + ")");
  out = it->get<bool>();
}

// ---- mixtures, targets, collapse ----------------------------------------------------------------

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

void read_target(const json& t, const std::string& path, TargetConfig& out) {
  check_keys(t, path, {"preset", "weights", "means", "sigmas"});
  bool mixture = false;
  for (const char* k : kMixtureKeys) mixture = mixture || t.contains(k);
  const bool preset = t.contains("preset");
  if (preset == mixture)
    fail(path, preset ? "give either preset or weights/means/sigmas, not both"
                      : "must have a preset or weights, means and sigmas (got neither)");
  out = TargetConfig{};
  if (preset) {
    read_string(t, "preset", path, out.preset);
    resolve_preset(out);  // an unknown name stays unresolved for validate() to report
  } else {
    out.mixture = to_mixture(t, path);
  }
}

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

MixtureSpec target_mixture(const TargetConfig& t, const std::string& path) {
  MixtureSpec m = t.mixture;
  if (!t.preset.empty()) {
    const Preset* p = find_preset(t.preset);
    if (!p)
      fail(path + ".preset", "must be one of " + join(kPresets) + " (got " + show(t.preset) + ")");
    MixtureSpec preset = p->make();
    if (empty_mixture(m))
      m = std::move(preset);
    else if (!same_mixture(m, preset))
      fail(path, "give either preset or weights/means/sigmas, not both");
  }
  check_mixture(m, path);
  return m;
}

void resolve_preset(TargetConfig& t) {
  if (t.preset.empty() || !empty_mixture(t.mixture)) return;
  if (const Preset* p = find_preset(t.preset)) t.mixture = p->make();
}

void check_collapse(const CollapseSpec& c, int K, const std::string& path) {
  if (c.modes < 1 || c.modes >= K)
    fail(path + ".modes", "must be an integer in [1, K-1] where K = " + std::to_string(K) +
                              " is the target's component count (got " + std::to_string(c.modes) +
                              ")");
  if (!(std::isfinite(c.eps) && c.eps > 0 && c.modes * c.eps < 1))
    fail(path + ".eps", "must be a finite number in (0, 1/modes) = (0, " + show(1.0 / c.modes) +
                            ") (got " + show(c.eps) + ")");
}

nlohmann::ordered_json mixture_json(const MixtureSpec& m) {
  return nlohmann::ordered_json{{"weights", m.weights}, {"means", m.means}, {"sigmas", m.sigmas}};
}

nlohmann::ordered_json target_json(const TargetConfig& t) {
  return t.preset.empty() ? mixture_json(t.mixture) : nlohmann::ordered_json{{"preset", t.preset}};
}

// ---- shared sections ----------------------------------------------------------------------------

void read_sde(const json& s, const std::string& path, physics::Schedule& out) {
  read_enum(s, "type", path, out.type, kScheduleTypes);
  const char* own[2][2] = {{"beta_min", "beta_max"}, {"sigma_min", "sigma_max"}};
  const bool ve = out.ve();
  for (int type = 0; type < 2; ++type)
    for (const char* key : own[type])
      if (type != int(ve) && s.contains(key))
        fail(child(path, key), std::string("is for ") + path + ".type \"" + (ve ? "vp" : "ve") +
                                   "\" only (got type \"" + (ve ? "ve" : "vp") + "\")");
  if (s.contains("sigma") && !ve)
    fail(child(path, "sigma"), "is for " + path + ".type \"ve\" only (got type \"vp\")");
  read_real(s, "beta_min", path, out.beta_min);
  read_real(s, "beta_max", path, out.beta_max);
  read_real(s, "sigma_min", path, out.sigma_min);
  read_real(s, "sigma_max", path, out.sigma_max);
  if (s.contains("sigma")) {
    if (s.contains("sigma_min") || s.contains("sigma_max"))
      fail(child(path, "sigma"),
           "is a shorthand for sigma_min and sigma_max (g(t) = sigma^t); give it or them, not both");
    double sigma = 0;
    read_real(s, "sigma", path, sigma);
    if (!(std::isfinite(sigma) && sigma > 1 && sigma <= 1e12))
      fail(child(path, "sigma"), "must be a finite number in (1, 1e12] (got " + show(sigma) + ")");
    out = physics::Schedule::ve_tutorial(sigma);
  }
}

void check_sde(const physics::Schedule& s, const std::string& path) {
  if (!name_of(kScheduleTypes, s.type))
    fail(child(path, "type"), "must be one of " + join(kScheduleTypes) + " (got an invalid enum value)");
  if (s.ve()) {
    check_lower(child(path, "sigma_min"), s.sigma_min, 0.0, true);
    check_lower(child(path, "sigma_max"), s.sigma_max, s.sigma_min, true, child(path, "sigma_min"));
    if (!(s.sigma_max <= 1e12))
      fail(child(path, "sigma_max"), "must be at most 1e12 (got " + show(s.sigma_max) + ")");
  } else {
    check_lower(child(path, "beta_min"), s.beta_min, 0.0, true);
    check_lower(child(path, "beta_max"), s.beta_max, s.beta_min, false, child(path, "beta_min"));
  }
}

nlohmann::ordered_json sde_json(const physics::Schedule& s) {
  if (s.ve())
    return {{"type", "ve"}, {"sigma_min", s.sigma_min}, {"sigma_max", s.sigma_max}};
  return {{"type", "vp"}, {"beta_min", s.beta_min}, {"beta_max", s.beta_max}};
}

std::string describe_sde(const physics::Schedule& s) {
  return s.ve() ? "schedule.type \"ve\" with sigma_min = " + show(s.sigma_min) +
                      ", sigma_max = " + show(s.sigma_max)
                : "schedule.type \"vp\" with beta_min = " + show(s.beta_min) +
                      ", beta_max = " + show(s.beta_max);
}

bool same_sde(const physics::Schedule& a, const physics::Schedule& b) {
  if (a.type != b.type) return false;
  return a.ve() ? a.sigma_min == b.sigma_min && a.sigma_max == b.sigma_max
                : a.beta_min == b.beta_min && a.beta_max == b.beta_max;
}

void read_schedule(const json& s, const std::string& path, std::initializer_list<const char*> allowed,
                   ScheduleConfig& out) {
  check_keys(s, path, allowed);
  read_sde(s, path, out.sde);
  read_real(s, "t_min", path, out.t_min);
  read_real(s, "t_max", path, out.t_max);
  read_int(s, "steps", path, out.steps, kStepsRange);
  read_enum(s, "scheme", path, out.scheme, kSchemes);
}

void read_run_common(const json& r, const std::string& path, std::uint64_t& seed, Backend& backend,
                     int& threads) {
  read_int(r, "seed", path, seed, kSeedRange);
  read_enum(r, "backend", path, backend, kBackends);
  read_int(r, "threads", path, threads, kThreadsRange);
}

}  // namespace fields
}  // namespace taep

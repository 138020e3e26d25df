#pragma once
// The JSON field toolkit every config-shaped reader shares (host/config/config.cpp,
// host/config/train_config.cpp, host/io/safetensors.cpp, host/io/mlp_weights.cpp): value display
// for messages, range and key checks, typed readers that throw ConfigError naming the field by its
// dotted JSON path, the mixture/target readers and checks, and the section readers the run and the
// training config have in common. One copy, so both configs word every error the same way.
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <type_traits>

#include "taep/config.hpp"
#include "taep/error.hpp"

namespace taep {
namespace fields {

using json = nlohmann::json;

struct IntRange {
  std::uint64_t lo, hi;
};
constexpr std::uint64_t kU64Max = std::numeric_limits<std::uint64_t>::max();
constexpr std::uint64_t kIntMax = std::uint64_t(std::numeric_limits<int>::max());

template <class E>
struct Named {
  const char* name;
  E value;
};

// ---- messages -----------------------------------------------------------------------------------

[[noreturn]] void fail(const std::string& field, const std::string& message);

std::string shorten(std::string s, std::size_t max);
// A JSON value on one line (dump escapes control characters), shortened to `max` characters.
std::string show(const json& j, std::size_t max = 60);
// The shortest form that reads back exactly; nan, inf, -inf spelled out.
std::string show(double x);
std::string show(const std::string& s);
// s with every byte that is not part of valid UTF-8 written as \xNN, for messages built from input.
std::string escape_bytes(const std::string& s);

std::string index(const std::string& field, std::size_t i);   // field[i]
std::string child(const std::string& path, const char* key);  // path.key (key alone at the root)

// "a", "b", "c" (quoted) from C strings or from entries with a `name` member.
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
inline std::string join(std::initializer_list<const char*> names) {
  return join<std::initializer_list<const char*>>(names);
}

std::string describe(IntRange r);

// ---- value checks -------------------------------------------------------------------------------

template <class T>
void check_int(const std::string& field, T v, IntRange r) {
  bool ok;
  if constexpr (std::is_signed_v<T>)
    ok = v >= 0 && std::uint64_t(v) >= r.lo && std::uint64_t(v) <= r.hi;
  else
    ok = std::uint64_t(v) >= r.lo && std::uint64_t(v) <= r.hi;
  if (!ok) fail(field, "must be " + describe(r) + " (got " + std::to_string(v) + ")");
}

void check_finite(const std::string& field, double x);
// x > bound (strict) or x >= bound; `bound_name` names the bound when it is another field.
void check_lower(const std::string& field, double x, double bound, bool strict,
                 const std::string& bound_name = "");
// lo < x (or lo <= x) and x < hi (or x <= hi), finite.
void check_interval(const std::string& field, double x, double lo, bool lo_open, double hi,
                    bool hi_open);

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
// An enum field set in code to a value outside its table.
template <class E, std::size_t N>
void check_enum(const std::string& field, const Named<E> (&table)[N], E value) {
  if (!name_of(table, value))
    fail(field, "must be one of " + join(table) + " (got an invalid enum value)");
}

// ---- JSON shape ---------------------------------------------------------------------------------

// A config nests 4 levels (target.means[k][i] inside the root); the limit leaves room and bounds
// the recursion of everything that walks the tree.
constexpr int kMaxConfigNesting = 32;
// The parsed text; ConfigError("config", "malformed JSON: ...") or "must be a JSON object", or
// "must nest at most 32 levels ..."; a key repeated in one object is a ConfigError naming its path.
json parse_object(const std::string& text);

void check_keys(const json& obj, const std::string& path, std::initializer_list<const char*> allowed);
// The object at obj[key], nullptr when absent.
const json* section(const json& obj, const char* key, const std::string& path);

// A non-negative integer; an integral float (1e6) counts unless `integral_floats` is false.
std::optional<std::uint64_t> as_uint64(const json& j, bool integral_floats = true);

template <class T>
void read_int_value(const json& j, const std::string& field, T& out, IntRange r) {
  static_assert(std::is_integral_v<T>);
  auto v = as_uint64(j);
  if (!v || *v < r.lo || *v > r.hi) fail(field, "must be " + describe(r) + " (got " + show(j) + ")");
  out = static_cast<T>(*v);
}
template <class T>
void read_int(const json& obj, const char* key, const std::string& path, T& out, IntRange r) {
  auto it = obj.find(key);
  if (it != obj.end()) read_int_value(*it, child(path, key), out, r);
}

double to_number(const json& j, const std::string& field);
std::vector<double> to_numbers(const json& j, const std::string& field);
void read_real(const json& obj, const char* key, const std::string& path, double& out);
void read_string(const json& obj, const char* key, const std::string& path, std::string& out);
// true or false (JSON booleans only: 0, 1 and "true" are refused).
void read_bool(const json& obj, const char* key, const std::string& path, bool& out);

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

// ---- mixtures, targets, collapse ----------------------------------------------------------------

// obj's weights, means and sigmas (all three required) at `path`.
MixtureSpec to_mixture(const json& obj, const std::string& path);
// A target section at `path` ("target", "data.target"): a preset or an explicit mixture.
void read_target(const json& t, const std::string& path, TargetConfig& out);

// `path` is "target", "model.mixture", "data.target".
void check_mixture(const MixtureSpec& m, const std::string& path);
// The target's mixture, the preset's when one is named (then an explicit mixture must equal it),
// checked. Pure: the config is not changed.
MixtureSpec target_mixture(const TargetConfig& t, const std::string& path);
// Fills t.mixture from its preset (a no-op without one). For readers and problem builders only.
void resolve_preset(TargetConfig& t);
// `path` is "model.collapse" or "data.collapse"; K the target's component count.
void check_collapse(const CollapseSpec& c, int K, const std::string& path);

// The canonical JSON of a mixture, and of a target: a preset by its name, else its mixture.
nlohmann::ordered_json mixture_json(const MixtureSpec& m);
nlohmann::ordered_json target_json(const TargetConfig& t);

// ---- sections the run and the training config share ---------------------------------------------

extern const Named<Scheme> kSchemes[2];
extern const Named<physics::ScheduleType> kScheduleTypes[2];
extern const Named<Backend> kBackends[3];
constexpr IntRange kStepsRange{1, 10'000'000};
constexpr IntRange kSeedRange{0, kU64Max};
constexpr IntRange kThreadsRange{0, 1024};  // more start slowly and use ~0.5 MB each, for no gain
constexpr IntRange kDevicesRange{1, 64};    // backends one process drives at once (run.devices)

// The forward SDE of a "schedule" section at `path`: type, then beta_min and beta_max (vp) or
// sigma_min and sigma_max or the shorthand sigma (ve); a key of the other type is an error.
void read_sde(const json& s, const std::string& path, physics::Schedule& out);
// Its ranges: beta_min > 0, beta_max >= beta_min (vp); sigma_max > sigma_min > 0 (ve).
void check_sde(const physics::Schedule& s, const std::string& path);
// Its canonical JSON (type and that type's two parameters), its description for messages, and
// whether two are the same process.
nlohmann::ordered_json sde_json(const physics::Schedule& s);
std::string describe_sde(const physics::Schedule& s);
bool same_sde(const physics::Schedule& a, const physics::Schedule& b);

// "schedule" and "run" sections; `allowed` is the section's key set (the training config has
// fewer keys than the run config), `path` its name.
void read_schedule(const json& s, const std::string& path, std::initializer_list<const char*> allowed,
                   ScheduleConfig& out);
// Reads run.seed, run.backend and run.threads (when present); the caller reads its other keys.
void read_run_common(const json& r, const std::string& path, std::uint64_t& seed, Backend& backend,
                     int& threads);

}  // namespace fields
}  // namespace taep

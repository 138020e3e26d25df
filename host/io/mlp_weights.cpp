// MLP score models (mlp.hpp): the weight file's schema on top of the safetensors reader, and the
// double-precision reference evaluation the fast backends are tested against.
#include "taep/mlp.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include "host/io/atomic_file.hpp"
#include "host/io/json_fields.hpp"
#include "host/io/safetensors.hpp"
#include "taep/error.hpp"
#include "taep/physics/mixture.hpp"
#include "taep/physics/mlp_elementwise.hpp"

namespace taep {
namespace {

constexpr const char* kFormat = "mlp-score-v1";
constexpr const char* kRequiredMetadata[] = {"taep.format", "dim",        "embedding_dim",
                                             "time_scale",  "max_period", "parameterization",
                                             "activation"};
constexpr const char* kParameterizations[] = {"score", "eps"};
constexpr const char* kScheduleTypeNames[] = {"vp", "ve"};
constexpr const char* kActivations[] = {"silu"};
// Bounds layer widths and the embedding so that sizes fit in int and products of two in int64.
constexpr std::int64_t kMaxWidth = 1 << 20;

using detail::quote_for_message;
using fields::fail;
using fields::join;
// Shortest decimal that reads back to the same double (the file's metadata and messages).
std::string shortest(double x) { return fields::show(x); }

std::string show_shape(const std::vector<std::int64_t>& shape) {
  std::string out = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + "]";
}

const char* name_of(Parameterization p) { return p == Parameterization::eps ? "eps" : "score"; }

// ---- metadata -----------------------------------------------------------------------------------

std::string metadata_key(const char* key) { return std::string("metadata \"") + key + '"'; }

const std::string& metadata_value(const SafetensorsFile& f, const char* key,
                                  const std::string& what) {
  auto it = f.metadata.find(key);
  if (it == f.metadata.end())
    fail(what, metadata_key(key) + " is missing; an " + kFormat + " file needs " +
                   join(kRequiredMetadata));
  return it->second;
}

// The whole string as a T, or nothing (from_chars takes no sign '+', no spaces, no trailing bytes).
template <class T>
std::optional<T> parse_number(const std::string& s) {
  T v{};
  const char* end = s.data() + s.size();
  const auto r = std::from_chars(s.data(), end, v);
  if (r.ec != std::errc() || r.ptr != end) return std::nullopt;
  return v;
}

int metadata_int(const SafetensorsFile& f, const char* key, std::int64_t lo, std::int64_t hi,
                 bool even, const std::string& what) {
  const std::string& s = metadata_value(f, key, what);
  const auto v = parse_number<std::int64_t>(s);
  if (!v || *v < lo || *v > hi || (even && *v % 2 != 0))
    fail(what, metadata_key(key) + " must be " + (even ? "an even" : "an") + " integer in [" +
                   std::to_string(lo) + ", " + std::to_string(hi) + "] (got " +
                   quote_for_message(s) + ")");
  return int(*v);
}

double metadata_real_above(const SafetensorsFile& f, const char* key, double bound,
                           const std::string& what) {
  const std::string& s = metadata_value(f, key, what);
  const auto v = parse_number<double>(s);
  if (!v || !std::isfinite(*v) || !(*v > bound))
    fail(what, metadata_key(key) + " must be a finite number > " + shortest(bound) + " (got " +
                   quote_for_message(s) + ")");
  return *v;
}

template <std::size_t N>
const std::string& metadata_one_of(const SafetensorsFile& f, const char* key,
                                   const char* const (&names)[N], const std::string& what) {
  const std::string& s = metadata_value(f, key, what);
  for (const char* n : names)
    if (s == n) return s;
  fail(what, metadata_key(key) + " must be one of " + join(names) + " (got " +
                 quote_for_message(s) + ")");
}

// ---- tensors ------------------------------------------------------------------------------------

std::string layer_tensor(std::size_t i, const char* part) {
  return "layers." + std::to_string(i) + "." + part;
}

// The index in "layers.<i>.weight" / "layers.<i>.bias" (canonical decimal, no leading zeros), and
// which of the two; nothing for any other name.
struct LayerTensorId {
  std::size_t index;
  bool weight;
};
std::optional<LayerTensorId> parse_layer_tensor(const std::string& name) {
  const std::string prefix = "layers.";
  if (name.compare(0, prefix.size(), prefix) != 0) return std::nullopt;
  const std::size_t dot = name.find('.', prefix.size());
  if (dot == std::string::npos) return std::nullopt;
  const std::string digits = name.substr(prefix.size(), dot - prefix.size());
  const std::string part = name.substr(dot + 1);
  // 9 digits keep the index in range; a gap in the numbering is reported by the caller.
  if (digits.empty() || digits.size() > 9 || (digits[0] == '0' && digits.size() > 1))
    return std::nullopt;
  const auto index = parse_number<std::size_t>(digits);
  if (!index || (part != "weight" && part != "bias")) return std::nullopt;
  return LayerTensorId{*index, part == "weight"};
}

// `shape_rule` says what the shape must be, e.g. "[64]" or "[out, 66], 66 = dim + embedding_dim".
void check_shape(const SafetensorsTensor& t, const std::string& name, bool ok,
                 const std::string& shape_rule, const std::string& what) {
  if (!ok)
    fail(what, "tensor " + quote_for_message(name) + " must have shape " + shape_rule + " (got " +
                   show_shape(t.shape) + ")");
}

// The count guards a file built in code (a parsed file always matches its shape).
void check_values(const SafetensorsTensor& t, const std::string& name, std::int64_t count,
                  const std::string& what) {
  if (std::int64_t(t.data.size()) != count)
    fail(what, "tensor " + quote_for_message(name) + " must hold " + std::to_string(count) +
                   " values, as its shape says (got " + std::to_string(t.data.size()) + ")");
  for (std::size_t k = 0; k < t.data.size(); ++k)
    if (!std::isfinite(t.data[k]))
      fail(what, "tensor " + quote_for_message(name) + " must hold finite values (got " +
                     shortest(t.data[k]) + " at flat index " + std::to_string(k) + ")");
}

// Layer i from its tensors: `in` inputs (`in_reason` says why); `dim` outputs for the output layer.
MlpLayer read_layer(const SafetensorsTensor& w, const SafetensorsTensor& b, std::size_t i,
                    std::int64_t in, const std::string& in_reason, bool output, int dim,
                    const std::string& what) {
  const std::string wname = layer_tensor(i, "weight"), bname = layer_tensor(i, "bias");
  const std::string n_in = std::to_string(in);
  check_shape(w, wname, w.shape.size() == 2 && w.shape[1] == in,
              "[out, " + n_in + "], " + n_in + " = " + in_reason, what);
  if (output)
    check_shape(w, wname, w.shape[0] == dim,
                "[" + std::to_string(dim) + ", " + n_in +
                    "]: the output layer returns dim = " + std::to_string(dim) + " values",
                what);
  else
    check_shape(w, wname, w.shape[0] >= 1 && w.shape[0] <= kMaxWidth,
                "[out, " + n_in + "] with out in [1, " + std::to_string(kMaxWidth) + "]", what);
  const std::int64_t out = w.shape[0];
  check_shape(b, bname, b.shape == std::vector<std::int64_t>{out},
              "[" + std::to_string(out) + "] to match " + wname, what);
  check_values(w, wname, out * in, what);
  check_values(b, bname, out, what);
  return MlpLayer{int(in), int(out), w.data, b.data};
}

SafetensorsFile to_file(const MlpModel& m) {
  SafetensorsFile f;
  f.metadata = {{"taep.format", kFormat},
                {"dim", std::to_string(m.dim)},
                {"embedding_dim", std::to_string(m.embedding_dim)},
                {"time_scale", shortest(m.time_scale)},
                {"max_period", shortest(m.max_period)},
                {"parameterization", name_of(m.parameterization)},
                {"activation", m.activation}};
  if (const auto& s = m.trained_schedule) {
    f.metadata["schedule.type"] = s->ve() ? "ve" : "vp";
    if (s->ve()) {
      f.metadata["schedule.sigma_min"] = shortest(s->sigma_min);
      f.metadata["schedule.sigma_max"] = shortest(s->sigma_max);
    } else {
      f.metadata["schedule.beta_min"] = shortest(s->beta_min);
      f.metadata["schedule.beta_max"] = shortest(s->beta_max);
    }
  }
  for (std::size_t i = 0; i < m.layers.size(); ++i) {
    const MlpLayer& l = m.layers[i];
    f.tensors[layer_tensor(i, "weight")] = {"F32", {l.out, l.in}, l.weight};
    f.tensors[layer_tensor(i, "bias")] = {"F32", {l.out}, l.bias};
  }
  return f;
}

// ---- evaluation ---------------------------------------------------------------------------------

double sigmoid(double z) { return 1 / (1 + std::exp(-z)); }

}  // namespace

MlpModel mlp_from_safetensors(const SafetensorsFile& file, const std::string& what) {
  MlpModel m;
  const std::string& format = metadata_value(file, "taep.format", what);
  if (format != kFormat)
    fail(what, metadata_key("taep.format") + " must be \"" + kFormat + "\" (got " +
                   quote_for_message(format) + ")");
  m.dim = metadata_int(file, "dim", 1, physics::kMaxDim, false, what);
  m.embedding_dim = metadata_int(file, "embedding_dim", 2, kMaxWidth, true, what);
  m.time_scale = metadata_real_above(file, "time_scale", 0, what);
  m.max_period = metadata_real_above(file, "max_period", 1, what);
  m.parameterization = metadata_one_of(file, "parameterization", kParameterizations, what) == "eps"
                           ? Parameterization::eps
                           : Parameterization::score;
  m.activation = metadata_one_of(file, "activation", kActivations, what);
  const bool ve = file.metadata.count("schedule.type") &&
                  metadata_one_of(file, "schedule.type", kScheduleTypeNames, what) == "ve";
  if (file.metadata.count("schedule.type") || file.metadata.count("schedule.beta_min") ||
      file.metadata.count("schedule.beta_max")) {
    physics::Schedule s;
    if (ve) {
      s.type = physics::ScheduleType::ve;
      s.sigma_min = metadata_real_above(file, "schedule.sigma_min", 0, what);
      s.sigma_max = metadata_real_above(file, "schedule.sigma_max", s.sigma_min, what);
    } else {
      s.beta_min = metadata_real_above(file, "schedule.beta_min", 0, what);
      s.beta_max = metadata_real_above(file, "schedule.beta_max", 0, what);
    }
    m.trained_schedule = s;
  }

  // Layer index -> (weight, bias); every index must be present in 0..L with L >= 1.
  std::map<std::size_t, std::pair<const SafetensorsTensor*, const SafetensorsTensor*>> found;
  for (const auto& [name, t] : file.tensors) {
    const auto id = parse_layer_tensor(name);
    if (!id)
      fail(what, "unknown tensor " + quote_for_message(name) + "; an " + kFormat +
                     " file holds only layers.<i>.weight and layers.<i>.bias for i = 0..L");
    auto& slot = found[id->index];
    (id->weight ? slot.first : slot.second) = &t;
  }
  // With every index below found.size() present, the keys are exactly 0..found.size()-1.
  for (std::size_t i = 0; i < std::max<std::size_t>(found.size(), 2); ++i) {
    const auto it = found.find(i);
    const bool has_weight = it != found.end() && it->second.first,
               has_bias = it != found.end() && it->second.second;
    if (!has_weight || !has_bias)
      fail(what, "tensor \"" + layer_tensor(i, has_weight ? "bias" : "weight") +
                     "\" is missing; layers must be numbered 0..L without gaps, with L >= 1 (a "
                     "hidden layer "
                     "and the output layer)");
  }

  std::int64_t in = m.dim + m.embedding_dim;
  for (const auto& [i, tensors] : found) {
    const std::string in_reason = i == 0 ? "dim + embedding_dim (x and the time embedding)"
                                         : "the outputs of " + layer_tensor(i - 1, "weight");
    m.layers.push_back(read_layer(*tensors.first, *tensors.second, i, in, in_reason,
                                  i + 1 == found.size(), m.dim, what));
    in = m.layers.back().out;
  }
  return m;
}

MlpModel load_mlp(const std::string& path) {
  return mlp_from_safetensors(read_safetensors(path), path);
}

std::string detail::mlp_file_bytes(const MlpModel& model, const std::string& what) {
  const SafetensorsFile file = to_file(model);
  mlp_from_safetensors(file, what);
  return encode_safetensors(file);
}

void save_mlp(const MlpModel& model, const std::string& path) {
  detail::write_file_atomically(path, detail::mlp_file_bytes(model, path));
}

void detail::check_mlp(const MlpModel& model, const std::string& what) {
  mlp_from_safetensors(to_file(model), what);
}

MlpPointEval mlp_evaluate_reference(const MlpModel& model, const std::vector<double>& x, double t,
                                    double noise, bool with_divergence) {
  const int d = model.dim, half = model.embedding_dim / 2;
  TAEP_EXPECTS(int(x.size()) == d, "x must have model.dim entries");
  TAEP_EXPECTS(model.parameterization == Parameterization::score || noise > 0,
               "an eps model needs a noise variance > 0");

  // Layer input: [x, sin(a f_0..f_{half-1}), cos(a f_0..f_{half-1})], a = time_scale t.
  std::vector<double> h = x;
  h.resize(std::size_t(d) + 2 * half);
  const double a = model.time_scale * t;
  for (int i = 0; i < half; ++i) {
    const double f = physics::embedding_frequency(i, model.embedding_dim, model.max_period);
    h[d + i] = std::sin(a * f);
    h[d + half + i] = std::cos(a * f);
  }
  // Tangent j is dh/dx_j: e_j on the input (the embedding does not depend on x).
  std::vector<std::vector<double>> tangent(with_divergence ? d : 0,
                                           std::vector<double>(h.size(), 0.0));
  for (std::size_t j = 0; j < tangent.size(); ++j) tangent[j][j] = 1;

  for (std::size_t l = 0; l < model.layers.size(); ++l) {
    const MlpLayer& layer = model.layers[l];
    TAEP_EXPECTS(layer.in == int(h.size()) &&
                     layer.weight.size() == std::size_t(layer.out) * layer.in &&
                     layer.bias.size() == std::size_t(layer.out),
                 "layer " + std::to_string(l) + " does not chain");
    const bool hidden = l + 1 < model.layers.size();
    // z = W h + b; dz = W dh; then for a hidden layer h = silu(z), dh = silu'(z) dz.
    auto affine = [&](const std::vector<double>& v, bool with_bias) {
      std::vector<double> z(layer.out);
      for (int r = 0; r < layer.out; ++r) {
        double s = with_bias ? layer.bias[r] : 0.0;
        for (int c = 0; c < layer.in; ++c)
          s += double(layer.weight[std::size_t(r) * layer.in + c]) * v[c];
        z[r] = s;
      }
      return z;
    };
    const std::vector<double> z = affine(h, true);
    for (auto& dh : tangent) {
      dh = affine(dh, false);
      if (hidden)
        for (int r = 0; r < layer.out; ++r) {
          const double s = sigmoid(z[r]);
          dh[r] *= s * (1 + z[r] * (1 - s));  // d/dz [z sigmoid(z)]
        }
    }
    h = z;
    if (hidden)
      for (double& v : h) v *= sigmoid(v);
  }
  TAEP_EXPECTS(int(h.size()) == d, "the output layer must return dim values");

  // The network returns the score or eps (docs/physics.md section 7).
  const double scale =
      model.parameterization == Parameterization::eps ? physics::eps_score_factor(noise) : 1.0;
  MlpPointEval r;
  r.score = h;
  for (double& s : r.score) s *= scale;
  for (int j = 0; j < int(tangent.size()); ++j) r.divergence += scale * tangent[j][j];
  return r;
}

}  // namespace taep

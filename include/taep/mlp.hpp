#pragma once
// Learned score models: a small MLP s_theta(x, t) (docs/physics.md section 7) and its weight file.
//
// Network: input [x (d), emb(t) (E)] -> hidden layers of widths H_1..H_L with the activation ->
// linear output of dimension d. emb(t) = [sin(a f_0..f_{E/2-1}), cos(a f_0..f_{E/2-1})] with
// a = time_scale * t and f_i = exp(-ln(max_period) i / (E/2)). The output is the score, or an
// eps-prediction with score = -eps / sqrt(n(t)) (n the schedule's noise variance, 1 - abar(t) for
// VP), as the file's metadata declares.
//
// Weight file: safetensors (8-byte little-endian header length N, N bytes of JSON header, data).
// Tensors "layers.<i>.weight" (shape [out, in], row-major as PyTorch's nn.Linear) and
// "layers.<i>.bias" ([out]) for i = 0..L, in F32, F16 or BF16; metadata (all values strings):
//   "taep.format": "mlp-score-v1", "dim": d, "embedding_dim": E (even, >= 2), "time_scale",
//   "max_period", "parameterization": "score" | "eps", "activation": "silu".
// README.md ("Learned score models") documents the same, and tools/taep_mlp.py writes it.
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "taep/physics/schedule.hpp"

namespace taep {

// One dense layer y = W x + b, W row-major [out][in], stored in F32 (whatever the file's dtype).
struct MlpLayer {
  int in = 0;
  int out = 0;
  std::vector<float> weight;  // out * in
  std::vector<float> bias;    // out
};

enum class Parameterization { score, eps };

struct MlpModel {
  int dim = 0;            // d: input x and output dimension
  int embedding_dim = 0;  // E: sinusoidal time embedding size (even)
  double time_scale = 1.0;
  double max_period = 10000.0;
  Parameterization parameterization = Parameterization::score;
  std::string activation = "silu";
  // The schedule the model was trained with (metadata "schedule.type" with "schedule.beta_min" and
  // "schedule.beta_max", or "schedule.sigma_min" and "schedule.sigma_max"; a file with beta_* and no
  // type is VP), empty when the file does not record it. An eps model's noise prediction becomes a
  // score through this schedule, so a run on another one is refused (build_problem).
  std::optional<physics::Schedule> trained_schedule;
  std::vector<MlpLayer> layers;  // hidden layers then the linear output layer
};

// A parsed safetensors file: metadata and every tensor converted to F32.
struct SafetensorsTensor {
  std::string dtype;  // "F32", "F16" or "BF16" as stored
  std::vector<std::int64_t> shape;
  std::vector<float> data;
};
struct SafetensorsFile {
  std::map<std::string, std::string> metadata;
  std::map<std::string, SafetensorsTensor> tensors;
};

// Parses the bytes of a safetensors file. `what` names it in errors. Throws ConfigError(what, ...)
// naming the tensor or key on any malformed input; never reads out of bounds.
SafetensorsFile parse_safetensors(const std::uint8_t* bytes, std::size_t size, const std::string& what);
SafetensorsFile read_safetensors(const std::string& path);

// Builds and validates the MLP of a parsed file (shapes chain, metadata complete, values finite).
MlpModel mlp_from_safetensors(const SafetensorsFile& file, const std::string& what);
MlpModel load_mlp(const std::string& path);

// Writes a model in the same format (used by tests and by `taep train` later).
void save_mlp(const MlpModel& model, const std::string& path);

// Limits and rules of the reader: header JSON at most 100 MB and 8 levels deep; duplicate keys,
// overlapping tensors and unknown dtypes are rejected; gaps between tensors and extra metadata keys
// are accepted. embedding_dim and hidden widths are in [1, 2^20], dim in [1, 256].

// Reference (unoptimized, double-accumulating) evaluation of one point: score and, optionally, the
// exact divergence by d forward-mode tangents. For tests and tools; the backends have fast paths.
struct MlpPointEval {
  std::vector<double> score;
  double divergence = 0;
};
// `noise` is the schedule's noise variance n(t) (physics::Schedule::marginal), which an
// eps-prediction model's output is scaled by. Preconditions: x.size() == model.dim; for
// eps-prediction models noise > 0.
MlpPointEval mlp_evaluate_reference(const MlpModel& model, const std::vector<double>& x, double t,
                                    double noise, bool with_divergence);

}  // namespace taep

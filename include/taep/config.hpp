#pragma once
// Run configuration: plain data, validated once at the boundary (docs/architecture.md principle 8).
// The JSON form is documented in README.md ("Config reference").
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "taep/physics/schedule.hpp"

namespace taep {

// p(x, 0) = sum_k w_k N(x; m_k, sigma_k^2 I). Weights need not be normalized (their sum must be > 0).
struct MixtureSpec {
  std::vector<double> weights;
  std::vector<std::vector<double>> means;  // K vectors of dimension d
  std::vector<double> sigmas;              // K widths > 0
  int dim() const { return means.empty() ? 0 : int(means.front().size()); }
  int components() const { return int(weights.size()); }
};

struct TargetConfig {
  std::string preset;   // "ring8" or empty; a preset fills `mixture`
  // A data-file target (run configs only): a .npy or CSV file of N samples of dimension d
  // (README.md, "Sample files"). x0 is a row picked by the path's initial-state stream, diffused
  // exactly to t_min: the target is the mixture of N equal-weight, zero-width components at the
  // rows (docs/physics.md section 2), which build_problem (problem.hpp) reads into `mixture`.
  std::string samples;
  // Filled from the preset by parse_config and by build_problem (problem.hpp); in code, a preset
  // may leave it empty (validate accepts that, and does not fill it). Empty for a samples target
  // until build_problem reads the file.
  MixtureSpec mixture;
  bool from_samples() const { return !samples.empty(); }
};

// Controlled mode collapse of the target (docs/physics.md section 2): the first `modes` components get
// weight eps each, the rest share 1 - modes*eps equally.
struct CollapseSpec {
  int modes = 1;
  double eps = 0.01;
};

enum class Divergence { exact, hutchinson };
enum class ProbeDistribution { rademacher, gaussian };
enum class MathMode { fp32, tf32 };

struct ModelConfig {
  std::string type = "exact";               // exact: s_theta = grad log q(x, t); mlp: learned
  // type "exact": exactly one of
  std::optional<MixtureSpec> mixture;       // q given explicitly ...
  std::optional<CollapseSpec> collapse;     // ... or as the collapse of the target
  // type "mlp" (include/taep/mlp.hpp):
  std::string weights;                      // safetensors file (relative to the working directory)
  Divergence divergence = Divergence::exact;  // exact: d tangents; hutchinson: v^T J v probes
  int probes = 1;                           // Hutchinson probes per step
  ProbeDistribution probe_distribution = ProbeDistribution::rademacher;
  MathMode math = MathMode::fp32;           // GPU GEMM precision (tf32: tensor cores)
};

// What plays the optimal score s* in S (docs/physics.md section 3): the mixture target's analytic
// score, the exact score of a data-file target's rows diffused by the SDE (the empirical mixture:
// the exact minimizer of denoising score matching on that finite data set), or a reference
// network (the paper's choice for real data). automatic: analytic for a mixture target, empirical
// for a data-file target.
enum class ReferenceType { automatic, analytic, empirical, mlp };

struct ReferenceConfig {
  ReferenceType type = ReferenceType::automatic;
  std::string weights;  // type mlp: a safetensors file, read by build_problem
};

enum class Scheme { euler, milstein };
enum class Backend { automatic, cpu, cuda };

// schedule.type "vp" (beta_min, beta_max) or "ve" (sigma_min, sigma_max, or the shorthand sigma):
// physics/schedule.hpp. The fields of the other type keep their defaults and are not used.
struct ScheduleConfig {
  physics::Schedule sde;
  double t_min = 1e-3;
  double t_max = 1.0;
  int steps = 1000;
  Scheme scheme = Scheme::euler;
};

struct RunSettings {
  std::uint64_t paths = 1000000;
  std::uint64_t seed = 1;
  Backend backend = Backend::automatic;
  std::uint64_t chunk_paths = 0;  // 0: automatic (fits device memory); rounded up to 4096
  int threads = 0;                // CPU threads, 0: all available
  // Backends this process drives at once, each on its own share of every round's paths
  // (docs/distributed.md): with cuda, that many GPUs (this rank's devices on its node); with the
  // CPU, that many CPU backends sharing run.threads. Does not change results.
  int devices = 1;
  // When every path comes out non-finite: false throws NonFiniteResult (the CLI exits 1), true
  // returns the result with null statistics and a warning.
  bool allow_nonfinite = false;
};

struct HistogramConfig {
  int bins = 200;
  std::optional<double> lo;  // both or neither; neither: automatic range from a pilot of paths
  std::optional<double> hi;
};

struct Config {
  TargetConfig target;
  ReferenceConfig reference;
  ModelConfig model;
  ScheduleConfig schedule;
  RunSettings run;
  HistogramConfig histogram;
};

// The built-in default: ring8 target, exact model with a 1-mode collapse at eps = 0.01.
Config default_config();

// Parses and validates a JSON config (a preset target gets its mixture filled in); missing sections
// and keys take the defaults above. Throws ConfigError naming the field on malformed JSON, unknown
// keys, wrong types or bad values. Opens no file: model.weights is read by build_problem.
Config parse_config(const std::string& json_text);

// Checks every field that the config itself holds. Pure: no file is opened and nothing is changed
// (a preset's mixture is computed for the checks, not stored). What needs an input file's contents
// (an MLP weight file's dimension) is checked by build_problem (problem.hpp). Throws ConfigError.
void validate(const Config& config);

// The canonical JSON form of a (validated) config.
std::string config_to_json(const Config& config, int indent = 2);

const char* to_string(Scheme s);
const char* to_string(Backend b);
const char* to_string(Divergence d);
const char* to_string(ProbeDistribution p);
const char* to_string(MathMode m);
const char* to_string(ReferenceType r);
// The reference a config runs with: its type, automatic resolved by the target's kind.
ReferenceType reference_type(const Config& config);

// The 8-mode ring of the paper: equal weights, means 4 (cos 2 pi k/8, sin 2 pi k/8), sigma 0.25.
MixtureSpec ring8();
// The m-mode collapse of a mixture (weights only; means and widths unchanged).
MixtureSpec collapse(const MixtureSpec& target, const CollapseSpec& c);

}  // namespace taep

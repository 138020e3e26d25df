#pragma once
// What a run returns; result_to_json writes the JSON documented in README.md ("Result reference").
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "taep/config.hpp"

namespace taep {

struct TaepSummary {
  std::uint64_t count = 0;  // finite paths that entered the statistics
  // NaN (null in the JSON) when count is 0.
  double mean = 0, variance = 0, skewness = 0, excess_kurtosis = 0;
  double stderr_mean = 0;      // sqrt(variance / count)
  double stderr_variance = 0;  // from the fourth central moment (Moments::variance_stderr)
  std::uint64_t nonfinite = 0;  // paths with a non-finite S, excluded and counted
};

struct IftSummary {
  double estimate = 0;      // <exp(-S)>, should be 1
  double stderr_ = 0;       // its standard error
  double log_estimate = 0;  // log <exp(-S)>
  double ess = 0;           // (sum w)^2 / sum w^2, w = exp(-S)
  double ess_fraction = 0;  // ess / the paths it is over
};

struct HistogramResult {
  std::vector<double> edges;  // bins + 1
  std::vector<std::uint64_t> counts;
  std::uint64_t underflow = 0, overflow = 0;
};

// Exact-score models: the closed form R = log(p/q)(x_0, t_min) - log(p/q)(x_N, t_max) per path.
struct ReferenceSummary {
  double mean = 0, variance = 0;         // of R
  double error_mean = 0, error_variance = 0;  // of S - R
  double rms_path_error = 0;             // sqrt(<(S - R)^2>)
};

// Well-separated-mode predictions when model and target share means and widths (eq. 53).
struct TheorySummary {
  double variance_eq53 = 0;  // sum_k p_k L_k^2 - (sum_k p_k L_k)^2, L_k = log(p_k/q_k)
  double mean_eq53 = 0;      // sum_k p_k L_k (relative entropy of the weights)
};

// Learned models with Hutchinson divergence: the probe noise's share of Var(S). Fresh probes each
// step add independent noise beta h (div_est - div) to S; its variance, estimated per step from the
// spread of the P >= 2 probe estimates and summed along each path, is averaged over paths.
struct HutchinsonSummary {
  int probes = 0;
  std::string distribution;
  std::optional<double> probe_noise_variance;  // needs probes >= 2
  std::optional<double> variance_without_probe_noise;  // taep.variance - probe_noise_variance
};

struct PerformanceSummary {
  std::string backend;
  std::string device;
  double wall_seconds = 0;
  double path_steps_per_second = 0;
  std::uint64_t chunk_paths = 0;
  int threads = 0;
};

// Where and how a result was made: every result JSON's "provenance" section (README.md, "Result
// reference"). Not a statistic: two runs of the same config differ here and nowhere else.
struct Provenance {
  std::string version;     // kVersion (taep/version.hpp)
  std::string commit;      // git_commit(): the source's short hash, "-dirty" with local changes
  std::string build_type;  // build_type(): Release, Debug, ...
  std::string backend, device;  // as in PerformanceSummary
  std::string host;        // the host name
  std::string time;        // when the result was made: UTC, ISO 8601 (2026-01-31T12:00:00Z)
  std::string command;     // the command line (the CLI sets it; "" from the library by default)
};

// This build and this host, now.
Provenance make_provenance(const std::string& backend, const std::string& device,
                           const std::string& command = "");

struct RunResult {
  TaepSummary taep;
  IftSummary ift;
  HistogramResult histogram;
  std::optional<ReferenceSummary> reference;
  std::optional<TheorySummary> theory;
  std::optional<HutchinsonSummary> hutchinson;
  PerformanceSummary performance;
  Provenance provenance;
  Config config;
  std::vector<std::string> warnings;  // what the numbers above should be read with (README)
};

std::string result_to_json(const RunResult& result, int indent = 2);

}  // namespace taep

#pragma once
// The reverse (generative) process of docs/physics.md section 8 and the detailed fluctuation theorem of
// section 9, over the same config as taep::run (config.hpp): the score the reverse process follows is
// config.model (an exact score grad log q, or the learned MLP), the target (for mode occupancy and
// for s_* in the TAEP functional) is config.target, the time grid is config.schedule.
//
// A reverse path starts at x(t_max) ~ N(0, I) (stream kReverseStart) and runs the steps
//   x_{k-1} = x_k + [1/2 beta_k x_k + beta_k s_theta(x_k, t_k)] h + sqrt(beta_k h) xi_k
// down to t_min (xi: stream kReverseNoise, d normals per step in step order from t_max). Read on the
// forward clock, the implied forward increment of step k is
//   dW_k = (x_{k+1} - x_k + 1/2 beta_k x_k h) / sqrt(beta_k),
// and the TAEP functional of section 4 (with the Milstein correction when schedule.scheme is
// milstein) is evaluated at the earlier forward time t_k, exactly as on forward paths.
#include <cstdint>
#include <optional>
#include <vector>

#include "taep/config.hpp"
#include "taep/engine.hpp"
#include "taep/problem.hpp"
#include "taep/result.hpp"

namespace taep {

// Nearest-mode occupancy of samples against the means of config.target's mixture.
// A sample belongs to the component whose mean is nearest (Euclidean; ties to the lower index).
struct ModeOccupancy {
  std::vector<std::vector<double>> means;  // the target's component means, in config order
  std::vector<std::uint64_t> counts;     // per target component
  std::vector<double> fractions;         // counts / finite samples
  std::vector<double> fraction_stderr;   // sqrt(f (1 - f) / n)
  std::vector<double> target_weights;    // the target's normalized weights, for comparison
  // Exact models: q's normalized weights, each added to the target component nearest its mean (for
  // the collapse models, q's weights themselves); else empty.
  std::vector<double> model_weights;
};

struct SampleResult {
  int d = 0;
  std::uint64_t count = 0;       // samples asked for
  std::vector<float> samples;    // count * d, row-major: x(t_min) of reverse paths 0 .. count-1
  std::uint64_t nonfinite = 0;   // samples with a non-finite coordinate (kept, and counted)
  ModeOccupancy occupancy;       // over the finite samples
  PerformanceSummary performance;
  Provenance provenance;
  Config config;                 // the validated config
  std::vector<std::string> warnings;
};

// Draws `count` samples with config.model's score (config.run.paths is ignored): reverse paths
// 0 .. count-1 without TAEP, in chunks of config.run.chunk_paths (progress after each). Throws as
// run(), and ConfigError("count") unless 1 <= count < 2^40.
// The Problem overloads take a built problem (problem.hpp); the Config ones build it first.
SampleResult sample(const Problem& problem, std::uint64_t count, const RunOptions& options = {});
SampleResult sample(const Config& config, std::uint64_t count, const RunOptions& options = {});

// Weighted least-squares fit of y = log(c_f / N_f) - log(c_r / N_r) against sigma, weights
// 1 / (1/c_f + 1/c_r) (the Poisson variance of y). Adjacent bins are merged, left to right, until
// both histograms hold at least `min_count` counts (a sparse cluster of S, such as the paths of a
// rarely sampled mode, then enters the fit instead of being dropped bin by bin), and a merged bin's
// sigma is log(sum_b c_r,b e^sigma_b / sum_b c_r,b) over its bins' centres: what eq. 31 predicts for
// it, so merging adds no bias (a single bin keeps its centre). Counts left over at the top end that
// never reach min_count are not used. N_f, N_r: the finite paths of each side (under- and overflow included).
// Eq. 31 says slope 1, intercept 0. The standard errors are the WLS ones for these weights (not
// rescaled by chi2_per_dof). Fewer than 2 usable bins: slope, intercept and errors are NaN; fewer
// than 3: chi2_per_dof is NaN.
//
// min_count defaults to 20 (kDetailedFtMinCount): below it log c is biased by about -1/(2c) and
// its Poisson scatter is no longer near-Gaussian; both effects sit at the ends of the range, where
// one side is rare, and so tilt the slope. At 20 that bias is at most 0.025 per bin, and the used
// bins still span the bulk of the overlap for 10^5..10^6 paths.
struct DetailedFtFit {
  double slope = 0, slope_stderr = 0;
  double intercept = 0, intercept_stderr = 0;
  int bins_used = 0;
  double chi2_per_dof = 0;  // of the fit: about 1 when the binned counts scatter as Poisson
  std::uint64_t min_count = 0;
  double lo = 0, hi = 0;     // the range of sigma the used bins span
};

struct DetailedFtResult {
  TaepSummary forward, reverse;   // S on forward paths, and on reverse paths read on the forward clock
  IftSummary forward_ift;         // <exp(-S)>_forward = 1 (eq. 30)
  IftSummary reverse_ift;         // <exp(+S)>_reverse = 1 (the same theorem seen from the reverse side)
  HistogramResult forward_histogram, reverse_histogram;  // common edges
  DetailedFtFit fit;
  // Exact-score models: RMS of S - R per path (R the closed form), forward and reverse; the
  // per-path discretization error that blurs the histograms (docs/physics.md section 9).
  std::optional<double> forward_rms_path_error, reverse_rms_path_error;
  // The same fit on the closed form R of the same paths (exact-score models).
  std::optional<DetailedFtFit> reference_fit;
  PerformanceSummary performance;
  Provenance provenance;
  Config config;
  std::vector<std::string> warnings;
};

// Runs config.run.paths forward and as many reverse paths (same seed, their own streams), histograms
// S of both on common bins and fits eq. 31. The bins: config.histogram.bins over [lo, hi] when given;
// automatic: the range both sides share, [max(min_f, min_r), min(max_f, max_r)] of S over each
// side's first 16384 paths (their union when they do not overlap). The closed form R of exact
// models is histogrammed on the same bins for reference_fit. Results are bitwise independent of
// chunk size and thread count. Throws as run(), and ConfigError("min_count") for min_count < 1.
constexpr std::uint64_t kDetailedFtMinCount = 20;
DetailedFtResult detailed_ft(const Problem& problem, const RunOptions& options = {},
                             std::uint64_t min_count = kDetailedFtMinCount);
DetailedFtResult detailed_ft(const Config& config, const RunOptions& options = {},
                             std::uint64_t min_count = kDetailedFtMinCount);

// Per-path values of reverse paths [first, first + count) on one backend (tests and tools): S read on
// the forward clock, the closed form (exact models; else empty) and the final samples (count * d).
struct ReversePathValues {
  std::vector<double> taep;
  std::vector<double> reference;
  std::vector<float> samples;
};
ReversePathValues simulate_reverse_paths(const Problem& problem, Backend backend, std::uint64_t first,
                                         std::uint64_t count, bool with_taep = true);
ReversePathValues simulate_reverse_paths(const Config& config, Backend backend, std::uint64_t first,
                                         std::uint64_t count, bool with_taep = true);

std::string sample_result_to_json(const SampleResult& result, int indent = 2);   // without samples
std::string detailed_ft_to_json(const DetailedFtResult& result, int indent = 2);

}  // namespace taep

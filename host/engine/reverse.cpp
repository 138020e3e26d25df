// The reverse (generative) process and the detailed fluctuation theorem (docs/physics.md sections 8, 9):
// sample(), detailed_ft() and simulate_reverse_paths() of taep/sample.hpp over the backends'
// per-path values (Backend::simulate for forward paths, Backend::simulate_reverse for reverse ones),
// chunked by the shared driver (chunk_driver.hpp). Every reduction here runs on the host in path
// order, in blocks of kReduceBlock that start at path 0, so results do not depend on the chunk size
// or the thread count. The fit: dft_fit.cpp; the occupancy of samples: occupancy.cpp.
#include "taep/sample.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <string>

#include "host/engine/chunk_driver.hpp"
#include "host/engine/dft_fit.hpp"
#include "host/engine/occupancy.hpp"
#include "host/engine/result_warnings.hpp"
#include "taep/error.hpp"
#include "taep/physics/philox.hpp"
#include "taep/physics/reverse_path.hpp"
#include "taep/physics/rng_streams.hpp"

namespace taep {
namespace {

using Clock = std::chrono::steady_clock;
constexpr std::uint64_t kBlock = physics::kReduceBlock;

// What one side (forward or reverse paths) reduces to.
struct Side {
  physics::PathStats stats;  // S and R moments, S - R, and exp(-S)
  physics::LogSumExp plus;   // exp(+S)
  std::vector<std::uint64_t> hist_s, hist_r;  // [underflow, bins, overflow] of S and of R

  explicit Side(int bins) : hist_s(std::size_t(bins) + 2, 0), hist_r(std::size_t(bins) + 2, 0) {}

  // Per-path values of paths [first, first + n), first a multiple of kBlock.
  void add(const std::vector<double>& s, const std::vector<double>& r,
           const detail::HistogramSpec& h) {
    detail::reduce_on_host(s, r, nullptr, h, stats, hist_s);
    const bool with_ref = !r.empty();
    const std::size_t n = s.size();
    std::vector<double> neg(std::min<std::size_t>(n, kBlock));
    for (std::size_t off = 0; off < n; off += kBlock) {
      const int m = int(std::min<std::size_t>(kBlock, n - off));
      // exp(+S) over the same paths that enter the moments (a non-finite R excludes the path).
      for (int i = 0; i < m; ++i) {
        const bool ok = !with_ref || physics::isfinite_(r[off + std::size_t(i)]);
        neg[std::size_t(i)] = ok ? -s[off + std::size_t(i)] : std::nan("");
      }
      plus.merge(detail::reduce_block_cpu(neg.data(), nullptr, m).ift);
    }
    if (with_ref) detail::add_to_histogram(r.data(), s.data(), n, h, hist_r);
  }
};

// sample() after the tables: result.config is the validated config P was built from.
void draw_samples(const detail::ForwardProblem& P, std::unique_ptr<detail::Backend> backend,
                  const RunOptions& options, Clock::time_point start, std::uint64_t count,
                  SampleResult& result) {
  const Config& c = result.config;
  detail::ChunkDriver driver(std::move(backend), c, P.steps, options, count, count, start);
  const int d = P.d;
  result.d = d;
  result.count = count;
  result.samples.resize(count * std::uint64_t(d));
  std::vector<float> part;
  driver.for_each_chunk(0, [&](std::uint64_t first, std::uint64_t n) {
    driver.backend().simulate_reverse(first, n, false, nullptr, nullptr, &part);
    std::copy(part.begin(), part.end(), result.samples.begin() + std::ptrdiff_t(first * d));
  });
  result.occupancy = detail::occupancy(c, result.samples, d, result.nonfinite);
  detail::check_nonfinite(c, "samples", result.nonfinite, count, result.warnings);
  result.performance = driver.performance();
  result.provenance = driver.provenance();
}

// The prior draws x(t_max) ~ N(0, I) of reverse paths [first, first + n), n * d: the function and
// stream every backend starts a reverse path with (physics::reverse_start, kReverseStart), whose
// values depend only on the path's id.
void reverse_starts(const detail::ForwardProblem& P, std::uint64_t first, std::uint64_t n,
                    std::vector<float>& x) {
  const std::size_t d = std::size_t(P.d);
  x.resize(n * d);
  for (std::uint64_t i = 0; i < n; ++i) {
    rng::PhiloxHostStream start(P.seed, rng::subsequence(rng::kReverseStart, first + i));
    physics::reverse_start(P.d, start, x.data() + i * d);
  }
}

// detailed_ft() after the tables: config.run.paths forward paths, then as many reverse paths.
void run_detailed_ft(const detail::ForwardProblem& P, std::unique_ptr<detail::Backend> backend,
                     const RunOptions& options, Clock::time_point start, std::uint64_t min_count,
                     DetailedFtResult& result) {
  const Config& c = result.config;
  const std::uint64_t N = c.run.paths;
  detail::ChunkDriver driver(std::move(backend), c, P.steps, options, N, 2 * N, start);
  detail::Backend& b = driver.backend();

  // Both sides' first paths: the automatic range, then they are reduced like any chunk. The
  // points only where the side is kept.
  std::vector<double> f_s, f_r, r_s, r_r;
  std::vector<float> f_x0, f_xN, r_x0, r_xN;
  PathValues* const keep_f = options.per_path;
  PathValues* const keep_r = options.per_path_reverse;
  const auto forward = [&](std::uint64_t first, std::uint64_t n) {
    b.simulate(first, n, f_s, f_r, nullptr, keep_f ? &f_x0 : nullptr, keep_f ? &f_xN : nullptr);
  };
  const auto reverse = [&](std::uint64_t first, std::uint64_t n) {
    b.simulate_reverse(first, n, true, &r_s, &r_r, keep_r ? &r_xN : nullptr);
    if (keep_r) reverse_starts(P, first, n, r_x0);
  };
  const std::uint64_t pilot = driver.pilot_paths();
  if (pilot > 0) {
    forward(0, pilot);
    reverse(0, pilot);
  }
  const detail::HistogramSpec hist =
      pilot > 0 ? detail::common_range(c.histogram.bins, f_s, r_s) : driver.fixed_range();
  Side fwd(hist.bins), rev(hist.bins);
  const auto keep_forward = [&] {
    if (keep_f) keep_f->append(f_s, f_r, f_x0, f_xN);
  };
  const auto keep_reverse = [&] {
    if (keep_r) keep_r->append(r_s, r_r, r_x0, r_xN);
  };
  const std::uint64_t sides_kept = (keep_f ? 1 : 0) + (keep_r ? 1 : 0);
  if (sides_kept > 0)
    detail::check_fits_in_memory(
        sides_kept * N * (2 * sizeof(double) + 2 * std::uint64_t(P.d) * sizeof(float)), "run.paths",
        "the per-path values of " + std::to_string(sides_kept) + " x " + std::to_string(N) +
            " paths");
  for (PathValues* to : {keep_f, keep_r})
    if (to) *to = PathValues{};
  if (pilot > 0) {
    fwd.add(f_s, f_r, hist);
    rev.add(r_s, r_r, hist);
    keep_forward();
    keep_reverse();
    driver.advance(2 * pilot);
  }
  driver.for_each_chunk(pilot, [&](std::uint64_t first, std::uint64_t n) {
    forward(first, n);
    fwd.add(f_s, f_r, hist);
    keep_forward();
  });
  driver.for_each_chunk(pilot, [&](std::uint64_t first, std::uint64_t n) {
    reverse(first, n);
    rev.add(r_s, r_r, hist);
    keep_reverse();
  });

  result.forward = detail::summarize(fwd.stats.taep, fwd.stats.nonfinite);
  result.reverse = detail::summarize(rev.stats.taep, rev.stats.nonfinite);
  detail::check_nonfinite(c, "forward paths", result.forward.nonfinite, N, result.warnings);
  detail::check_nonfinite(c, "reverse paths", result.reverse.nonfinite, N, result.warnings);
  result.forward_ift = detail::ift_summary(fwd.stats.ift);
  result.reverse_ift = detail::ift_summary(rev.plus);
  result.forward_histogram = detail::histogram_result(fwd.hist_s, hist);
  result.reverse_histogram = detail::histogram_result(rev.hist_s, hist);
  result.fit = detail::fit_detailed_ft(fwd.hist_s, rev.hist_s, fwd.stats.taep.n, rev.stats.taep.n,
                                       hist, min_count);
  if (P.reference) {
    result.forward_rms_path_error = fwd.stats.error.rms();
    result.reverse_rms_path_error = rev.stats.error.rms();
    result.reference_fit = detail::fit_detailed_ft(fwd.hist_r, rev.hist_r, fwd.stats.reference.n,
                                                   rev.stats.reference.n, hist, min_count);
  }
  detail::check_ift_support(result.forward_ift, result.forward.count, "forward", result.warnings);
  detail::check_ift_support(result.reverse_ift, result.reverse.count, "reverse", result.warnings);
  if (P.reference) {
    detail::check_path_error(*result.forward_rms_path_error, result.forward.variance, "forward",
                             result.warnings);
    detail::check_path_error(*result.reverse_rms_path_error, result.reverse.variance, "reverse",
                             result.warnings);
  }
  detail::check_fit(result.fit, "detailed-FT fit", result.warnings);
  result.performance = driver.performance();
  result.provenance = driver.provenance();
}

}  // namespace

SampleResult sample(const Problem& problem, std::uint64_t count, const RunOptions& options) {
  const auto start = Clock::now();
  SampleResult result;
  result.config = problem.config();
  if (count < 1 || count >= rng::kMaxPaths)
    throw ConfigError("count", "must be an integer in [1, 2^40) (got " + std::to_string(count) + ")");
  const Config& c = result.config;
  const detail::ForwardProblem& P = problem.forward();
  detail::check_fits_in_memory(count * std::uint64_t(P.d) * sizeof(float), "count",
                               "the " + std::to_string(count) + " samples");
  draw_samples(P, detail::make_backend(P, c.run.backend, c.run.threads), options, start, count,
               result);
  return result;
}

ReversePathValues simulate_reverse_paths(const Problem& problem, Backend backend, std::uint64_t first,
                                         std::uint64_t count, bool with_taep) {
  const Config& c = problem.config();
  const detail::ForwardProblem& P = problem.forward();
  auto b = detail::make_backend(P, backend, c.run.threads);
  ReversePathValues out;
  b->simulate_reverse(first, count, with_taep, &out.taep, &out.reference, &out.samples);
  return out;
}

DetailedFtResult detailed_ft(const Problem& problem, const RunOptions& options,
                             std::uint64_t min_count) {
  const auto start = Clock::now();
  DetailedFtResult result;
  result.config = problem.config();
  if (min_count < 1)
    throw ConfigError("min_count", "must be at least 1 (got " + std::to_string(min_count) + ")");
  const Config& c = result.config;
  const detail::ForwardProblem& P = problem.forward();
  run_detailed_ft(P, detail::make_backend(P, c.run.backend, c.run.threads), options, start,
                  min_count, result);
  return result;
}

}  // namespace taep

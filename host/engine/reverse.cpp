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
#include "taep/distributed.hpp"
#include "taep/error.hpp"
#include "taep/physics/philox.hpp"
#include "taep/physics/reverse_path.hpp"
#include "taep/physics/rng_streams.hpp"

namespace taep {
namespace {

using Clock = std::chrono::steady_clock;
constexpr std::uint64_t kBlock = physics::kReduceBlock;

// What one reduce block of one side (forward or reverse paths) reduces to: S and R moments, S - R
// and exp(-S) (stats), and exp(+S) (plus).
struct SideBlock {
  physics::PathStats stats;
  physics::LogSumExp plus;
  void merge(const SideBlock& o) {
    stats.merge(o.stats);
    plus.merge(o.plus);
  }
};
// A side's loop state: counts [S slots | R slots] (each [underflow, bins, overflow]); with
// `keep`, the per-path S and R.
using SideState = detail::LoopState<SideBlock>;
SideState side_state(int bins, bool keep) {
  return SideState(2 * (std::size_t(bins) + 2), keep ? 2 : 0, keep ? 2 : 0);
}

// One side's per-path values of paths [first, first + n): S, R and, where kept, the points.
struct Ends {
  std::vector<double> s, r;
  std::vector<float> x0, xN;
};

// Reduces them (first a multiple of kBlock) into a part.
void reduce_side(const Ends& e, const detail::HistogramSpec& h, detail::Part<SideBlock>& part) {
  const std::vector<double>& s = e.s;
  const std::vector<double>& r = e.r;
  std::vector<physics::PathStats> blocks;
  detail::reduce_blocks(s, r, nullptr, blocks);
  const bool with_ref = !r.empty();
  const std::size_t n = s.size(), slots = std::size_t(h.bins) + 2;
  std::vector<double> neg(std::min<std::size_t>(n, kBlock));
  for (std::size_t off = 0, k = 0; off < n; off += kBlock, ++k) {
    const int m = int(std::min<std::size_t>(kBlock, n - off));
    // exp(+S) over the same paths that enter the moments (a non-finite R excludes the path).
    for (int i = 0; i < m; ++i) {
      const bool ok = !with_ref || physics::isfinite_(r[off + std::size_t(i)]);
      neg[std::size_t(i)] = ok ? -s[off + std::size_t(i)] : std::nan("");
    }
    part.blocks.push_back({blocks[k], detail::reduce_block_cpu(neg.data(), nullptr, m).ift});
  }
  std::vector<std::uint64_t> hs(slots, 0), hr(slots, 0);
  detail::add_to_histogram(s.data(), r.empty() ? nullptr : r.data(), n, h, hs);
  if (with_ref) detail::add_to_histogram(r.data(), s.data(), n, h, hr);
  for (std::size_t i = 0; i < slots; ++i) part.counts[i] += hs[i], part.counts[slots + i] += hr[i];
  if (!part.f64.empty()) {
    detail::append(part.f64[0], s);
    detail::append(part.f64[1], r);
    detail::append(part.f32[0], e.x0);
    detail::append(part.f32[1], e.xN);
  }
}

// The [underflow, bins, overflow] counts of S (which 0) or R (which 1) of a side.
std::vector<std::uint64_t> side_counts(const SideState& st, int which) {
  const std::size_t slots = st.counts.size() / 2;
  return std::vector<std::uint64_t>(st.counts.begin() + std::ptrdiff_t(which * slots),
                                    st.counts.begin() + std::ptrdiff_t((which + 1) * slots));
}

// A sample loop's block: samples carry no statistics.
struct NoStats {
  void merge(const NoStats&) {}
};

// sample() after the tables: result.config is the validated config P was built from.
void draw_samples(const detail::ForwardProblem& P,
                  std::vector<std::unique_ptr<detail::Backend>> backend,
                  const RunOptions& options, Clock::time_point start, std::uint64_t count,
                  SampleResult& result) {
  const Config& c = result.config;
  detail::ChunkDriver driver(std::move(backend), c, P.steps, options, count, count, start);
  driver.enable_checkpoints("sample", "{\"count\": " + std::to_string(count) + "}");
  const int d = P.d;
  result.d = d;
  detail::LoopState<NoStats> st(0, 0, 1);
  if (is_root()) {
    driver.resume("samples", st);
    st.f32[0].reserve(count * std::uint64_t(d));
  }
  driver.ordered_loop("samples", st, [&](detail::Backend& b, std::uint64_t first, std::uint64_t n,
                                          detail::Part<NoStats>& part) {
    b.simulate_reverse(first, n, false, nullptr, nullptr, &part.f32[0]);
    part.blocks.resize((n + kBlock - 1) / kBlock);
  });
  result.performance = driver.performance();
  result.provenance = driver.provenance();
  if (!is_root()) return;  // an empty result (count 0) off rank 0
  result.count = count;
  result.samples = std::move(st.f32[0]);
  result.occupancy = detail::occupancy(c, result.samples, d, result.nonfinite);
  detail::check_nonfinite(c, "samples", result.nonfinite, count, result.warnings);
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
    physics::reverse_start(P.d, P.prior_std, start, x.data() + i * d);
  }
}

// detailed_ft() after the tables: config.run.paths forward paths, then as many reverse paths.
void run_detailed_ft(const detail::ForwardProblem& P,
                     std::vector<std::unique_ptr<detail::Backend>> backend,
                     const RunOptions& options, Clock::time_point start, std::uint64_t min_count,
                     DetailedFtResult& result) {
  const Config& c = result.config;
  const std::uint64_t N = c.run.paths;
  detail::ChunkDriver driver(std::move(backend), c, P.steps, options, N, 2 * N, start);
  driver.enable_checkpoints("dft", "{\"min_count\": " + std::to_string(min_count) + "}");
  detail::Backend& b = driver.backend();
  const bool root = is_root();

  const std::uint64_t sides_kept = (options.per_path ? 1 : 0) + (options.per_path_reverse ? 1 : 0);
  if (sides_kept > 0 && root)
    detail::check_fits_in_memory(
        sides_kept * N * (2 * sizeof(double) + 2 * std::uint64_t(P.d) * sizeof(float)), "run.paths",
        "the per-path values of " + std::to_string(sides_kept) + " x " + std::to_string(N) +
            " paths");
  SideState fwd = side_state(c.histogram.bins, options.per_path != nullptr);
  SideState rev = side_state(c.histogram.bins, options.per_path_reverse != nullptr);
  // Both sides' first paths (rank 0): the automatic range, then they are reduced like any chunk.
  // The points only where the side is kept.
  const bool keep_f = options.per_path != nullptr, keep_r = options.per_path_reverse != nullptr;
  const auto forward = [&](detail::Backend& on, std::uint64_t first, std::uint64_t n, Ends& e) {
    on.simulate(first, n, e.s, e.r, nullptr, keep_f ? &e.x0 : nullptr, keep_f ? &e.xN : nullptr);
  };
  const auto reverse = [&](detail::Backend& on, std::uint64_t first, std::uint64_t n, Ends& e) {
    on.simulate_reverse(first, n, true, &e.s, &e.r, keep_r ? &e.xN : nullptr);
    if (keep_r) reverse_starts(P, first, n, e.x0);
  };
  detail::HistogramSpec hist;
  if (root && driver.resume("forward", fwd)) {
    driver.resume("reverse", rev);
    hist = driver.resumed_histogram();
  } else if (root) {
    const std::uint64_t pilot = driver.pilot_paths();
    Ends f, r;
    if (pilot > 0) {
      forward(b, 0, pilot, f);
      reverse(b, 0, pilot, r);
    }
    hist = pilot > 0 ? detail::common_range(c.histogram.bins, f.s, r.s) : driver.fixed_range();
    if (pilot > 0) {
      detail::Part<SideBlock> pf = fwd.empty_part(), pr = rev.empty_part();
      reduce_side(f, hist, pf);
      reduce_side(r, hist, pr);
      fwd.fold_first(std::move(pf), pilot);
      rev.fold_first(std::move(pr), pilot);
      driver.advance(2 * pilot);
    }
    driver.record_histogram(hist);
    // The reverse side's pilot is in its state before its loop starts.
    driver.set_section("loop:reverse", rev.bytes());
  }
  hist = driver.share(hist);
  driver.ordered_loop("forward", fwd, [&](detail::Backend& on, std::uint64_t first, std::uint64_t n,
                                         detail::Part<SideBlock>& part) {
    Ends e;
    forward(on, first, n, e);
    reduce_side(e, hist, part);
  });
  driver.ordered_loop("reverse", rev, [&](detail::Backend& on, std::uint64_t first, std::uint64_t n,
                                          detail::Part<SideBlock>& part) {
    Ends e;
    reverse(on, first, n, e);
    reduce_side(e, hist, part);
  });
  result.performance = driver.performance();
  result.provenance = driver.provenance();
  if (!root) return;
  const auto keep = [](PathValues* to, SideState& st) {
    if (!to) return;
    *to = PathValues{};
    to->taep = std::move(st.f64[0]);
    to->reference = std::move(st.f64[1]);
    to->x0 = std::move(st.f32[0]);
    to->xN = std::move(st.f32[1]);
  };
  keep(options.per_path, fwd);
  keep(options.per_path_reverse, rev);
  const SideBlock f = fwd.fold.result(), r = rev.fold.result();
  const std::vector<std::uint64_t> f_hs = side_counts(fwd, 0), f_hr = side_counts(fwd, 1),
                                   r_hs = side_counts(rev, 0), r_hr = side_counts(rev, 1);

  result.forward = detail::summarize(f.stats.taep, f.stats.nonfinite);
  result.reverse = detail::summarize(r.stats.taep, r.stats.nonfinite);
  detail::check_nonfinite(c, "forward paths", result.forward.nonfinite, N, result.warnings);
  detail::check_nonfinite(c, "reverse paths", result.reverse.nonfinite, N, result.warnings);
  result.forward_ift = detail::ift_summary(f.stats.ift);
  result.reverse_ift = detail::ift_summary(r.plus);
  result.forward_histogram = detail::histogram_result(f_hs, hist);
  result.reverse_histogram = detail::histogram_result(r_hs, hist);
  result.fit = detail::fit_detailed_ft(f_hs, r_hs, f.stats.taep.n, r.stats.taep.n, hist, min_count);
  if (P.reference) {
    result.forward_rms_path_error = f.stats.error.rms();
    result.reverse_rms_path_error = r.stats.error.rms();
    result.reference_fit = detail::fit_detailed_ft(f_hr, r_hr, f.stats.reference.n,
                                                   r.stats.reference.n, hist, min_count);
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
  draw_samples(P, detail::make_backends(P, c), options, start, count,
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
  run_detailed_ft(P, detail::make_backends(P, c), options, start,
                  min_count, result);
  return result;
}

}  // namespace taep

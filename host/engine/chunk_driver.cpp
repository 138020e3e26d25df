// The shared chunk loop of the engine's entry points (chunk_driver.hpp).
#include "host/engine/chunk_driver.hpp"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "host/cpu/cpu_callback_backend.hpp"
#include "taep/error.hpp"

namespace taep {
namespace detail {

std::unique_ptr<Backend> make_backend(const ForwardProblem& problem, taep::Backend requested,
                                      int threads) {
  if (problem.callback) return make_callback_backend(problem, requested);
  if (resolve_backend(requested) == taep::Backend::cuda) return make_cuda_backend(problem);
  return make_cpu_backend(problem, threads);
}

void finite_range(const std::vector<double>& v, double& lo, double& hi) {
  lo = std::numeric_limits<double>::infinity();
  hi = -lo;
  for (double s : v)
    if (std::isfinite(s)) lo = std::min(lo, s), hi = std::max(hi, s);
}

void add_to_histogram(const double* v, const double* other, std::size_t n, const HistogramSpec& h,
                      std::vector<std::uint64_t>& counts) {
  const double inv_w = h.inv_width();
  for (std::size_t i = 0; i < n; ++i) {
    const int slot =
        physics::histogram_slot(v[i], other ? other[i] : 0.0, other != nullptr, h.lo, inv_w, h.bins);
    if (slot >= 0) counts[std::size_t(slot)]++;
  }
}

void reduce_on_host(const std::vector<double>& s, const std::vector<double>& r,
                    const std::vector<double>* aux, const HistogramSpec& h, physics::PathStats& stats,
                    std::vector<std::uint64_t>& counts) {
  constexpr std::size_t B = physics::kReduceBlock;
  const double* ref = r.empty() ? nullptr : r.data();
  const std::size_t n = s.size();
  for (std::size_t off = 0; off < n; off += B) {
    const int m = int(std::min(B, n - off));
    stats.merge(reduce_block_cpu(s.data() + off, ref ? ref + off : nullptr, m,
                                 aux ? aux->data() + off : nullptr));
  }
  add_to_histogram(s.data(), ref, n, h, counts);
}

HistogramSpec padded_range(int bins, const std::vector<double>& pilot_taep) {
  HistogramSpec h;
  h.bins = bins;
  double lo, hi;
  finite_range(pilot_taep, lo, hi);
  if (!(lo <= hi)) {
    lo = -1.0;
    hi = 1.0;
  }
  const double margin = hi > lo ? 0.1 * (hi - lo) : 0.5;
  h.lo = lo - margin;
  h.hi = hi + margin;
  return usable_range(h) ? h : widened_range(bins, lo, hi);
}

bool usable_range(const HistogramSpec& h) {
  return physics::histogram_range_usable(h.lo, h.hi, h.bins);
}

// For pilot values where the usual padding fails: all equal and so large that +-0.5 is lost in
// rounding (a zero width), or spread so wide that hi - lo overflows. The half width is at least a
// relative 1e-6 of the centre (so it survives rounding) and at most DBL_MAX / 4 (so the width stays
// finite); sides are clamped to +-DBL_MAX.
HistogramSpec widened_range(int bins, double lo, double hi) {
  constexpr double kMax = std::numeric_limits<double>::max();
  if (!(std::isfinite(lo) && std::isfinite(hi) && lo <= hi)) lo = -1.0, hi = 1.0;
  const double centre = 0.5 * lo + 0.5 * hi;
  const double spread = 0.5 * hi - 0.5 * lo;  // half the range; cannot overflow
  const double half = std::min(std::max({1.2 * spread, 0.5, 1e-6 * std::abs(centre)}), kMax / 4);
  HistogramSpec h;
  h.bins = bins;
  h.lo = std::max(centre - half, -kMax);
  h.hi = std::min(centre + half, kMax);
  return h;
}

namespace {

// Paths per chunk: config.run.chunk_paths, at most the backend's limit (what its buffers and
// index types hold; the default for 0), in whole blocks, at most `paths` rounded up to a block.
std::uint64_t chunk_size(const Config& c, const Backend& b, std::uint64_t paths) {
  constexpr std::uint64_t B = physics::kReduceBlock;
  std::uint64_t chunk = c.run.chunk_paths ? std::min(c.run.chunk_paths, b.max_chunk_paths())
                                          : b.max_chunk_paths();
  chunk = std::max<std::uint64_t>(B, (chunk + B - 1) / B * B);
  return std::min(chunk, std::max<std::uint64_t>(B, (paths + B - 1) / B * B));
}

}  // namespace

ChunkDriver::ChunkDriver(std::unique_ptr<Backend> backend, const Config& config, int steps,
                         const RunOptions& options, std::uint64_t paths, std::uint64_t work_paths,
                         Clock::time_point start)
    : backend_(std::move(backend)),
      config_(config),
      steps_(steps),
      options_(options),
      paths_(paths),
      work_paths_(work_paths),
      chunk_(chunk_size(config, *backend_, paths)),
      automatic_chunks_(config.run.chunk_paths == 0),
      start_(start) {}

std::uint64_t ChunkDriver::next_chunk(std::uint64_t chunk, double seconds) const {
  constexpr std::uint64_t B = physics::kReduceBlock;
  // At most 4x larger at a time (a fast first chunk says little), never below one block.
  const double want = seconds > 0 ? double(chunk) * kChunkSeconds / seconds : 4.0 * double(chunk);
  const double capped = std::min(want, 4.0 * double(chunk));
  const std::uint64_t blocks = std::uint64_t(std::max(1.0, std::floor(capped / double(B))));
  return std::min(chunk_, blocks * B);
}

bool ChunkDriver::automatic_range() const { return !(config_.histogram.lo && config_.histogram.hi); }

std::uint64_t ChunkDriver::pilot_paths() const {
  return automatic_range() ? std::min(paths_, kPilotPaths) : 0;
}

HistogramSpec ChunkDriver::fixed_range() const {
  HistogramSpec h;
  h.bins = config_.histogram.bins;
  h.lo = *config_.histogram.lo;
  h.hi = *config_.histogram.hi;
  return h;
}

void ChunkDriver::advance(std::uint64_t n) {
  done_ += n;
  if (!options_.on_progress) return;
  Progress p;
  p.paths_done = done_;
  p.paths_total = work_paths_;
  p.seconds = std::chrono::duration<double>(Clock::now() - start_).count();
  p.path_steps_per_second = p.seconds > 0 ? double(done_) * steps_ / p.seconds : 0.0;
  options_.on_progress(p);
}

ForwardTotals ChunkDriver::run_forward(bool with_aux, PathValues* keep) {
  ForwardTotals t;
  std::vector<double> taep, reference, aux;
  std::vector<float> x0, xN;  // kept paths' start and end points
  if (keep) {
    const std::uint64_t d = std::uint64_t(config_.target.mixture.dim());
    check_fits_in_memory(paths_ * (2 * sizeof(double) + 2 * d * sizeof(float)), "run.paths",
                         "the per-path values of " + std::to_string(paths_) + " paths");
    *keep = PathValues{};
  }
  const auto kept = [&] {
    if (keep) keep->append(taep, reference, x0, xN);
  };
  const auto simulate = [&](std::uint64_t first, std::uint64_t n) {
    backend_->simulate(first, n, taep, reference, with_aux ? &aux : nullptr, keep ? &x0 : nullptr,
                       keep ? &xN : nullptr);
  };
  const std::uint64_t pilot = pilot_paths();
  if (pilot > 0) simulate(0, pilot);
  t.hist = pilot > 0 ? padded_range(config_.histogram.bins, taep) : fixed_range();
  t.counts.assign(std::size_t(t.hist.bins) + 2, 0);
  if (pilot > 0) {
    reduce_on_host(taep, reference, with_aux ? &aux : nullptr, t.hist, t.stats, t.counts);
    kept();
    advance(pilot);
  }
  ChunkStats cs;
  for_each_chunk(pilot, [&](std::uint64_t first, std::uint64_t n) {
    if (keep) {
      simulate(first, n);
      reduce_on_host(taep, reference, with_aux ? &aux : nullptr, t.hist, t.stats, t.counts);
      kept();
      return;
    }
    backend_->run_chunk(first, n, t.hist, cs);
    for (const auto& b : cs.blocks) t.stats.merge(b);  // fixed order: path order
    for (std::size_t i = 0; i < t.counts.size(); ++i) t.counts[i] += cs.histogram[i];
  });
  return t;
}

PerformanceSummary ChunkDriver::performance() const {
  PerformanceSummary perf;
  perf.backend = backend_->name();
  perf.device = backend_->device();
  perf.threads = backend_->threads();
  perf.chunk_paths = largest_chunk_ ? largest_chunk_ : chunk_;
  perf.wall_seconds = std::chrono::duration<double>(Clock::now() - start_).count();
  const double path_steps = double(work_paths_) * steps_;
  perf.path_steps_per_second = perf.wall_seconds > 0 ? path_steps / perf.wall_seconds : 0.0;
  return perf;
}

Provenance ChunkDriver::provenance() const {
  return make_provenance(backend_->name(), backend_->device(), options_.command);
}

void check_fits_in_memory(std::uint64_t bytes, const std::string& field, const std::string& what) {
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGE_SIZE);
  if (pages <= 0 || page <= 0) return;
  const double have = double(pages) * double(page);
  if (double(bytes) <= have) return;
  char text[200];
  std::snprintf(text, sizeof text, "%s need %.3g GB of memory, more than this machine's %.3g GB",
                what.c_str(), double(bytes) * 1e-9, have * 1e-9);
  throw ConfigError(field, text);
}

TaepSummary summarize(const physics::Moments& m, double nonfinite) {
  TaepSummary s;
  s.count = std::uint64_t(m.n);
  if (s.count == 0) {
    const double none = std::nan("");
    s.mean = s.variance = s.skewness = s.excess_kurtosis = s.stderr_mean = s.stderr_variance = none;
    s.nonfinite = std::uint64_t(nonfinite);
    return s;
  }
  s.mean = m.mean;
  s.variance = m.variance();
  s.skewness = m.skewness();
  s.excess_kurtosis = m.excess_kurtosis();
  s.stderr_mean = std::sqrt(s.variance / m.n);  // m.n > 0 past the early return
  s.stderr_variance = m.variance_stderr();
  s.nonfinite = std::uint64_t(nonfinite);
  return s;
}

IftSummary ift_summary(const physics::LogSumExp& w) {
  IftSummary s;
  s.log_estimate = w.n > 0 ? w.log_mean() : std::nan("");
  s.estimate = std::exp(s.log_estimate);
  s.stderr_ = w.stderr_of_mean();
  s.ess = w.ess();
  s.ess_fraction = w.n > 0 ? s.ess / w.n : 0.0;
  return s;
}

HistogramResult histogram_result(const std::vector<std::uint64_t>& counts, const HistogramSpec& h) {
  HistogramResult r;
  r.underflow = counts.front();
  r.overflow = counts.back();
  r.counts.assign(counts.begin() + 1, counts.end() - 1);
  for (int i = 0; i <= h.bins; ++i) r.edges.push_back(h.lo + (h.hi - h.lo) * i / h.bins);
  return r;
}

}  // namespace detail
}  // namespace taep

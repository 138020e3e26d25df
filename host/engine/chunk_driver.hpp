#pragma once
// The chunk loop that run(), sample() and detailed_ft() share (docs/architecture.md, "Data flow of
// one run"): the backend, the chunk size, the histogram pilot, the host-side reduction in fixed
// block order, progress, and the result's performance and provenance. Paths are always visited in
// increasing id, in chunks of whole reduce blocks that start at path 0 or right after the pilot, so
// every statistic is bitwise independent of the chunk size and the thread count.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

#include "host/engine/backend.hpp"
#include "taep/engine.hpp"
#include "taep/result.hpp"

namespace taep {
namespace detail {

// The backend a run asks for (automatic: cuda when available).
std::unique_ptr<Backend> make_backend(const ForwardProblem& problem, taep::Backend requested,
                                      int threads);

// Paths 0 .. kPilotPaths-1 (of each side) fix the automatic histogram range. They are the run's own
// first paths: reduced on the host like a chunk, then the chunks go on after them, so no path is
// simulated twice and the counts do not depend on the chunking.
constexpr std::uint64_t kPilotPaths = 4 * physics::kReduceBlock;

// The smallest and largest finite value (lo > hi when there is none).
void finite_range(const std::vector<double>& v, double& lo, double& hi);

// The automatic range of a forward run: the pilot's finite S range with a 10% margin each side.
HistogramSpec padded_range(int bins, const std::vector<double>& pilot_taep);
// Whether h passes physics::histogram_range_usable (the rule validate applies to a configured
// range); widened_range gives one that does for any finite or non-finite lo, hi.
bool usable_range(const HistogramSpec& h);
HistogramSpec widened_range(int bins, double lo, double hi);

// Slot counts [underflow, bins, overflow] of v[0..n) (companion other, may be null), by
// physics::histogram_slot.
void add_to_histogram(const double* v, const double* other, std::size_t n, const HistogramSpec& h,
                      std::vector<std::uint64_t>& counts);

// Per-path values of paths [first, first + s.size()), first a multiple of kReduceBlock, reduced as
// a backend's run_chunk reduces them: one PathStats per reduce block in path order merged into
// `stats`, and S's histogram slots added to `counts`. r (closed form) may be empty, aux null.
void reduce_on_host(const std::vector<double>& s, const std::vector<double>& r,
                    const std::vector<double>* aux, const HistogramSpec& h, physics::PathStats& stats,
                    std::vector<std::uint64_t>& counts);

// What forward paths 0 .. paths-1 reduce to.
struct ForwardTotals {
  HistogramSpec hist;
  physics::PathStats stats;
  std::vector<std::uint64_t> counts;  // [underflow, bins, overflow]
};

class ChunkDriver {
 public:
  using Clock = std::chrono::steady_clock;
  // `paths`: paths per side, which sizes the chunks; `work_paths`: all paths the run simulates (the
  // progress total and the path-steps of the performance summary); `start`: when the run began.
  // config and options are held by reference: they must outlive the driver.
  ChunkDriver(std::unique_ptr<Backend> backend, const Config& config, int steps,
              const RunOptions& options, std::uint64_t paths, std::uint64_t work_paths,
              Clock::time_point start);

  Backend& backend() { return *backend_; }
  // The largest chunk a run may take (run.chunk_paths or the backend's limit).
  std::uint64_t chunk_paths() const { return chunk_; }
  // Whether config.histogram leaves the range to the pilot.
  bool automatic_range() const;
  // The pilot's size: min(paths, kPilotPaths) with an automatic range, else 0.
  std::uint64_t pilot_paths() const;
  // config.histogram's range, when it is fixed.
  HistogramSpec fixed_range() const;

  // Calls body(first, n) for paths [from, paths) in chunks, in path order, reporting progress after
  // each chunk. With an automatic chunk size (run.chunk_paths 0) the chunks start small and are
  // sized to take about kChunkSeconds each, up to the backend's limit, so progress comes at least
  // about once a second however slow a path is; every chunk is whole reduce blocks, so no
  // statistic depends on the sizes.
  template <class Body>
  void for_each_chunk(std::uint64_t from, Body&& body) {
    std::uint64_t chunk = automatic_chunks_ ? std::min(chunk_, kFirstChunk) : chunk_;
    for (std::uint64_t first = from; first < paths_;) {
      const std::uint64_t n = std::min(chunk, paths_ - first);
      const Clock::time_point t0 = Clock::now();
      body(first, n);
      advance(n);
      largest_chunk_ = std::max(largest_chunk_, n);
      first += n;
      if (automatic_chunks_)
        chunk = next_chunk(chunk, std::chrono::duration<double>(Clock::now() - t0).count());
    }
  }
  // `n` more paths done: reports progress.
  void advance(std::uint64_t n);

  // Forward paths 0 .. paths-1: the pilot (with an automatic range) through Backend::simulate and
  // reduce_on_host, the rest through Backend::run_chunk; with_aux reduces the backend's per-path
  // side value (the Hutchinson probe-noise variance). With `keep`, every chunk goes the pilot's way
  // (the same reduction, so the same bits) and keep gets every path's values.
  ForwardTotals run_forward(bool with_aux, PathValues* keep = nullptr);

  // The backend, device, chunk size and timing so far; work_paths * steps path-steps.
  PerformanceSummary performance() const;
  // This build and host, now, on this backend, with options.command.
  Provenance provenance() const;

 private:
  std::unique_ptr<Backend> backend_;
  const Config& config_;
  int steps_;
  const RunOptions& options_;
  // The next automatic chunk after one of `chunk` paths took `seconds`.
  std::uint64_t next_chunk(std::uint64_t chunk, double seconds) const;
  static constexpr std::uint64_t kFirstChunk = 16 * physics::kReduceBlock;
  static constexpr double kChunkSeconds = 0.5;

  std::uint64_t paths_, work_paths_, chunk_, done_ = 0, largest_chunk_ = 0;
  bool automatic_chunks_;
  Clock::time_point start_;
};

// ConfigError(field, ...) when `bytes` (for `what`) exceed this machine's physical memory, so a
// request too large fails by name before allocating instead of as bad_alloc or the OOM killer.
void check_fits_in_memory(std::uint64_t bytes, const std::string& field, const std::string& what);

// The public summaries of the accumulators (result.hpp).
TaepSummary summarize(const physics::Moments& taep, double nonfinite);
IftSummary ift_summary(const physics::LogSumExp& w);
HistogramResult histogram_result(const std::vector<std::uint64_t>& counts, const HistogramSpec& h);

}  // namespace detail
}  // namespace taep

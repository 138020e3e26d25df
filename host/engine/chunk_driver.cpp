// The shared chunk loop of the engine's entry points (chunk_driver.hpp).
#include "host/engine/chunk_driver.hpp"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "host/cpu/cpu_callback_backend.hpp"
#include "host/engine/checkpoint.hpp"
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

void reduce_blocks(const std::vector<double>& s, const std::vector<double>& r,
                   const std::vector<double>* aux, std::vector<physics::PathStats>& blocks) {
  constexpr std::size_t B = physics::kReduceBlock;
  const double* ref = r.empty() ? nullptr : r.data();
  const std::size_t n = s.size();
  for (std::size_t off = 0; off < n; off += B) {
    const int m = int(std::min(B, n - off));
    blocks.push_back(reduce_block_cpu(s.data() + off, ref ? ref + off : nullptr, m,
                                      aux ? aux->data() + off : nullptr));
  }
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
  if (chunk > kSegmentPaths) chunk -= chunk % kSegmentPaths;  // whole segments (ordered_loop)
  return std::min(chunk, std::max<std::uint64_t>(B, (paths + B - 1) / B * B));
}

std::vector<std::unique_ptr<Backend>> just(std::unique_ptr<Backend> b) {
  std::vector<std::unique_ptr<Backend>> v;
  v.push_back(std::move(b));
  return v;
}
}  // namespace

std::vector<std::unique_ptr<Backend>> make_backends(const ForwardProblem& problem,
                                                    const Config& config) {
  const int D = config.run.devices;
  if (D == 1) return just(make_backend(problem, config.run.backend, config.run.threads));
  if (problem.callback)  // one Python (or other) function, called from one thread
    throw ConfigError("run.devices", "must be 1 with a score callback (got " + std::to_string(D) + ")");
  // CPU threads: run.threads (0: every core) shared out, at least one each.
  const int all = config.run.threads > 0 ? config.run.threads
                                         : int(std::max(1u, std::thread::hardware_concurrency()));
  std::vector<std::unique_ptr<Backend>> v;
  for (int k = 0; k < D; ++k) {
    DeviceSlot slot(k, D);
    const int threads = std::max(1, all / D + (k < all % D ? 1 : 0));
    v.push_back(make_backend(problem, config.run.backend, threads));
  }
  return v;
}

ChunkDriver::ChunkDriver(std::unique_ptr<Backend> backend, const Config& config, int steps,
                         const RunOptions& options, std::uint64_t paths, std::uint64_t work_paths,
                         Clock::time_point start)
    : ChunkDriver(just(std::move(backend)), config, steps, options, paths, work_paths, start) {}

ChunkDriver::ChunkDriver(std::vector<std::unique_ptr<Backend>> backends, const Config& config,
                         int steps, const RunOptions& options, std::uint64_t paths,
                         std::uint64_t work_paths, Clock::time_point start)
    : backends_(std::move(backends)),
      config_(config),
      steps_(steps),
      options_(options),
      paths_(paths),
      work_paths_(work_paths),
      chunk_(chunk_size(config, *backends_.front(), paths)),
      automatic_chunks_(config.run.chunk_paths == 0),
      start_(start) {}

std::uint64_t ChunkDriver::next_chunk(std::uint64_t chunk, double seconds) const {
  constexpr std::uint64_t B = physics::kReduceBlock;
  // At most 4x larger at a time (a fast first chunk says little), never below one block.
  const double want = seconds > 0 ? double(chunk) * kChunkSeconds / seconds : 4.0 * double(chunk);
  const double capped = std::min(want, 4.0 * double(chunk));
  const std::uint64_t blocks = std::uint64_t(std::max(1.0, std::floor(capped / double(B))));
  const std::uint64_t next = std::min(chunk_, blocks * B);
  // Whole segments once a chunk holds one (ranks then send one accumulator per segment).
  return next >= kSegmentPaths ? next - next % kSegmentPaths : next;
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

void ChunkDriver::enable_checkpoints(const std::string& kind, const std::string& extra) {
  kind_ = kind;
  identity_ = run_identity(config_, backend().name(), extra);
  last_checkpoint_ = Clock::now();
  if (options_.resume.empty() || world().rank() != 0) return;
  Checkpoint saved = read_checkpoint(options_.resume, "--resume");
  check_resumable(saved, kind_, identity_, options_.resume);
  resumed_ = std::move(saved.sections);
  sections_ = resumed_;
}

std::string ChunkDriver::resumed_section(const std::string& name) const {
  const auto it = resumed_.find(name);
  return it == resumed_.end() ? std::string() : it->second;
}

HistogramSpec ChunkDriver::share(const HistogramSpec& h) {
  ByteWriter w;
  w.put(h);
  const std::string b = world().broadcast(w.take());
  return ByteReader(b, "the histogram range").get<HistogramSpec>();
}

HistogramSpec ChunkDriver::resumed_histogram() const {
  const std::string b = resumed_section("histogram");
  return ByteReader(b, "the checkpoint's histogram range").get<HistogramSpec>();
}

void ChunkDriver::record_histogram(const HistogramSpec& h) {
  ByteWriter w;
  w.put(h);
  set_section("histogram", w.take());
}

void ChunkDriver::write_checkpoint_now(const std::string& name, const std::string& bytes) {
  Checkpoint c;
  c.kind = kind_;
  c.identity = identity_;
  c.sections = sections_;
  c.sections["loop:" + name] = bytes;
  write_checkpoint(options_.checkpoint, c, "--checkpoint");
  last_checkpoint_ = Clock::now();
}

ChunkDriver::Round ChunkDriver::share_round(const std::string& name,
                                            const std::function<std::string()>& state,
                                            std::uint64_t next, std::uint64_t chunk,
                                            bool stop_seen) {
  Communicator& comm = world();
  std::uint64_t control[3] = {next, chunk, 0};
  if (comm.rank() == 0) {
    const bool stop = stop_seen || stop_requested();
    const bool due = !options_.checkpoint.empty() && next < paths_ &&
                     std::chrono::duration<double>(Clock::now() - last_checkpoint_).count() >=
                         options_.checkpoint_every;
    if (!options_.checkpoint.empty() && (stop || due)) {
      TAEP_EXPECTS(!kind_.empty(), "a checkpoint of a command that did not enable them");
      write_checkpoint_now(name, state());
    }
    control[2] = stop ? 1 : 0;
  }
  ByteWriter w;
  for (std::uint64_t v : control) w.put(v);
  const std::string b = comm.broadcast(w.take());
  ByteReader r(b, "a round's control");
  Round round{r.get<std::uint64_t>(), r.get<std::uint64_t>()};
  if (r.get<std::uint64_t>() != 0) throw stopped(done_, work_paths_, "paths", options_.checkpoint);
  return round;
}

ForwardTotals ChunkDriver::run_forward(bool with_aux, PathValues* keep) {
  const bool root = world().rank() == 0;
  ForwardTotals t;
  // Kept per path: S and R (f64), the start and end points x0, xN (f32).
  LoopState<physics::PathStats> st(std::size_t(config_.histogram.bins) + 2, keep ? 2 : 0,
                                   keep ? 2 : 0);
  if (keep && root) {
    const std::uint64_t d = std::uint64_t(config_.target.mixture.dim());
    check_fits_in_memory(paths_ * (2 * sizeof(double) + 2 * d * sizeof(float)), "run.paths",
                         "the per-path values of " + std::to_string(paths_) + " paths");
  }
  // Paths [first, first + n) on backend b through their per-path values (the pilot, --per-path):
  // reduced on the host like a chunk, kept when asked; their S and R stay in taep and reference.
  const auto by_path = [&](Backend& b, std::uint64_t first, std::uint64_t n,
                           Part<physics::PathStats>& part, std::vector<double>& taep,
                           std::vector<double>& reference) {
    std::vector<double> aux;
    std::vector<float> x0, xN;
    b.simulate(first, n, taep, reference, with_aux ? &aux : nullptr, keep ? &x0 : nullptr,
               keep ? &xN : nullptr);
    reduce_blocks(taep, reference, with_aux ? &aux : nullptr, part.blocks);
    if (keep) {
      append(part.f64[0], taep);
      append(part.f64[1], reference);
      append(part.f32[0], x0);
      append(part.f32[1], xN);
    }
  };
  const auto histogram = [&](const std::vector<double>& taep, const std::vector<double>& reference,
                             std::vector<std::uint64_t>& counts) {
    add_to_histogram(taep.data(), reference.empty() ? nullptr : reference.data(), taep.size(),
                     t.hist, counts);
  };
  // The pilot's paths (rank 0): they fix the automatic range, then they are the loop's first.
  if (root && resume("forward", st)) {
    t.hist = resumed_histogram();
  } else if (root) {
    const std::uint64_t pilot = pilot_paths();
    if (pilot == 0) t.hist = fixed_range();
    if (pilot > 0) {
      Part<physics::PathStats> part = st.empty_part();
      std::vector<double> taep, reference;
      by_path(backend(), 0, pilot, part, taep, reference);
      t.hist = padded_range(config_.histogram.bins, taep);
      histogram(taep, reference, part.counts);
      st.fold_first(std::move(part), pilot);
      advance(pilot);
    }
    record_histogram(t.hist);
  }
  t.hist = share(t.hist);
  ordered_loop("forward", st, [&](Backend& b, std::uint64_t first, std::uint64_t n,
                                  Part<physics::PathStats>& part) {
    if (keep) {
      std::vector<double> taep, reference;
      by_path(b, first, n, part, taep, reference);
      histogram(taep, reference, part.counts);
      return;
    }
    ChunkStats cs;
    b.run_chunk(first, n, t.hist, cs);
    append(part.blocks, cs.blocks);
    for (std::size_t i = 0; i < part.counts.size(); ++i) part.counts[i] += cs.histogram[i];
  });
  t.stats = st.fold.result();
  t.counts = std::move(st.counts);
  if (keep && root) {
    *keep = PathValues{};
    keep->taep = std::move(st.f64[0]);
    keep->reference = std::move(st.f64[1]);
    keep->x0 = std::move(st.f32[0]);
    keep->xN = std::move(st.f32[1]);
  }
  return t;
}

PerformanceSummary ChunkDriver::performance() const {
  PerformanceSummary perf;
  perf.backend = backend().name();
  perf.device = backend().device();
  perf.threads = 0;
  bool same = true;
  for (const auto& b : backends_) {
    perf.threads += b->threads();
    same = same && b->device() == perf.device;
  }
  if (backends_.size() > 1 && same) perf.device += " x" + std::to_string(backends_.size());
  for (std::size_t k = 1; k < backends_.size() && !same; ++k) perf.device += " | " + backends_[k]->device();
  perf.chunk_paths = largest_chunk_ ? largest_chunk_ : chunk_;
  perf.wall_seconds = std::chrono::duration<double>(Clock::now() - start_).count();
  const double path_steps = double(work_paths_) * steps_;
  perf.path_steps_per_second = perf.wall_seconds > 0 ? path_steps / perf.wall_seconds : 0.0;
  return perf;
}

Provenance ChunkDriver::provenance() const {
  return make_provenance(backend().name(), backend().device(), options_.command);
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

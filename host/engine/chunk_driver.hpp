#pragma once
// The chunk loop that run(), sample() and detailed_ft() share (docs/architecture.md, "Data flow of
// one run"): the backend, the chunk size, the histogram pilot, the host-side reduction in fixed
// block order, progress, and the result's performance and provenance. Paths are always visited in
// increasing id, in chunks of whole reduce blocks that start at path 0 or right after the pilot, so
// every statistic is bitwise independent of the chunk size and the thread count.
#include <algorithm>
#include <chrono>
#include <exception>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "host/engine/backend.hpp"
#include "host/engine/byte_stream.hpp"
#include "host/engine/ordered_fold.hpp"
#include "host/mpi/communicator.hpp"
#include "taep/error.hpp"
#include "taep/engine.hpp"
#include "taep/result.hpp"

namespace taep {
namespace detail {

// The backend a run asks for (automatic: cuda when available).
std::unique_ptr<Backend> make_backend(const ForwardProblem& problem, taep::Backend requested,
                                      int threads);
// config.run.devices of them (docs/distributed.md, "Several devices in one process"): backend k made
// for device slot k (a DeviceSlot: its GPU), the CPU threads shared out among them.
std::vector<std::unique_ptr<Backend>> make_backends(const ForwardProblem& problem,
                                                    const Config& config);

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

// Per-path values of consecutive paths, the first a multiple of kReduceBlock, reduced as a
// backend's run_chunk reduces them: one PathStats per reduce block, in path order, appended to
// `blocks`. r (closed form) may be empty, aux null.
void reduce_blocks(const std::vector<double>& s, const std::vector<double>& r,
                   const std::vector<double>* aux, std::vector<physics::PathStats>& blocks);

template <class T>
void append(std::vector<T>& to, const std::vector<T>& from) {
  to.insert(to.end(), from.begin(), from.end());
}

// What a rank's body produced for its paths of one round: one Block per reduce block in path
// order, histogram slots to add, and per-path arrays to append (shaped like the loop's).
template <class Block>
struct Part {
  std::vector<Block> blocks;
  std::vector<std::uint64_t> counts;
  std::vector<std::vector<double>> f64;
  std::vector<std::vector<float>> f32;

  // An empty part with these many histogram slots and arrays.
  static Part shaped(std::size_t n_counts, std::size_t n_f64, std::size_t n_f32) {
    Part p;
    p.counts.assign(n_counts, 0);
    p.f64.resize(n_f64);
    p.f32.resize(n_f32);
    return p;
  }
  Part empty_like() const { return shaped(counts.size(), f64.size(), f32.size()); }
  // Appends the next paths' part `o` (counts added).
  void join(const Part& o) {
    append(blocks, o.blocks);
    for (std::size_t i = 0; i < o.counts.size(); ++i) counts[i] += o.counts[i];
    for (std::size_t i = 0; i < o.f64.size(); ++i) append(f64[i], o.f64[i]);
    for (std::size_t i = 0; i < o.f32.size(); ++i) append(f32[i], o.f32[i]);
  }
};

// What one loop over paths (the forward paths of a run, one side of dft, the draws of sample) has
// folded so far, on rank 0: paths [0, next) in `fold` (ordered_fold.hpp), the histogram slots in
// `counts` (integers: their sums do not depend on the order), and the kept per-path arrays in path
// order (f64: S, R, ...; f32: samples, points).
template <class Block>
struct LoopState {
  std::uint64_t next = 0;
  Fold<Block> fold;
  std::vector<std::uint64_t> counts;
  std::vector<std::vector<double>> f64;
  std::vector<std::vector<float>> f32;

  LoopState(std::size_t n_counts, std::size_t n_f64, std::size_t n_f32)
      : counts(n_counts, 0), f64(n_f64), f32(n_f32) {}
  // An empty part shaped like this loop's.
  Part<Block> empty_part() const {
    return Part<Block>::shaped(counts.size(), f64.size(), f32.size());
  }
  // Folds `part`, the loop's first paths [0, n) made outside it (the pilot), into a fresh state.
  void fold_first(Part<Block>&& part, std::uint64_t n) {
    for (const Block& b : part.blocks) fold.add_block(b);
    counts = std::move(part.counts);
    f64 = std::move(part.f64);
    f32 = std::move(part.f32);
    next = n;
  }
  std::string bytes() const {
    ByteWriter w;
    w.put(next);
    w.put(fold);
    w.put_vector(counts);
    w.put(std::uint64_t(f64.size()));
    for (const auto& a : f64) w.put_vector(a);
    w.put(std::uint64_t(f32.size()));
    for (const auto& a : f32) w.put_vector(a);
    return w.take();
  }
  // Restores what bytes() wrote for a loop of the same shape; `what` names the source in errors.
  void load(const std::string& b, const std::string& what) {
    ByteReader r(b, what);
    next = r.get<std::uint64_t>();
    fold = r.get<Fold<Block>>();
    counts = r.get_vector<std::uint64_t>();
    if (r.get<std::uint64_t>() != f64.size()) throw Error(what + ": a loop of another shape");
    for (auto& a : f64) a = r.get_vector<double>();
    if (r.get<std::uint64_t>() != f32.size()) throw Error(what + ": a loop of another shape");
    for (auto& a : f32) a = r.get_vector<float>();
  }
};

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
  // The same driving several backends at once (make_backends): every round's paths of this rank
  // are cut into one contiguous range per backend, each run on its own thread.
  ChunkDriver(std::vector<std::unique_ptr<Backend>> backends, const Config& config, int steps,
              const RunOptions& options, std::uint64_t paths, std::uint64_t work_paths,
              Clock::time_point start);

  // The first backend (the pilot's, and the only one unless run.devices > 1).
  Backend& backend() { return *backends_.front(); }
  const Backend& backend() const { return *backends_.front(); }
  // The largest chunk a run may take (run.chunk_paths or the backend's limit).
  std::uint64_t chunk_paths() const { return chunk_; }
  // Whether config.histogram leaves the range to the pilot.
  bool automatic_range() const;
  // The pilot's size: min(paths, kPilotPaths) with an automatic range, else 0.
  std::uint64_t pilot_paths() const;
  // config.histogram's range, when it is fixed.
  HistogramSpec fixed_range() const;

  // Checkpoints (options.checkpoint, options.resume; checkpoint.hpp) of a command `kind` whose own
  // parameters are `extra` (a JSON object's text). With options.resume, rank 0 reads the file and
  // refuses another kind or identity. Call once, before any loop.
  void enable_checkpoints(const std::string& kind, const std::string& extra = "{}");
  // Section `name` of the checkpoint being resumed (rank 0; empty when absent or not resuming).
  std::string resumed_section(const std::string& name) const;
  // A section that later checkpoints carry (rank 0), e.g. the histogram range.
  void set_section(const std::string& name, std::string bytes) { sections_[name] = std::move(bytes); }
  // Restores loop `name` from the checkpoint being resumed (rank 0): true when it was there.
  template <class Block>
  bool resume(const std::string& name, LoopState<Block>& st) {
    const std::string b = resumed_section("loop:" + name);
    if (b.empty()) return false;
    st.load(b, "checkpoint '" + options_.resume + "', loop " + name);
    done_ += st.next;
    return true;
  }

  // Rank 0's histogram range on every rank.
  HistogramSpec share(const HistogramSpec& h);
  // The range the checkpoint being resumed fixed (rank 0), and the section that records `h`.
  HistogramSpec resumed_histogram() const;
  void record_histogram(const HistogramSpec& h);

  // Paths [st.next, paths) of the loop `name`, in rounds (docs/distributed.md): in each, rank r of
  // R simulates the r-th of R consecutive ranges of equal length (whole reduce blocks) by
  // body(backend, first, n, part) (once per backend, on its own thread, for a range cut into one
  // piece per backend), and rank 0 folds every rank's part in path order into st, reports
  // progress and writes a checkpoint when one is due. One rank: a round is one chunk. With an
  // automatic chunk size (run.chunk_paths 0) the ranges start small and grow to take about
  // kChunkSeconds each, up to the backend's limit, so progress comes about once a second however
  // slow a path is; no statistic depends on the sizes. On every rank; st is rank 0's. Throws
  // Interrupted (on every rank) after options.stop_requested() turned true on any rank.
  template <class Block, class Body>
  void ordered_loop(const std::string& name, LoopState<Block>& st, Body&& body) {
    Communicator& comm = world();
    const int R = comm.size(), me = comm.rank();
    // Paths per backend; a rank's range is that times its backends.
    std::uint64_t chunk = automatic_chunks_ ? std::min(chunk_, kFirstChunk) : chunk_;
    const std::uint64_t D = backends_.size();
    bool stop_seen = false;
    for (;;) {
      const Round round =
          share_round(name, [&st] { return st.bytes(); }, st.next, chunk * D, stop_seen);
      if (round.start >= paths_) break;
      // Ranges of whole segments where the chunk allows (rank 0's first ends at a segment
      // boundary), so ranks send one accumulator per segment rather than one per block.
      const std::uint64_t base = round.chunk % kSegmentPaths == 0
                                     ? round.start - round.start % kSegmentPaths
                                     : round.start;
      const std::uint64_t a =
          std::min(paths_, std::max(round.start, base + std::uint64_t(me) * round.chunk));
      const std::uint64_t b = std::min(paths_, base + std::uint64_t(me + 1) * round.chunk);
      Part<Block> part = st.empty_part();
      const Clock::time_point t0 = Clock::now();
      if (a < b && D == 1) body(*backends_.front(), a, b - a, part);
      if (a < b && D > 1) on_every_backend(a, b, part, body);  // (past the end: nothing to do)
      largest_chunk_ = std::max(largest_chunk_, b > a ? (b - a + D - 1) / D : 0);
      ByteWriter w;
      w.put(std::uint8_t(stop_requested() ? 1 : 0));
      w.put_vector(fold_items(a / physics::kReduceBlock, part.blocks));
      w.put_vector(part.counts);
      for (const auto& v : part.f64) w.put_vector(v);
      for (const auto& v : part.f32) w.put_vector(v);
      const std::vector<std::string> all = comm.gather(w.take());
      if (me == 0) {
        for (const std::string& bytes : all) {
          ByteReader r(bytes, "a rank's part of round " + name);
          stop_seen = r.get<std::uint8_t>() != 0 || stop_seen;
          for (const FoldItem<Block>& item : r.template get_vector<FoldItem<Block>>()) {
            TAEP_EXPECTS(item.block == st.fold.blocks, "a rank's blocks out of path order");
            st.fold.add(item);
          }
          const auto counts = r.template get_vector<std::uint64_t>();
          for (std::size_t i = 0; i < counts.size(); ++i) st.counts[i] += counts[i];
          for (auto& v : st.f64) append(v, r.template get_vector<double>());
          for (auto& v : st.f32) append(v, r.template get_vector<float>());
        }
        const std::uint64_t end = std::min(paths_, base + std::uint64_t(R) * round.chunk);
        advance(end - round.start);
        st.next = end;
      }
      if (automatic_chunks_)
        chunk = next_chunk(chunk, std::chrono::duration<double>(Clock::now() - t0).count());
    }
    if (me == 0) set_section("loop:" + name, st.bytes());
  }
  // Paths [a, b) cut into one range of whole blocks per backend, each simulated by body on its own
  // thread (for a GPU: with its device current), their parts joined into `part` in path order.
  template <class Block, class Body>
  void on_every_backend(std::uint64_t a, std::uint64_t b, Part<Block>& part, Body& body) {
    constexpr std::uint64_t B = physics::kReduceBlock;
    const std::size_t D = backends_.size();
    const std::uint64_t per = ((b - a + B - 1) / B + D - 1) / D * B;
    std::vector<Part<Block>> parts(D);
    std::vector<std::exception_ptr> errors(D);
    std::vector<std::thread> threads;
    for (std::size_t k = 0; k < D; ++k) {
      const std::uint64_t lo = a + k * per, hi = std::min(b, lo + per);
      if (lo >= hi) break;
      parts[k] = part.empty_like();
      threads.emplace_back([&, k, lo, hi] {
        try {
          const DeviceSlot slot(static_cast<int>(k), static_cast<int>(D));
          if (backends_[k]->name() == "cuda") bind_cuda_device();
          body(*backends_[k], lo, hi - lo, parts[k]);
        } catch (...) {
          errors[k] = std::current_exception();
        }
      });
    }
    for (std::thread& t : threads) t.join();
    for (const std::exception_ptr& e : errors)
      if (e) std::rethrow_exception(e);
    for (const Part<Block>& p : parts) part.join(p);
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
  std::vector<std::unique_ptr<Backend>> backends_;
  const Config& config_;
  int steps_;
  const RunOptions& options_;
  // The next automatic chunk after one of `chunk` paths took `seconds`.
  std::uint64_t next_chunk(std::uint64_t chunk, double seconds) const;
  static constexpr std::uint64_t kFirstChunk = 16 * physics::kReduceBlock;
  static constexpr double kChunkSeconds = 0.5;

  // Where the next round starts and each rank's share (rank 0's values, broadcast); on rank 0 it
  // first writes a checkpoint when one is due or a stop was seen (loop `name`'s state()),
  // then every rank throws Interrupted if so.
  struct Round {
    std::uint64_t start, chunk;
  };
  Round share_round(const std::string& name, const std::function<std::string()>& state,
                    std::uint64_t next, std::uint64_t chunk, bool stop_seen);
  bool stop_requested() const { return options_.stop_requested && options_.stop_requested(); }
  void write_checkpoint_now(const std::string& name, const std::string& bytes);

  std::uint64_t paths_, work_paths_, chunk_, done_ = 0, largest_chunk_ = 0;
  bool automatic_chunks_;
  Clock::time_point start_;
  // Checkpoints: what later ones carry, what is being resumed, and when the last was written.
  std::string kind_, identity_;
  std::map<std::string, std::string> sections_, resumed_;
  Clock::time_point last_checkpoint_;
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

// The shared chunk driver (host/engine/chunk_driver.hpp): every path of a run is simulated exactly
// once — the histogram pilot's paths are reduced as part of the run, not simulated again by the
// chunks — for the exact-score and the learned-score backends, and run() is this driver.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "host/engine/chunk_driver.hpp"
#include "support/test_support.hpp"
#include "taep/taep.hpp"

namespace {

using taep::detail::ChunkDriver;
using taep::detail::ChunkStats;
using taep::detail::HistogramSpec;

// Forwards to a real backend and counts, per path id, how often a forward path was simulated.
class CountingBackend final : public taep::detail::Backend {
 public:
  CountingBackend(std::unique_ptr<taep::detail::Backend> inner, std::uint64_t paths)
      : hits(paths, 0), inner_(std::move(inner)) {}

  std::string name() const override { return inner_->name(); }
  std::string device() const override { return inner_->device(); }
  int threads() const override { return inner_->threads(); }
  std::uint64_t max_chunk_paths() const override {
    return limit ? limit : inner_->max_chunk_paths();
  }
  void run_chunk(std::uint64_t first, std::uint64_t count, const HistogramSpec& hist,
                 ChunkStats& out) override {
    mark(first, count);
    ++chunks;
    largest_chunk = std::max(largest_chunk, count);
    inner_->run_chunk(first, count, hist, out);
  }
  void simulate(std::uint64_t first, std::uint64_t count, std::vector<double>& taep,
                std::vector<double>& reference, std::vector<double>* aux, std::vector<float>* x0,
                std::vector<float>* xN) override {
    mark(first, count);
    ++simulate_calls;
    inner_->simulate(first, count, taep, reference, aux, x0, xN);
  }

  std::vector<int> hits;
  int chunks = 0, simulate_calls = 0;
  std::uint64_t limit = 0;  // a max_chunk_paths of the test's choosing (0: the inner backend's)
  std::uint64_t largest_chunk = 0;

 private:
  void mark(std::uint64_t first, std::uint64_t count) {
    for (std::uint64_t i = first; i < first + count; ++i) {
      ASSERT_LT(i, hits.size()) << "a path beyond the run";
      ++hits[i];
    }
  }
  std::unique_ptr<taep::detail::Backend> inner_;
};

struct Counted {
  taep::detail::ForwardTotals totals;
  std::vector<int> hits;
  int chunks = 0, simulate_calls = 0;
  std::uint64_t largest_chunk = 0;
};

Counted run_counted(taep::Config c, std::uint64_t limit = 0) {
  taep::validate(c);
  const taep::detail::ForwardProblem P = taep::detail::build_forward_problem(c);
  auto counting = std::make_unique<CountingBackend>(
      taep::detail::make_backend(P, c.run.backend, c.run.threads), c.run.paths);
  CountingBackend* seen = counting.get();
  seen->limit = limit;
  const taep::RunOptions options;
  ChunkDriver driver(std::move(counting), c, P.steps, options, c.run.paths, c.run.paths,
                     std::chrono::steady_clock::now());
  Counted out;
  out.totals = driver.run_forward(P.mlp && P.mlp->hutchinson() && P.mlp->probes >= 2);
  out.hits = seen->hits;
  out.chunks = seen->chunks;
  out.simulate_calls = seen->simulate_calls;
  out.largest_chunk = seen->largest_chunk;
  return out;
}

void expect_each_path_once(const Counted& r, const std::string& what) {
  std::uint64_t wrong = 0, first_wrong = r.hits.size();
  for (std::size_t i = 0; i < r.hits.size(); ++i)
    if (r.hits[i] != 1 && wrong++ == 0) first_wrong = i;
  EXPECT_EQ(wrong, 0u) << what << ": first at path " << first_wrong << " (simulated "
                       << (first_wrong < r.hits.size() ? r.hits[first_wrong] : 0) << " times)";
  EXPECT_EQ(r.totals.stats.taep.n + r.totals.stats.nonfinite, double(r.hits.size())) << what;
}

void expect_same_as_run(const Counted& r, const taep::Config& c, const std::string& what) {
  const taep::RunResult run = taep::run(c);
  EXPECT_EQ(run.taep.count, std::uint64_t(r.totals.stats.taep.n)) << what;
  EXPECT_EQ(run.taep.mean, r.totals.stats.taep.mean) << what;
  EXPECT_EQ(run.taep.variance, r.totals.stats.taep.variance()) << what;
  EXPECT_EQ(run.histogram.underflow, r.totals.counts.front()) << what;
  EXPECT_EQ(run.histogram.overflow, r.totals.counts.back()) << what;
  EXPECT_EQ(run.histogram.counts,
            std::vector<std::uint64_t>(r.totals.counts.begin() + 1, r.totals.counts.end() - 1))
      << what;
}

std::string fixture(const std::string& name) { return std::string(TAEP_FIXTURE_DIR) + "/" + name; }

// More paths than the pilot (16384), not a multiple of a chunk: pilot, then chunks after it.
constexpr std::uint64_t kPaths = 4 * 4096 + 3 * 4096 + 1000;

// The learned-score backend (Hutchinson with 2 probes, so the pilot also carries the probe-noise
// side values), automatic histogram range.
TEST(ChunkDriver, LearnedScorePilotPathsAreSimulatedOnce) {
  taep::Config c = taep::parse_config(
      R"({"model": {"type": "mlp", "weights": ")" + fixture("mlp_d2_score.safetensors") +
      R"(", "divergence": "hutchinson", "probes": 2},
          "schedule": {"steps": 5}, "run": {"chunk_paths": 8192, "backend": "cpu"}})");
  c.run.paths = kPaths;
  const Counted r = run_counted(c);
  expect_each_path_once(r, "mlp");
  EXPECT_EQ(r.simulate_calls, 1) << "the pilot";
  EXPECT_EQ(r.chunks, 2) << "(3 * 4096 + 1000 paths after the pilot in chunks of 8192)";
  expect_same_as_run(r, c, "mlp");
}

TEST(ChunkDriver, ExactScorePilotPathsAreSimulatedOnce) {
  taep::Config c = taep_test::ring_config(2, 0.1, kPaths, 10);
  c.run.backend = taep::Backend::cpu;
  c.run.chunk_paths = 4096;
  const Counted r = run_counted(c);
  expect_each_path_once(r, "mixture");
  EXPECT_EQ(r.simulate_calls, 1);
  EXPECT_EQ(r.chunks, 4);
  expect_same_as_run(r, c, "mixture");
}

// A fixed histogram range needs no pilot: every path goes through the backend's own reduction.
TEST(ChunkDriver, FixedRangeRunsOnlyChunks) {
  taep::Config c = taep_test::ring_config(2, 0.1, 5000, 10);
  c.run.backend = taep::Backend::cpu;
  c.histogram.lo = -5.0;
  c.histogram.hi = 5.0;
  const Counted r = run_counted(c);
  expect_each_path_once(r, "fixed range");
  EXPECT_EQ(r.simulate_calls, 0);
  EXPECT_EQ(r.totals.hist.lo, -5.0);
  EXPECT_EQ(r.totals.hist.hi, 5.0);
  expect_same_as_run(r, c, "fixed range");
}

// Progress counts every path once, in order, ending at the total.
TEST(ChunkDriver, ProgressCountsEachPathOnce) {
  taep::Config c = taep_test::ring_config(2, 0.1, kPaths, 5);
  c.run.backend = taep::Backend::cpu;
  c.run.chunk_paths = 4096;
  std::vector<std::uint64_t> done;
  taep::RunOptions options;
  options.on_progress = [&](const taep::Progress& p) {
    EXPECT_EQ(p.paths_total, kPaths);
    done.push_back(p.paths_done);
  };
  taep::run(c, options);
  ASSERT_FALSE(done.empty());
  EXPECT_EQ(done.front(), 4 * 4096u) << "the pilot";
  for (std::size_t i = 1; i < done.size(); ++i) EXPECT_GT(done[i], done[i - 1]);
  EXPECT_EQ(done.back(), kPaths);
}

// A chunk_paths beyond the backend's limit is lowered to it: the backend never gets a larger chunk
// (the CUDA MLP backend indexes a chunk's paths with int), and the result is the same.
TEST(ChunkDriver, ChunksNeverExceedTheBackendsLimit) {
  taep::Config c = taep_test::ring_config(2, 0.1, kPaths, 5);
  c.run.backend = taep::Backend::cpu;
  c.run.chunk_paths = std::uint64_t(1) << 40;
  c.histogram.lo = -5.0;
  c.histogram.hi = 5.0;
  const Counted r = run_counted(c, 8192);
  EXPECT_EQ(r.largest_chunk, 8192u);
  expect_each_path_once(r, "limited chunks");
  expect_same_as_run(r, c, "limited chunks");
}

}  // namespace

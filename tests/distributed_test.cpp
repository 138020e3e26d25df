// One answer at any scale (docs/distributed.md): the fixed fold over segments gives the same bits
// however the blocks are split into ranks and rounds; a run stopped and resumed from its checkpoint
// ends bitwise equal to one that never stopped (run, dft, sample, with per-path values, at other
// chunk sizes and thread counts on resume); a checkpoint of another config or command is refused
// naming what differs; and the round machinery carries path ids past 2^32. The same with MPI ranks
// (mpirun -np 1, 2, 3): tests/mpi_test.sh.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <unistd.h>

#include "host/engine/checkpoint.hpp"
#include "host/engine/chunk_driver.hpp"
#include "host/engine/ordered_fold.hpp"
#include "support/test_support.hpp"
#include "taep/taep.hpp"
#include "taep/sample.hpp"
#include "taep/train.hpp"

namespace {

using taep::detail::Fold;
using taep::detail::kSegmentBlocks;
using taep::physics::PathStats;

// A block of `m` pseudo-random values (S and R), reduced as a backend reduces one.
PathStats random_block(std::mt19937_64& rng, int m) {
  std::normal_distribution<double> g(0.3, 1.7);
  std::vector<double> s(static_cast<std::size_t>(m)), r(static_cast<std::size_t>(m));
  for (int i = 0; i < m; ++i) s[std::size_t(i)] = g(rng), r[std::size_t(i)] = g(rng);
  return taep::detail::reduce_block_cpu(s.data(), r.data(), m);
}

std::string bits(const PathStats& p) {
  return std::string(reinterpret_cast<const char*>(&p), sizeof p);
}

TEST(OrderedFold, AnySplitIntoRanksAndRoundsGivesTheSameBits) {
  std::mt19937_64 rng(11);
  const std::size_t n = 3 * kSegmentBlocks + 37;
  std::vector<PathStats> blocks;
  for (std::size_t i = 0; i < n; ++i) blocks.push_back(random_block(rng, 16));
  Fold<PathStats> one;
  for (const auto& b : blocks) one.add_block(b);
  // The fold is not the flat left fold past one segment (that is its point: a fixed shape)...
  PathStats flat;
  for (const auto& b : blocks) flat.merge(b);
  EXPECT_NE(bits(flat), bits(one.result()));
  // ...but within one segment it is.
  Fold<PathStats> first;
  PathStats flat_first;
  for (std::size_t i = 0; i < kSegmentBlocks; ++i) first.add_block(blocks[i]), flat_first.merge(blocks[i]);
  EXPECT_EQ(bits(flat_first), bits(first.result()));

  for (int trial = 0; trial < 50; ++trial) {
    // Random cuts: each piece is a rank's range in some round, sent as fold_items.
    Fold<PathStats> split;
    for (std::size_t at = 0; at < n;) {
      const std::size_t len = std::min<std::size_t>(n - at, 1 + rng() % (trial % 2 ? 700 : 40));
      const std::vector<PathStats> piece(blocks.begin() + std::ptrdiff_t(at),
                                         blocks.begin() + std::ptrdiff_t(at + len));
      for (const auto& item : taep::detail::fold_items(at, piece)) {
        ASSERT_EQ(item.block, split.blocks);
        split.add(item);
      }
      at += len;
    }
    ASSERT_EQ(split.blocks, n);
    EXPECT_EQ(bits(one.result()), bits(split.result())) << "trial " << trial;
  }
}

// A temp file name that does not exist yet.
std::string temp_path(const std::string& stem) {
  return ::testing::TempDir() + "/taep-" + stem + "-" + std::to_string(::getpid()) + ".ckpt";
}

// Options that stop the run at the `calls`-th poll, with a checkpoint at `path`.
taep::RunOptions stopping(const std::string& path, int calls, std::shared_ptr<int> polls) {
  taep::RunOptions o;
  o.checkpoint = path;
  o.stop_requested = [polls, calls] { return ++*polls >= calls; };
  return o;
}

taep::Config two_segment_config() {
  taep::Config c = taep_test::ring_config(1, 0.05, 2 * taep::detail::kSegmentPaths + 12345, 3);
  c.run.chunk_paths = 65536;
  c.run.threads = 2;
  return c;
}

TEST(Checkpoint, RunResumesBitwiseEqualAtOtherChunksAndThreads) {
  const taep::Config c = two_segment_config();
  taep::PathValues whole_paths;
  taep::RunOptions plain;
  plain.per_path = &whole_paths;
  const taep::RunResult whole = taep::run(c, plain);
  for (int calls : {1, 41}) {  // after the pilot; past the first segment
    const std::string path = temp_path("run" + std::to_string(calls));
    auto polls = std::make_shared<int>(0);
    taep::PathValues first_paths;
    taep::RunOptions o = stopping(path, calls, polls);
    o.per_path = &first_paths;
    EXPECT_THROW(taep::run(c, o), taep::Interrupted);
    // The rest at other chunk sizes and thread counts, checkpointing again on the way.
    taep::Config c2 = c;
    c2.run.chunk_paths = 4096 * 7;
    c2.run.threads = 1;
    taep::PathValues rest_paths;
    taep::RunOptions resume;
    resume.resume = path;
    resume.checkpoint = path;
    resume.checkpoint_every = 0.5;
    resume.per_path = &rest_paths;
    const taep::RunResult resumed = taep::run(c2, resume);
    taep_test::expect_same_statistics(whole, resumed, "stopped at poll " + std::to_string(calls));
    EXPECT_EQ(whole.reference->rms_path_error, resumed.reference->rms_path_error);
    EXPECT_EQ(whole_paths.taep, rest_paths.taep);
    EXPECT_EQ(whole_paths.reference, rest_paths.reference);
    std::remove(path.c_str());
  }
}

TEST(Checkpoint, DetailedFtAndSampleResumeBitwiseEqual) {
  taep::Config c = taep_test::ring_config(1, 0.05, 3 * 16384, 20);
  c.run.chunk_paths = 16384;
  const taep::DetailedFtResult whole = taep::detailed_ft(c);
  const taep::SampleResult whole_s = taep::sample(c, 40000);
  for (int calls : {2, 5}) {  // in the forward loop, then in the reverse one
    const std::string path = temp_path("dft" + std::to_string(calls));
    auto polls = std::make_shared<int>(0);
    EXPECT_THROW(taep::detailed_ft(c, stopping(path, calls, polls)), taep::Interrupted);
    taep::RunOptions resume;
    resume.resume = path;
    const taep::DetailedFtResult r = taep::detailed_ft(c, resume);
    EXPECT_EQ(whole.forward.mean, r.forward.mean);
    EXPECT_EQ(whole.forward.variance, r.forward.variance);
    EXPECT_EQ(whole.reverse.mean, r.reverse.mean);
    EXPECT_EQ(whole.reverse.variance, r.reverse.variance);
    EXPECT_EQ(whole.reverse_ift.log_estimate, r.reverse_ift.log_estimate);
    EXPECT_EQ(whole.forward_histogram.counts, r.forward_histogram.counts);
    EXPECT_EQ(whole.reverse_histogram.counts, r.reverse_histogram.counts);
    EXPECT_EQ(whole.fit.slope, r.fit.slope);
    std::remove(path.c_str());

    const std::string spath = temp_path("sample" + std::to_string(calls));
    auto spolls = std::make_shared<int>(0);
    EXPECT_THROW(taep::sample(c, 40000, stopping(spath, calls, spolls)), taep::Interrupted);
    taep::RunOptions sresume;
    sresume.resume = spath;
    const taep::SampleResult s = taep::sample(c, 40000, sresume);
    EXPECT_EQ(whole_s.samples, s.samples);
    EXPECT_EQ(whole_s.occupancy.counts, s.occupancy.counts);
    std::remove(spath.c_str());
  }
}

TEST(Checkpoint, AnotherConfigOrCommandIsRefusedNamingTheField) {
  taep::Config c = taep_test::ring_config(1, 0.05, 5 * 16384, 5);
  c.run.chunk_paths = 16384;
  const std::string path = temp_path("refuse");
  auto polls = std::make_shared<int>(0);
  EXPECT_THROW(taep::run(c, stopping(path, 2, polls)), taep::Interrupted);
  taep::RunOptions resume;
  resume.resume = path;
  taep::Config other = c;
  other.model.collapse->eps = 0.02;
  try {
    taep::run(other, resume);
    FAIL() << "resumed under another config";
  } catch (const taep::ConfigError& e) {
    EXPECT_EQ(e.field(), "model.collapse.eps") << e.what();
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
  other = c;
  other.run.paths += 4096;
  try {
    taep::run(other, resume);
    FAIL() << "resumed with another path count";
  } catch (const taep::ConfigError& e) {
    EXPECT_EQ(e.field(), "run.paths") << e.what();
  }
  // Threads and chunk sizes are not part of a run's identity.
  other = c;
  other.run.threads = 1;
  other.run.chunk_paths = 0;
  EXPECT_NO_THROW(taep::run(other, resume));
  try {
    taep::sample(c, 100, resume);
    FAIL() << "a run's checkpoint resumed as a sample";
  } catch (const taep::ConfigError& e) {
    EXPECT_EQ(e.field(), "--resume") << e.what();
  }
  // A damaged file is refused, not read.
  {
    std::FILE* f = std::fopen(path.c_str(), "r+b");
    ASSERT_NE(f, nullptr);
    std::fseek(f, 40, SEEK_SET);
    std::fputc('#', f);
    std::fclose(f);
  }
  try {
    taep::run(c, resume);
    FAIL() << "a damaged checkpoint was read";
  } catch (const taep::ConfigError& e) {
    EXPECT_EQ(e.field(), "--resume");
    EXPECT_NE(std::string(e.what()).find("checksum"), std::string::npos) << e.what();
  }
  std::remove(path.c_str());
}

TEST(Checkpoint, TrainingResumesToTheSameWeights) {
  const taep::TrainConfig c = taep::parse_train_config(
      R"({"network": {"hidden": [16, 16]}, "optimizer": {"steps": 600, "batch": 64},
          "run": {"log_every": 100, "threads": 1}})");
  const taep::TrainResult whole = taep::train(c);
  const std::string path = temp_path("train");
  auto polls = std::make_shared<int>(0);
  taep::TrainOptions stop;
  stop.checkpoint = path;
  stop.stop_requested = [polls] { return ++*polls >= 4; };  // after 3 of 6 log windows
  EXPECT_THROW(taep::train(c, stop), taep::Interrupted);
  taep::TrainConfig c2 = c;
  c2.threads = 2;
  taep::TrainOptions resume;
  resume.resume = path;
  const taep::TrainResult resumed = taep::train(c2, resume);
  ASSERT_EQ(whole.log.size(), resumed.log.size());
  for (std::size_t i = 0; i < whole.log.size(); ++i) {
    EXPECT_EQ(whole.log[i].step, resumed.log[i].step);
    EXPECT_EQ(whole.log[i].loss, resumed.log[i].loss) << "log entry " << i;
  }
  ASSERT_EQ(whole.model.layers.size(), resumed.model.layers.size());
  for (std::size_t l = 0; l < whole.model.layers.size(); ++l) {
    EXPECT_EQ(whole.model.layers[l].weight, resumed.model.layers[l].weight) << "EMA layer " << l;
    EXPECT_EQ(whole.last.layers[l].weight, resumed.last.layers[l].weight) << "last layer " << l;
  }
  taep::TrainConfig other = c;
  other.optimizer.lr *= 2;
  try {
    taep::train(other, resume);
    FAIL() << "resumed under another learning rate";
  } catch (const taep::ConfigError& e) {
    EXPECT_EQ(e.field(), "optimizer.lr") << e.what();
  }
  std::remove(path.c_str());
}

TEST(SeveralDevices, OneProcessDrivingSeveralBackendsGivesTheSameBits) {
  // run.devices CPU backends stand in for GPUs: each takes its piece of every round on its own
  // thread, and the result is that of one backend, with per-path values, dft and samples too.
  taep::Config c = taep_test::ring_config(1, 0.05, 3 * 16384 + 4096 * 5 + 17, 20);
  c.run.threads = 2;
  c.run.chunk_paths = 16384;
  taep::Config multi = c;
  multi.run.devices = 3;
  taep::PathValues one_paths, multi_paths;
  taep::RunOptions o1, o3;
  o1.per_path = &one_paths;
  o3.per_path = &multi_paths;
  const taep::RunResult one = taep::run(c, o1);
  const taep::RunResult three = taep::run(multi, o3);
  taep_test::expect_same_statistics(one, three, "run.devices 3");
  EXPECT_EQ(one_paths.taep, multi_paths.taep);
  EXPECT_EQ(taep::run(c).taep.variance, taep::run(multi).taep.variance);  // through run_chunk
  const taep::DetailedFtResult d1 = taep::detailed_ft(c), d3 = taep::detailed_ft(multi);
  EXPECT_EQ(d1.reverse.mean, d3.reverse.mean);
  EXPECT_EQ(d1.reverse_histogram.counts, d3.reverse_histogram.counts);
  EXPECT_EQ(taep::sample(c, 30000).samples, taep::sample(multi, 30000).samples);
  EXPECT_EQ(three.performance.threads, 3);  // 2 shared out, at least one each
}

// A backend that simulates nothing: each block's statistics come from its index alone, so the
// driver's rounds can carry a run past 2^32 paths in a second. It checks that every block is
// asked for once, in order, and that the last path id is paths - 1.
class SyntheticBackend final : public taep::detail::Backend {
 public:
  explicit SyntheticBackend(std::uint64_t paths) : paths_(paths) {}
  std::string name() const override { return "synthetic"; }
  std::string device() const override { return ""; }
  std::uint64_t max_chunk_paths() const override { return std::uint64_t(1) << 28; }
  void run_chunk(std::uint64_t first, std::uint64_t count, const taep::detail::HistogramSpec&,
                 taep::detail::ChunkStats& out) override {
    EXPECT_EQ(first, next_) << "chunks out of order";
    next_ = first + count;
    EXPECT_LE(next_, paths_);
    out.blocks.clear();
    constexpr std::uint64_t B = taep::physics::kReduceBlock;
    for (std::uint64_t b = first / B; b * B < first + count; ++b) {
      PathStats p;
      const double m = double(std::min(B, paths_ - b * B));
      p.taep.n = m;
      p.taep.mean = double(b % 1000) * 1e-3;
      p.ift.n = m;
      p.ift.shift = -p.taep.mean;
      p.ift.sum = p.ift.sum2 = m;
      out.blocks.push_back(p);
    }
    out.histogram.assign(12, 0);
    out.histogram[1] = count;
  }
  void simulate(std::uint64_t, std::uint64_t, std::vector<double>&, std::vector<double>&,
                std::vector<double>*, std::vector<float>*, std::vector<float>*) override {
    ADD_FAILURE() << "simulate: a fixed range needs no pilot";
  }
  std::uint64_t next_ = 0;

 private:
  std::uint64_t paths_;
};

TEST(LargeRuns, RoundsCarryPathIdsPast2To32) {
  taep::Config c = taep_test::ring_config(1, 0.05, (std::uint64_t(1) << 32) + 3 * 4096 + 17, 1);
  c.histogram.bins = 10;
  c.histogram.lo = -1.0;
  c.histogram.hi = 1.0;
  auto backend = std::make_unique<SyntheticBackend>(c.run.paths);
  SyntheticBackend* seen = backend.get();
  const taep::RunOptions options;
  taep::detail::ChunkDriver driver(std::move(backend), c, 1, options, c.run.paths, c.run.paths,
                                   std::chrono::steady_clock::now());
  const taep::detail::ForwardTotals t = driver.run_forward(false);
  EXPECT_EQ(seen->next_, c.run.paths);
  EXPECT_EQ(t.stats.taep.n, double(c.run.paths));  // exact in a double below 2^53
  EXPECT_EQ(t.counts[1], c.run.paths);
}

TEST(LargeRuns, PathIdsAbove2To32AreTheirOwn) {
  // Paths 2^32 + i are not paths i again (no 32-bit truncation of an id anywhere on the CPU).
  const taep::Config c = taep_test::ring_config(1, 0.05, 1, 5);
  const std::uint64_t top = std::uint64_t(1) << 32;
  const taep::PathValues low = taep::simulate_paths(c, taep::Backend::cpu, 0, 4096);
  const taep::PathValues high = taep::simulate_paths(c, taep::Backend::cpu, top, 4096);
  const taep::PathValues across = taep::simulate_paths(c, taep::Backend::cpu, top - 4096, 8192);
  ASSERT_EQ(high.taep.size(), 4096u);
  EXPECT_NE(low.taep, high.taep);
  // The same path ids give the same values whatever range they are asked in.
  for (std::size_t i = 0; i < 4096; ++i) EXPECT_EQ(across.taep[4096 + i], high.taep[i]) << i;
}

}  // namespace

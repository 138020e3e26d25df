// taep::track (taep/track.hpp): TAEP and coverage per snapshot of a short training, each row checked
// against the engine's own run, sample and coverage of that snapshot, and the errors.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "host/io/npy.hpp"
#include "support/safetensors_support.hpp"
#include "support/test_support.hpp"
#include "taep/coverage.hpp"
#include "taep/taep.hpp"
#include "taep/sample.hpp"
#include "taep/track.hpp"
#include "taep/train.hpp"

namespace {

using taep_test::expect_config_error;

// A short ring training with snapshots at 100, 200, 300 (built once for the suite).
struct Trained {
  std::string dir;
  std::string holdout;
  std::vector<double> holdout_rows;
};

const Trained& trained() {
  static const Trained t = [] {
    Trained r;
    // Per process: ctest runs each test in its own process, in parallel.
    const std::string tag = std::to_string(::getpid());
    r.dir = ::testing::TempDir() + "taep_track_snapshots_" + tag;
    std::remove((r.dir + "/manifest.json").c_str());
    for (const char* f : {"/step_00000100.safetensors", "/step_00000200.safetensors",
                          "/step_00000300.safetensors"})
      std::remove((r.dir + f).c_str());
    taep::TrainConfig c = taep::default_train_config();
    c.optimizer.steps = 300;
    c.optimizer.batch = 128;
    c.network.hidden = {16, 16};
    c.log_every = 100;
    c.threads = 1;
    taep::TrainOptions o;
    o.snapshot_every = 100;
    o.snapshot_dir = r.dir;
    taep::train(c, o);
    // Held-out "real" samples: draws of the ring itself.
    taep::Config ring = taep::default_config();
    ring.schedule.steps = 50;
    const taep::SampleResult s = taep::sample(ring, 400);
    r.holdout_rows.assign(s.samples.begin(), s.samples.end());
    r.holdout = ::testing::TempDir() + "taep_track_holdout_" + tag + ".npy";
    std::ofstream(r.holdout, std::ios::binary)
        << taep::detail::npy_bytes({"x", {400, 2}, s.samples.data(), true});
    return r;
  }();
  return t;
}

taep::TrackConfig small_track() {
  taep::TrackConfig c;
  c.snapshots = trained().dir;
  c.holdout = trained().holdout;
  c.samples = 300;
  c.overrides.paths = 500;
  c.overrides.steps = 40;
  c.overrides.threads = 1;
  return c;
}

TEST(Track, EveryRowIsTheEnginesOwnRunSampleAndCoverageOfItsSnapshot) {
  const taep::TrackConfig cfg = small_track();
  const taep::TrackResult r = taep::track(cfg);
  ASSERT_EQ(r.rows.size(), 3u);
  EXPECT_EQ(r.rows[0].step, 100u);
  EXPECT_EQ(r.rows[2].step, 300u);
  EXPECT_TRUE(r.rows[2].is_reference);
  EXPECT_FALSE(r.rows[2].taep.has_value());  // against itself S = 0: no row of its own
  ASSERT_TRUE(r.config.run.has_value());
  for (int i = 0; i < 2; ++i) {
    const taep::TrackRow& row = r.rows[std::size_t(i)];
    ASSERT_TRUE(row.taep && row.coverage);
    // The same run by hand: the snapshot as model, the last snapshot as the reference network.
    taep::Config c = *r.config.run;
    c.model.weights = cfg.snapshots + "/" + row.file;
    const taep::RunResult direct = taep::run(c);
    taep_test::expect_same_statistics(*row.taep, direct, row.file);
    // The coverage of the snapshot's samples against the held-out rows.
    c.reference = taep::ReferenceConfig{};
    const taep::SampleResult s = taep::sample(c, 300);
    const std::vector<double> fake(s.samples.begin(), s.samples.end());
    const taep::CoverageResult cov = taep::coverage_metrics(
        {trained().holdout_rows.data(), trained().holdout_rows.size() / 2, 2}, {fake.data(), 300, 2});
    EXPECT_EQ(row.coverage->coverage, cov.coverage);
    EXPECT_EQ(row.coverage->precision, cov.precision);
    EXPECT_EQ(row.coverage->density, cov.density);
    EXPECT_EQ(row.coverage->recall, cov.recall);
  }
  // The tables hold one line per snapshot.
  const std::string csv = taep::track_to_csv(r);
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 4);
  EXPECT_NE(taep::track_to_json(r).find("\"is_reference\": true"), std::string::npos);
}

TEST(Track, AgainstTheAnalyticTargetEveryRowHasTaep) {
  taep::TrackConfig cfg = small_track();
  cfg.reference = taep::TrackReference::config;
  cfg.holdout.clear();
  const taep::TrackResult r = taep::track(cfg);
  ASSERT_EQ(r.rows.size(), 3u);
  EXPECT_EQ(r.reference, "analytic");
  for (const auto& row : r.rows) {
    ASSERT_TRUE(row.taep.has_value());
    EXPECT_FALSE(row.coverage.has_value());
    EXPECT_GT(row.taep->taep.mean, 0.0);  // <S> is a KL divergence (docs/physics.md section 5)
  }
}

TEST(Track, ErrorsNameTheInput) {
  taep::TrackConfig c = small_track();
  c.snapshots = ::testing::TempDir() + "taep_no_such_snapshots";
  expect_config_error([&] { taep::track(c); }, "snapshots", "cannot read");
  const std::string bad = ::testing::TempDir() + "taep_track_bad_" + std::to_string(::getpid());
  std::system(("mkdir -p " + bad).c_str());
  std::ofstream(bad + "/manifest.json") << R"({"format": "something", "version": 1})";
  c.snapshots = bad;
  expect_config_error([&] { taep::track(c); }, "snapshots", "taep-snapshots manifest");
  c = small_track();
  const std::string wide = ::testing::TempDir() + "taep_track_wide_" + std::to_string(::getpid()) + ".csv";
  std::ofstream(wide) << "1,2,3\n4,5,6\n";
  c.holdout = wide;
  expect_config_error([&] { taep::track(c); }, "holdout", "d = 3");
}

}  // namespace

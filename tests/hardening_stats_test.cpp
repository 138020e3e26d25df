// Regression tests of the "Hardening" issue: histogram slots and automatic ranges that cannot leave
// the counts array for any value, histogram.range widths that validation refuses, and runs whose
// paths are all non-finite (null statistics and a warning, or an error).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "host/engine/chunk_driver.hpp"
#include "host/engine/dft_fit.hpp"
#include "host/engine/result_warnings.hpp"
#include "support/test_support.hpp"
#include "taep/error.hpp"
#include "taep/mlp.hpp"
#include "taep/physics/accumulators.hpp"
#include "taep/sample.hpp"

namespace {

using taep::detail::HistogramSpec;
using taep::physics::histogram_bin;
using taep::physics::histogram_slot;

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kMax = std::numeric_limits<double>::max();

void expect_usable(const HistogramSpec& h) {
  const double width = h.hi - h.lo;
  EXPECT_TRUE(width > 0.0 && std::isfinite(width)) << "[" << h.lo << ", " << h.hi << ")";
  EXPECT_TRUE(std::isfinite(h.inv_width()) && h.inv_width() > 0.0);
}

TEST(HardeningHistogram, SlotStaysInTheArrayForAnyValueAndRange) {
  const int bins = 10;
  const double nan = std::nan("");
  const std::vector<double> values = {0.0, 1.0, -1.0, 1e300, -1e300, kMax, -kMax, kInf, -kInf, nan};
  const std::vector<double> los = {0.0, 1e300, -1e300, kMax, nan, -kInf};
  const std::vector<double> inv_ws = {1.0, kInf, 0.0, -1.0, nan, 1e300};
  for (double lo : los)
    for (double inv_w : inv_ws)
      for (double s : values) {
        const int b = histogram_bin(s, lo, inv_w, bins);
        EXPECT_TRUE(b >= -1 && b <= bins) << s << " " << lo << " " << inv_w << " -> " << b;
        const int slot = histogram_slot(s, 0.0, false, lo, inv_w, bins);
        EXPECT_TRUE(slot >= -1 && slot <= bins + 1) << s << " " << lo << " " << inv_w;
      }
  // A zero-width bin at s == lo was 0 * inf = NaN, cast to INT_MIN.
  EXPECT_EQ(histogram_bin(1e20, 1e20, kInf, bins), bins);
}

TEST(HardeningHistogram, AutomaticRangeHasAPositiveFiniteWidth) {
  for (double v : {1e20, 1e300, -1e300, kMax, -kMax, 0.0}) {
    SCOPED_TRACE(v);
    const std::vector<double> same(100, v);
    const HistogramSpec h = taep::detail::padded_range(100, same);
    expect_usable(h);
    EXPECT_LE(h.lo, v);
    EXPECT_GE(h.hi, v);
    expect_usable(taep::detail::common_range(100, same, same));
  }
  const std::vector<double> wide = {-1e308, 1e308};
  expect_usable(taep::detail::padded_range(100, wide));
  expect_usable(taep::detail::common_range(100, wide, wide));
  expect_usable(taep::detail::common_range(100, {kMax}, {-kMax}));
  expect_usable(taep::detail::padded_range(100, {kInf, std::nan("")}));
}

TEST(HardeningHistogram, UsualRangesAreUnchanged) {
  const HistogramSpec h = taep::detail::padded_range(50, {-2.0, 3.0, 1.0});
  EXPECT_EQ(h.lo, -2.0 - 0.1 * 5.0);
  EXPECT_EQ(h.hi, 3.0 + 0.1 * 5.0);
  const HistogramSpec one = taep::detail::padded_range(50, {4.0});
  EXPECT_EQ(one.lo, 3.5);
  EXPECT_EQ(one.hi, 4.5);
}

// The trained ring8 network with its weights scaled so far that its score overflows float on every
// path: S is non-finite for all of them.
taep::Problem overflowing_problem(bool allow) {
  taep::Config c = taep_test::mlp_config("ring8_trained.safetensors", 300, 20);
  c.run.allow_nonfinite = allow;
  taep::MlpModel m = taep::load_mlp(c.model.weights);
  for (auto& layer : m.layers)
    for (float& w : layer.weight) w *= 1e30f;
  return taep::build_problem(c, m);
}

TEST(HardeningNonFinite, AllPathsNonFiniteIsAnErrorUnlessAllowed) {
  EXPECT_THROW(taep::run(overflowing_problem(false)), taep::NonFiniteResult);
  EXPECT_THROW(taep::detailed_ft(overflowing_problem(false)), taep::NonFiniteResult);
  EXPECT_THROW(taep::sample(overflowing_problem(false), 50), taep::NonFiniteResult);

  const taep::RunResult r = taep::run(overflowing_problem(true));
  EXPECT_EQ(r.taep.count, 0u);
  EXPECT_EQ(r.taep.nonfinite, 300u);
  for (double x : {r.taep.mean, r.taep.variance, r.taep.stderr_mean, r.taep.skewness,
                   r.taep.excess_kurtosis, r.ift.estimate})
    EXPECT_TRUE(std::isnan(x)) << "a statistic of no paths must not read as a number: " << x;
  ASSERT_EQ(r.warnings.size(), 1u);
  EXPECT_NE(r.warnings[0].find("all 300 of 300 paths are non-finite"), std::string::npos)
      << r.warnings[0];
  const std::string json = taep::result_to_json(r);
  EXPECT_NE(json.find("\"mean\": null"), std::string::npos);
  EXPECT_NE(json.find("\"warnings\": [\n    \"all 300"), std::string::npos) << json.substr(0, 400);
}

TEST(HardeningNonFinite, SomePathsNonFiniteIsAWarning) {
  taep::Config c = taep::default_config();
  std::vector<std::string> warnings;
  taep::detail::check_nonfinite(c, "paths", 0, 10, warnings);
  EXPECT_TRUE(warnings.empty());
  taep::detail::check_nonfinite(c, "paths", 3, 10, warnings);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_EQ(warnings[0], "3 of 10 paths are non-finite and were left out of the statistics");
  EXPECT_THROW(taep::detail::check_nonfinite(c, "samples", 10, 10, warnings), taep::NonFiniteResult);
  c.run.allow_nonfinite = true;
  taep::detail::check_nonfinite(c, "samples", 10, 10, warnings);
  EXPECT_EQ(warnings.back(), "all 10 of 10 samples are non-finite, so there are no statistics");
}

// Requests larger than memory fail by name, not as bad_alloc: a sample count whose samples exceed
// physical memory, and a chunk size beyond the backend's limit (lowered to it; results do not
// depend on the chunk size).
TEST(HardeningLimits, SampleCountBeyondMemoryIsRefusedByName) {
  try {
    taep::sample(taep::default_config(), (std::uint64_t(1) << 40) - 1);
    ADD_FAILURE() << "2^40 samples fit in memory?";
  } catch (const taep::ConfigError& e) {
    EXPECT_EQ(e.field(), "count");
    EXPECT_NE(std::string(e.what()).find("GB of memory"), std::string::npos) << e.what();
  }
}

TEST(HardeningLimits, ChunkPathsAreLoweredToTheBackendsLimit) {
  taep::Config c = taep_test::mlp_config("ring8_trained.safetensors", 90000, 2);
  c.run.chunk_paths = std::uint64_t(1) << 40;
  const taep::RunResult big = taep::run(c);
  EXPECT_EQ(big.performance.chunk_paths, std::uint64_t(1) << 16);  // the CPU MLP backend's limit
  c.run.chunk_paths = 0;
  EXPECT_EQ(taep_test::statistics_of(taep::run(c)), taep_test::statistics_of(big));
}

}  // namespace

// Regression tests of the "Hardening" issue: histogram slots and automatic ranges that cannot leave
// the counts array for any value, and histogram.range widths that validation refuses.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "host/engine/chunk_driver.hpp"
#include "host/engine/dft_fit.hpp"
#include "taep/physics/accumulators.hpp"

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

}  // namespace

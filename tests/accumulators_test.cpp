// Mergeable accumulators: merging is exact and associative (checked against two-pass long-double
// computations), the log-space IFT accumulator survives exponents that overflow a double, and
// non-finite paths are counted and excluded.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "host/engine/backend.hpp"
#include "taep/physics/accumulators.hpp"
#include "taep/physics/theory.hpp"

namespace {

using taep::physics::LogSumExp;
using taep::physics::Moments;

struct TwoPass {
  long double mean = 0, m2 = 0, m3 = 0, m4 = 0;
};

TwoPass two_pass(const std::vector<double>& x) {
  TwoPass r;
  for (double v : x) r.mean += v;
  r.mean /= x.size();
  for (double v : x) {
    const long double d = v - r.mean;
    r.m2 += d * d;
    r.m3 += d * d * d;
    r.m4 += d * d * d * d;
  }
  return r;
}

// Skewed, heavy-ish data with an offset, like TAEP samples.
std::vector<double> sample(std::size_t n, std::uint64_t seed) {
  std::mt19937_64 g(seed);
  std::gamma_distribution<double> gamma(0.7, 1.3);
  std::vector<double> x(n);
  for (auto& v : x) v = 5.0 + gamma(g);
  return x;
}

void expect_matches(const Moments& m, const TwoPass& t, double n) {
  EXPECT_EQ(m.n, n);
  EXPECT_NEAR(m.mean, double(t.mean), 1e-13 * std::abs(double(t.mean)));
  EXPECT_NEAR(m.m2, double(t.m2), 1e-11 * double(t.m2));
  EXPECT_NEAR(m.m3, double(t.m3), 1e-9 * std::abs(double(t.m3)));
  EXPECT_NEAR(m.m4, double(t.m4), 1e-10 * double(t.m4));
}

Moments moments_of(const std::vector<double>& x, std::size_t b, std::size_t e) {
  Moments m;
  for (std::size_t i = b; i < e; ++i) m.add(x[i]);
  return m;
}


TEST(Moments, SequentialAddMatchesTwoPass) {
  const auto x = sample(100000, 1);
  expect_matches(moments_of(x, 0, x.size()), two_pass(x), x.size());
}

TEST(Moments, MergeOfAnySplitMatchesTwoPass) {
  const auto x = sample(100000, 2);
  const TwoPass ref = two_pass(x);
  std::mt19937_64 g(3);
  for (int trial = 0; trial < 10; ++trial) {
    // Random cut points; merge left to right, right to left, and as a balanced tree.
    std::vector<std::size_t> cuts{0, x.size()};
    std::uniform_int_distribution<std::size_t> u(1, x.size() - 1);
    for (int c = 0; c < 7; ++c) cuts.push_back(u(g));
    std::sort(cuts.begin(), cuts.end());
    std::vector<Moments> parts;
    for (std::size_t i = 0; i + 1 < cuts.size(); ++i) parts.push_back(moments_of(x, cuts[i], cuts[i + 1]));
    Moments left, right;
    for (const auto& p : parts) left.merge(p);
    for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
      Moments m = *it;
      m.merge(right);
      right = m;
    }
    std::vector<Moments> level = parts;
    while (level.size() > 1) {
      std::vector<Moments> next;
      for (std::size_t i = 0; i < level.size(); i += 2) {
        Moments m = level[i];
        if (i + 1 < level.size()) m.merge(level[i + 1]);
        next.push_back(m);
      }
      level = next;
    }
    for (const Moments* m : {&left, &right, &level[0]}) expect_matches(*m, ref, x.size());
  }
}

TEST(Moments, DerivedStatisticsOfKnownDistribution) {
  // Exponential(1): variance 1, skewness 2, excess kurtosis 6.
  std::mt19937_64 g(4);
  std::exponential_distribution<double> e(1.0);
  Moments m;
  for (int i = 0; i < 2000000; ++i) m.add(e(g));
  EXPECT_NEAR(m.variance(), 1.0, 0.01);
  EXPECT_NEAR(m.skewness(), 2.0, 0.05);
  EXPECT_NEAR(m.excess_kurtosis(), 6.0, 0.6);
}

TEST(LogSumExp, MatchesDirectSumsAndMergesExactly) {
  const auto x = sample(50000, 5);
  long double sw = 0, sw2 = 0;
  for (double s : x) sw += std::exp(-(long double)s), sw2 += std::exp(-2 * (long double)s);
  LogSumExp all;
  for (double s : x) all.add(s);
  const double n = x.size();
  EXPECT_NEAR(all.log_mean(), double(std::log(sw / n)), 1e-12);
  EXPECT_NEAR(all.ess(), double(sw * sw / sw2), 1e-9 * double(sw * sw / sw2));
  const long double mean_w = sw / n, var_w = (sw2 / n - mean_w * mean_w) * n / (n - 1);
  EXPECT_NEAR(all.stderr_of_mean(), double(std::sqrt(var_w / n)), 1e-9 * double(std::sqrt(var_w / n)));
  LogSumExp a, b;
  for (std::size_t i = 0; i < x.size(); ++i) (i % 3 ? a : b).add(x[i]);
  b.merge(a);
  EXPECT_NEAR(b.log_mean(), all.log_mean(), 1e-12);
  EXPECT_NEAR(b.ess(), all.ess(), 1e-9 * all.ess());
}

TEST(LogSumExp, SurvivesExponentsBeyondDoubleRange) {
  // exp(-S) for S = -1000 overflows a double; the shifted sums must not.
  LogSumExp w;
  for (int i = 0; i < 1000; ++i) w.add(-1000.0 - 1e-3 * i);
  const double expected = 1000.0 + std::log(std::expm1(1e-3 * 1000) / std::expm1(1e-3) / 1000.0) ;
  EXPECT_NEAR(w.log_mean(), expected + 0.0, 1e-9);
  EXPECT_TRUE(std::isfinite(w.ess()));
}

TEST(PathStats, NonFinitePathsAreCountedAndExcluded) {
  std::vector<double> s(5000), r(5000);
  for (std::size_t i = 0; i < s.size(); ++i) s[i] = 0.001 * i, r[i] = 0.001 * i - 0.5;
  s[17] = std::numeric_limits<double>::quiet_NaN();
  s[100] = std::numeric_limits<double>::infinity();
  r[200] = -std::numeric_limits<double>::infinity();
  const auto first = taep::detail::reduce_block_cpu(s.data(), r.data(), 4096);
  const auto second = taep::detail::reduce_block_cpu(s.data() + 4096, r.data() + 4096, 5000 - 4096);
  auto total = first;
  total.merge(second);
  EXPECT_EQ(total.nonfinite, 3.0);
  EXPECT_EQ(total.taep.n, 4997.0);
  EXPECT_TRUE(std::isfinite(total.taep.mean));
  EXPECT_NEAR(total.error.mean, 0.5, 1e-12);
  EXPECT_NEAR(total.error.variance(), 0.0, 1e-20);
}

TEST(Moments, RmsIsTheRootMeanSquareAboutZero) {
  Moments m;
  EXPECT_EQ(m.rms(), 0.0);  // empty
  std::vector<double> x;
  for (int i = 0; i < 1000; ++i) x.push_back(0.3 + 0.01 * std::sin(0.7 * i));
  long double sq = 0;
  for (double v : x) m.add(v), sq += (long double)v * v;
  // Not the standard deviation (about 0.007 here) nor |mean| (0.3): both parts count.
  EXPECT_NEAR(m.rms(), double(std::sqrt(sq / x.size())), 1e-14);
}

// The slot filter is the one PathStats::add applies, so a histogram counts exactly the moments'
// paths: every excluded path gives -1, every other one a slot in [0, bins + 1].
TEST(Histogram, SlotsFollowTheStatisticsFilter) {
  using taep::physics::histogram_slot;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  const double lo = -1.0, inv_w = 2.0;  // 4 bins on [-1, 1)
  const int bins = 4;
  EXPECT_EQ(histogram_slot(-1.5, 0.0, false, lo, inv_w, bins), 0);  // underflow
  EXPECT_EQ(histogram_slot(-1.0, 0.0, false, lo, inv_w, bins), 1);
  EXPECT_EQ(histogram_slot(0.99, 0.0, false, lo, inv_w, bins), 4);
  EXPECT_EQ(histogram_slot(1.0, 0.0, false, lo, inv_w, bins), 5);  // overflow
  EXPECT_EQ(histogram_slot(nan, 0.0, false, lo, inv_w, bins), -1);
  EXPECT_EQ(histogram_slot(inf, 0.0, false, lo, inv_w, bins), -1);
  EXPECT_EQ(histogram_slot(-inf, 0.0, false, lo, inv_w, bins), -1);
  EXPECT_EQ(histogram_slot(0.2, nan, true, lo, inv_w, bins), -1);  // its companion excludes it
  EXPECT_EQ(histogram_slot(0.2, nan, false, lo, inv_w, bins), 3);  // ... only when there is one
  EXPECT_EQ(histogram_slot(0.2, 5.0, true, lo, inv_w, bins), 3);

  std::vector<double> s = {0.1, nan, 0.3, 2.0, -3.0, 0.5}, r = {0.0, 0.0, inf, 0.0, 0.0, 0.0};
  taep::physics::PathStats stats;
  std::uint64_t counted = 0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    stats.add(s[i], r[i], true);
    counted += histogram_slot(s[i], r[i], true, lo, inv_w, bins) >= 0;
  }
  EXPECT_EQ(double(counted), stats.taep.n);
  EXPECT_EQ(double(s.size() - counted), stats.nonfinite);
}

// Eq. 53 (docs/physics.md section 5) against a hand computation: p = (1/2, 1/4, 1/4),
// q = (1/4, 1/4, 1/2) give L = (log 2, 0, -log 2): mean log(2) / 4, and variance
// 3 log(2)^2 / 4 - (log(2) / 4)^2 = 11 log(2)^2 / 16.
TEST(Theory, Eq53MomentsOfTheWeights) {
  const std::vector<double> p = {0.5, 0.25, 0.25}, q = {0.25, 0.25, 0.5};
  const auto m = taep::physics::eq53_moments(p, q);
  const double l2 = std::log(2.0);
  EXPECT_NEAR(m.mean, l2 / 4, 1e-15);
  EXPECT_NEAR(m.variance, 11 * l2 * l2 / 16, 1e-15);
  // A mode the target never visits adds nothing (instead of 0 * log 0).
  const auto z = taep::physics::eq53_moments(std::vector<double>{0.5, 0.5, 0.0},
                                             std::vector<double>{0.5, 0.25, 0.25});
  EXPECT_NEAR(z.mean, 0.5 * l2, 1e-15);
  EXPECT_NEAR(z.variance, 0.5 * l2 * l2 - 0.25 * l2 * l2, 1e-15);
  EXPECT_EQ(taep::physics::eq53_moments(p, p).variance, 0.0);
}

// Eq. 55 against the values the paper quotes for K = 8, m = 1 (docs/physics.md section 5), and
// against eq. 53 at the collapse's own weights (eq. 55 is eq. 53 for that q).
TEST(Theory, Eq55MatchesThePaperAndEq53) {
  const double eps[] = {0.09, 0.05, 0.02, 0.01, 0.005};
  const double quoted[] = {0.0148, 0.1091, 0.4142, 0.7676, 1.2256};
  for (int i = 0; i < 5; ++i) EXPECT_NEAR(taep::physics::eq55_variance(1, eps[i], 8), quoted[i], 5e-5);
  EXPECT_EQ(taep::physics::eq55_variance(0, 0.01, 8), 0.0);
  for (int m = 1; m <= 5; ++m) {
    std::vector<double> p(8, 1.0 / 8), q(8, (1 - m * 0.01) / (8 - m));
    for (int k = 0; k < m; ++k) q[std::size_t(k)] = 0.01;
    EXPECT_NEAR(taep::physics::eq55_variance(m, 0.01, 8), taep::physics::eq53_moments(p, q).variance,
                1e-12);
  }
}

}  // namespace

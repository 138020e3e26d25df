// End-to-end properties of the engine on the CPU backend: per-path convergence of S to the exact
// closed form, invariance to chunking and threads, the dynamic-dimension path, non-shared mixtures.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "host/problem/forward_problem.hpp"
#include "taep/physics/rng_streams.hpp"
#include "taep/taep.hpp"
#include "support/test_support.hpp"

namespace {

double rms_error(const taep::PathValues& v) {
  double s = 0;
  for (std::size_t i = 0; i < v.taep.size(); ++i) s += std::pow(v.taep[i] - v.reference[i], 2);
  return std::sqrt(s / v.taep.size());
}

// Least-squares slope of log(rms) against log(N).
double loglog_slope(const std::vector<int>& n, const std::vector<double>& e) {
  double sx = 0, sy = 0, sxx = 0, sxy = 0;
  const double m = n.size();
  for (std::size_t i = 0; i < n.size(); ++i) {
    const double x = std::log(n[i]), y = std::log(e[i]);
    sx += x, sy += y, sxx += x * x, sxy += x * y;
  }
  return (m * sxy - sx * sy) / (m * sxx - sx * sx);
}

taep::Config cpu_ring(int modes, double eps, std::uint64_t paths, int steps) {
  taep::Config c = taep_test::ring_config(modes, eps, paths, steps);
  c.run.backend = taep::Backend::cpu;
  return c;
}

taep::Config three_mode_config() {
  taep::Config c = taep_test::three_mode_config();
  c.run.backend = taep::Backend::cpu;
  return c;
}

}  // namespace

TEST(Convergence, EulerErrorFallsLikeInverseSqrtNAndMilsteinFaster) {
  const std::vector<int> steps{50, 100, 200, 400, 800};
  for (taep::Config c : {cpu_ring(1, 0.05, 1, 50), three_mode_config()}) {
    std::vector<double> euler, milstein;
    for (int n : steps) {
      c.schedule.steps = n;
      c.schedule.scheme = taep::Scheme::euler;
      euler.push_back(rms_error(taep::simulate_paths(c, taep::Backend::cpu, 0, 2000)));
      c.schedule.scheme = taep::Scheme::milstein;
      milstein.push_back(rms_error(taep::simulate_paths(c, taep::Backend::cpu, 0, 2000)));
    }
    const double se = loglog_slope(steps, euler), sm = loglog_slope(steps, milstein);
    // Strong order 1/2 for Euler-Maruyama, 1 for the Milstein-corrected scheme; the fitted slopes of
    // 2000 paths scatter by a few hundredths.
    EXPECT_NEAR(se, -0.5, 0.15) << "Euler rms errors " << ::testing::PrintToString(euler);
    EXPECT_LT(sm, -0.8) << "Milstein rms errors " << ::testing::PrintToString(milstein);
    EXPECT_LT(milstein.back(), euler.back() / 3) << "Milstein should cut the error several-fold";
  }
}

TEST(Invariance, ResultsIdenticalForAnyChunkSizeAndThreadCount) {
  taep::Config c = cpu_ring(1, 0.02, 3 * 4096 + 123, 60);
  std::vector<taep::RunResult> runs;
  for (auto [chunk, threads] : {std::pair<int, int>{4096, 1}, {8192, 2}, {0, 2}, {12288, 1}}) {
    c.run.chunk_paths = chunk;
    c.run.threads = threads;
    runs.push_back(taep::run(c));
  }
  for (const auto& r : runs) {
    EXPECT_EQ(r.taep.count, runs[0].taep.count);
    EXPECT_EQ(r.taep.mean, runs[0].taep.mean);
    EXPECT_EQ(r.taep.variance, runs[0].taep.variance);
    EXPECT_EQ(r.taep.skewness, runs[0].taep.skewness);
    EXPECT_EQ(r.taep.excess_kurtosis, runs[0].taep.excess_kurtosis);
    EXPECT_EQ(r.ift.log_estimate, runs[0].ift.log_estimate);
    EXPECT_EQ(r.ift.ess, runs[0].ift.ess);
    EXPECT_EQ(r.histogram.counts, runs[0].histogram.counts);
    EXPECT_EQ(r.histogram.edges, runs[0].histogram.edges);
    EXPECT_EQ(r.reference->rms_path_error, runs[0].reference->rms_path_error);
  }
  // Every path is accounted for: counted in the histogram (with under/overflow) or as non-finite.
  std::uint64_t binned = runs[0].histogram.underflow + runs[0].histogram.overflow;
  for (auto k : runs[0].histogram.counts) binned += k;
  EXPECT_EQ(binned + runs[0].taep.nonfinite, c.run.paths);
  EXPECT_EQ(runs[0].taep.count + runs[0].taep.nonfinite, c.run.paths);
}

TEST(Invariance, PathValuesDependOnPathIdNotOnTheRangeAsked) {
  const taep::Config c = cpu_ring(1, 0.02, 1, 40);
  const auto all = taep::simulate_paths(c, taep::Backend::cpu, 0, 5000);
  const auto tail = taep::simulate_paths(c, taep::Backend::cpu, 4321, 679);
  for (int i = 0; i < 679; ++i) EXPECT_EQ(tail.taep[i], all.taep[4321 + i]);
}

TEST(Engine, DynamicDimensionPathAgreesWithFixedPath) {
  taep::Config c = taep::default_config();
  c.target.preset.clear();
  c.target.mixture = {{1, 2}, {{1, 0, -1, 0.5}, {-1, 0.5, 1, 0}}, {0.5, 0.3}};
  c.model.collapse = taep::CollapseSpec{1, 0.1};
  c.schedule.steps = 100;
  taep::validate(c);
  const auto P = taep::detail::build_forward_problem(c);
  const auto V = P.view([](const auto& v) { return v.data(); });
  for (std::uint64_t path = 0; path < 200; ++path) {
    using taep::rng::PhiloxHostStream;
    PhiloxHostStream i4(V.seed, taep::rng::subsequence(taep::rng::kInitialState, path));
    PhiloxHostStream n4(V.seed, taep::rng::subsequence(taep::rng::kForwardNoise, path));
    PhiloxHostStream i0 = i4, n0 = n4;
    const auto fixed = taep::physics::forward_path<4>(V, i4, n4);
    const auto dynamic = taep::physics::forward_path<0>(V, i0, n0);
    EXPECT_NEAR(fixed.taep, dynamic.taep, 1e-4);
    EXPECT_NEAR(fixed.reference, dynamic.reference, 1e-4);
  }
}

TEST(Engine, TheoryEq53EqualsEq55ForTheCollapse) {
  for (int m = 1; m <= 5; ++m) {
    const double eps = 0.01, K = 8;
    taep::Config c = cpu_ring(m, eps, 4096, 2);
    const auto r = taep::run(c);
    ASSERT_TRUE(r.theory.has_value());
    const double L = std::log((1 - m * eps) / ((K - m) * eps));
    EXPECT_NEAR(r.theory->variance_eq53, m * (K - m) / (K * K) * L * L, 1e-12);
  }
  const auto r = taep::run([] { auto c = three_mode_config(); c.run.paths = 4096; c.schedule.steps = 2; return c; }());
  EXPECT_FALSE(r.theory.has_value()) << "eq. 53 does not apply to mixtures on different means";
}

TEST(Engine, NonSharedMixturesSatisfyTheFluctuationTheorem) {
  taep::Config c = three_mode_config();
  c.run.paths = 20480;
  c.schedule.steps = 400;
  c.schedule.scheme = taep::Scheme::milstein;
  const auto r = taep::run(c);
  EXPECT_EQ(r.taep.nonfinite, 0u);
  EXPECT_NEAR(r.ift.estimate, 1.0, 4 * r.ift.stderr_);
  EXPECT_LT(r.reference->rms_path_error, 0.05);
  // Mean TAEP = KL(p0||q0) - KL(pN||qN) >= 0: the closed form's mean, within sampling error.
  EXPECT_GT(r.reference->mean, 0.0);
  EXPECT_NEAR(r.taep.mean, r.reference->mean, 4 * r.taep.stderr_mean + 0.01);
}

TEST(Engine, SixteenDimensionalMixtureEndToEnd) {
  taep::Config c = taep::default_config();
  c.target.preset.clear();
  std::mt19937_64 g(7);
  std::normal_distribution<double> n(0, 3);
  taep::MixtureSpec m;
  for (int k = 0; k < 4; ++k) {
    std::vector<double> mu(16);
    for (auto& v : mu) v = n(g);
    m.means.push_back(mu);
    m.weights.push_back(0.25);
    m.sigmas.push_back(0.5);
  }
  c.target.mixture = m;
  c.model.collapse = taep::CollapseSpec{1, 0.05};
  c.run.backend = taep::Backend::cpu;
  c.run.paths = 8192;
  c.schedule.steps = 200;
  c.schedule.scheme = taep::Scheme::milstein;
  const auto r = taep::run(c);
  EXPECT_EQ(r.taep.nonfinite, 0u);
  EXPECT_NEAR(r.ift.estimate, 1.0, 4 * r.ift.stderr_);
  EXPECT_LT(r.reference->rms_path_error, 0.1);
  ASSERT_TRUE(r.theory.has_value());
  EXPECT_NEAR(r.taep.variance, r.theory->variance_eq53, 0.15 * r.theory->variance_eq53);
}

// End-to-end properties of the engine, each checked on every backend present (support/backends.hpp):
// per-path convergence of S to the exact closed form, invariance to chunking and threads, the
// dynamic-dimension path, non-shared mixtures.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "host/problem/forward_problem.hpp"
#include "taep/physics/rng_streams.hpp"
#include "taep/taep.hpp"
#include "support/backends.hpp"
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

// A run's sampling checks: no non-finite path, the integral fluctuation theorem within 4 standard
// errors, and S within `rms_bound` of the closed form path by path (RMS).
void expect_fluctuation_theorem(const taep::RunResult& r, double rms_bound) {
  EXPECT_EQ(r.taep.nonfinite, 0u);
  EXPECT_NEAR(r.ift.estimate, 1.0, 4 * r.ift.stderr_);
  EXPECT_LT(r.reference->rms_path_error, rms_bound);
}

using taep_test::OnBackend;
class Convergence : public OnBackend {};
class Invariance : public OnBackend {};
class Engine : public OnBackend {};

}  // namespace

// CPU loops only: the fitted slopes measure errors down to ~1e-3 at 800 Milstein steps, where the
// device's own float rounding (__sincosf, FMA contraction) would enter; CUDA's paths are held to
// the CPU's path by path instead (gpu_test.cpp, Gpu.PerPathAgreementWithCpu).
TEST_P(Convergence, EulerErrorFallsLikeInverseSqrtNAndMilsteinFaster) {
  const std::vector<int> steps{50, 100, 200, 400, 800};
  for (taep::Config c : {taep_test::ring_config(1, 0.05, 1, 50), taep_test::three_mode_config()}) {
    std::vector<double> euler, milstein;
    for (int n : steps) {
      c.schedule.steps = n;
      c.schedule.scheme = taep::Scheme::euler;
      euler.push_back(rms_error(taep::simulate_paths(c, backend(), 0, 2000)));
      c.schedule.scheme = taep::Scheme::milstein;
      milstein.push_back(rms_error(taep::simulate_paths(c, backend(), 0, 2000)));
    }
    const double se = loglog_slope(steps, euler), sm = loglog_slope(steps, milstein);
    // Strong order 1/2 for Euler-Maruyama, 1 for the Milstein-corrected scheme; the fitted slopes of
    // 2000 paths scatter by a few hundredths.
    EXPECT_NEAR(se, -0.5, 0.15) << "Euler rms errors " << ::testing::PrintToString(euler);
    EXPECT_LT(sm, -0.8) << "Milstein rms errors " << ::testing::PrintToString(milstein);
    EXPECT_LT(milstein.back(), euler.back() / 3) << "Milstein should cut the error several-fold";
  }
}

// On CUDA the thread count does nothing and the chunks (all below the device's memory limit) are
// what varies.
TEST_P(Invariance, ResultsIdenticalForAnyChunkSizeAndThreadCount) {
  taep::Config c = taep_test::ring_config(1, 0.02, 3 * 4096 + 123, 60, backend());
  std::vector<taep::RunResult> runs;
  for (auto [chunk, threads] : {std::pair<int, int>{4096, 1}, {8192, 2}, {0, 2}, {12288, 1}}) {
    c.run.chunk_paths = chunk;
    c.run.threads = threads;
    runs.push_back(taep::run(c));
  }
  for (const auto& r : runs) {
    taep_test::expect_same_statistics(r, runs[0], "chunk_paths " + std::to_string(r.config.run.chunk_paths));
    EXPECT_EQ(r.reference->rms_path_error, runs[0].reference->rms_path_error);
  }
  // Every path is accounted for: counted in the histogram (with under/overflow) or as non-finite.
  std::uint64_t binned = runs[0].histogram.underflow + runs[0].histogram.overflow;
  for (auto k : runs[0].histogram.counts) binned += k;
  EXPECT_EQ(binned + runs[0].taep.nonfinite, c.run.paths);
  EXPECT_EQ(runs[0].taep.count + runs[0].taep.nonfinite, c.run.paths);
}

TEST_P(Invariance, PathValuesDependOnPathIdNotOnTheRangeAsked) {
  const taep::Config c = taep_test::ring_config(1, 0.02, 1, 40);
  const auto all = taep::simulate_paths(c, backend(), 0, 5000);
  const auto tail = taep::simulate_paths(c, backend(), 4321, 679);
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

TEST_P(Engine, TheoryEq53EqualsEq55ForTheCollapse) {
  for (int m = 1; m <= 5; ++m) {
    const double eps = 0.01, K = 8;
    taep::Config c = taep_test::ring_config(m, eps, 4096, 2, backend());
    const auto r = taep::run(c);
    ASSERT_TRUE(r.theory.has_value());
    const double L = std::log((1 - m * eps) / ((K - m) * eps));
    EXPECT_NEAR(r.theory->variance_eq53, m * (K - m) / (K * K) * L * L, 1e-12);
  }
  const auto r = taep::run([&] { auto c = on_backend(taep_test::three_mode_config()); c.run.paths = 4096; c.schedule.steps = 2; return c; }());
  EXPECT_FALSE(r.theory.has_value()) << "eq. 53 does not apply to mixtures on different means";
}

TEST_P(Engine, NonSharedMixturesSatisfyTheFluctuationTheorem) {
  taep::Config c = on_backend(taep_test::three_mode_config());
  c.run.paths = 20480;
  c.schedule.steps = 400;
  c.schedule.scheme = taep::Scheme::milstein;
  const auto r = taep::run(c);
  expect_fluctuation_theorem(r, 0.05);
  // Mean TAEP = KL(p0||q0) - KL(pN||qN) >= 0: the closed form's mean, within sampling error.
  EXPECT_GT(r.reference->mean, 0.0);
  EXPECT_NEAR(r.taep.mean, r.reference->mean, 4 * r.taep.stderr_mean + 0.01);
}

TEST_P(Engine, SixteenDimensionalMixtureEndToEnd) {
  taep::Config c = on_backend(taep_test::random_mixture_config(16));
  c.run.paths = 8192;
  const auto r = taep::run(c);
  expect_fluctuation_theorem(r, 0.1);
  ASSERT_TRUE(r.theory.has_value());
  EXPECT_NEAR(r.taep.variance, r.theory->variance_eq53, 0.15 * r.theory->variance_eq53);
}

INSTANTIATE_TEST_SUITE_P(Backends, Convergence, ::testing::ValuesIn(taep_test::cpu_loops()),
                         taep_test::backend_param_name);
INSTANTIATE_TEST_SUITE_P(Backends, Invariance, ::testing::ValuesIn(taep_test::all_backends()),
                         taep_test::backend_param_name);
INSTANTIATE_TEST_SUITE_P(Backends, Engine, ::testing::ValuesIn(taep_test::all_backends()),
                         taep_test::backend_param_name);

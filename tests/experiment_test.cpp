// The mode-collapse experiment: its theory helpers against closed forms and simulation, and (label
// `experiment`, a few minutes) the quick experiment end to end with the trends the paper shows.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <random>
#include <vector>

#include "taep/experiment.hpp"

namespace {

std::vector<double> uniform8() { return std::vector<double>(8, 1.0 / 8); }

// eq. 53 at the collapse weights is eq. 55 (physics.md section 5) for every (m, eps) of the paper.
TEST(ExperimentTheory, Eq53AtCollapseWeightsIsEq55) {
  const double expected_m1[] = {0.0148, 0.1091, 0.4142, 0.7676, 1.2256};
  const double eps1[] = {0.09, 0.05, 0.02, 0.01, 0.005};
  for (int i = 0; i < 5; ++i) {
    const auto q = taep::collapse(taep::ring8(), {1, eps1[i]}).weights;
    EXPECT_NEAR(taep::relative_entropy_variance(uniform8(), q), expected_m1[i], 5e-5) << eps1[i];
  }
  for (int m = 1; m <= 5; ++m) {
    const double eps = 0.01;
    const auto q = taep::collapse(taep::ring8(), {m, eps}).weights;
    const double l = std::log((1 - m * eps) / ((8 - m) * eps));
    EXPECT_NEAR(taep::relative_entropy_variance(uniform8(), q), m * (8.0 - m) / 64.0 * l * l, 1e-12) << m;
  }
  EXPECT_NEAR(taep::relative_entropy_variance(uniform8(), uniform8()), 0.0, 1e-15);
}

// The delta-method error of eq. 53 at measured weights matches the spread of eq. 53 over repeated
// multinomial draws (to the precision 2000 repetitions give: about 3%, allowed 10%).
TEST(ExperimentTheory, Eq53StderrMatchesMultinomialSpread) {
  const auto q = taep::collapse(taep::ring8(), {2, 0.02}).weights;
  const std::uint64_t n = 20000;
  std::mt19937_64 rng(7);
  std::discrete_distribution<int> pick(q.begin(), q.end());
  std::vector<double> values;
  for (int rep = 0; rep < 2000; ++rep) {
    std::vector<double> counts(8, 0.0);
    for (std::uint64_t s = 0; s < n; ++s) counts[std::size_t(pick(rng))] += 1;
    for (double& c : counts) c /= double(n);
    values.push_back(taep::relative_entropy_variance(uniform8(), counts));
  }
  double mean = 0, var = 0;
  for (double v : values) mean += v;
  mean /= double(values.size());
  for (double v : values) var += (v - mean) * (v - mean);
  const double sd = std::sqrt(var / double(values.size() - 1));
  const double se = taep::relative_entropy_variance_stderr(uniform8(), q, n);
  EXPECT_NEAR(se / sd, 1.0, 0.10) << "delta " << se << " simulated " << sd;
}

TEST(ExperimentConfig, PaperModelSet) {
  const auto full = taep::mode_collapse_config(false);
  ASSERT_EQ(full.models.size(), 10u);
  EXPECT_EQ(full.models[0].modes, 0);
  EXPECT_EQ(full.train.optimizer.steps, 50000u);
  EXPECT_EQ(full.train.optimizer.batch, 2048);
  int m1 = 0, eps01 = 0;
  for (const auto& m : full.models) {
    m1 += m.modes == 1;
    eps01 += m.modes >= 1 && m.eps == 0.01;
  }
  EXPECT_EQ(m1, 5);
  EXPECT_EQ(eps01, 5);
  const auto quick = taep::mode_collapse_config(true);
  EXPECT_EQ(quick.models.size(), full.models.size());
  EXPECT_LT(quick.train.optimizer.steps, full.train.optimizer.steps);
  EXPECT_LT(quick.paths, full.paths);
}

}  // namespace

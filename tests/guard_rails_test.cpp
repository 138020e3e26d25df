// The statistical guard-rails of results (host/engine/result_warnings.hpp): the standard error of
// Var(S) from the fourth moment against the spread of replicate variances, and each warning at its
// threshold and end to end.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "host/engine/result_warnings.hpp"
#include "support/test_rng.hpp"
#include "support/test_support.hpp"
#include "taep/physics/accumulators.hpp"
#include "taep/taep.hpp"

namespace {

using taep::physics::Moments;

// Var(s^2) for n draws: 2 sigma^4 / (n - 1) for a Gaussian, (mu4 - sigma^4 (n-3)/(n-1)) / n in
// general. The mean reported standard error over replicates must match the replicates' spread.
void expect_stderr_matches_spread(bool gaussian) {
  taep_test::TestRng rng(gaussian ? 11 : 12);
  constexpr int kReplicates = 4000, kN = 200;
  double sum_se = 0, sum_v = 0, sum_v2 = 0;
  for (int r = 0; r < kReplicates; ++r) {
    Moments m;
    for (int i = 0; i < kN; ++i) {
      const double z = rng.normal();
      m.add(gaussian ? z : z * z);  // chi^2_1: heavy fourth moment (mu4 = 60 about its mean)
    }
    sum_se += m.variance_stderr();
    sum_v += m.variance();
    sum_v2 += m.variance() * m.variance();
  }
  const double mean_v = sum_v / kReplicates;
  const double spread = std::sqrt(sum_v2 / kReplicates - mean_v * mean_v);
  // The spread itself is known to about 1/sqrt(2 R) = 1.1% (Gaussian) to ~5% (chi^2, its
  // eighth moment is large); the reported error is biased low by O(1/n) and by the scatter of M4.
  EXPECT_NEAR(sum_se / kReplicates / spread, 1.0, gaussian ? 0.05 : 0.15)
      << "mean stderr " << sum_se / kReplicates << " vs spread " << spread;
  if (gaussian) {
    EXPECT_NEAR(spread, std::sqrt(2.0 / (kN - 1)), 0.05 * std::sqrt(2.0 / (kN - 1)));
  }
}

TEST(GuardRails, VarianceStderrMatchesTheSpreadOfReplicates) {
  expect_stderr_matches_spread(true);
  expect_stderr_matches_spread(false);
}

TEST(GuardRails, VarianceStderrIsMergeable) {
  taep_test::TestRng rng(5);
  Moments all, a, b;
  for (int i = 0; i < 3000; ++i) {
    const double x = rng.normal() * 2 + 1;
    all.add(x);
    (i < 1234 ? a : b).add(x);
  }
  a.merge(b);
  EXPECT_NEAR(a.variance_stderr(), all.variance_stderr(), 1e-12 * all.variance_stderr());
  Moments few;
  few.add(1.0);
  few.add(2.0);
  EXPECT_EQ(few.variance_stderr(), 0.0) << "below 4 values";
}

TEST(GuardRails, EachWarningAtItsThreshold) {
  std::vector<std::string> w;
  taep::IftSummary ift;
  ift.ess = 2000;
  ift.ess_fraction = 0.02;
  taep::detail::check_ift_support(ift, 100000, "", w);
  EXPECT_TRUE(w.empty());
  ift.ess_fraction = 0.005;
  taep::detail::check_ift_support(ift, 100000, "forward", w);
  ASSERT_EQ(w.size(), 1u);
  EXPECT_EQ(w[0].rfind("forward: the IFT estimate rests on an effective sample of 2000 paths", 0), 0u)
      << w[0];

  w.clear();
  taep::detail::check_path_error(0.2, 1.0, "", w);  // 4%
  EXPECT_TRUE(w.empty());
  taep::detail::check_path_error(0.3, 1.0, "", w);  // 9%
  ASSERT_EQ(w.size(), 1u);
  EXPECT_NE(w[0].find("9% of Var(S)"), std::string::npos) << w[0];
  taep::detail::check_path_error(0.3, 0.0, "", w);  // no variance: nothing to compare
  EXPECT_EQ(w.size(), 1u);

  w.clear();
  taep::DetailedFtFit fit;
  fit.bins_used = 30;
  fit.chi2_per_dof = 1.5;
  taep::detail::check_fit(fit, "detailed-FT fit", w);
  EXPECT_TRUE(w.empty());
  fit.chi2_per_dof = 2.5;
  taep::detail::check_fit(fit, "detailed-FT fit", w);
  ASSERT_EQ(w.size(), 1u);
  EXPECT_EQ(w[0].rfind("detailed-FT fit: chi^2/dof = 2.5", 0), 0u) << w[0];
}

// Few Euler steps make the per-path error a large share of Var(S): the run says so; many do not.
TEST(GuardRails, CoarseStepsWarnOfThePathError) {
  const taep::RunResult coarse = taep::run(taep_test::ring_config(1, 0.01, 4096, 20));
  ASSERT_EQ(coarse.warnings.size(), 1u);
  EXPECT_NE(coarse.warnings[0].find("rms_path_error^2"), std::string::npos) << coarse.warnings[0];
  EXPECT_TRUE(taep::run(taep_test::ring_config(1, 0.01, 4096, 1000)).warnings.empty());
}

}  // namespace

// Statistical checks against theory, on every backend present (support/backends.hpp): Var(S) of the
// ring against eq. 55 and the integral fluctuation theorem.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <tuple>
#include <vector>

#include "taep/taep.hpp"
#include "support/backends.hpp"
#include "support/test_support.hpp"

namespace {

struct Collapse {
  int modes;
  double eps;
};

// eq. 55: Var = m (K - m)/K^2 [log((1 - m eps)/((K - m) eps))]^2, K = 8.
double eq55(const Collapse& c) {
  const double K = 8, m = c.modes;
  const double L = std::log((1 - m * c.eps) / ((K - m) * c.eps));
  return m * (K - m) / (K * K) * L * L;
}

// Standard error of the unbiased sample variance from the sample's own fourth moment:
// Var(s^2) = (mu4 - sigma^4 (n-3)/(n-1)) / n.
double variance_stderr(const taep::TaepSummary& s) {
  const double n = double(s.count), v = s.variance;
  const double mu4 = (s.excess_kurtosis + 3.0) * v * v;
  return std::sqrt(std::max(0.0, mu4 - v * v * (n - 3) / (n - 1)) / n);
}

std::string name(const Collapse& c) {
  std::string eps = std::to_string(c.eps);
  for (auto& ch : eps)
    if (ch == '.') ch = 'p';
  return "m" + std::to_string(c.modes) + "_eps" + eps.substr(0, eps.find_last_not_of('0') + 1);
}

class Eq55 : public taep_test::OnBackendWith<Collapse> {};
class FluctuationTheorem : public taep_test::OnBackend {};

const std::vector<Collapse> kSingleMode{{1, 0.09}, {1, 0.05}, {1, 0.02}, {1, 0.01}, {1, 0.005}};
const std::vector<Collapse> kManyModes{{2, 0.01}, {3, 0.01}, {4, 0.01}, {5, 0.01}};

}  // namespace

// Tolerance: 4 standard errors of the sample variance, plus the bound the per-path discretization
// error e = S - R (measured in the same run, R the exact closed form) puts on |Var(S) - Var(R)|:
// 2 sd(R) rms(e) + rms(e)^2 (Cauchy-Schwarz), plus 0.5% for what eq. 55 leaves out (finite t_min
// and t_max, the overlap of components 12 sigma apart: both far below that).
TEST_P(Eq55, VarianceOfTaepMatchesRelativeEntropyVariance) {
  const Collapse c = std::get<1>(GetParam());
  taep::Config cfg = taep_test::ring_config(c.modes, c.eps, 40960, 400, backend());
  cfg.schedule.scheme = taep::Scheme::milstein;
  const taep::RunResult r = taep::run(cfg);
  const double expected = eq55(c);
  const double e = r.reference->rms_path_error;
  const double tol = 4 * variance_stderr(r.taep) + 2 * std::sqrt(r.reference->variance) * e + e * e +
                     0.005 * expected;
  EXPECT_EQ(r.taep.nonfinite, 0u);
  EXPECT_NEAR(r.taep.variance, expected, tol)
      << "m=" << c.modes << " eps=" << c.eps << " rms path error " << e;
  EXPECT_NEAR(r.theory->variance_eq53, expected, 1e-12);
  // The integral fluctuation theorem on the same paths.
  EXPECT_NEAR(r.ift.estimate, 1.0, 4 * r.ift.stderr_) << "ESS " << r.ift.ess;
}

INSTANTIATE_TEST_SUITE_P(SingleModeCollapse, Eq55,
                         ::testing::Combine(::testing::ValuesIn(taep_test::all_backends()),
                                            ::testing::ValuesIn(kSingleMode)),
                         taep_test::backend_and<Collapse>(name));
INSTANTIATE_TEST_SUITE_P(ManyModesCollapsed, Eq55,
                         ::testing::Combine(::testing::ValuesIn(taep_test::all_backends()),
                                            ::testing::ValuesIn(kManyModes)),
                         taep_test::backend_and<Collapse>(name));

TEST_P(FluctuationTheorem, EulerSchemeOnTheDefaultModel) {
  taep::Config cfg = taep_test::ring_config(1, 0.01, 40960, 500, backend());
  const taep::RunResult r = taep::run(cfg);
  EXPECT_NEAR(r.ift.estimate, 1.0, 4 * r.ift.stderr_) << "ESS " << r.ift.ess;
  // docs/physics.md section 5: Euler-Maruyama's per-path RMS error is about 0.1 at N = 500 on the ring.
  EXPECT_GT(r.reference->rms_path_error, 0.05);
  EXPECT_LT(r.reference->rms_path_error, 0.2);
}

INSTANTIATE_TEST_SUITE_P(Backends, FluctuationTheorem, ::testing::ValuesIn(taep_test::all_backends()),
                         taep_test::backend_param_name);

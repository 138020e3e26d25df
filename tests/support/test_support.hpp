#pragma once
// Standard configs, fixture paths and result comparisons shared by the test files; the backend
// parameterization is in support/backends.hpp. GPU tests skip when no device is usable, unless
// TAEP_REQUIRE_GPU=1, which turns every such skip into a failure.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "taep/taep.hpp"

namespace taep_test {

inline bool gpu_required() {
  const char* v = std::getenv("TAEP_REQUIRE_GPU");
  return v && std::string(v) == "1";
}

// Call at the start of a test body (or SetUp) that needs `b`.
#define TAEP_REQUIRE_BACKEND(b)                                                        \
  do {                                                                                 \
    std::string why_;                                                                  \
    if ((b) == taep::Backend::cuda && !taep::cuda_available(&why_)) {                  \
      if (::taep_test::gpu_required()) FAIL() << "TAEP_REQUIRE_GPU=1 but " << why_;    \
      GTEST_SKIP() << why_;                                                            \
    }                                                                                  \
  } while (0)

// A small ring8 run: the exact score of the collapse of `modes` modes to weight `eps` each.
inline taep::Config ring_config(int modes, double eps, std::uint64_t paths, int steps,
                                taep::Backend backend = taep::Backend::cpu) {
  taep::Config c = taep::default_config();
  c.model.collapse = taep::CollapseSpec{modes, eps};
  c.run.paths = paths;
  c.run.backend = backend;
  c.schedule.steps = steps;
  return c;
}

// A 3-mode 2D target and an exact model on other means, widths and weights (no shared components).
inline taep::Config three_mode_config() {
  taep::Config c = taep::default_config();
  c.target.preset.clear();
  c.target.mixture = {{0.5, 0.3, 0.2}, {{-2.0, 0.0}, {2.0, 1.0}, {0.0, -2.5}}, {0.4, 0.3, 0.5}};
  c.model.collapse.reset();
  c.model.mixture =
      taep::MixtureSpec{{0.3, 0.4, 0.3}, {{-1.8, 0.2}, {2.2, 1.0}, {0.1, -2.3}}, {0.45, 0.3, 0.4}};
  return c;
}

// Four components in d dimensions, means drawn with sd 3 (mt19937_64 seed 7), sigma 0.5, and the
// 1-mode collapse at eps 0.05; Milstein, 200 steps. d = 16 takes the largest fixed-size path,
// other d (such as 5) the dynamic one.
inline taep::Config random_mixture_config(int d) {
  taep::Config c = taep::default_config();
  c.target.preset.clear();
  std::mt19937_64 g(7);
  std::normal_distribution<double> n(0, 3);
  taep::MixtureSpec m;
  for (int k = 0; k < 4; ++k) {
    std::vector<double> mu(std::size_t(d), 0.0);
    for (auto& v : mu) v = n(g);
    m.means.push_back(mu);
    m.weights.push_back(0.25);
    m.sigmas.push_back(0.5);
  }
  c.target.mixture = m;
  c.model.collapse = taep::CollapseSpec{1, 0.05};
  c.schedule.steps = 200;
  c.schedule.scheme = taep::Scheme::milstein;
  return c;
}

#ifdef TAEP_FIXTURE_DIR
inline std::string fixture(const std::string& name) { return std::string(TAEP_FIXTURE_DIR) + "/" + name; }

// The ring8 target with the learned model in tests/fixtures/<weights> (exact divergence, Euler).
inline taep::Config mlp_config(const std::string& weights, std::uint64_t paths = 1, int steps = 100,
                               taep::Backend backend = taep::Backend::cpu) {
  taep::Config c = taep::default_config();
  c.model = taep::ModelConfig{};
  c.model.type = "mlp";
  c.model.weights = fixture(weights);
  c.run.paths = paths;
  c.run.backend = backend;
  c.schedule.steps = steps;
  return c;
}
#endif

// What two runs of the same paths must reduce to bitwise: the count, non-finite count, mean,
// variance, skewness and excess kurtosis of S; the IFT's log estimate, standard error and ESS; the
// histogram's underflow and overflow.
inline auto statistics_of(const taep::RunResult& r) {
  return std::make_tuple(r.taep.count, r.taep.nonfinite, r.taep.mean, r.taep.variance,
                         r.taep.skewness, r.taep.excess_kurtosis, r.ift.log_estimate, r.ift.stderr_,
                         r.ift.ess, r.histogram.underflow, r.histogram.overflow);
}

// Two runs of the same paths reduced to bitwise the same statistics (`what` names the variant).
inline void expect_same_statistics(const taep::RunResult& a, const taep::RunResult& b,
                                   const std::string& what) {
  EXPECT_EQ(statistics_of(a), statistics_of(b)) << what;
  EXPECT_EQ(a.histogram.edges, b.histogram.edges) << what;
  EXPECT_EQ(a.histogram.counts, b.histogram.counts) << what;
}

}  // namespace taep_test

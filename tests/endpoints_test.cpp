// The start and end points of forward paths (PathValues::x0, ::xN; Backend::simulate's x0, xN): x0
// is the documented start draw (physics::sample_initial_state on the path's own kInitialState
// stream), asking for the points changes no other value, and every model and loop gives the same
// points for the same seed, since neither the start nor the Euler-Maruyama step depends on the
// score. Bitwise where the same code is compiled the same way (the scalar loops: exact, MLP on
// OpenBLAS, callback); the vector units are compiled with FMA, which contracts the start's
// sqrt(abar) m + sd z and the step, and draw their noise with xsimd's log and sincos, so there the
// points agree to float rounding.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "host/engine/chunk_driver.hpp"
#include "host/problem/forward_problem.hpp"
#include "support/backends.hpp"
#include "support/test_support.hpp"
#include "taep/physics/forward_taep.hpp"
#include "taep/physics/philox.hpp"
#include "taep/physics/rng_streams.hpp"
#include "taep/score_callback.hpp"

namespace {

class PathEnds : public taep_test::OnBackend {
 protected:
  bool scalar_loop() const { return backend_case().loop == taep_test::Loop::scalar; }
};

constexpr std::uint64_t kFirst = 777;  // an odd start: SIMD packets straddle the range
constexpr std::uint64_t kCount = 1001;

// Path first + i's start drawn as the engine documents it, row i.
std::vector<float> start_draws(const taep::Problem& p, std::uint64_t first, std::uint64_t count) {
  const auto& F = p.forward();
  const taep::physics::ForwardView V = F.view([](const auto& v) { return v.data(); });
  std::vector<float> x(count * std::uint64_t(F.d));
  for (std::uint64_t i = 0; i < count; ++i) {
    taep::rng::PhiloxHostStream init(F.seed, taep::rng::subsequence(taep::rng::kInitialState, first + i));
    taep::physics::sample_initial_state<0>(V, init, x.data() + i * std::uint64_t(F.d));
  }
  return x;
}

// A score model that says zero: the points do not depend on the score at all.
taep::ScoreCallback zero_score() {
  taep::ScoreCallback cb;
  cb.evaluate = [](const taep::ScoreRequest& r) {
    std::fill(r.output, r.output + std::size_t(r.n) * r.d, 0.f);
    std::fill(r.divergence, r.divergence + r.n, 0.f);
  };
  cb.batch = 300;  // batches that do not line up with the range
  return cb;
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double m = 0;
  for (std::size_t i = 0; i < a.size(); ++i) m = std::max(m, double(std::abs(a[i] - b[i])));
  return m;
}

// x0 of a loop against the scalar draw: bitwise on the scalar loop; elsewhere one FMA's rounding
// (measured: at most 4.8e-7, one ulp of |x| < 8).
void expect_same_start(const std::vector<float>& got, const std::vector<float>& want, bool scalar,
                       const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  if (scalar)
    EXPECT_EQ(got, want) << what;
  else
    EXPECT_LT(max_abs_diff(got, want), 2e-6) << what;
}

TEST_P(PathEnds, StartIsTheDocumentedDrawAndAskingChangesNothingElse) {
  // The ring (fixed d = 2), and d = 5 (the dynamic-dimension path) with Milstein.
  for (taep::Config c : {taep_test::ring_config(1, 0.02, 1, 50), taep_test::random_mixture_config(5)}) {
    c.schedule.steps = 50;
    c.run.backend = backend();
    const taep::Problem p = taep::build_problem(c);
    const taep::PathValues v = taep::simulate_paths(p, backend(), kFirst, kCount);
    const std::size_t d = std::size_t(p.forward().d);
    ASSERT_EQ(v.dim(), d);
    ASSERT_EQ(v.x0.size(), kCount * d);
    ASSERT_EQ(v.xN.size(), kCount * d);
    expect_same_start(v.x0, start_draws(p, kFirst, kCount), scalar_loop(),
                      "d = " + std::to_string(d));
    for (std::size_t i = 0; i < v.xN.size(); ++i) ASSERT_TRUE(std::isfinite(v.xN[i])) << i;
    EXPECT_GT(max_abs_diff(v.x0, v.xN), 0.5) << "x(t_max) is not x(t_min)";

    auto b = taep::detail::make_backend(p.forward(), backend(), 2);
    std::vector<double> s, r;
    b->simulate(kFirst, kCount, s, r);
    EXPECT_EQ(s, v.taep) << "S must be bitwise the same with and without the points";
    EXPECT_EQ(r, v.reference);
  }
}

// x0 and xN of every model on this backend against the exact model's on the scalar loop.
TEST_P(PathEnds, EveryModelAndLoopGivesTheSamePoints) {
  taep::Config exact = taep_test::ring_config(1, 0.02, 1, 40);
  taep::validate(exact);
  const auto P = taep::detail::build_forward_problem(exact);
  auto scalar = taep::detail::make_cpu_backend(P, 1, taep::detail::CpuLoop::scalar);
  std::vector<double> s, r;
  std::vector<float> x0, xN;
  scalar->simulate(kFirst, kCount, s, r, nullptr, &x0, &xN);

  struct Case {
    const char* name;
    taep::PathValues v;
    bool scalar;  // compiled like the scalar loop (see the top)
  };
  std::vector<Case> cases;
  taep::Config here = exact;
  here.run.backend = backend();
  cases.push_back({"exact", taep::simulate_paths(here, backend(), kFirst, kCount), scalar_loop()});
  taep::Config mlp = taep_test::mlp_config("ring8_trained.safetensors", 1, 40, backend());
  cases.push_back({"mlp", taep::simulate_paths(mlp, backend(), kFirst, kCount), scalar_loop()});
  if (!on_cuda()) {  // a callback runs on the CPU only
    taep::Config cb = exact;
    cb.model = taep::ModelConfig{};
    cb.model.type = "callback";
    cases.push_back({"callback", taep::simulate_paths(taep::build_problem(cb, zero_score()),
                                                      taep::Backend::cpu, kFirst, kCount),
                     true});
  }
  for (const Case& k : cases) {
    expect_same_start(k.v.x0, x0, k.scalar, k.name);
    ASSERT_EQ(k.v.xN.size(), xN.size()) << k.name;
    const double dxN = max_abs_diff(k.v.xN, xN);
    if (k.scalar)
      EXPECT_EQ(k.v.xN, xN) << k.name;
    else
      EXPECT_LT(dxN, 1e-4) << k.name << ": max |xN - xN(exact, scalar)| (measured 8e-7)";
    std::printf("    %s: max |x0 - x0(exact, scalar)| = %.2e, |xN - ...| = %.2e\n", k.name,
                max_abs_diff(k.v.x0, x0), dxN);
  }
}

// The forward side of a per-path run keeps the points: RunOptions::per_path gets simulate_paths'
// x0 and xN (the pilot and the chunks alike), and the statistics stay those of the plain run.
TEST_P(PathEnds, PerPathRunKeepsThePoints) {
  taep::Config c = taep_test::ring_config(1, 0.02, 3 * 4096 + 500, 30, backend());
  c.run.chunk_paths = 4096;
  const taep::RunResult plain = taep::run(c);
  taep::PathValues kept;
  taep::RunOptions o;
  o.per_path = &kept;
  const taep::RunResult with = taep::run(c, o);
  EXPECT_EQ(taep_test::statistics_of(with), taep_test::statistics_of(plain));
  const taep::PathValues v = taep::simulate_paths(c, backend(), 0, c.run.paths);
  EXPECT_EQ(kept.taep, v.taep);
  EXPECT_EQ(kept.x0, v.x0);
  EXPECT_EQ(kept.xN, v.xN);
}

INSTANTIATE_TEST_SUITE_P(Backends, PathEnds, ::testing::ValuesIn(taep_test::all_backends()),
                         taep_test::backend_param_name);

}  // namespace

// The CPU backend's vector loops (packets of 8 paths with AVX2, 16 with AVX-512) against its scalar
// loop: the same Philox words, the same per-path values to float tolerance, and values that depend
// on the path id only, never on the packet a path ran in. Each vector loop this build and CPU lack
// is skipped.
#include "host/cpu/cpu_simd.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "host/engine/backend.hpp"
#include "host/problem/forward_problem.hpp"
#include "taep/physics/philox.hpp"
#include "taep/physics/rng_streams.hpp"
#include "taep/taep.hpp"
#include "support/backends.hpp"
#include "support/test_support.hpp"

namespace {

using taep::detail::CpuLoop;
using taep::detail::SimdIsa;

// On each vector loop this build and CPU have (the others skip in SetUp).
class CpuSimd : public taep_test::OnBackend {
 protected:
  SimdIsa isa() const { return *taep_test::vector_isa(GetParam().loop); }
  CpuLoop loop() const { return taep_test::cpu_loop(GetParam().loop); }
};

taep::PathValues simulate(const taep::Config& config, CpuLoop loop, std::uint64_t first,
                          std::uint64_t count, int threads = 2) {
  taep::Config c = config;
  taep::validate(c);
  const auto P = taep::detail::build_forward_problem(c);
  auto backend = taep::detail::make_cpu_backend(P, threads, loop);
  taep::PathValues v;
  backend->simulate(first, count, v.taep, v.reference);
  return v;
}

taep::Config ring(taep::Scheme scheme, int steps) {
  taep::Config c = taep::default_config();
  c.model.collapse = taep::CollapseSpec{1, 0.01};
  c.schedule.steps = steps;
  c.schedule.scheme = scheme;
  return c;
}

taep::Config three_modes() {
  taep::Config c = taep_test::three_mode_config();
  c.schedule.steps = 300;
  c.schedule.scheme = taep::Scheme::milstein;
  return c;
}

// Per-path agreement of the vector loop with the scalar loop on paths [first, first + count): the
// normals differ by a few ulp (xsimd's log and sincos in Box-Muller, libm's in the scalar loop),
// the exponentials likewise, and the SDE is contracting, so paths stay within float rounding of
// each other.
void expect_agreement(const taep::Config& c, CpuLoop loop, std::uint64_t first,
                      std::uint64_t count) {
  const auto scalar = simulate(c, CpuLoop::scalar, first, count);
  const auto simd = simulate(c, loop, first, count);
  ASSERT_EQ(simd.taep.size(), count);
  ASSERT_EQ(simd.reference.size(), scalar.reference.size());
  std::vector<double> diff;
  double ref_diff = 0;
  for (std::size_t i = 0; i < count; ++i) {
    ASSERT_TRUE(std::isfinite(scalar.taep[i]) && std::isfinite(simd.taep[i]))
        << "path " << first + i;
    diff.push_back(std::abs(simd.taep[i] - scalar.taep[i]));
    if (!scalar.reference.empty())
      ref_diff = std::max(ref_diff, std::abs(simd.reference[i] - scalar.reference[i]));
  }
  std::sort(diff.begin(), diff.end());
  const double median = diff[diff.size() / 2], max = diff.back();
  // Observed: median 4e-7 .. 3e-6, max 3e-6 .. 1.2e-5 (d = 16). The closed form differs only
  // through x_N (x_0 is drawn by the same scalar code in both loops): 3e-9 .. 9e-7.
  EXPECT_LT(median, 1e-5) << "median |S_simd - S_scalar|";
  EXPECT_LT(max, 1e-3) << "max |S_simd - S_scalar|";
  EXPECT_LT(ref_diff, 1e-5) << "max |R_simd - R_scalar|";
  std::printf("    %s: median |dS| %.2e, max |dS| %.2e, max |dR| %.2e over %zu paths\n",
              c.target.preset.empty() ? "mixture" : c.target.preset.c_str(), median, max, ref_diff,
              std::size_t(count));
}

}  // namespace

TEST_P(CpuSimd, PhiloxWordsEqualHostMirrorLaneByLane) {
  const int lanes = taep::detail::simd_lanes(isa());
  const int blocks = 40;
  // Subsequences straddle a 2^32 boundary, so lanes differ in both subsequence words.
  const std::uint64_t seed = 0xfeedfacecafebeefULL;
  const std::uint64_t first = taep::rng::subsequence(taep::rng::kForwardNoise, (1ULL << 32) - 5);
  std::vector<std::uint32_t> words(std::size_t(4 * blocks * lanes));
  std::vector<float> normals(words.size());
  taep::detail::cpu_simd_philox_probe(isa(), seed, first, blocks, words.data(),
                                      normals.data());
  for (int l = 0; l < lanes; ++l) {
    taep::rng::PhiloxHostStream bits(seed, first + std::uint64_t(l)),
        gauss(seed, first + std::uint64_t(l));
    for (int b = 0; b < blocks; ++b) {
      const auto u = bits.next_u4();
      const auto n = gauss.next_normal4();
      const std::uint32_t want_u[4] = {u.x, u.y, u.z, u.w};
      const float want_n[4] = {n.x, n.y, n.z, n.w};
      for (int j = 0; j < 4; ++j) {
        const std::size_t at = std::size_t((4 * b + j) * lanes + l);
        ASSERT_EQ(words[at], want_u[j]) << "lane " << l << " block " << b << " word " << j;
        // Box-Muller with xsimd's log and sincos: a few ulp times sqrt(-2 log u) <= ~6.7.
        EXPECT_NEAR(normals[at], want_n[j], 5e-5f)
            << "lane " << l << " block " << b << " word " << j;
      }
    }
  }
}

TEST_P(CpuSimd, RingEulerAndMilsteinAgreeWithScalarPathByPath) {
  // 1001 paths from an odd first id: packets straddle the range, the last one is padded.
  for (auto scheme : {taep::Scheme::euler, taep::Scheme::milstein})
    expect_agreement(ring(scheme, 300), loop(), 777, 1001);
}

TEST_P(CpuSimd, NonSharedMixtureAgreesWithScalarPathByPath) {
  expect_agreement(three_modes(), loop(), 0, 1000);
}

TEST_P(CpuSimd, SixteenDimensionsAgreeWithScalarPathByPath) {
  expect_agreement(taep_test::random_mixture_config(16), loop(), 5, 300);
}

TEST_P(CpuSimd, DynamicDimensionAgreesWithScalarPathByPath) {
  expect_agreement(taep_test::random_mixture_config(5), loop(), 5, 300);
}

TEST_P(CpuSimd, PathValuesDependOnPathIdNotOnPacketOrThreads) {
  const taep::Config c = ring(taep::Scheme::milstein, 40);
  const auto all = simulate(c, loop(), 0, 5000, 2);
  const auto tail = simulate(c, loop(), 4321, 679, 1);
  const auto few = simulate(c, loop(), 4323, 3, 1);  // less than one packet
  for (int i = 0; i < 679; ++i) {
    EXPECT_EQ(tail.taep[i], all.taep[4321 + i]) << "path " << 4321 + i;
    EXPECT_EQ(tail.reference[i], all.reference[4321 + i]) << "path " << 4321 + i;
  }
  for (int i = 0; i < 3; ++i) EXPECT_EQ(few.taep[i], all.taep[4323 + i]) << "path " << 4323 + i;
}

INSTANTIATE_TEST_SUITE_P(Isas, CpuSimd, ::testing::ValuesIn(taep_test::vector_loops()),
                         taep_test::backend_param_name);

TEST(CpuLoops, ScalarLoopCanBeForcedAndTheDeviceSaysWhichLoopRan) {
  taep::Config c = ring(taep::Scheme::euler, 2);
  taep::validate(c);
  const auto P = taep::detail::build_forward_problem(c);
  EXPECT_EQ(taep::detail::make_cpu_backend(P, 1, CpuLoop::scalar)->device(),
            "CPU, 1 OpenMP thread");
  for (SimdIsa isa : {SimdIsa::avx2, SimdIsa::avx512}) {
    const CpuLoop loop = isa == SimdIsa::avx512 ? CpuLoop::avx512 : CpuLoop::avx2;
    if (taep::detail::cpu_supports(isa))
      EXPECT_NE(
          taep::detail::make_cpu_backend(P, 1, loop)->device().find(taep::detail::to_string(isa)),
          std::string::npos);
    else
      EXPECT_THROW(taep::detail::make_cpu_backend(P, 1, loop), taep::BackendUnavailable);
  }
}

// GPU-only checks (label gpu): cuRAND's Philox stream equals the host mirror, CPU and GPU agree per
// path to float tolerance, and chunking (including chunks forced below the memory limit) does not
// change results.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <tuple>
#include <vector>

#include "taep/detail/cuda_probe.hpp"
#include "taep/physics/philox.hpp"
#include "taep/physics/rng_streams.hpp"
#include "taep/taep.hpp"
#include "test_support.hpp"

namespace {

class Gpu : public ::testing::Test {
 protected:
  void SetUp() override { TAEP_REQUIRE_BACKEND(taep::Backend::cuda); }
};

}  // namespace

TEST_F(Gpu, CurandPhiloxStreamEqualsHostMirror) {
  for (std::uint64_t sub : {std::uint64_t(0), taep::rng::subsequence(taep::rng::kForwardNoise, 123456789)}) {
    const std::uint64_t seed = 0xfeedfacecafebeefULL;
    std::vector<std::uint32_t> words;
    std::vector<float> normals;
    taep::detail::cuda_philox_probe(seed, sub, 64, words, normals);
    taep::rng::PhiloxHostStream bits(seed, sub), gauss(seed, sub);
    for (int b = 0; b < 64; ++b) {
      const auto u = bits.next_u4();
      const auto n = gauss.next_normal4();
      EXPECT_EQ(words[4 * b + 0], u.x);
      EXPECT_EQ(words[4 * b + 1], u.y);
      EXPECT_EQ(words[4 * b + 2], u.z);
      EXPECT_EQ(words[4 * b + 3], u.w);
      // The device's Box-Muller uses __sincosf: a few ulp of sin/cos times sqrt(-2 log u) <= ~6.7.
      const float host[4] = {n.x, n.y, n.z, n.w};
      for (int i = 0; i < 4; ++i) EXPECT_NEAR(normals[4 * b + i], host[i], 5e-5f);
    }
  }
}

TEST_F(Gpu, PerPathAgreementWithCpu) {
  for (auto scheme : {taep::Scheme::euler, taep::Scheme::milstein}) {
    taep::Config c = taep_test::ring_config(1, 0.01, 1, 300);
    c.schedule.scheme = scheme;
    const auto cpu = taep::simulate_paths(c, taep::Backend::cpu, 1000, 8192);
    const auto gpu = taep::simulate_paths(c, taep::Backend::cuda, 1000, 8192);
    std::vector<double> diff;
    for (std::size_t i = 0; i < cpu.taep.size(); ++i) {
      diff.push_back(std::abs(cpu.taep[i] - gpu.taep[i]));
      EXPECT_NEAR(gpu.reference[i], cpu.reference[i], 1e-3);
    }
    std::sort(diff.begin(), diff.end());
    // Float state, 300 steps: rounding differs (FMA contraction, __sincosf in the noise), the SDE is
    // contracting, so paths stay within float accumulation error of each other.
    EXPECT_LT(diff[diff.size() / 2], 1e-4) << "median |S_gpu - S_cpu|";
    EXPECT_LT(diff.back(), 1e-2) << "max |S_gpu - S_cpu|";
  }
}

TEST_F(Gpu, ChunkingDoesNotChangeResults) {
  taep::Config c = taep_test::ring_config(1, 0.02, 5 * 4096 + 77, 80);
  std::vector<taep::RunResult> runs;
  for (std::uint64_t chunk : {4096, 3 * 4096, 0}) {
    c.run.chunk_paths = chunk;
    runs.push_back(taep::run(c));
  }
  for (const auto& r : runs) {
    EXPECT_EQ(r.taep.mean, runs[0].taep.mean);
    EXPECT_EQ(r.taep.variance, runs[0].taep.variance);
    EXPECT_EQ(r.ift.log_estimate, runs[0].ift.log_estimate);
    EXPECT_EQ(r.histogram.counts, runs[0].histogram.counts);
  }
}

TEST_F(Gpu, LargeRunAcrossManyChunksMatchesCpuStatistics) {
  taep::Config c = taep_test::ring_config(1, 0.01, 1 << 22, 200);
  c.run.chunk_paths = 1 << 20;
  const auto gpu = taep::run(c);
  EXPECT_EQ(gpu.taep.count, std::uint64_t(1) << 22);
  c.run.paths = 1 << 15;
  c.run.backend = taep::Backend::cpu;
  const auto cpu = taep::run(c);
  EXPECT_NEAR(gpu.taep.mean, cpu.taep.mean, 4 * cpu.taep.stderr_mean);
  EXPECT_NEAR(gpu.ift.estimate, 1.0, 4 * gpu.ift.stderr_);
}

namespace {

taep::Config mlp_ring_config(taep::Divergence div, taep::ProbeDistribution dist, int probes) {
  taep::Config c = taep::default_config();
  c.model = taep::ModelConfig{};
  c.model.type = "mlp";
  c.model.weights = std::string(TAEP_FIXTURE_DIR) + "/ring8_trained.safetensors";
  c.model.divergence = div;
  c.model.probe_distribution = dist;
  c.model.probes = probes;
  c.schedule.steps = 100;
  c.run.paths = 1;
  return c;
}

}  // namespace

TEST_F(Gpu, MlpPerPathAgreementWithCpu) {
  using taep::Divergence;
  using taep::ProbeDistribution;
  for (auto [div, dist, probes] :
       {std::tuple{Divergence::exact, ProbeDistribution::rademacher, 1},
        std::tuple{Divergence::hutchinson, ProbeDistribution::rademacher, 2},
        std::tuple{Divergence::hutchinson, ProbeDistribution::gaussian, 1}}) {
    const taep::Config c = mlp_ring_config(div, dist, probes);
    // Both backends start at a multiple of 256 paths, so the CPU's GEMM batches are the same.
    const auto cpu = taep::simulate_paths(c, taep::Backend::cpu, 4096, 4096);
    const auto gpu = taep::simulate_paths(c, taep::Backend::cuda, 4096, 4096);
    std::vector<double> diff;
    for (std::size_t i = 0; i < cpu.taep.size(); ++i) diff.push_back(std::abs(cpu.taep[i] - gpu.taep[i]));
    std::sort(diff.begin(), diff.end());
    // Float GEMMs (different summation orders, FMA) and __sincosf in the noise: float-rounding
    // differences that accumulate over 100 steps. A wrong probe or noise index would give O(0.1).
    EXPECT_LT(diff[diff.size() / 2], 1e-4) << "median |S_gpu - S_cpu|";
    EXPECT_LT(diff.back(), 1e-2) << "max |S_gpu - S_cpu|";
  }
}

TEST_F(Gpu, MlpFluctuationTheoremOnTheDevice) {
  taep::Config c = mlp_ring_config(taep::Divergence::exact, taep::ProbeDistribution::rademacher, 1);
  c.run.backend = taep::Backend::cuda;
  c.run.paths = 1 << 18;
  c.schedule.steps = 200;
  const auto r = taep::run(c);
  EXPECT_EQ(r.taep.nonfinite, 0u);
  EXPECT_NEAR(r.ift.estimate, 1.0, 4 * r.ift.stderr_) << "ESS " << r.ift.ess;
}

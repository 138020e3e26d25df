// GPU-only checks (label gpu): cuRAND's Philox stream equals the host mirror, CPU and GPU agree per
// path to float tolerance, a large run across many chunks; the same for reverse-process paths
// (samples, S read on the forward clock, the closed form, invariance to chunking), and the device's
// samples occupy the modes with the exact-score model's weights; the fused tensor-core MLP kernel
// against the CPU and the cuBLAS TF32 path. Invariance of forward runs to
// chunking (chunks forced below the memory limit) is the cuda case of engine_test.cpp's Invariance.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "kernels/cuda_probe.hpp"
#include "taep/physics/philox.hpp"
#include "taep/physics/rng_streams.hpp"
#include "taep/sample.hpp"
#include "taep/taep.hpp"
#include "support/backends.hpp"
#include "support/test_support.hpp"

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
    taep::Config c = taep_test::ring_config(1, 0.01, 1, 300, taep::Backend::cuda);
    c.schedule.scheme = scheme;
    const auto cpu = taep::simulate_paths(c, taep::Backend::cpu, 1000, 8192);
    const auto gpu = taep::simulate_paths(c, taep::Backend::cuda, 1000, 8192);
    std::vector<double> diff;
    for (std::size_t i = 0; i < cpu.taep.size(); ++i) {
      diff.push_back(std::abs(cpu.taep[i] - gpu.taep[i]));
      EXPECT_NEAR(gpu.reference[i], cpu.reference[i], 1e-3);
    }
    std::sort(diff.begin(), diff.end());
    // Float state, 300 steps: rounding differs (the kernel's two-pass log2 softmax, FMA contraction,
    // MUFU exp2/log2/sin/cos/sqrt/rcp in the mixtures and the noise), the SDE is contracting, so
    // paths stay within float accumulation error of each other. The bounds are about 100 times what
    // the CPU measures with device-sized errors (intrinsics_test.cpp, Log2Path).
    EXPECT_LT(diff[diff.size() / 2], 1e-4) << "median |S_gpu - S_cpu|";
    EXPECT_LT(diff.back(), 1e-2) << "max |S_gpu - S_cpu|";
  }
}

// Every kind of forward kernel (docs/gpu-kernels.md): K compiled in with separate components (3
// modes), K at run time (a 2-component model of a 3-component target), d = 16 (K = 4, shared),
// another d (5: the shared-memory rows) and an odd step count (the ring's last, partial group of
// two steps). The bounds are PerPathAgreementWithCpu's; intrinsics_test.cpp's
// DeviceSizedNoiseErrorsStayWithinGpuTolerance derives them on the CPU (normals perturbed by the
// size of the device's MUFU errors: medians <= 2.5e-6, maxima <= 2e-5 on these cases).
TEST_F(Gpu, ForwardKernelsAgreeWithCpu) {
  taep::Config three = taep_test::three_mode_config();
  three.schedule.steps = 300;
  three.schedule.scheme = taep::Scheme::milstein;
  taep::Config mismatch = three;
  mismatch.model.mixture = taep::MixtureSpec{{0.6, 0.4}, {{-1.8, 0.2}, {2.2, 1.0}}, {0.45, 0.3}};
  taep::Config odd = taep_test::ring_config(2, 0.05, 1, 301, taep::Backend::cuda);
  const std::pair<const char*, taep::Config> cases[] = {
      {"3 modes, separate", three},
      {"K at run time", mismatch},
      {"d = 16", taep_test::random_mixture_config(16)},
      {"d = 5", taep_test::random_mixture_config(5)},
      {"301 steps", odd}};
  for (const auto& [what, c] : cases) {
    SCOPED_TRACE(what);
    const auto cpu = taep::simulate_paths(c, taep::Backend::cpu, 4096, 4096);
    const auto gpu = taep::simulate_paths(c, taep::Backend::cuda, 4096, 4096);
    ASSERT_EQ(gpu.taep.size(), cpu.taep.size());
    std::vector<double> diff;
    for (std::size_t i = 0; i < cpu.taep.size(); ++i) {
      diff.push_back(std::isfinite(gpu.taep[i]) ? std::abs(cpu.taep[i] - gpu.taep[i]) : HUGE_VAL);
      EXPECT_NEAR(gpu.reference[i], cpu.reference[i], 1e-3);
    }
    std::sort(diff.begin(), diff.end());
    EXPECT_LT(diff[diff.size() / 2], 1e-4) << "median |S_gpu - S_cpu|";
    EXPECT_LT(diff.back(), 1e-2) << "max |S_gpu - S_cpu|";
  }
}

TEST_F(Gpu, LargeRunAcrossManyChunksMatchesCpuStatistics) {
  taep::Config c = taep_test::ring_config(1, 0.01, 1 << 22, 200, taep::Backend::cuda);
  c.run.chunk_paths = 1 << 20;
  const auto gpu = taep::run(c);
  EXPECT_EQ(gpu.taep.count, std::uint64_t(1) << 22);
  c.run.paths = 1 << 18;
  c.run.backend = taep::Backend::cpu;
  const auto cpu = taep::run(c);
  // The CPU's paths are the GPU's first 2^18 (one stream), so these are conservative.
  EXPECT_NEAR(gpu.taep.mean, cpu.taep.mean, 4 * cpu.taep.stderr_mean);
  EXPECT_NEAR(gpu.ift.estimate, cpu.ift.estimate, 4 * std::hypot(gpu.ift.stderr_, cpu.ift.stderr_));
  // 200 Euler steps bias <exp(-S)> by +0.00418 +- 0.00018 here (the CPU on these 2^22 paths), 23
  // standard errors of this run: the theorem holds up to that bias, which shrinks as 1/steps.
  constexpr double kStepBias = 0.0042, kStepBiasBound = 0.0050;
  EXPECT_NEAR(gpu.ift.estimate, 1.0 + kStepBias, kStepBiasBound - kStepBias + 4 * gpu.ift.stderr_);
}

namespace {

struct MlpCase {
  taep::Divergence divergence;
  taep::ProbeDistribution distribution;
  int probes;
};

// The exact trace and Hutchinson with 2 Rademacher and 1 Gaussian probes.
const MlpCase kMlpCases[] = {
    {taep::Divergence::exact, taep::ProbeDistribution::rademacher, 1},
    {taep::Divergence::hutchinson, taep::ProbeDistribution::rademacher, 2},
    {taep::Divergence::hutchinson, taep::ProbeDistribution::gaussian, 1},
};

taep::Config mlp_ring_config(const MlpCase& m) {
  taep::Config c = taep_test::mlp_config("ring8_trained.safetensors", 1, 100);
  c.model.divergence = m.divergence;
  c.model.probe_distribution = m.distribution;
  c.model.probes = m.probes;
  return c;
}

}  // namespace

TEST_F(Gpu, MlpPerPathAgreementWithCpu) {
  for (const MlpCase& m : kMlpCases) {
    const taep::Config c = mlp_ring_config(m);
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

// A reference network (reference.type "mlp", docs/real-data.md section 2) on the device: per path
// as on the CPU, forward and (with TAEP) reverse, and a model against itself gives S = 0 exactly.
TEST_F(Gpu, ReferenceNetworkPerPathAgreementWithCpu) {
  for (const MlpCase& m : kMlpCases) {
    taep::Config c = mlp_ring_config(m);
    c.reference.type = taep::ReferenceType::mlp;
    c.reference.weights = taep_test::fixture("mlp_d2_score.safetensors");
    const auto cpu = taep::simulate_paths(c, taep::Backend::cpu, 4096, 4096);
    const auto gpu = taep::simulate_paths(c, taep::Backend::cuda, 4096, 4096);
    std::vector<double> diff;
    for (std::size_t i = 0; i < cpu.taep.size(); ++i) diff.push_back(std::abs(cpu.taep[i] - gpu.taep[i]));
    std::sort(diff.begin(), diff.end());
    EXPECT_LT(diff[diff.size() / 2], 2e-4) << "median |S_gpu - S_cpu|";
    EXPECT_LT(diff.back(), 2e-2) << "max |S_gpu - S_cpu|";
    const auto rev_cpu = taep::simulate_reverse_paths(c, taep::Backend::cpu, 0, 1024, true);
    const auto rev_gpu = taep::simulate_reverse_paths(c, taep::Backend::cuda, 0, 1024, true);
    double worst = 0;
    for (std::size_t i = 0; i < rev_cpu.taep.size(); ++i)
      worst = std::max(worst, std::abs(rev_cpu.taep[i] - rev_gpu.taep[i]));
    EXPECT_LT(worst, 2e-2) << "max |S_gpu - S_cpu|, reverse paths";
    c.reference.weights = c.model.weights;
    for (double s : taep::simulate_paths(c, taep::Backend::cuda, 0, 512).taep) ASSERT_EQ(s, 0.0);
  }
}

// The fused tensor-core kernel (kernels/fused_mlp_kernel.cu, docs/fused-mlp.md), which model.math
// "tf32" takes for the paper's 3x128 network, against the CPU per path: its TF32 error is that of
// the cuBLAS TF32 path (the same operand rounding; only the accumulation order differs), so it is
// bounded by a small multiple of the cuBLAS path's own distance from the CPU. TAEP_CUDA_MLP picks
// the path; =fused refuses a run the fused kernel cannot take.
TEST_F(Gpu, FusedMlpPerPathAgreementWithCpu) {
  for (const MlpCase& m : kMlpCases) {
    taep::Config c = mlp_ring_config(m);
    c.model.math = taep::MathMode::tf32;
    const auto cpu = taep::simulate_paths(c, taep::Backend::cpu, 4096, 4096);
    taep::PathValues fused, cublas;
    {
      taep_test::ScopedEnv env("TAEP_CUDA_MLP", std::string("fused"));
      fused = taep::simulate_paths(c, taep::Backend::cuda, 4096, 4096);
    }
    {
      taep_test::ScopedEnv env("TAEP_CUDA_MLP", std::string("cublas"));
      cublas = taep::simulate_paths(c, taep::Backend::cuda, 4096, 4096);
    }
    std::vector<double> df, dc;
    for (std::size_t i = 0; i < cpu.taep.size(); ++i) {
      df.push_back(std::abs(fused.taep[i] - cpu.taep[i]));
      dc.push_back(std::abs(cublas.taep[i] - cpu.taep[i]));
    }
    std::sort(df.begin(), df.end());
    std::sort(dc.begin(), dc.end());
    EXPECT_LT(df[df.size() / 2], 4 * dc[dc.size() / 2] + 1e-6) << "median |S_fused - S_cpu|";
    EXPECT_LT(df.back(), 4 * dc.back() + 1e-4) << "max |S_fused - S_cpu|";
  }
  taep::Config fp32 = mlp_ring_config(kMlpCases[0]);
  taep_test::ScopedEnv env("TAEP_CUDA_MLP", std::string("fused"));
  EXPECT_THROW(taep::simulate_paths(fp32, taep::Backend::cuda, 0, 16), taep::BackendUnavailable);
}

TEST_F(Gpu, MlpFluctuationTheoremOnTheDevice) {
  taep::Config c = mlp_ring_config(kMlpCases[0]);
  c.run.backend = taep::Backend::cuda;
  c.run.paths = 1 << 18;
  c.schedule.steps = 200;
  const auto r = taep::run(c);
  EXPECT_EQ(r.taep.nonfinite, 0u);
  EXPECT_NEAR(r.ift.estimate, 1.0, 4 * r.ift.stderr_) << "ESS " << r.ift.ess;
}

// ---- reverse (generative) process --------------------------------------------------------------

namespace {

// |a_i - b_i| per path: `per` values per path, the largest difference among them (a sample's
// coordinates). A non-finite value on either side counts as an infinite difference.
template <class T>
std::vector<double> per_path_diff(const std::vector<T>& a, const std::vector<T>& b, int per) {
  std::vector<double> diff;
  for (std::size_t i = 0; i + per <= a.size() && i + per <= b.size(); i += std::size_t(per)) {
    double m = 0;
    for (int j = 0; j < per; ++j) {
      const double x = double(a[i + j]), y = double(b[i + j]);
      m = std::max(m, std::isfinite(x) && std::isfinite(y) ? std::abs(x - y) : HUGE_VAL);
    }
    diff.push_back(m);
  }
  return diff;
}

// Per-path values of two runs agree to float rounding: the median difference is rounding-sized and
// 99% of the paths are within p99. Not every path: a reverse path that passes close to the boundary
// between two modes late in the process amplifies a rounding difference (the score's Jacobian there
// is large and positive), and a rare one may even end in the other mode. A wrong stream, draw
// index, grid point or step scalar instead moves almost every path by O(0.1 .. 1).
// Measured on the CPU, perturbing every normal by up to 2.4e-6 (the size of __sincosf's error in
// cuRAND's Box-Muller) on the mixture cases below: medians 0.5e-6 .. 2.3e-6, 99th percentiles
// 1e-5 .. 6e-5, maxima up to 0.2 (three modes: one path changes mode).
void expect_paths_agree(const char* what, std::vector<double> diff, std::size_t paths,
                        double median, double p99) {
  ASSERT_EQ(diff.size(), paths) << what;
  std::sort(diff.begin(), diff.end());
  EXPECT_LT(diff[diff.size() / 2], median) << what << ": median |gpu - cpu|";
  EXPECT_LT(diff[std::size_t(0.99 * double(diff.size() - 1))], p99) << what << ": 99th percentile";
}

void expect_reverse_agreement(const taep::Config& c, std::uint64_t first, std::uint64_t count,
                              bool with_taep, const std::string& what, double median = 1e-4,
                              double p99 = 1e-3) {
  SCOPED_TRACE(what);
  const auto cpu = taep::simulate_reverse_paths(c, taep::Backend::cpu, first, count, with_taep);
  const auto gpu = taep::simulate_reverse_paths(c, taep::Backend::cuda, first, count, with_taep);
  const int d = int(cpu.samples.size() / count);
  ASSERT_EQ(cpu.samples.size(), count * std::uint64_t(d));
  ASSERT_EQ(gpu.samples.size(), cpu.samples.size());
  ASSERT_EQ(gpu.taep.size(), cpu.taep.size());
  ASSERT_EQ(gpu.reference.size(), cpu.reference.size());
  if (with_taep) {
    EXPECT_EQ(gpu.taep.size(), count);
  }
  expect_paths_agree("samples", per_path_diff(cpu.samples, gpu.samples, d), count, median, p99);
  if (!gpu.taep.empty()) expect_paths_agree("S", per_path_diff(cpu.taep, gpu.taep, 1), count, median, p99);
  if (!gpu.reference.empty())
    expect_paths_agree("closed form", per_path_diff(cpu.reference, gpu.reference, 1), count, median, p99);
}

// A 2-component target in d dimensions (means +-2 along a diagonal, sigma 0.5) and its 1-mode
// collapse at eps 0.1: d = 5 runs the dynamic-size kernel, d = 16 the largest fixed one.
taep::Config high_dim_config(int d, int steps) {
  taep::Config c = taep::default_config();
  c.target.preset.clear();
  std::vector<double> m(std::size_t(d), 2.0 / std::sqrt(double(d))), minus = m;
  for (double& v : minus) v = -v;
  c.target.mixture = taep::MixtureSpec{{0.6, 0.4}, {m, minus}, {0.5, 0.5}};
  c.model.collapse = taep::CollapseSpec{1, 0.1};
  c.schedule.steps = steps;
  return c;
}

}  // namespace

TEST_F(Gpu, ReversePerPathAgreementWithCpu) {
  for (auto scheme : {taep::Scheme::euler, taep::Scheme::milstein}) {
    taep::Config c = taep_test::ring_config(1, 0.01, 1, 300, taep::Backend::cuda);
    c.schedule.scheme = scheme;
    const std::string name = scheme == taep::Scheme::euler ? "ring8 euler" : "ring8 milstein";
    // First path 1000: not a multiple of any block or batch, so a path-id offset error shows.
    expect_reverse_agreement(c, 1000, 8192, true, name);
    expect_reverse_agreement(c, 1000, 8192, false, name + ", samples alone");
  }
  taep::Config c = taep_test::three_mode_config();  // model components not shared with the target
  c.schedule.steps = 300;
  c.schedule.scheme = taep::Scheme::milstein;
  expect_reverse_agreement(c, 77, 8192, true, "three modes milstein");
  for (int d : {5, 16}) {
    expect_reverse_agreement(high_dim_config(d, 200), 0, 4096, true, "d = " + std::to_string(d));
    expect_reverse_agreement(high_dim_config(d, 200), 0, 4096, false,
                             "d = " + std::to_string(d) + ", samples alone");
  }
}

TEST_F(Gpu, ReversePathsDoNotDependOnChunking) {
  const taep::Config c = taep_test::ring_config(1, 0.02, 1, 80, taep::Backend::cuda);
  const std::uint64_t n = 3 * 4096 + 77;
  const auto all = taep::simulate_reverse_paths(c, taep::Backend::cuda, 0, n);
  ASSERT_EQ(all.taep.size(), n);
  ASSERT_EQ(all.reference.size(), n);
  for (auto [first, count] : {std::pair<std::uint64_t, std::uint64_t>{0, 4096},
                              {4096 + 5, 4096},
                              {n - 100, 100}}) {
    const auto part = taep::simulate_reverse_paths(c, taep::Backend::cuda, first, count);
    // One thread per path, its numbers addressed by path id: bitwise the same values.
    EXPECT_TRUE(std::equal(part.taep.begin(), part.taep.end(), all.taep.begin() + first));
    EXPECT_TRUE(std::equal(part.reference.begin(), part.reference.end(), all.reference.begin() + first));
    EXPECT_TRUE(std::equal(part.samples.begin(), part.samples.end(), all.samples.begin() + 2 * first));
  }
  taep::Config s = c;
  std::vector<taep::SampleResult> runs;
  for (std::uint64_t chunk : {4096, 3 * 4096, 0}) {
    s.run.chunk_paths = chunk;
    runs.push_back(taep::sample(s, n));
  }
  for (const auto& r : runs) {
    EXPECT_EQ(r.samples, runs[0].samples);
    EXPECT_EQ(r.occupancy.counts, runs[0].occupancy.counts);
  }
}

TEST_F(Gpu, ReverseSamplesOccupyModesAsTheModelWeights) {
  // Exact score of the 1-mode collapse at eps 0.05: the samples should follow q, whose weights are
  // 0.05 for mode 1 and 0.95/7 for the others. 1000 Euler steps keep the discretization's bias on
  // the weights well below the 4-SE band (3.4% of 0.05 and 2% of 0.136 at 2^18 samples): the CPU
  // backend's samples of the same paths are within 2.2 SE of every weight.
  taep::Config c = taep_test::ring_config(1, 0.05, 1, 1000, taep::Backend::cuda);
  const taep::SampleResult r = taep::sample(c, std::uint64_t(1) << 18);
  EXPECT_EQ(r.nonfinite, 0u);
  EXPECT_EQ(r.samples.size(), std::size_t(2) << 18);
  const taep::ModeOccupancy& o = r.occupancy;
  ASSERT_EQ(o.model_weights.size(), 8u);
  ASSERT_EQ(o.fractions.size(), 8u);
  for (std::size_t k = 0; k < 8; ++k)
    EXPECT_NEAR(o.fractions[k], o.model_weights[k], 4 * o.fraction_stderr[k]) << "mode " << k;
  EXPECT_NEAR(o.model_weights[0], 0.05, 1e-12);
}

TEST_F(Gpu, MlpReversePerPathAgreementWithCpu) {
  for (const MlpCase& m : kMlpCases) {
    const taep::Config c = mlp_ring_config(m);
    const std::string name =
        std::string("mlp ") + (m.divergence == taep::Divergence::exact ? "exact" : "hutchinson") +
        (m.distribution == taep::ProbeDistribution::gaussian ? " gaussian" : "");
    // Float GEMMs in different summation orders, __sincosf in the noise: rounding differences
    // accumulated over 100 steps (as for forward paths); a wrong probe or noise index gives O(0.1).
    expect_reverse_agreement(c, 4096, 4096, true, name, 1e-4, 1e-2);
  }
  expect_reverse_agreement(mlp_ring_config(kMlpCases[0]), 4096 + 100, 4096, false,
                           "mlp, samples alone", 1e-4, 1e-2);
}

TEST_F(Gpu, MlpReversePathsDoNotDependOnChunking) {
  const taep::Config c = mlp_ring_config(kMlpCases[1]);
  const std::uint64_t n = 2 * 4096 + 77;
  const auto all = taep::simulate_reverse_paths(c, taep::Backend::cuda, 0, n);
  const std::uint64_t first = 4096 + 5, count = 4096;
  const auto part = taep::simulate_reverse_paths(c, taep::Backend::cuda, first, count);
  // The per-path kernels address every number by path id; the GEMMs over a chunk of another size
  // may take another cuBLAS kernel (another summation order), so agreement is to float rounding.
  const std::vector<double> all_taep(all.taep.begin() + first, all.taep.begin() + first + count);
  const std::vector<float> all_x(all.samples.begin() + 2 * first, all.samples.begin() + 2 * (first + count));
  expect_paths_agree("S", per_path_diff(all_taep, part.taep, 1), count, 1e-4, 1e-2);
  expect_paths_agree("samples", per_path_diff(all_x, part.samples, 2), count, 1e-4, 1e-2);
}

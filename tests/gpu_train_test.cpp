// GPU-only checks of the CUDA trainer (label gpu; kernels/cuda_trainer.cu): its gradients and its
// training steps agree with the CPU trainer's on the same examples and initial weights, and two runs
// with the same seed agree bit for bit.
//
// Tolerances. Both trainers see the same examples: the Philox words are identical, the normals agree
// to a few ulp (the device's Box-Muller uses __sincosf). Everything else is float arithmetic in a
// different order (cuBLAS versus OpenBLAS summation, FMA contraction, the bias folded into the GEMM on
// the GPU), so a per-example quantity differs by ~1e-6 relative and a batch mean of B = 300 terms by
// ~u sqrt(B) to u B (u = 6e-8) of the mean magnitude of its terms: 1e-6 to 2e-5 of the largest
// gradient entry. The gradient tolerance is 1e-4 of the largest entry. (On the CPU, perturbing the
// weights by 2e-6 relative moves the gradient by 3e-6 of its largest entry.)
// In training, Adam's first steps are lr sign(g) as eps -> 0, so an entry whose true gradient is
// within rounding of zero can get opposite updates on the two backends, and one such entry breaks any
// tolerance much below lr. The training comparison therefore uses adam_eps = 1e-2: an update then
// moves by at most about (lr / eps) |dg| = 0.1 |dg| for a gradient change dg, so 20 steps stay within
// 20 x 0.1 x 2e-5 = 4e-5 of each other plus the slow feedback of the weights on the gradients (on the
// CPU, the 2e-6 perturbation above ends 20 steps within 2e-7). The weight tolerance is 1e-4, while
// training moves the largest weight by ~2e-2. clip_norm = 0.3 is below the gradient norm (~0.6), so
// clipping acts on every step.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "host/engine/trainer.hpp"
#include "taep/train.hpp"
#include "support/test_support.hpp"

namespace {

class GpuTrain : public ::testing::Test {
 protected:
  void SetUp() override { TAEP_REQUIRE_BACKEND(taep::Backend::cuda); }
};

// A small network with unequal widths (so that in != out and the padded leading dimensions differ),
// a batch that is not a multiple of the kernels' block sizes, and an embedding of half-size 3.
taep::TrainConfig small_config(taep::Parameterization p) {
  taep::TrainConfig c = taep::default_train_config();
  c.network.hidden = {24, 40};
  c.network.embedding_dim = 6;
  c.network.parameterization = p;
  c.optimizer.batch = 300;
  c.optimizer.steps = 20;
  c.seed = 11;
  return c;
}

// A 3-D mixture with unequal weights and widths.
void use_3d_mixture(taep::TrainConfig& c) {
  c.data.target.preset.clear();
  c.data.target.mixture =
      taep::MixtureSpec{{0.5, 0.3, 0.2}, {{-2.0, 0.0, 1.0}, {2.0, 1.0, -1.0}, {0.0, -2.5, 0.5}}, {0.4, 0.3, 0.5}};
}

// A CSV file of 2-D samples (a small spiral), written once per test binary.
std::string samples_file() {
  const std::string path = ::testing::TempDir() + "taep_gpu_train_samples.csv";
  std::ofstream out(path);
  out << "x,y\n";
  for (int i = 0; i < 257; ++i) {
    const double r = 0.5 + 3.0 * i / 257.0, a = 0.1 * i;
    out << r * std::cos(a) << "," << r * std::sin(a) << "\n";
  }
  return path;
}

struct Case {
  const char* name;
  taep::TrainConfig config;
};

std::vector<Case> cases() {
  std::vector<Case> out;
  out.push_back({"ring8 score", small_config(taep::Parameterization::score)});
  out.push_back({"ring8 eps", small_config(taep::Parameterization::eps)});
  Case m{"3-D mixture score", small_config(taep::Parameterization::score)};
  use_3d_mixture(m.config);
  out.push_back(m);
  Case s{"samples eps", small_config(taep::Parameterization::eps)};
  s.config.data.samples = samples_file();
  out.push_back(s);
  for (Case& c : out) taep::validate(c.config);
  return out;
}

double max_abs(const std::vector<float>& v) {
  double m = 0;
  for (float x : v) m = std::max(m, double(std::abs(x)));
  return m;
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double m = 0;
  for (std::size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(double(a[i]) - double(b[i])));
  return m;
}

bool bitwise_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

}  // namespace

TEST_F(GpuTrain, GradientMatchesCpu) {
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.name);
    const taep::detail::TrainProblem P = taep::detail::make_train_problem(c.config);
    auto cpu = taep::detail::make_cpu_trainer(P, 0);
    auto gpu = taep::detail::make_cuda_trainer(P);
    for (std::uint64_t step : {0, 7}) {
      SCOPED_TRACE("step " + std::to_string(step));
      std::vector<float> g_cpu, g_gpu;
      const double l_cpu = cpu->loss_and_gradient(step, g_cpu);
      const double l_gpu = gpu->loss_and_gradient(step, g_gpu);
      ASSERT_EQ(g_gpu.size(), P.parameter_count);
      EXPECT_NEAR(l_gpu, l_cpu, 1e-5 * std::abs(l_cpu));
      const double scale = max_abs(g_cpu);
      ASSERT_GT(scale, 0.0);
      EXPECT_LE(max_abs_diff(g_gpu, g_cpu), 1e-4 * scale) << "max |g| = " << scale;
      // Every layer's bias gradient is checked by the same bound; make sure it is not all zeros.
      for (const taep::detail::TrainLayer& l : P.layers) {
        double b = 0;
        for (int j = 0; j < l.out; ++j) b = std::max(b, double(std::abs(g_gpu[l.bias + std::size_t(j)])));
        EXPECT_GT(b, 0.0);
      }
    }
  }
}

TEST_F(GpuTrain, TrainingMatchesCpu) {
  for (Case c : cases()) {
    SCOPED_TRACE(c.name);
    c.config.optimizer.adam_eps = 1e-2;  // see the tolerances at the top
    c.config.optimizer.clip_norm = 0.3;  // below the gradient norm: every step clips
    c.config.optimizer.ema_decay = 0.9;  // so that the EMA moves visibly in 20 steps
    const taep::detail::TrainProblem P = taep::detail::make_train_problem(c.config);
    auto cpu = taep::detail::make_cpu_trainer(P, 0);
    auto gpu = taep::detail::make_cuda_trainer(P);
    // Two log windows, the second continuing the first (the step counter on the device).
    for (auto [first, count] : {std::pair<std::uint64_t, std::uint64_t>{0, 7}, {7, 13}}) {
      taep::detail::TrainSums s_cpu, s_gpu;
      cpu->run_steps(first, count, s_cpu);
      gpu->run_steps(first, count, s_gpu);
      EXPECT_EQ(s_gpu.steps, count);
      EXPECT_NEAR(s_gpu.loss, s_cpu.loss, 1e-5 * std::abs(s_cpu.loss));
      EXPECT_NEAR(s_gpu.grad_norm, s_cpu.grad_norm, 2e-5 * std::abs(s_cpu.grad_norm));
    }
    std::vector<float> ema_cpu, last_cpu, ema_gpu, last_gpu;
    cpu->read_parameters(ema_cpu, last_cpu);
    gpu->read_parameters(ema_gpu, last_gpu);
    ASSERT_EQ(last_gpu.size(), P.parameter_count);
    ASSERT_EQ(ema_gpu.size(), P.parameter_count);
    // Training moved the weights by far more than the tolerance ...
    EXPECT_GT(max_abs_diff(last_cpu, P.initial), 5e-3);
    EXPECT_GT(max_abs_diff(ema_cpu, P.initial), 2e-3);
    // ... and both backends moved them the same way.
    EXPECT_LE(max_abs_diff(last_gpu, last_cpu), 1e-4);
    EXPECT_LE(max_abs_diff(ema_gpu, ema_cpu), 1e-4);
  }
}

TEST_F(GpuTrain, BitwiseReproducible) {
  // Default optimizer settings and a batch of several thousand examples; the second run is split
  // into other log windows and interleaved with loss_and_gradient, which must change nothing.
  taep::TrainConfig c = taep::default_train_config();
  c.network.hidden = {64, 64};
  c.optimizer.batch = 3000;
  c.optimizer.steps = 30;
  c.seed = 5;
  taep::validate(c);
  const taep::detail::TrainProblem P = taep::detail::make_train_problem(c);

  auto a = taep::detail::make_cuda_trainer(P);
  taep::detail::TrainSums sa;
  a->run_steps(0, 30, sa);

  auto b = taep::detail::make_cuda_trainer(P);
  taep::detail::TrainSums sb1, sb2;
  std::vector<float> g;
  b->run_steps(0, 11, sb1);
  b->loss_and_gradient(4, g);
  b->run_steps(11, 19, sb2);

  std::vector<float> ema_a, last_a, ema_b, last_b;
  a->read_parameters(ema_a, last_a);
  b->read_parameters(ema_b, last_b);
  EXPECT_TRUE(bitwise_equal(last_a, last_b));
  EXPECT_TRUE(bitwise_equal(ema_a, ema_b));
  EXPECT_GT(max_abs_diff(last_a, P.initial), 1e-2);

  // So are the loss and gradient-norm sums of each log window (a third run with b's windows).
  auto c3 = taep::detail::make_cuda_trainer(P);
  taep::detail::TrainSums sc1, sc2;
  c3->run_steps(0, 11, sc1);
  c3->run_steps(11, 19, sc2);
  EXPECT_EQ(sc1.loss, sb1.loss);
  EXPECT_EQ(sc2.loss, sb2.loss);
  EXPECT_EQ(sc1.grad_norm, sb1.grad_norm);
  EXPECT_EQ(sc2.grad_norm, sb2.grad_norm);
  EXPECT_TRUE(std::isfinite(sa.loss) && sa.loss > 0);

  // Gradients of one step are reproducible as well.
  std::vector<float> g2;
  EXPECT_EQ(a->loss_and_gradient(4, g), a->loss_and_gradient(4, g2));
  EXPECT_TRUE(bitwise_equal(g, g2));
}

TEST_F(GpuTrain, TrainThroughPublicApi) {
  taep::TrainConfig c = taep::default_train_config();
  c.backend = taep::Backend::cuda;
  c.optimizer.batch = 1024;
  c.optimizer.steps = 600;
  c.log_every = 100;
  const taep::TrainResult r = taep::train(c);
  EXPECT_EQ(r.backend, "cuda");
  ASSERT_EQ(r.log.size(), 6u);
  for (const taep::TrainLogEntry& e : r.log) {
    EXPECT_TRUE(std::isfinite(e.loss));
    EXPECT_TRUE(std::isfinite(e.grad_norm) && e.grad_norm > 0);
  }
  EXPECT_EQ(r.log.back().step, 600u);
  // A network at its initial weights outputs ~0, a loss of ~d = 2; 600 steps bring it well below.
  EXPECT_LT(r.log.back().loss, 0.8 * r.log.front().loss);
  EXPECT_GT(r.steps_per_second, 0.0);
  EXPECT_EQ(r.model.layers.size(), 4u);
}

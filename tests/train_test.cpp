// Tests of native denoising-score-matching training (`taep train`): the shared physics of
// physics/dsm.hpp, the CPU trainer's gradients against finite differences, Adam, the EMA and
// clipping against their closed forms, determinism, the loss floor, convergence on a target with a
// closed-form floor, the config, and the command line end to end.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "host/engine/trainer.hpp"
#include "taep/engine.hpp"
#include "taep/error.hpp"
#include "taep/mlp.hpp"
#include "taep/physics/dsm.hpp"
#include "taep/physics/mlp_elementwise.hpp"
#include "taep/physics/philox.hpp"
#include "taep/train.hpp"

#ifndef TAEP_CLI_PATH
#error "TAEP_CLI_PATH must name the taep executable"
#endif

namespace {

namespace fs = std::filesystem;
using taep::detail::TrainProblem;

// A single 2D Gaussian N(m, sigma^2 I): its DSM loss floor is closed-form,
//   d E_t[1 - (1 - abar)/v],  v = abar sigma^2 + 1 - abar
// (the exact score is -(x - sqrt(abar) m)/v, and E|sqrt(1-abar) s* + z|^2 = d - (1-abar) E|s*|^2).
constexpr double kGaussSigma = 0.5;
taep::TrainConfig gaussian_config() {
  taep::TrainConfig c = taep::default_train_config();
  c.data.target.preset.clear();
  c.data.target.mixture = taep::MixtureSpec{{1.0}, {{1.0, -0.5}}, {kGaussSigma}};
  c.network.hidden = {32, 32};
  c.network.embedding_dim = 8;
  c.network.time_scale = 10.0;
  c.optimizer.batch = 256;
  c.optimizer.steps = 100;
  c.optimizer.ema_decay = 0.99;
  c.backend = taep::Backend::cpu;
  return c;
}

double gaussian_floor(const taep::TrainConfig& c) {
  // Simpson's rule over t in [t_min, 1]; the integrand is smooth, 20000 intervals are exact to 1e-12.
  const taep::physics::Schedule& s = c.sde;
  const int n = 20000;
  const double a = c.t_min, h = (1.0 - a) / n;
  auto f = [&](double t) {
    const double ab = s.abar(t), v = ab * kGaussSigma * kGaussSigma + 1 - ab;
    return 2.0 * (1 - (1 - ab) / v);
  };
  double sum = f(a) + f(1.0);
  for (int i = 1; i < n; ++i) sum += (i % 2 ? 4 : 2) * f(a + i * h);
  return sum * h / 3 / (1.0 - a);
}

// A small network on the ring for the gradient checks.
taep::TrainConfig tiny_config(taep::Parameterization p) {
  taep::TrainConfig c = taep::default_train_config();
  c.data.collapse = taep::CollapseSpec{2, 0.05};
  c.network.hidden = {8, 6};
  c.network.embedding_dim = 4;
  c.network.time_scale = 5.0;
  c.network.parameterization = p;
  c.optimizer.batch = 24;  // not a multiple of anything in particular
  c.optimizer.steps = 10;
  c.seed = 7;
  taep::validate(c);
  return c;
}

// ---- a double-precision reference of the training loss --------------------------------------------

struct RefExample {
  std::vector<double> input;  // [x_t, emb(t)] as the trainer's float input
  std::vector<double> z;
  double a = 0;
};

std::vector<RefExample> reference_examples(const TrainProblem& P, std::uint64_t step) {
  const taep::physics::DsmData D = P.data();
  std::vector<RefExample> out;
  std::vector<float> x(std::size_t(P.d + P.embedding_dim)), z(std::size_t(P.d));
  for (int i = 0; i < P.batch; ++i) {
    taep::rng::PhiloxHostStream stream(P.seed, taep::physics::train_example_subsequence(step, P.batch, i));
    const taep::physics::DsmTime tm = taep::physics::draw_example(D, stream, x.data(), z.data());
    taep::physics::example_embedding(tm.t, P.embedding_dim, P.time_scale, P.max_period, x.data() + P.d);
    RefExample e;
    e.input.assign(x.begin(), x.end());
    e.z.assign(z.begin(), z.end());
    e.a = taep::physics::output_coefficient(P.eps(), tm.sigma_t);
    out.push_back(std::move(e));
  }
  return out;
}

// The batch-mean loss at flat parameters theta, in double.
double reference_loss(const TrainProblem& P, const std::vector<RefExample>& ex,
                      const std::vector<double>& theta) {
  double total = 0;
  for (const RefExample& e : ex) {
    std::vector<double> h = e.input;
    for (std::size_t l = 0; l < P.layers.size(); ++l) {
      const auto& L = P.layers[l];
      std::vector<double> y(std::size_t(L.out));
      for (int j = 0; j < L.out; ++j) {
        double s = theta[L.bias + std::size_t(j)];
        for (int k = 0; k < L.in; ++k) s += theta[L.weight + std::size_t(j) * L.in + k] * h[std::size_t(k)];
        y[std::size_t(j)] = l + 1 < P.layers.size() ? s / (1 + std::exp(-s)) : s;
      }
      h = std::move(y);
    }
    for (int i = 0; i < P.d; ++i) {
      const double r = e.a * h[std::size_t(i)] + e.z[std::size_t(i)];
      total += r * r;
    }
  }
  return total / double(ex.size());
}

std::vector<double> to_double(const std::vector<float>& v) { return {v.begin(), v.end()}; }

// ---- physics/dsm.hpp ------------------------------------------------------------------------------

TEST(DsmPhysics, ExampleFollowsTheDocumentedDraws) {
  taep::TrainConfig c = tiny_config(taep::Parameterization::score);
  const TrainProblem P = taep::detail::make_train_problem(c);
  const taep::physics::DsmData D = P.data();
  for (std::uint64_t step : {0u, 3u, 1000u})
    for (int i : {0, 5, 23}) {
      const std::uint64_t sub = taep::physics::train_example_subsequence(step, P.batch, i);
      EXPECT_EQ(sub, (std::uint64_t(taep::rng::kTrainExample) << 40) | (step * P.batch + i));
      // By hand from the raw stream.
      taep::rng::PhiloxHostStream raw(P.seed, sub);
      const taep::rng::U4 w = raw.next_u4();
      const taep::rng::F4 n = raw.next_normal4();
      const double t = c.t_min + (1 - c.t_min) * ((double(w.y) + 0.5) / 4294967296.0);
      const double u = (double(w.x) + 0.5) / 4294967296.0;
      int k = 0;
      while (k + 1 < P.K && u >= P.cum_w[std::size_t(k)]) ++k;
      const double ab = P.schedule.abar(t);
      const float z0[2] = {n.x, n.y}, zz[2] = {n.z, n.w};

      taep::rng::PhiloxHostStream stream(P.seed, sub);
      float x[2], z[2];
      const taep::physics::DsmTime tm = taep::physics::draw_example(D, stream, x, z);
      EXPECT_DOUBLE_EQ(tm.t, t);
      EXPECT_NEAR(tm.marginal.scale2, ab, 1e-15);
      EXPECT_NEAR(tm.sigma_t, std::sqrt(1 - ab), 1e-6 * std::sqrt(1 - ab));
      for (int j = 0; j < 2; ++j) {
        EXPECT_EQ(z[j], zz[j]);
        const double x0 = P.mean[std::size_t(k * 2 + j)] + double(P.sigma[std::size_t(k)]) * z0[j];
        const double expect = std::sqrt(ab) * x0 + std::sqrt(1 - ab) * zz[j];
        EXPECT_NEAR(x[j], expect, 1e-5 * (1 + std::fabs(expect)));
      }
    }
}

TEST(DsmPhysics, ComponentFrequenciesFollowTheCollapsedWeights) {
  // data.collapse {2, 0.05} on the ring: components 0 and 1 have weight 0.05 each.
  const TrainProblem P = taep::detail::make_train_problem(tiny_config(taep::Parameterization::score));
  const int n = 40000;
  int hits = 0;
  for (int i = 0; i < n; ++i) {
    taep::rng::PhiloxHostStream s(P.seed, taep::physics::train_example_subsequence(0, n, i));
    const double u = (double(s.next_u4().x) + 0.5) / 4294967296.0;
    hits += u < P.cum_w[1];
  }
  const double p = 0.1, se = std::sqrt(p * (1 - p) / n);
  EXPECT_NEAR(double(hits) / n, p, 4 * se);
}

TEST(DsmPhysics, SampleRowsArePickedUniformly) {
  const float rows[3 * 2] = {1, 2, 3, 4, 5, 6};
  taep::physics::DsmData D;
  D.d = 2;
  D.samples = rows;
  D.sample_count = 3;
  int count[3] = {0, 0, 0};
  const int n = 30000;
  for (int i = 0; i < n; ++i) {
    taep::rng::PhiloxHostStream s(5, taep::physics::train_example_subsequence(0, n, i));
    float x[2], z[2];
    const taep::physics::DsmTime tm = taep::physics::draw_example(D, s, x, z);
    // Recover the row from x_t = sqrt(abar) x0 + sigma_t z.
    const double x00 = (x[0] - double(tm.sigma_t) * z[0]) / tm.mean_scale;
    const int row = int(std::lround((x00 - 1) / 2));
    ASSERT_TRUE(row >= 0 && row < 3) << x00;
    EXPECT_NEAR((x[1] - double(tm.sigma_t) * z[1]) / tm.mean_scale, rows[row * 2 + 1], 1e-3 / tm.mean_scale);
    count[row]++;
  }
  const double se = std::sqrt((1.0 / 3) * (2.0 / 3) / n);
  for (int r = 0; r < 3; ++r) EXPECT_NEAR(count[r] / double(n), 1.0 / 3, 4 * se) << r;
}

TEST(DsmPhysics, EmbeddingEqualsTheEvaluatorsEmbedding) {
  const int E = 16;
  double ref[E], freq[E / 2];
  float a[E], b[E];
  for (int i = 0; i < E / 2; ++i) freq[i] = taep::physics::embedding_frequency(i, E, 10000.0);
  for (double t : {1e-3, 0.37, 1.0}) {
    taep::physics::time_embedding(t, E, 100.0, 10000.0, ref);
    taep::physics::example_embedding(t, E, 100.0, 10000.0, a);
    taep::physics::example_embedding(t, E, 100.0, freq, b);
    for (int i = 0; i < E; ++i) {
      EXPECT_EQ(a[i], float(ref[i])) << i;
      EXPECT_EQ(b[i], a[i]) << i;
    }
  }
}

TEST(DsmPhysics, LossAndItsGradientAreTheDocumentedForms) {
  const float o[2] = {-3.f, 1.5f}, z[2] = {0.4f, -1.1f};
  for (bool eps : {false, true}) {
    const float sigma_t = 0.3f;
    const float a = taep::physics::output_coefficient(eps, sigma_t);
    EXPECT_EQ(a, eps ? -1.f : sigma_t);
    float g[2];
    const float l = taep::physics::dsm_example_loss(2, a, o, z, 0.25f, g);
    double expect = 0;
    for (int i = 0; i < 2; ++i) {
      const double r = double(a) * o[i] + z[i];
      expect += r * r;
      EXPECT_NEAR(g[i], 0.25 * 2 * a * r, 1e-6);
    }
    EXPECT_NEAR(l, expect, 1e-6);
  }
}

TEST(DsmPhysics, ClipScaleIsPyTorchs) {
  EXPECT_EQ(taep::physics::clip_scale(0.5, 1.0), 1.f);
  EXPECT_FLOAT_EQ(taep::physics::clip_scale(4.0, 1.0), float(1.0 / (4.0 + 1e-6)));
  EXPECT_EQ(taep::physics::clip_scale(1e9, 0.0), 1.f);  // 0 disables clipping
}

TEST(DsmPhysics, InitialWeightsFollowPyTorchsLinearDefault) {
  taep::TrainConfig c = taep::default_train_config();
  taep::validate(c);
  const TrainProblem P = taep::detail::make_train_problem(c);
  ASSERT_EQ(P.initial.size(), P.parameter_count);
  EXPECT_EQ(P.parameter_count, std::size_t(18 * 128 + 128 + 2 * (128 * 128 + 128) + 128 * 2 + 2));
  for (const auto& L : P.layers) {
    const double bound = 1 / std::sqrt(double(L.in));
    const std::size_t n = std::size_t(L.in) * L.out + L.out;
    double sum = 0, sum2 = 0;
    for (std::size_t i = 0; i < n; ++i) {
      const double w = P.initial[L.weight + i];
      ASSERT_LE(std::fabs(w), bound);
      sum += w;
      sum2 += w * w;
    }
    // U(-b, b): mean 0, variance b^2/3; the variance of w^2 is 4 b^4/45.
    EXPECT_NEAR(sum / n, 0, 4 * bound / std::sqrt(3.0 * n));
    EXPECT_NEAR(sum2 / n, bound * bound / 3, 4 * bound * bound * std::sqrt(4.0 / 45 / n));
  }
  // Another seed, other weights; the same seed, the same.
  EXPECT_EQ(taep::detail::initial_parameters(P.layers, P.parameter_count, c.seed), P.initial);
  EXPECT_NE(taep::detail::initial_parameters(P.layers, P.parameter_count, c.seed + 1), P.initial);
}

// ---- the CPU trainer ------------------------------------------------------------------------------

// Central differences of the double-precision loss against the trainer's float gradient. The
// difference quotient with h = 1e-4 has truncation error h^2/6 |f'''| ~ 1e-9 and rounding error
// ~1e-16/h = 1e-12, so it is exact for this purpose. The float gradient is a sum over the batch of
// products of float values: each term carries a relative rounding error of a few units of
// u = 6e-8 per layer it passes through, and the batch sum adds at most B u = 1.5e-6 relative to
// the sum of |terms|, which cancellation can make up to ~10x the result. So each entry must agree
// to 1e-4 of the largest entry of its layer's tensor plus 1e-4 of itself; a wrong factor, a
// transposed weight or a missed SiLU' is off by O(1).
void check_gradient(taep::Parameterization p) {
  const taep::TrainConfig c = tiny_config(p);
  const TrainProblem P = taep::detail::make_train_problem(c);
  auto trainer = taep::detail::make_cpu_trainer(P, 1);
  // At the initial weights, and after a few steps (weights no longer at their symmetric start).
  for (std::uint64_t step : {0u, 4u}) {
    if (step > 0) {
      taep::detail::TrainSums sums;
      trainer->run_steps(0, step, sums);
    }
    std::vector<float> grad, ema, last;
    const double loss = trainer->loss_and_gradient(step, grad);
    trainer->read_parameters(ema, last);
    const auto ex = reference_examples(P, step);
    std::vector<double> theta = to_double(last);
    const double ref = reference_loss(P, ex, theta);
    EXPECT_NEAR(loss, ref, 1e-5 * ref) << "step " << step;
    ASSERT_EQ(grad.size(), P.parameter_count);
    for (const auto& L : P.layers)
      for (std::size_t part = 0; part < 2; ++part) {
        const std::size_t off = part == 0 ? L.weight : L.bias;
        const std::size_t n = part == 0 ? std::size_t(L.in) * L.out : std::size_t(L.out);
        std::vector<double> fd(n);
        double scale = 0;
        for (std::size_t i = 0; i < n; ++i) {
          const double h = 1e-4, keep = theta[off + i];
          theta[off + i] = keep + h;
          const double up = reference_loss(P, ex, theta);
          theta[off + i] = keep - h;
          const double down = reference_loss(P, ex, theta);
          theta[off + i] = keep;
          fd[i] = (up - down) / (2 * h);
          scale = std::max(scale, std::fabs(fd[i]));
        }
        ASSERT_GT(scale, 0);
        for (std::size_t i = 0; i < n; ++i)
          ASSERT_NEAR(grad[off + i], fd[i], 1e-4 * (scale + std::fabs(fd[i])))
              << "step " << step << (part == 0 ? " weight" : " bias") << " offset " << off << " entry " << i;
      }
  }
}

TEST(CpuTrainer, GradientMatchesFiniteDifferencesScore) { check_gradient(taep::Parameterization::score); }
TEST(CpuTrainer, GradientMatchesFiniteDifferencesEps) { check_gradient(taep::Parameterization::eps); }

// Adam with bias correction, clipping and the EMA against their closed forms, step by step: the
// test keeps Adam's moments in double, fed with the trainer's own gradients of each step, and
// starts every step from the trainer's parameters, so only one step's float rounding separates
// the two: a few ulp of the parameter plus ~1e-6 of the step lr.
void check_adam(double clip_norm) {
  taep::TrainConfig c = tiny_config(taep::Parameterization::score);
  c.optimizer.clip_norm = clip_norm;
  c.optimizer.ema_decay = 0.8;  // a visible EMA within a few steps
  c.optimizer.lr = 1e-2;
  const TrainProblem P = taep::detail::make_train_problem(c);
  auto trainer = taep::detail::make_cpu_trainer(P, 1);
  const std::size_t n = P.parameter_count;
  std::vector<double> m(n, 0.0), v(n, 0.0);
  std::vector<float> ema = P.initial, last = P.initial;
  const double b1 = c.optimizer.beta1, b2 = c.optimizer.beta2, lr = c.optimizer.lr;
  bool clipped = false;
  for (std::uint64_t k = 0; k < 6; ++k) {
    std::vector<float> g;
    trainer->loss_and_gradient(k, g);
    double ss = 0;
    for (float x : g) ss += double(x) * x;
    const double norm = std::sqrt(ss);
    const double scale = clip_norm > 0 ? std::min(1.0, clip_norm / (norm + 1e-6)) : 1.0;
    clipped = clipped || scale < 1;
    taep::detail::TrainSums sums;
    trainer->run_steps(k, 1, sums);
    EXPECT_EQ(sums.steps, 1u);
    EXPECT_NEAR(sums.grad_norm, norm, 1e-12 * norm);
    std::vector<float> ema_next, last_next;
    trainer->read_parameters(ema_next, last_next);
    const double bc1 = 1 - std::pow(b1, double(k + 1)), bc2 = 1 - std::pow(b2, double(k + 1));
    for (std::size_t i = 0; i < n; ++i) {
      const double gi = scale * g[i];
      m[i] = b1 * m[i] + (1 - b1) * gi;
      v[i] = b2 * v[i] + (1 - b2) * gi * gi;
      const double p = last[i] - lr / bc1 * m[i] / (std::sqrt(v[i]) / std::sqrt(bc2) + c.optimizer.adam_eps);
      const double ulp = std::fabs(p) * 1.2e-7;
      ASSERT_NEAR(last_next[i], p, 4 * ulp + 1e-5 * lr) << "step " << k << " parameter " << i;
      const double e = ema[i] + (1 - c.optimizer.ema_decay) * (double(last_next[i]) - ema[i]);
      ASSERT_NEAR(ema_next[i], e, 4 * std::fabs(e) * 1.2e-7 + 1e-9) << "step " << k << " parameter " << i;
    }
    ema = ema_next;
    last = last_next;
  }
  EXPECT_EQ(clipped, clip_norm > 0) << "the test must exercise clipping when it is on";
}

TEST(CpuTrainer, AdamAndEmaFollowTheClosedForm) { check_adam(0.0); }
TEST(CpuTrainer, ClippedAdamFollowsTheClosedForm) { check_adam(1e-3); }

TEST(CpuTrainer, ClippingChangesTheTrajectory) {
  taep::TrainConfig c = tiny_config(taep::Parameterization::score);
  c.optimizer.steps = 3;
  c.optimizer.clip_norm = 0;
  const taep::TrainResult free = taep::train(c);
  c.optimizer.clip_norm = 1e-3;
  const taep::TrainResult clipped = taep::train(c);
  EXPECT_NE(free.last.layers[0].weight, clipped.last.layers[0].weight);
}

TEST(CpuTrainer, RunStepsMustContinueWhereItStopped) {
  const TrainProblem P = taep::detail::make_train_problem(tiny_config(taep::Parameterization::score));
  auto trainer = taep::detail::make_cpu_trainer(P, 1);
  taep::detail::TrainSums sums;
  trainer->run_steps(0, 2, sums);
  EXPECT_THROW(trainer->run_steps(5, 1, sums), taep::Error);
}

// ---- determinism ----------------------------------------------------------------------------------

TEST(Train, DeterministicForASeedAndThreadCount) {
  taep::TrainConfig c = gaussian_config();
  c.optimizer.steps = 12;
  c.optimizer.batch = 700;  // three slabs, the last one partial
  c.threads = 1;
  const taep::TrainResult a = taep::train(c);
  const taep::TrainResult b = taep::train(c);
  c.threads = 2;
  const taep::TrainResult two = taep::train(c);
  c.seed = 2;
  const taep::TrainResult other = taep::train(c);
  ASSERT_EQ(a.model.layers.size(), 3u);
  for (std::size_t l = 0; l < a.model.layers.size(); ++l) {
    EXPECT_EQ(a.model.layers[l].weight, b.model.layers[l].weight) << l;
    EXPECT_EQ(a.model.layers[l].bias, b.model.layers[l].bias) << l;
    EXPECT_EQ(a.last.layers[l].weight, two.last.layers[l].weight) << l;
    EXPECT_EQ(a.model.layers[l].weight, two.model.layers[l].weight) << l;
    EXPECT_EQ(a.model.layers[l].bias, two.model.layers[l].bias) << l;
    EXPECT_NE(a.model.layers[l].weight, other.model.layers[l].weight) << l;
  }
  EXPECT_EQ(a.final_loss, two.final_loss);
  EXPECT_EQ(two.threads, 2);
}

// ---- the loss floor and training ------------------------------------------------------------------

TEST(Train, LossFloorOfAGaussianIsTheClosedForm) {
  taep::TrainConfig c = gaussian_config();
  const double exact = gaussian_floor(c);
  const auto mc = taep::dsm_loss_floor(c, 1 << 16, 3);
  ASSERT_TRUE(mc.has_value());
  EXPECT_GT(mc->second, 0);
  // 4 standard errors plus float rounding of the score (~1e-6 relative).
  EXPECT_NEAR(mc->first, exact, 4 * mc->second + 1e-5 * exact) << "SE " << mc->second;
}

TEST(Train, TrainingReachesTheFloorAndNeverBeatsIt) {
  taep::TrainConfig c = gaussian_config();
  c.optimizer.steps = 1500;
  c.optimizer.lr = 3e-3;
  const taep::TrainResult r = taep::train(c);
  ASSERT_TRUE(r.loss_floor.has_value());
  const double exact = gaussian_floor(c);
  EXPECT_NEAR(*r.loss_floor, exact, 4 * *r.loss_floor_stderr + 1e-5 * exact);
  EXPECT_LT(r.log.back().loss, r.log.front().loss);

  const taep::DsmLossEstimate e = taep::dsm_loss_estimate(r.model, c, 1 << 14, 11);
  ASSERT_TRUE(e.excess.has_value());
  // The excess over the exact score's loss on the same examples estimates the weighted explicit
  // score-matching error, which is >= 0: a trained model cannot beat the exact score.
  EXPECT_GE(*e.excess, -3 * *e.excess_stderr);
  // Within a few percent of the floor (the loss itself has a standard error of ~1%, the paired
  // excess a much smaller one).
  EXPECT_LT(*e.excess, 0.03 * exact) << "loss " << e.loss << " floor " << exact;
  EXPECT_NEAR(e.loss, exact, 0.03 * exact + 4 * e.loss_stderr);
  // dsm_loss is the same estimate.
  EXPECT_EQ(taep::dsm_loss(r.model, c, 1 << 10, 11), taep::dsm_loss_estimate(r.model, c, 1 << 10, 11).loss);
}

TEST(Train, UntrainedModelIsAboveTheFloor) {
  taep::TrainConfig c = tiny_config(taep::Parameterization::eps);
  const TrainProblem P = taep::detail::make_train_problem(c);
  const taep::DsmLossEstimate e = taep::dsm_loss_estimate(P.to_model(P.initial), c, 1 << 13, 1);
  ASSERT_TRUE(e.excess.has_value());
  EXPECT_GT(*e.excess, 10 * *e.excess_stderr);
  // The floor from the paired examples and the Rao-Blackwellized one agree.
  const auto f = taep::dsm_loss_floor(c, 1 << 13, 1);
  EXPECT_NEAR(*e.floor, f->first, 4 * std::hypot(*e.floor_stderr, f->second));
}

// ---- config ---------------------------------------------------------------------------------------

TEST(TrainConfig, DefaultsAreThePapers) {
  const taep::TrainConfig c = taep::default_train_config();
  EXPECT_EQ(c.network.hidden, (std::vector<int>{128, 128, 128}));
  EXPECT_EQ(c.optimizer.batch, 2048);
  EXPECT_EQ(c.optimizer.steps, 50000u);
  EXPECT_EQ(c.optimizer.lr, 1e-3);
  EXPECT_EQ(c.optimizer.clip_norm, 1.0);
  EXPECT_EQ(c.sde.type, taep::physics::ScheduleType::vp);
  EXPECT_EQ(c.sde.beta_min, 0.1);
  EXPECT_EQ(c.sde.beta_max, 20.0);
  EXPECT_EQ(c.t_min, 1e-3);
}

TEST(TrainConfig, JsonRoundTrips) {
  taep::TrainConfig c = taep::parse_train_config(
      R"({"data": {"target": {"weights": [1, 2], "means": [[0, 1], [2, 3]], "sigmas": [0.5, 1]},
                   "collapse": {"modes": 1, "eps": 0.1}},
          "network": {"hidden": [16, 8], "embedding_dim": 6, "parameterization": "eps"},
          "optimizer": {"steps": 1e3, "batch": 64, "ema_decay": 0.9},
          "schedule": {"t_min": 0.01}, "run": {"seed": 5, "backend": "cpu", "log_every": 10}})");
  EXPECT_EQ(c.network.hidden, (std::vector<int>{16, 8}));
  EXPECT_EQ(c.optimizer.steps, 1000u);
  EXPECT_EQ(c.network.parameterization, taep::Parameterization::eps);
  const std::string j = taep::train_config_to_json(c);
  EXPECT_EQ(taep::train_config_to_json(taep::parse_train_config(j)), j);
  const std::string d = taep::train_config_to_json(taep::default_train_config());
  EXPECT_EQ(taep::train_config_to_json(taep::parse_train_config("{}")), d);
}

struct BadTrainConfig {
  const char* json;
  const char* field;
};

TEST(TrainConfig, BadInputNamesTheField) {
  const BadTrainConfig cases[] = {
      {R"({"network": {"widths": [3]}})", "network.widths"},
      {R"({"network": {"hidden": []}})", "network.hidden"},
      {R"({"network": {"hidden": [0]}})", "network.hidden[0]"},
      {R"({"network": {"hidden": [8192, 8192, 8192]}})", "network.hidden"},
      {R"({"network": {"embedding_dim": 7}})", "network.embedding_dim"},
      {R"({"network": {"parameterization": "x0"}})", "network.parameterization"},
      {R"({"optimizer": {"steps": 0}})", "optimizer.steps"},
      {R"({"optimizer": {"batch": 2048, "steps": 1e9}})", "optimizer.steps"},
      {R"({"optimizer": {"lr": -1}})", "optimizer.lr"},
      {R"({"optimizer": {"beta2": 1}})", "optimizer.beta2"},
      {R"({"optimizer": {"ema_decay": 1}})", "optimizer.ema_decay"},
      {R"({"optimizer": {"clip_norm": -1}})", "optimizer.clip_norm"},
      {R"({"schedule": {"t_min": 1}})", "schedule.t_min"},
      {R"({"schedule": {"beta_max": 0.01}})", "schedule.beta_max"},
      {R"({"data": {"collapse": {"modes": 8}}})", "data.collapse.modes"},
      {R"({"data": {"collapse": {"modes": 2, "eps": 0.5}}})", "data.collapse.eps"},
      {R"({"data": {"samples": "no-such-file.csv"}})", "data.samples"},
      {R"({"data": {"samples": "x.csv", "target": {"preset": "ring8"}}})", "data"},
      {R"({"data": {"target": {"weights": [1], "means": [[0]], "sigmas": [0]}}})", "data.target.sigmas[0]"},
      {R"({"run": {"backend": "gpu"}})", "run.backend"},
      {R"({"run": {"log_every": 0}})", "run.log_every"},
      {R"({"run": {"seed": -1}})", "run.seed"},
      {R"([1])", "config"},
      {R"({"run": )", "config"},
  };
  for (const BadTrainConfig& b : cases) {
    try {
      // The config's own fields fail in parse_train_config, the samples file in the build.
      taep::build_train_problem(taep::parse_train_config(b.json));
      ADD_FAILURE() << "accepted " << b.json;
    } catch (const taep::ConfigError& e) {
      EXPECT_EQ(e.field(), b.field) << b.json << ": " << e.what();
    }
  }
}

// ---- samples file ---------------------------------------------------------------------------------

class TempDir : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "taep_train_test.XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    root_ = tmpl;
    work_ = root_ / "work";
    fs::create_directory(work_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }
  void write(const std::string& name, const std::string& text) {
    std::ofstream(work_ / name, std::ios::binary) << text;
  }
  static std::string read_text(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
  }
  std::vector<std::string> listing() const {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(work_)) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }
  struct Outcome {
    int exit_code = -1;
    std::string out, err;
  };
  Outcome cli(const std::string& args) {
    const std::string command = "cd '" + work_.string() + "' && '" TAEP_CLI_PATH "' " + args +
                                " >'" + (root_ / "stdout").string() + "' 2>'" +
                                (root_ / "stderr").string() + "'";
    const int status = std::system(command.c_str());
    Outcome o;
    o.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    o.out = read_text(root_ / "stdout");
    o.err = read_text(root_ / "stderr");
    return o;
  }
  fs::path root_, work_;
};

using TrainSamples = TempDir;

TEST_F(TrainSamples, CsvWithHeaderAndCommentsTrains) {
  write("s.csv", "x,y\n# a comment\n1, 2\n3 4  # trailing comment\n\n5,6\n");
  taep::TrainConfig c = gaussian_config();
  c.data.samples = (work_ / "s.csv").string();
  c.optimizer.steps = 3;
  const taep::TrainProblem problem = taep::build_train_problem(c);
  ASSERT_EQ(problem.sample_count(), 3u);
  ASSERT_EQ(problem.dim(), 2);
  EXPECT_EQ(std::vector<double>(problem.samples().begin() + 2, problem.samples().begin() + 4),
            (std::vector<double>{3, 4}));
  const TrainProblem P = taep::detail::make_train_problem(problem);
  EXPECT_EQ(P.sample_count, 3u);
  EXPECT_EQ(P.K, 0);
  const taep::TrainResult r = taep::train(c);
  EXPECT_FALSE(r.loss_floor.has_value());
  EXPECT_TRUE(std::isfinite(r.final_loss));
  EXPECT_FALSE(taep::dsm_loss_estimate(r.model, c, 64, 1).excess.has_value());

  write("bad.csv", "1,2\n3\n");
  c.data.samples = (work_ / "bad.csv").string();
  EXPECT_NO_THROW(taep::validate(c));  // pure: the file is read by build_train_problem
  try {
    taep::build_train_problem(c);
    ADD_FAILURE() << "accepted a ragged file";
  } catch (const taep::ConfigError& e) {
    EXPECT_EQ(e.field(), "data.samples");
    EXPECT_NE(std::string(e.what()).find("line 2"), std::string::npos) << e.what();
  }
}

// ---- snapshots along training (TrainOptions::snapshot_every, docs/snapshots.md) ------------------

using TrainSnapshots = TempDir;

taep::TrainConfig snapshot_config(std::uint64_t steps, std::uint64_t log_every) {
  taep::TrainConfig c = gaussian_config();
  c.network.hidden = {16};
  c.optimizer.batch = 64;
  c.optimizer.steps = steps;
  c.log_every = log_every;
  c.threads = 1;
  return c;
}

taep::TrainOptions snapshot_options(std::uint64_t every, const fs::path& dir) {
  taep::TrainOptions o;
  o.snapshot_every = every;
  o.snapshot_dir = dir.string();
  return o;
}

void expect_same_weights(const taep::MlpModel& a, const taep::MlpModel& b, const std::string& what) {
  ASSERT_EQ(a.layers.size(), b.layers.size()) << what;
  for (std::size_t l = 0; l < a.layers.size(); ++l) {
    EXPECT_EQ(a.layers[l].weight, b.layers[l].weight) << what << ": layer " << l;
    EXPECT_EQ(a.layers[l].bias, b.layers[l].bias) << what << ": layer " << l;
  }
}

// The result JSON without what varies from run to run (timing, provenance).
nlohmann::json stable_summary(const taep::TrainResult& r) {
  nlohmann::json j = nlohmann::json::parse(taep::train_result_to_json(r));
  j.erase("performance");
  j.erase("provenance");
  for (auto& e : j["log"]) e.erase("seconds");
  return j;
}

std::vector<std::string> names_in(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

// 23 steps, K = 4, log windows of 5: snapshots at 4, 8, ..., 20 and the last step, 23, some inside a
// window and some at its end; the training itself is bitwise the one without snapshots.
TEST_F(TrainSnapshots, EveryKStepsAndTheLastLeaveTheTrainingBitwiseAsItIs) {
  const taep::TrainConfig c = snapshot_config(23, 5);
  const taep::TrainResult plain = taep::train(c);
  const fs::path dir = work_ / "snaps";  // made by train
  const taep::TrainResult snap = taep::train(c, snapshot_options(4, dir));
  expect_same_weights(plain.model, snap.model, "EMA");
  expect_same_weights(plain.last, snap.last, "last iterate");
  EXPECT_EQ(stable_summary(plain), stable_summary(snap)) << "summary, log and config unchanged";
  {
    // One log window of all 23 steps on the ring, cut into 8 stretches: its sums still add step
    // by step (adding the stretches' own sums would change the mean gradient norm's last bit).
    taep::TrainConfig one_window = taep::default_train_config();
    one_window.network.hidden = {16};
    one_window.optimizer.batch = 64;
    one_window.optimizer.steps = 23;
    one_window.log_every = 23;
    one_window.threads = 1;
    one_window.backend = taep::Backend::cpu;
    const taep::TrainResult a = taep::train(one_window);
    const taep::TrainResult b = taep::train(one_window, snapshot_options(3, work_ / "one_window"));
    EXPECT_EQ(stable_summary(a), stable_summary(b)) << "one window";
    expect_same_weights(a.model, b.model, "one window");
  }

  EXPECT_EQ(names_in(dir), (std::vector<std::string>{
                               "manifest.json", "step_00000004.safetensors",
                               "step_00000008.safetensors", "step_00000012.safetensors",
                               "step_00000016.safetensors", "step_00000020.safetensors",
                               "step_00000023.safetensors"}))
      << "one file per snapshot, no temp file";
  const auto m = nlohmann::json::parse(read_text(dir / "manifest.json"));
  EXPECT_EQ(m["format"], "taep-snapshots");
  EXPECT_EQ(m["version"], 1);
  EXPECT_EQ(m["every"], 4);
  EXPECT_EQ(m["steps"], 23);
  EXPECT_EQ(m["weights"], "ema");
  EXPECT_EQ(m["backend"], "cpu");
  EXPECT_EQ(m["config"], nlohmann::json::parse(taep::train_config_to_json(c)));
  const std::vector<std::uint64_t> steps{4, 8, 12, 16, 20, 23};
  // The loss is the mean over the current log window's steps so far (windows 1-5, 6-10, ...).
  const std::vector<std::vector<std::uint64_t>> windows{{1, 4},   {6, 8},   {11, 12},
                                                        {16, 16}, {16, 20}, {21, 23}};
  ASSERT_EQ(m["snapshots"].size(), steps.size()) << m.dump(2);
  double wall = 0;
  for (std::size_t i = 0; i < steps.size(); ++i) {
    const auto& e = m["snapshots"][i];
    char name[40];
    std::snprintf(name, sizeof name, "step_%08llu.safetensors", static_cast<unsigned long long>(steps[i]));
    EXPECT_EQ(e["step"], steps[i]);
    EXPECT_EQ(e["file"], name);
    EXPECT_EQ(e["loss_steps"], nlohmann::json(windows[i])) << i;
    EXPECT_TRUE(e["loss"].is_number() && e["grad_norm"].is_number()) << e.dump();
    EXPECT_GE(e["wall_s"].get<double>(), wall) << i;
    wall = e["wall_s"].get<double>();
    const taep::MlpModel loaded = taep::load_mlp((dir / name).string());
    EXPECT_EQ(loaded.dim, 2);
    // The EMA of a training of that many steps (nothing in a step depends on the total), in a
    // window (8) and at a window's first step (16).
    if (steps[i] == 8 || steps[i] == 16) {
      taep::TrainConfig shorter = c;
      shorter.optimizer.steps = steps[i];
      expect_same_weights(loaded, taep::train(shorter).model, name);
    }
  }
  // At the end of a log window the loss is that window's log entry.
  EXPECT_EQ(m["snapshots"][4]["loss"].get<double>(), plain.log[3].loss);
  EXPECT_EQ(m["snapshots"][5]["loss"].get<double>(), plain.log[4].loss);
  EXPECT_EQ(m["snapshots"][5]["grad_norm"].get<double>(), plain.log[4].grad_norm);
  expect_same_weights(taep::load_mlp((dir / "step_00000023.safetensors").string()), plain.model,
                      "the last snapshot is the final model");
}

TEST_F(TrainSnapshots, BadOptionsAndADirectoryInUseAreRefusedNamingTheFlag) {
  const taep::TrainConfig c = snapshot_config(6, 3);
  const auto refused = [&](const taep::TrainOptions& o, const std::string& field,
                           const std::string& words) {
    try {
      taep::train(c, o);
      ADD_FAILURE() << "accepted: " << words;
    } catch (const taep::ConfigError& e) {
      EXPECT_EQ(e.field(), field) << e.what();
      EXPECT_NE(std::string(e.what()).find(words), std::string::npos) << e.what();
    }
  };
  refused(snapshot_options(3, ""), "--snapshot-dir", "must name a directory");
  refused(snapshot_options(0, work_ / "d"), "--snapshot-dir", "needs --snapshot-every");
  refused(snapshot_options(3, work_ / "no" / "d"), "--snapshot-dir", "cannot make the directory");
  write("file", "x");
  refused(snapshot_options(3, work_ / "file"), "--snapshot-dir", "is not a directory");
  EXPECT_EQ(names_in(work_), std::vector<std::string>{"file"}) << "nothing made";

  const fs::path dir = work_ / "snaps";
  taep::train(c, snapshot_options(3, dir));
  const std::string manifest = read_text(dir / "manifest.json");
  refused(snapshot_options(3, dir), "--snapshot-dir", "is not empty");
  EXPECT_EQ(read_text(dir / "manifest.json"), manifest) << "left as it was";
  fs::create_directory(work_ / "other");
  write("other/notes.txt", "mine");
  refused(snapshot_options(3, work_ / "other"), "--snapshot-dir", "is not empty");
}

// A training stopped at step 30 and resumed continues the snapshot directory: the snapshots
// before the stop stay, the manifest ends as one of a training that never stopped, and every file
// is bitwise that training's. The directory of another training, or another K, is refused.
TEST_F(TrainSnapshots, AResumedTrainingContinuesTheManifest) {
  const taep::TrainConfig c = snapshot_config(60, 10);
  const fs::path whole_dir = work_ / "whole", dir = work_ / "resumed";
  const taep::TrainResult whole = taep::train(c, snapshot_options(15, whole_dir));

  const std::string checkpoint = (work_ / "train.ckpt").string();
  taep::TrainOptions stop = snapshot_options(15, dir);
  stop.checkpoint = checkpoint;
  int polls = 0;
  stop.stop_requested = [&polls] { return ++polls >= 4; };  // after 3 of 6 log windows
  EXPECT_THROW(taep::train(c, stop), taep::Interrupted);
  const auto before = nlohmann::json::parse(read_text(dir / "manifest.json"));
  ASSERT_EQ(before["snapshots"].size(), 2u) << before.dump(2);
  EXPECT_EQ(before["snapshots"][1]["step"], 30);

  taep::TrainOptions resume = snapshot_options(15, dir);
  resume.resume = checkpoint;
  const taep::TrainResult resumed = taep::train(c, resume);
  expect_same_weights(whole.model, resumed.model, "resumed EMA");
  const auto a = nlohmann::json::parse(read_text(whole_dir / "manifest.json"));
  auto b = nlohmann::json::parse(read_text(dir / "manifest.json"));
  EXPECT_EQ(b["snapshots"][0], before["snapshots"][0]) << "kept as written before the stop";
  auto without_wall = [](nlohmann::json j) {
    for (auto& e : j["snapshots"]) e.erase("wall_s");
    return j;
  };
  EXPECT_EQ(without_wall(a), without_wall(b));
  EXPECT_EQ(names_in(whole_dir), names_in(dir));
  for (const std::string& name : names_in(dir)) {
    if (name == "manifest.json") continue;
    EXPECT_EQ(read_text(whole_dir / name), read_text(dir / name)) << name;
  }

  try {
    taep::TrainOptions other_k = resume;
    other_k.snapshot_every = 10;
    taep::train(c, other_k);
    ADD_FAILURE() << "resumed with another K";
  } catch (const taep::ConfigError& e) {
    EXPECT_EQ(e.field(), "--snapshot-every") << e.what();
  }
  taep::TrainConfig other = c;
  other.seed = 2;
  const fs::path other_dir = work_ / "other";
  taep::train(other, snapshot_options(15, other_dir));
  try {
    taep::TrainOptions elsewhere = resume;
    elsewhere.snapshot_dir = other_dir.string();
    taep::train(c, elsewhere);
    ADD_FAILURE() << "continued the snapshots of another training";
  } catch (const taep::ConfigError& e) {
    EXPECT_EQ(e.field(), "--snapshot-dir") << e.what();
    EXPECT_NE(std::string(e.what()).find("another training"), std::string::npos) << e.what();
  }
}

// ---- command line ---------------------------------------------------------------------------------

using TrainCli = TempDir;

constexpr const char* kSmallTrain =
    R"({"data": {"target": {"weights": [1], "means": [[1, -0.5]], "sigmas": [0.5]}},
        "network": {"hidden": [16], "embedding_dim": 4, "time_scale": 10},
        "optimizer": {"steps": 40, "batch": 128}, "run": {"backend": "cpu", "log_every": 10}})";

TEST_F(TrainCli, WritesALoadableModelThatTaepRunAccepts) {
  write("train.json", kSmallTrain);
  const Outcome o = cli("train train.json --out model.safetensors --result result.json --seed 3");
  ASSERT_EQ(o.exit_code, 0) << o.err;
  EXPECT_NE(o.err.find("final loss"), std::string::npos) << o.err;
  EXPECT_EQ(listing(), (std::vector<std::string>{"model.safetensors", "result.json", "train.json"}));

  const taep::MlpModel m = taep::load_mlp((work_ / "model.safetensors").string());
  EXPECT_EQ(m.dim, 2);
  EXPECT_EQ(m.embedding_dim, 4);
  ASSERT_EQ(m.layers.size(), 2u);
  EXPECT_EQ(m.layers[0].in, 6);
  // The file holds the EMA weights of the same training through the API, bit for bit.
  taep::TrainConfig c = taep::parse_train_config(kSmallTrain);
  c.seed = 3;
  const taep::TrainResult r = taep::train(c);
  for (std::size_t l = 0; l < m.layers.size(); ++l) {
    EXPECT_EQ(m.layers[l].weight, r.model.layers[l].weight);
    EXPECT_EQ(m.layers[l].bias, r.model.layers[l].bias);
  }

  const auto j = nlohmann::json::parse(read_text(work_ / "result.json"));
  for (const char* key : {"training", "log", "model", "performance", "config"})
    EXPECT_TRUE(j.contains(key)) << key;
  EXPECT_EQ(j["log"].size(), 4u);
  EXPECT_EQ(j["log"][3]["step"], 40);
  EXPECT_EQ(j["config"]["run"]["seed"], 3);
  EXPECT_TRUE(j["training"]["loss_floor"].is_number());
  EXPECT_EQ(j["training"]["final_loss"].get<double>(), r.final_loss);

  write("run.json",
        R"({"target": {"weights": [1], "means": [[1, -0.5]], "sigmas": [0.5]},
            "model": {"type": "mlp", "weights": "model.safetensors"},
            "schedule": {"steps": 20}, "run": {"paths": 4096, "backend": "cpu"}})");
  const Outcome run = cli("run run.json --out run-result.json --quiet");
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const auto rj = nlohmann::json::parse(read_text(work_ / "run-result.json"));
  EXPECT_EQ(rj["taep"]["count"], 4096);
}

// --snapshot-every: by default next to --out; the last snapshot is the --out file, byte for byte.
TEST_F(TrainCli, SnapshotsGoNextToTheModelAndTheLastIsTheModel) {
  write("train.json", kSmallTrain);
  const Outcome help = cli("train --help");
  ASSERT_EQ(help.exit_code, 0) << help.err;
  for (const char* flag : {"--snapshot-every", "--snapshot-dir"})
    EXPECT_NE(help.out.find(flag), std::string::npos) << flag << " in " << help.out;

  const Outcome o = cli("train train.json --out model.safetensors --snapshot-every 15 -q");
  ASSERT_EQ(o.exit_code, 0) << o.err;
  EXPECT_EQ(listing(), (std::vector<std::string>{"model.safetensors", "model.safetensors.snapshots",
                                                 "train.json"}));
  const fs::path dir = work_ / "model.safetensors.snapshots";
  const auto m = nlohmann::json::parse(read_text(dir / "manifest.json"));
  ASSERT_EQ(m["snapshots"].size(), 3u) << m.dump(2);
  EXPECT_EQ(m["snapshots"][0]["step"], 15);
  EXPECT_EQ(m["snapshots"][1]["step"], 30);
  EXPECT_EQ(m["snapshots"][2]["step"], 40);
  EXPECT_EQ(m["snapshots"][2]["file"], "step_00000040.safetensors");
  EXPECT_EQ(read_text(dir / "step_00000040.safetensors"), read_text(work_ / "model.safetensors"));

  const Outcome again = cli("train train.json --out model.safetensors --snapshot-every 15 -q");
  EXPECT_EQ(again.exit_code, 2) << again.err;
  EXPECT_NE(again.err.find("--snapshot-dir"), std::string::npos) << again.err;
  const Outcome elsewhere =
      cli("train train.json --out m2.safetensors --snapshot-every 100 --snapshot-dir s2 -q");
  ASSERT_EQ(elsewhere.exit_code, 0) << elsewhere.err;
  const auto m2 = nlohmann::json::parse(read_text(work_ / "s2" / "manifest.json"));
  ASSERT_EQ(m2["snapshots"].size(), 1u) << "K beyond the steps: the last step alone";
  EXPECT_EQ(m2["snapshots"][0]["step"], 40);
}

struct BadTrainCli {
  const char* name;
  const char* args;
  const char* field;
};

TEST_F(TrainCli, BadInputExitsTwoNamingTheFieldAndWritesNothing) {
  write("train.json", kSmallTrain);
  write("unknown.json", R"({"optimizer": {"step": 3}})");
  const BadTrainCli cases[] = {
      {"StepsZero", "train.json --steps 0", "--steps"},
      {"BatchNegative", "train.json --batch -4", "--batch"},
      {"UnknownKey", "unknown.json", "optimizer.step"},
      {"CollapseModes", "--collapse-modes 8", "--collapse-modes"},
      {"CollapseEps", "--collapse-eps 0.5 --collapse-modes 2", "--collapse-eps"},
      {"MissingSamples", "train.json --samples nothing.csv", "--samples"},
      {"MissingConfig", "missing.json", "CONFIG"},
      {"UnknownBackend", "train.json --backend gpu", "--backend"},
      {"LogEveryZero", "train.json --log-every 0", "--log-every"},
      {"SnapshotEveryZero", "train.json --snapshot-every 0", "--snapshot-every"},
      {"SnapshotEveryFraction", "train.json --snapshot-every 2.5", "--snapshot-every"},
      {"SnapshotEveryNegative", "train.json --snapshot-every -4", "--snapshot-every"},
      {"SnapshotDirAlone", "train.json --snapshot-dir snaps", "--snapshot-dir"},
      {"SnapshotDirNotEmpty", "train.json --snapshot-every 5 --snapshot-dir .", "--snapshot-dir"},
  };
  for (const BadTrainCli& b : cases) {
    const Outcome o = cli(std::string("train ") + b.args + " --out model.safetensors --result r.json");
    EXPECT_EQ(o.exit_code, 2) << b.name << ": " << o.err;
    EXPECT_EQ(o.err.rfind("taep: error: ", 0), 0u) << b.name << ": " << o.err;
    EXPECT_NE(o.err.find(b.field), std::string::npos) << b.name << ": " << o.err;
    EXPECT_EQ(std::count(o.err.begin(), o.err.end(), '\n'), 1) << b.name << ": " << o.err;
    EXPECT_EQ(listing(), (std::vector<std::string>{"train.json", "unknown.json"})) << b.name;
  }
  const Outcome no_out = cli("train train.json");
  EXPECT_EQ(no_out.exit_code, 2) << no_out.err;
  EXPECT_NE(no_out.err.find("--out"), std::string::npos) << no_out.err;
  if (!taep::cuda_available()) {
    const Outcome cuda = cli("train train.json --backend cuda --out model.safetensors");
    EXPECT_EQ(cuda.exit_code, 2) << cuda.err;
    EXPECT_NE(cuda.err.find("cuda"), std::string::npos) << cuda.err;
    EXPECT_EQ(listing(), (std::vector<std::string>{"train.json", "unknown.json"}));
  }
}

// A learning rate of 1e30 sends the weights to inf within a few steps: a TrainingDiverged naming
// the first log interval with a non-finite loss, not a bad-input error; the CLI exits 1, no file.
TEST(TrainDivergence, ANonFiniteLossStopsTrainingWithTheStep) {
  taep::TrainConfig c = gaussian_config();
  c.optimizer.lr = 1e30;
  c.optimizer.steps = 40;
  c.log_every = 10;
  try {
    taep::train(c);
    ADD_FAILURE() << "training with lr 1e30 did not diverge";
  } catch (const taep::TrainingDiverged& e) {
    EXPECT_GE(e.step(), 10u);
    EXPECT_LE(e.step(), 40u);
    EXPECT_EQ(e.step() % 10, 0u);
    EXPECT_FALSE(std::isfinite(e.loss()));
    EXPECT_NE(std::string(e.what()).find("training diverged: steps " + std::to_string(e.step() - 9) +
                                         " to " + std::to_string(e.step())),
              std::string::npos)
        << e.what();
  }
}

TEST_F(TrainCli, DivergenceExitsOneAndWritesNothing) {
  write("train.json", R"({"optimizer": {"steps": 20, "batch": 64, "lr": 1e30}, "network": {"hidden": [16]}, "run": {"log_every": 5}})");
  const Outcome o = cli("train train.json -q --out model.safetensors --result r.json");
  EXPECT_EQ(o.exit_code, 1) << o.err;
  EXPECT_NE(o.err.find("training diverged: steps "), std::string::npos) << o.err;
  EXPECT_EQ(listing(), (std::vector<std::string>{"train.json"}));
}

}  // namespace

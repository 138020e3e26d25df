// The Milstein correction for learned (MLP) scores: the rotated basis that yields the exact trace and
// dW.J dW from the same d tangents (physics::milstein_basis), and the engine's per-path correction
// against a float64 re-implementation with a finite-difference Jacobian of the network.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "host/problem/forward_problem.hpp"
#include "taep/engine.hpp"
#include "taep/error.hpp"
#include "taep/mlp.hpp"
#include "taep/physics/mlp_path.hpp"
#include "taep/physics/rng_streams.hpp"
#include "support/backends.hpp"
#include "support/safetensors_support.hpp"
#include "support/test_support.hpp"

namespace {

std::string fixture(const std::string& name) { return std::string(TAEP_FIXTURE_DIR) + "/" + name; }

TEST(MilsteinBasis, OrthonormalWithFirstVectorAlongDwAndExactForms) {
  std::mt19937 rng(3);
  std::normal_distribution<float> z;
  for (int d : {1, 2, 3, 5, 16}) {
    for (int trial = 0; trial < 50; ++trial) {
      std::vector<float> dw(static_cast<std::size_t>(d)), basis(static_cast<std::size_t>(d * d));
      for (float& v : dw) v = z(rng) * (trial % 2 ? 0.03f : 1.0f);
      if (trial == 7) dw.assign(std::size_t(d), 0.f);  // degenerate: the standard basis
      const float r2 = taep::physics::milstein_basis(d, dw.data(), basis.data());
      double r2_ref = 0;
      for (float v : dw) r2_ref += double(v) * v;
      ASSERT_NEAR(r2, r2_ref, 1e-6 * (1 + r2_ref));
      for (int q = 0; q < d; ++q)
        for (int p = 0; p < d; ++p) {
          double dot = 0;
          for (int i = 0; i < d; ++i) dot += double(basis[q * d + i]) * basis[p * d + i];
          ASSERT_NEAR(dot, q == p ? 1.0 : 0.0, 2e-6) << "d " << d << " q " << q << " p " << p;
        }
      // A random (non-symmetric) J: sum_q v_q.J v_q = tr J and r2 v_0.J v_0 = dW.J dW.
      std::vector<double> J(std::size_t(d * d));
      for (double& v : J) v = z(rng);
      double trace = 0, quad = 0, sum = 0, first = 0;
      for (int i = 0; i < d; ++i) {
        trace += J[std::size_t(i * d + i)];
        for (int j = 0; j < d; ++j) quad += double(dw[std::size_t(i)]) * J[std::size_t(i * d + j)] * dw[std::size_t(j)];
      }
      for (int q = 0; q < d; ++q) {
        double f = 0;
        for (int i = 0; i < d; ++i)
          for (int j = 0; j < d; ++j)
            f += double(basis[q * d + i]) * J[std::size_t(i * d + j)] * basis[q * d + j];
        sum += f;
        if (q == 0) first = f;
      }
      double scale = 0;
      for (double v : J) scale += std::fabs(v);
      EXPECT_NEAR(sum, trace, 1e-5 * scale);
      EXPECT_NEAR(r2 * first, quad, 1e-5 * scale * (1 + r2_ref));
    }
  }
}

TEST(MlpMilsteinConfig, NeedsTheExactDivergence) {
  taep::Config c = taep::default_config();
  c.model = taep::ModelConfig{};
  c.model.type = "mlp";
  c.model.weights = fixture("mlp_d2_score.safetensors");
  c.schedule.scheme = taep::Scheme::milstein;
  EXPECT_NO_THROW(taep::validate(c));
  c.model.divergence = taep::Divergence::hutchinson;
  taep_test::expect_config_error([&] { taep::validate(c); }, "schedule.scheme", "needs model.divergence");
}

// S_milstein - S_euler of a path is the sum of the corrections along it (the state follows the same
// Euler-Maruyama steps under both schemes). Recomputed here in float64: the network's Jacobian by
// central differences of mlp_evaluate_reference, the target's quadratic form from the float physics.
// On every CPU loop (the tolerance is set by the CPU's float rounding; CUDA refuses Milstein for
// networks).
class MlpMilstein : public taep_test::OnBackend {};

TEST_P(MlpMilstein, CorrectionPerPathMatchesFloat64FiniteDifferenceJacobian) {
  for (const char* weights : {"mlp_d2_score.safetensors", "mlp_d2_eps_bf16.safetensors"}) {
    taep::Config c = taep::default_config();
    c.model = taep::ModelConfig{};
    c.model.type = "mlp";
    c.model.weights = fixture(weights);
    c.schedule.steps = 40;
    c.run.paths = 8;
    c.run.seed = 11;
    taep::validate(c);
    const std::uint64_t first = 4093, count = 6;  // across a reduce-block boundary
    const auto euler = taep::simulate_paths(c, taep::Backend::cpu, first, count);
    c.schedule.scheme = taep::Scheme::milstein;
    taep::validate(c);
    const auto milstein = taep::simulate_paths(c, taep::Backend::cpu, first, count);

    const taep::detail::ForwardProblem P = taep::detail::build_forward_problem(c);
    const taep::physics::ForwardView V = P.view([](const auto& v) { return v.data(); });
    const taep::MlpModel model = taep::load_mlp(c.model.weights);
    const int d = 2;
    for (std::uint64_t p = 0; p < count; ++p) {
      const std::uint64_t path = first + p;
      taep::rng::PhiloxHostStream init(V.seed, taep::rng::subsequence(taep::rng::kInitialState, path));
      taep::rng::PhiloxHostStream noise(V.seed, taep::rng::subsequence(taep::rng::kForwardNoise, path));
      taep::physics::NormalSource<taep::rng::PhiloxHostStream> z(noise);
      float x[2];
      taep::physics::sample_initial_state<2>(V, init, x);
      double correction = 0;
      for (int k = 0; k < c.schedule.steps; ++k) {
        const taep::physics::StepScalars s = V.step[k];
        float dw[2];
        for (int i = 0; i < d; ++i) dw[i] = s.sqrt_h * z.next();
        const double t = P.grid.t(k), ab = P.schedule.abar(t);
        const std::vector<double> xd{x[0], x[1]};
        const auto at = taep::mlp_evaluate_reference(model, xd, t, 1 - ab, true);
        double quad_model = 0;
        const double eps = 1e-4;
        for (int j = 0; j < d; ++j) {  // column j of J by central differences
          std::vector<double> xp = xd, xm = xd;
          xp[std::size_t(j)] += eps;
          xm[std::size_t(j)] -= eps;
          const auto sp = taep::mlp_evaluate_reference(model, xp, t, 1 - ab, false).score;
          const auto sm = taep::mlp_evaluate_reference(model, xm, t, 1 - ab, false).score;
          for (int i = 0; i < d; ++i)
            quad_model += double(dw[i]) * (sp[std::size_t(i)] - sm[std::size_t(i)]) / (2 * eps) * dw[j];
        }
        taep::physics::ScoreEval<2, float> target;
        taep::physics::target_score<2>(V, k, s.mean_scale, x, target, dw);
        correction += double(s.half_g2) *
                      ((quad_model - double(target.quad)) - double(s.h) * (at.divergence - double(target.div)));
        taep::physics::euler_maruyama_step(d, s.decay, s.sqrt_g2, dw, x);
      }
      const double diff = milstein.taep[p] - euler.taep[p];
      EXPECT_NEAR(diff, correction, 2e-4 + 2e-3 * std::fabs(correction))
          << weights << " path " << path << " S_euler " << euler.taep[p];
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Backends, MlpMilstein, ::testing::ValuesIn(taep_test::cpu_loops()),
                         taep_test::backend_param_name);

}  // namespace

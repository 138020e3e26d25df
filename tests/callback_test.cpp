// A score model given as a function (taep/score_callback.hpp): the exact mixture score computed in
// the test, in double, gives the built-in exact model's per-path S within float rounding; taep's
// numbers do not depend on the batch or chunk size; eps-parameterization and Hutchinson probes; the
// errors of a callback config.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <set>
#include <vector>

#include "support/test_support.hpp"
#include "taep/sample.hpp"
#include "taep/score_callback.hpp"

namespace {

// The score and divergence of q_t, the VP diffusion of a mixture q (docs/physics.md section 2), in
// double: components N(sqrt(abar) m_k, (abar sigma_k^2 + 1 - abar) I). With probes, v.H v for each
// (H the Hessian of log q_t) instead of the trace.
struct MixtureScore {
  taep::MixtureSpec q;
  double beta_min, beta_max;
  double scale = 1.0;  // -sqrt(1 - abar) for an eps prediction, else 1
  bool eps = false;

  void operator()(const taep::ScoreRequest& r) const {
    const double abar = std::exp(-(beta_min * r.t + 0.5 * (beta_max - beta_min) * r.t * r.t));
    const double out_scale = eps ? -std::sqrt(1.0 - abar) : 1.0;
    const int d = r.d, K = q.components();
    double wsum = 0;
    for (double w : q.weights) wsum += w;
    std::vector<double> logp(K), var(K), g(K * d), s(d);
    for (int p = 0; p < r.n; ++p) {
      const float* x = r.x + std::size_t(p) * d;
      double mx = -INFINITY;
      for (int k = 0; k < K; ++k) {
        var[k] = abar * q.sigmas[k] * q.sigmas[k] + 1.0 - abar;
        double r2 = 0;
        for (int i = 0; i < d; ++i) {
          g[k * d + i] = (std::sqrt(abar) * q.means[k][i] - x[i]) / var[k];
          r2 += g[k * d + i] * g[k * d + i] * var[k] * var[k];
        }
        logp[k] = std::log(q.weights[k] / wsum) - 0.5 * d * std::log(var[k]) - 0.5 * r2 / var[k];
        mx = std::max(mx, logp[k]);
      }
      double z = 0;
      for (int k = 0; k < K; ++k) z += std::exp(logp[k] - mx);
      std::fill(s.begin(), s.end(), 0.0);
      for (int k = 0; k < K; ++k)
        for (int i = 0; i < d; ++i) s[i] += std::exp(logp[k] - mx) / z * g[k * d + i];
      for (int i = 0; i < d; ++i) r.output[std::size_t(p) * d + i] = float(out_scale * s[i]);
      // H = sum_k r_k (g_k g_k^T - I / v_k) - s s^T
      auto quad = [&](const float* v) {
        double vv = 0, sv = 0, acc = 0;
        for (int i = 0; i < d; ++i) vv += double(v[i]) * v[i], sv += s[i] * v[i];
        for (int k = 0; k < K; ++k) {
          double gv = 0;
          for (int i = 0; i < d; ++i) gv += g[k * d + i] * v[i];
          acc += std::exp(logp[k] - mx) / z * (gv * gv - vv / var[k]);
        }
        return acc - sv * sv;
      };
      if (r.divergence) {
        double tr = 0;
        for (int i = 0; i < d; ++i) {
          std::vector<float> e(std::size_t(d), 0.f);
          e[i] = 1.f;
          tr += quad(e.data());
        }
        r.divergence[p] = float(out_scale * tr);
      }
      for (int j = 0; j < r.probes; ++j)
        r.probe_estimates[std::size_t(p) * r.probes + j] =
            float(out_scale * quad(r.probe_vectors + (std::size_t(p) * r.probes + j) * d));
    }
  }
};

taep::Config exact_config() { return taep_test::ring_config(1, 0.02, 5000, 100); }

taep::Config callback_config() {
  taep::Config c = exact_config();
  c.model = taep::ModelConfig{};
  c.model.type = "callback";
  return c;
}

taep::ScoreCallback mixture_callback(bool eps = false, int batch = 4096) {
  const taep::Config c = exact_config();
  taep::ScoreCallback cb;
  cb.evaluate = MixtureScore{taep::collapse(taep::ring8(), *c.model.collapse),
                             c.schedule.sde.beta_min, c.schedule.sde.beta_max, 1.0, eps};
  cb.parameterization = eps ? taep::Parameterization::eps : taep::Parameterization::score;
  cb.batch = batch;
  return cb;
}

// The built-in model rounds its score to float inside the increment, the callback rounds the
// double score once: per path the two S differ by float rounding summed over the 100 steps.
constexpr double kPathTolerance = 2e-4;

TEST(ScoreCallback, ExactMixtureScoreGivesTheBuiltInPaths) {
  const auto exact = taep::simulate_paths(exact_config(), taep::Backend::cpu, 0, 5000);
  const taep::Problem p = taep::build_problem(callback_config(), mixture_callback());
  const auto cb = taep::simulate_paths(p, taep::Backend::cpu, 0, 5000);
  ASSERT_EQ(cb.taep.size(), 5000u);
  EXPECT_TRUE(cb.reference.empty());
  double worst = 0;
  for (std::size_t i = 0; i < 5000; ++i) worst = std::max(worst, std::abs(cb.taep[i] - exact.taep[i]));
  EXPECT_LT(worst, kPathTolerance);
  EXPECT_GT(worst, 0.0);  // a different computation, not the built-in model by another name

  const taep::RunResult r = taep::run(p);
  const taep::RunResult e = taep::run(exact_config());
  EXPECT_NEAR(r.taep.mean, e.taep.mean, kPathTolerance);
  EXPECT_NEAR(r.taep.variance, e.taep.variance, 1e-3 * e.taep.variance);
  EXPECT_FALSE(r.reference.has_value());
}

TEST(ScoreCallback, NumbersDoNotDependOnBatchOrChunk) {
  const auto a = taep::simulate_paths(taep::build_problem(callback_config(), mixture_callback(false, 4096)),
                                      taep::Backend::cpu, 0, 9000);
  const auto b = taep::simulate_paths(taep::build_problem(callback_config(), mixture_callback(false, 777)),
                                      taep::Backend::cpu, 100, 8900);
  for (std::size_t i = 0; i < 8900; ++i) ASSERT_EQ(a.taep[100 + i], b.taep[i]) << i;

  taep::Config c = callback_config();
  c.run.paths = 9000;
  const taep::RunResult whole = taep::run(taep::build_problem(c, mixture_callback(false, 333)));
  c.run.chunk_paths = 4096;
  const taep::RunResult chunked = taep::run(taep::build_problem(c, mixture_callback(false, 5000)));
  EXPECT_EQ(whole.taep.mean, chunked.taep.mean);
  EXPECT_EQ(whole.taep.variance, chunked.taep.variance);
  EXPECT_EQ(whole.ift.estimate, chunked.ift.estimate);
  EXPECT_EQ(whole.histogram.counts, chunked.histogram.counts);
}

TEST(ScoreCallback, EpsPredictionIsConverted) {
  const auto s = taep::simulate_paths(taep::build_problem(callback_config(), mixture_callback(false)),
                                      taep::Backend::cpu, 0, 2000);
  const auto e = taep::simulate_paths(taep::build_problem(callback_config(), mixture_callback(true)),
                                      taep::Backend::cpu, 0, 2000);
  for (std::size_t i = 0; i < 2000; ++i) ASSERT_NEAR(e.taep[i], s.taep[i], kPathTolerance) << i;
}

TEST(ScoreCallback, HutchinsonProbesComeFromTaepsStream) {
  taep::Config c = callback_config();
  c.model.divergence = taep::Divergence::hutchinson;
  c.model.probes = 4;
  c.run.paths = 4096;
  taep::ScoreCallback cb = mixture_callback();
  auto inner = cb.evaluate;
  std::set<float> seen;
  bool layout_ok = true;
  cb.evaluate = [&](const taep::ScoreRequest& r) {
    layout_ok = layout_ok && r.probes == 4 && r.divergence == nullptr && r.probe_vectors &&
                r.probe_estimates;
    for (int j = 0; j < r.n * r.probes * r.d; ++j) seen.insert(r.probe_vectors[j]);
    inner(r);
  };
  const taep::Problem p = taep::build_problem(c, cb);
  const auto h = taep::simulate_paths(p, taep::Backend::cpu, 0, 4096);
  EXPECT_TRUE(layout_ok);
  EXPECT_EQ(seen, (std::set<float>{-1.f, 1.f}));  // Rademacher signs
  const auto again = taep::simulate_paths(p, taep::Backend::cpu, 1000, 10);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(again.taep[i], h.taep[1000 + i]);
  // The probe estimate is unbiased: the mean S agrees with the exact trace's within its noise.
  const auto x = taep::simulate_paths(taep::build_problem(callback_config(), mixture_callback()),
                                      taep::Backend::cpu, 0, 4096);
  double diff = 0, diff2 = 0;
  for (std::size_t i = 0; i < 4096; ++i) {
    const double dlt = h.taep[i] - x.taep[i];
    diff += dlt;
    diff2 += dlt * dlt;
  }
  const double mean = diff / 4096, sd = std::sqrt(diff2 / 4096 - mean * mean);
  EXPECT_GT(sd, 0.0);
  EXPECT_LT(std::abs(mean), 5 * sd / std::sqrt(4096.0));
  const taep::RunResult r = taep::run(p);
  EXPECT_EQ(r.taep.count, 4096u);
  // The probe noise is reported as for taep's own networks (4 probes: its share of Var(S)).
  ASSERT_TRUE(r.hutchinson.has_value());
  EXPECT_EQ(r.hutchinson->probes, 4);
  ASSERT_TRUE(r.hutchinson->probe_noise_variance.has_value());
  EXPECT_GT(*r.hutchinson->probe_noise_variance, 0.0);
  EXPECT_LT(*r.hutchinson->probe_noise_variance, r.taep.variance);
}

TEST(ScoreCallback, AReferenceFunctionStandsInForTheTargetsScore) {
  const taep::Config c = exact_config();
  const MixtureScore target{taep::ring8(), c.schedule.sde.beta_min, c.schedule.sde.beta_max, 1.0, false};
  const auto plain = taep::simulate_paths(taep::build_problem(callback_config(), mixture_callback()),
                                          taep::Backend::cpu, 0, 3000);
  for (bool eps : {false, true}) {
    taep::ScoreCallback cb = mixture_callback();
    MixtureScore ref = target;
    ref.eps = eps;
    int calls = 0;
    cb.reference = [&](const taep::ScoreRequest& r) {
      ++calls;
      EXPECT_TRUE(r.divergence && r.probes == 0);
      ref(r);
    };
    cb.reference_parameterization = eps ? taep::Parameterization::eps : taep::Parameterization::score;
    const auto with_ref = taep::simulate_paths(taep::build_problem(callback_config(), cb),
                                               taep::Backend::cpu, 0, 3000);
    EXPECT_EQ(calls, c.schedule.steps);
    double worst = 0;
    for (std::size_t i = 0; i < 3000; ++i)
      worst = std::max(worst, std::abs(with_ref.taep[i] - plain.taep[i]));
    EXPECT_LT(worst, kPathTolerance);
    EXPECT_GT(worst, 0.0);
  }
}

void expect_refused(const std::function<void()>& f, const std::string& field) {
  try {
    f();
    ADD_FAILURE() << "no ConfigError; expected one naming " << field;
  } catch (const taep::ConfigError& e) {
    EXPECT_EQ(e.field(), field) << e.what();
  }
}

TEST(ScoreCallback, Errors) {
  expect_refused([] { taep::build_problem(callback_config()); }, "model.type");
  expect_refused([] { taep::build_problem(exact_config(), mixture_callback()); }, "model.type");
  expect_refused([] { taep::build_problem(callback_config(), taep::ScoreCallback{}); }, "model.type");
  expect_refused([] { taep::build_problem(callback_config(), mixture_callback(false, 0)); }, "batch");
  taep::Config m = callback_config();
  m.schedule.scheme = taep::Scheme::milstein;
  expect_refused([&] { taep::build_problem(m, mixture_callback()); }, "schedule.scheme");
  taep::Config mixed = callback_config();
  mixed.model.collapse = taep::CollapseSpec{};
  expect_refused([&] { taep::validate(mixed); }, "model");
  expect_refused([] {
              taep::parse_config(R"({"model": {"type": "callback", "weights": "w.safetensors"}})");
            }, "model.weights");
  const taep::Config parsed =
      taep::parse_config(R"({"model": {"type": "callback", "divergence": "hutchinson", "probes": 3}})");
  EXPECT_EQ(parsed.model.probes, 3);
  EXPECT_EQ(taep::parse_config(taep::config_to_json(parsed)).model.divergence,
            taep::Divergence::hutchinson);

  const taep::Problem p = taep::build_problem(callback_config(), mixture_callback());
  EXPECT_THROW(taep::simulate_paths(p, taep::Backend::cuda, 0, 10), taep::BackendUnavailable);
  taep::Config on_cuda = callback_config();
  on_cuda.run.backend = taep::Backend::cuda;
  EXPECT_THROW(taep::sample(taep::build_problem(on_cuda, mixture_callback()), 10),
               taep::BackendUnavailable);  // the reverse process likewise runs on the CPU only
}

// Reverse paths (sample, dft) of the exact mixture score as a function are the built-in exact
// model's, to float rounding: the same streams (kReverseStart, kReverseNoise), the same steps, the
// score computed in double and rounded once. Without TAEP the function is called without the
// divergence, once per grid point N .. 1; the numbers do not depend on the batch.
TEST(ScoreCallback, ReversePathsAreTheBuiltInModelsToo) {
  const auto exact = taep::simulate_reverse_paths(exact_config(), taep::Backend::cpu, 0, 3000);
  int calls = 0, with_divergence = 0;
  taep::ScoreCallback cb = mixture_callback();
  const auto inner = cb.evaluate;
  cb.evaluate = [&](const taep::ScoreRequest& r) {
    ++calls;
    with_divergence += r.divergence != nullptr;
    inner(r);
  };
  const taep::Problem p = taep::build_problem(callback_config(), cb);
  const auto mine = taep::simulate_reverse_paths(p, taep::Backend::cpu, 0, 3000);
  ASSERT_EQ(mine.samples.size(), exact.samples.size());
  ASSERT_EQ(mine.taep.size(), 3000u);
  EXPECT_TRUE(mine.reference.empty());
  double dx = 0, ds = 0;
  for (std::size_t i = 0; i < mine.samples.size(); ++i)
    dx = std::max(dx, double(std::abs(mine.samples[i] - exact.samples[i])));
  for (std::size_t i = 0; i < 3000; ++i) ds = std::max(ds, std::abs(mine.taep[i] - exact.taep[i]));
  EXPECT_LT(dx, 1e-3) << "max |x_sample - x_sample(exact)|";
  std::vector<double> dss(3000);
  for (std::size_t i = 0; i < 3000; ++i) dss[i] = std::abs(mine.taep[i] - exact.taep[i]);
  std::sort(dss.begin(), dss.end());
  // A reverse path, unlike a forward one, moves with the score, and S reads dW back from the steps
  // (implied_increment divides by sqrt(beta)), so a path that crosses between modes, where the
  // score is steep, amplifies the rounding. Measured: median 5.5e-7, 99th percentile 2.7e-6, max
  // 8.9e-4 (one path in 3000).
  EXPECT_LT(dss[1500], 1e-5) << "median |S - S(exact)| on the forward clock";
  EXPECT_LT(dss[2970], 2e-5) << "99th percentile";
  EXPECT_LT(ds, 5e-3) << "max";
  std::printf("    reverse paths: max |dx| %.2e; |dS| median %.2e, 99%% %.2e, max %.2e\n", dx,
              dss[1500], dss[2970], ds);
  const int N = exact_config().schedule.steps;
  EXPECT_EQ(calls, N + 1);  // one batch: t_N (no TAEP there), then t_{N-1} .. t_0 with it
  EXPECT_EQ(with_divergence, N);

  calls = with_divergence = 0;
  const auto samples = taep::simulate_reverse_paths(p, taep::Backend::cpu, 0, 3000, false);
  EXPECT_EQ(samples.samples, mine.samples) << "a sample does not depend on whether S is read";
  EXPECT_EQ(calls, N);
  EXPECT_EQ(with_divergence, 0);
  const auto batched = taep::simulate_reverse_paths(
      taep::build_problem(callback_config(), mixture_callback(false, 700)), taep::Backend::cpu, 1000,
      2000);
  for (std::size_t i = 0; i < 2000; ++i) ASSERT_EQ(batched.taep[i], mine.taep[1000 + i]) << i;
  for (std::size_t i = 0; i < batched.samples.size(); ++i)
    ASSERT_EQ(batched.samples[i], mine.samples[2000 + i]) << i;

  taep::Config c = callback_config();
  c.run.paths = 3000;
  const taep::DetailedFtResult dft = taep::detailed_ft(taep::build_problem(c, mixture_callback()));
  taep::Config e = exact_config();
  e.run.paths = 3000;
  const taep::DetailedFtResult want = taep::detailed_ft(e);
  EXPECT_NEAR(dft.reverse.mean, want.reverse.mean, 1e-5);
  EXPECT_NEAR(dft.forward.mean, want.forward.mean, kPathTolerance);
}

TEST(ScoreCallback, AnExceptionInTheFunctionPropagates) {
  taep::ScoreCallback cb = mixture_callback();
  int calls = 0;
  cb.evaluate = [&](const taep::ScoreRequest&) {
    if (++calls == 3) throw std::runtime_error("model failed");
  };
  const taep::Problem p = taep::build_problem(callback_config(), cb);
  EXPECT_THROW(taep::simulate_paths(p, taep::Backend::cpu, 0, 100), std::runtime_error);
  EXPECT_EQ(calls, 3);
}

}  // namespace

// Learned-score (MLP) models end to end: the batched CPU evaluator against the PyTorch float64
// fixtures, Hutchinson's estimator, the score-matching identity <S> = I (docs/physics.md eq. 33) against
// an independent divergence-free estimate, the fluctuation theorem for the ring-trained network,
// the probe-noise accounting, invariance to chunking and threads, and bad input. Each property runs
// on the CPU loops (scalar meaning the OpenBLAS path here) and, where the engine runs it, CUDA
// (support/backends.hpp).
//
// Every random number the tests draw themselves comes from support/test_rng.hpp (fully specified,
// unlike std::normal_distribution), so the tests are deterministic on every platform.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <numeric>
#include <string>
#include <vector>

#include "support/safetensors_support.hpp"
#include "host/cpu/mlp_cpu.hpp"
#include "taep/mlp.hpp"
#include "taep/taep.hpp"
#include "support/backends.hpp"
#include "support/test_rng.hpp"
#include "support/test_support.hpp"

#ifndef TAEP_FIXTURE_DIR
#error "TAEP_FIXTURE_DIR must name tests/fixtures"
#endif

namespace {

// ---- fixtures -----------------------------------------------------------------------------------

using taep_test::fixture;
using taep_test::TestRng;

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << path;
  return nlohmann::json::parse(in);
}

struct FixturePoint {
  std::vector<double> x, score;
  double t = 0, abar = 0, divergence = 0;
};

std::vector<FixturePoint> fixture_points(const nlohmann::json& doc) {
  std::vector<FixturePoint> out;
  for (const auto& p : doc["points"])
    out.push_back({p["x"].get<std::vector<double>>(), p["score"].get<std::vector<double>>(),
                   p["t"].get<double>(), p["abar"].get<double>(), p["divergence"].get<double>()});
  return out;
}

// ---- the diffused mixture in closed form (double, written independently of the engine) ----------

constexpr double kBetaMin = 0.1, kBetaMax = 20.0, kTMin = 1e-3, kTMax = 1.0;
double beta(double t) { return kBetaMin + t * (kBetaMax - kBetaMin); }
double abar(double t) { return std::exp(-(kBetaMin * t + 0.5 * (kBetaMax - kBetaMin) * t * t)); }

struct Mixture {
  std::vector<double> log_w;
  std::vector<std::vector<double>> means;
  std::vector<double> sigma2;
  int dim() const { return int(means.front().size()); }
};

Mixture mixture_of(const taep::MixtureSpec& m) {
  Mixture out;
  const double total = std::accumulate(m.weights.begin(), m.weights.end(), 0.0);
  for (int k = 0; k < m.components(); ++k) {
    out.log_w.push_back(std::log(m.weights[k] / total));
    out.means.push_back(m.means[k]);
    out.sigma2.push_back(m.sigmas[k] * m.sigmas[k]);
  }
  return out;
}

// A scaled mixture sum_k w_k N(a m_k, V_k I): the diffused target p(x, t) has a = sqrt(abar) and
// V_k = abar sigma_k^2 + 1 - abar; the Euler-Maruyama marginals have their own a and V (below).
std::vector<double> diffused_variances(const Mixture& m, double ab) {
  std::vector<double> v;
  for (double s2 : m.sigma2) v.push_back(ab * s2 + 1.0 - ab);
  return v;
}

void sample_scaled(const Mixture& m, double a, const std::vector<double>& V, TestRng& rng,
                   std::vector<double>& x) {
  const double u = rng.uniform();
  int k = 0;
  for (double cum = std::exp(m.log_w[0]); k + 1 < int(m.log_w.size()) && u >= cum;)
    cum += std::exp(m.log_w[++k]);
  x.resize(std::size_t(m.dim()));
  for (int i = 0; i < m.dim(); ++i) x[i] = a * m.means[k][i] + std::sqrt(V[k]) * rng.normal();
}

// Its score sum_k r_k u_k / V_k, u_k = a m_k - x, r = softmax of the log densities (log space: the
// components are many widths apart).
std::vector<double> scaled_score(const Mixture& m, double a, const std::vector<double>& V,
                                 const std::vector<double>& x) {
  const int K = int(m.log_w.size()), d = m.dim();
  std::vector<double> logr(K);
  for (int k = 0; k < K; ++k) {
    double u2 = 0;
    for (int i = 0; i < d; ++i) {
      const double u = a * m.means[k][i] - x[i];
      u2 += u * u;
    }
    logr[k] = m.log_w[k] - 0.5 * u2 / V[k] - 0.5 * d * std::log(2 * M_PI * V[k]);
  }
  const double mx = *std::max_element(logr.begin(), logr.end());
  double z = 0;
  for (double& l : logr) z += std::exp(l - mx);
  std::vector<double> s(std::size_t(d), 0.0);
  for (int k = 0; k < K; ++k) {
    const double r = std::exp(logr[k] - mx) / z;
    for (int i = 0; i < d; ++i) s[i] += r * (a * m.means[k][i] - x[i]) / V[k];
  }
  return s;
}

double squared_distance(const std::vector<double>& a, const std::vector<double>& b) {
  double d2 = 0;
  for (std::size_t i = 0; i < a.size(); ++i) d2 += (a[i] - b[i]) * (a[i] - b[i]);
  return d2;
}

// ---- the independent estimate of I = int beta/2 E_p |s_theta - s*|^2 dt ------------------------

struct Estimate {
  double value = 0, stderr_ = 0;
};

// Stratified Monte Carlo over t: within stratum j, t ~ U[edges_j, edges_j+1] and x ~ p(x, t), so the
// estimate has no quadrature bias at all. A pilot of `pilot` samples per stratum sets the Neyman
// allocation n_j ~ width_j sd_j of the `total` main samples; only the main samples enter the
// estimate (so the allocation cannot bias it), and its variance is sum width_j^2 var_j / n_j.
template <class Sample>
Estimate stratified_time_integral(const std::vector<double>& edges, int pilot, long total,
                                  TestRng& rng, Sample&& sample) {
  const int J = int(edges.size()) - 1;
  auto draw = [&](int j) { return sample(edges[j] + (edges[j + 1] - edges[j]) * rng.uniform(), rng); };
  std::vector<double> weight(J);
  double sum_weight = 0;
  for (int j = 0; j < J; ++j) {
    double s1 = 0, s2 = 0;
    for (int i = 0; i < pilot; ++i) {
      const double f = draw(j);
      s1 += f;
      s2 += f * f;
    }
    const double var = std::max(0.0, (s2 - s1 * s1 / pilot) / (pilot - 1));
    weight[j] = (edges[j + 1] - edges[j]) * std::sqrt(var);
    sum_weight += weight[j];
  }
  Estimate e;
  double variance = 0;
  for (int j = 0; j < J; ++j) {
    const long n = std::max<long>(16, std::lround(double(total) * weight[j] / sum_weight));
    double s1 = 0, s2 = 0;
    for (long i = 0; i < n; ++i) {
      const double f = draw(j);
      s1 += f;
      s2 += f * f;
    }
    const double mean = s1 / n, var = std::max(0.0, (s2 - s1 * mean) / (n - 1));
    const double w = edges[j + 1] - edges[j];
    e.value += w * mean;
    variance += w * w * var / n;
  }
  e.stderr_ = std::sqrt(variance);
  return e;
}

// Strata: log-spaced on [t_min, 0.1] (where the ring's integrand varies fastest), uniform above.
std::vector<double> time_strata(int n_log = 24, int n_lin = 24) {
  std::vector<double> e;
  for (int j = 0; j < n_log; ++j) e.push_back(kTMin * std::pow(0.1 / kTMin, double(j) / n_log));
  for (int j = 0; j <= n_lin; ++j) e.push_back(0.1 + (kTMax - 0.1) * j / n_lin);
  return e;
}

Estimate score_matching_loss(const Mixture& target, const taep::MlpModel& model, long samples,
                             std::uint64_t seed) {
  TestRng rng(seed);
  std::vector<double> x;
  return stratified_time_integral(time_strata(), 64, samples, rng, [&](double t, TestRng& r) {
    const double ab = abar(t), a = std::sqrt(ab);
    const std::vector<double> V = diffused_variances(target, ab);
    sample_scaled(target, a, V, r, x);
    const std::vector<double> s_theta = taep::mlp_evaluate_reference(model, x, t, 1 - ab, false).score;
    return 0.5 * beta(t) * squared_distance(s_theta, scaled_score(target, a, V, x));
  });
}

// The exact mean of the engine's discrete scheme, also without a divergence and without an SDE. The
// Ito sum has zero mean in discrete time, so <S_N> = sum_k h beta_k/2 E_{q_k}[l_theta - l_*](t_k) with
// q_k the law of the Euler-Maruyama state x_k. The scheme is linear and starts from p(x, t_min), so
// q_k = sum_j w_j N(a_k m_j, V_kj I) with a_0 = sqrt(abar(t_min)), V_0j = abar sigma_j^2 + 1 - abar,
// a_{k+1} = c_k a_k, V_{k+1,j} = c_k^2 V_kj + beta_k h, c_k = 1 - beta_k h/2. Stein's identity
// E_q[div g] = -E_q[g . u_k] (u_k = grad log q_k) turns E_q[|s|^2 + 2 div s] into E_q[|s - u_k|^2] -
// E_q[|u_k|^2], so <S_N> = sum_k h beta_k/2 E_{q_k}[|s_theta - u_k|^2 - |s* - u_k|^2]. Sampled with
// `per_step` draws at every step (steps are strata). Uniform grid t_k = t_min + k h, as the engine.
Estimate discrete_scheme_mean(const Mixture& target, const taep::MlpModel& model, int steps,
                              long per_step, std::uint64_t seed) {
  TestRng rng(seed);
  const double h = (kTMax - kTMin) / steps;
  double a = std::sqrt(abar(kTMin));
  std::vector<double> V = diffused_variances(target, abar(kTMin)), x;
  double value = 0, variance = 0;
  for (int k = 0; k < steps; ++k) {
    const double t = kTMin + k * h, ab = abar(t), b = beta(t);
    const std::vector<double> Vt = diffused_variances(target, ab);
    double s1 = 0, s2 = 0;
    for (long i = 0; i < per_step; ++i) {
      sample_scaled(target, a, V, rng, x);
      const std::vector<double> u = scaled_score(target, a, V, x);
      const std::vector<double> s_star = scaled_score(target, std::sqrt(ab), Vt, x);
      const std::vector<double> s_theta = taep::mlp_evaluate_reference(model, x, t, 1 - ab, false).score;
      const double f = 0.5 * b * h * (squared_distance(s_theta, u) - squared_distance(s_star, u));
      s1 += f;
      s2 += f * f;
    }
    const double mean = s1 / per_step;
    value += mean;
    variance += std::max(0.0, (s2 - s1 * mean) / (per_step - 1)) / per_step;
    const double c = 1 - 0.5 * b * h;
    a *= c;
    for (double& v : V) v = c * c * v + b * h;
  }
  return {value, std::sqrt(variance)};
}

// ---- configs ------------------------------------------------------------------------------------

// The d = 16 target of the end-to-end tests: 4 components with unequal weights, means of norm 3 in
// random directions (pairwise ~4.2 apart, ~8 sigma), sigma 0.5.
taep::MixtureSpec d16_target() {
  TestRng rng(16);
  taep::MixtureSpec m;
  m.weights = {0.4, 0.3, 0.2, 0.1};
  for (int k = 0; k < 4; ++k) {
    std::vector<double> v(16);
    double n2 = 0;
    for (double& vi : v) {
      vi = rng.normal();
      n2 += vi * vi;
    }
    for (double& vi : v) vi *= 3.0 / std::sqrt(n2);
    m.means.push_back(v);
    m.sigmas.push_back(0.5);
  }
  return m;
}

taep::Config d16_config(std::uint64_t paths, int steps, taep::Backend backend) {
  taep::Config c = taep_test::mlp_config("mlp_d16.safetensors", paths, steps, backend);
  c.target.preset.clear();
  c.target.mixture = d16_target();
  return c;
}

// ---- 1. the batched evaluator against PyTorch float64 autograd ---------------------------------

struct EvaluatorCase {
  const char* name;  // fixture base name
  double tolerance;  // relative, see below
};

// The CPU evaluator on each CPU loop (it picks its kernels from TAEP_CPU_SIMD when constructed).
class MlpEvaluatorFixture : public taep_test::OnBackendWith<EvaluatorCase> {
 protected:
  const EvaluatorCase& fixture_case() const { return std::get<1>(GetParam()); }
};

// Each fixture point i is evaluated at its own t inside a batch that holds all 32 points (so the row
// offsets of points and of their tangent rows are exercised), and the row of point i is compared
// with the float64 autograd values. Errors are relative to max(|value|, 1), for the score to the
// point's largest |component| (the eps model reaches |score| ~ 1e2 near t_min, where
// 1/sqrt(1 - abar) ~ 1e2 multiplies O(1) network outputs; components of one point share that scale).
// Tolerance: the evaluator is FP32 (unit roundoff u = 6e-8) with dot products of length <= 128 over
// 3-4 layers, so rounding of a few u times the cancellation in those sums is expected; weights are
// stored exactly (the BF16 file's values widen exactly to FP32, as in the fixture's float64 model).
// Measured maximum relative errors (score, divergence): mlp_d2_score 5.0e-7, 2.3e-7; mlp_d2_eps_bf16
// 7.7e-7, 6.7e-7; mlp_d16 3.6e-7, 3.5e-7; ring8_trained 3.0e-6, 5.2e-7 (its 3 x 128 trained layers
// cancel more). Tolerance 1e-5 (~170 u), 3e-5 for ring8_trained: >= 10x the measured error, far
// below any mistake in the network (a wrong embedding frequency or activation derivative is O(1e-2)
// or more).
TEST_P(MlpEvaluatorFixture, ScoreAndExactDivergenceMatchFloat64Autograd) {
  const nlohmann::json doc = read_json(fixture(std::string(fixture_case().name) + ".json"));
  const taep::MlpModel model = taep::load_mlp(fixture(doc["weights"].get<std::string>()));
  const std::vector<FixturePoint> pts = fixture_points(doc);
  const int d = model.dim, n = int(pts.size());
  ASSERT_EQ(d, doc["dim"].get<int>());
  std::vector<float> X(std::size_t(n) * d), score(std::size_t(n) * d), div(static_cast<std::size_t>(n));
  for (int p = 0; p < n; ++p)
    for (int i = 0; i < d; ++i) X[std::size_t(p) * d + i] = float(pts[p].x[i]);  // exact: f32 values

  taep::detail::MlpCpuEvaluator net(model);
  double worst_score = 0, worst_div = 0;
  for (int p = 0; p < n; ++p) {
    const FixturePoint& pt = pts[p];
    net.set_time(pt.t, 1 - pt.abar);
    net.evaluate(n, X.data(), score.data(), div.data());
    double smax = 0;
    for (double s : pt.score) smax = std::max(smax, std::abs(s));
    const double tol = fixture_case().tolerance, tol_s = tol * std::max(smax, 1.0);
    for (int i = 0; i < d; ++i) {
      const double got = score[std::size_t(p) * d + i];
      EXPECT_NEAR(got, pt.score[i], tol_s) << fixture_case().name << " point " << p << " t " << pt.t << " i " << i;
      worst_score = std::max(worst_score, std::abs(got - pt.score[i]) / std::max(smax, 1.0));
    }
    const double div_scale = std::max(std::abs(pt.divergence), 1.0);
    EXPECT_NEAR(div[p], pt.divergence, tol * div_scale) << fixture_case().name << " point " << p << " t " << pt.t;
    worst_div = std::max(worst_div, std::abs(div[p] - pt.divergence) / div_scale);
  }
  std::printf("[ %s ] max relative error: score %.2e, divergence %.2e\n", fixture_case().name,
              worst_score, worst_div);
}

// Hutchinson's path with the probes e_1..e_d: estimate i is e_i^T J e_i = J_ii, so the d estimates
// add up to the exact trace. The tangents of e_i are then exactly column i of W_0 (one-hot GEMM),
// so the only difference is where out_scale multiplies: a few float roundings of the sum.
TEST_P(MlpEvaluatorFixture, HutchinsonWithBasisProbesSumsToTheExactTrace) {
  const nlohmann::json doc = read_json(fixture(std::string(fixture_case().name) + ".json"));
  const taep::MlpModel model = taep::load_mlp(fixture(doc["weights"].get<std::string>()));
  const std::vector<FixturePoint> pts = fixture_points(doc);
  const int d = model.dim, n = int(pts.size());
  std::vector<float> X(std::size_t(n) * d), score(std::size_t(n) * d), exact(static_cast<std::size_t>(n)),
      hscore(std::size_t(n) * d), est(std::size_t(n) * d), V(std::size_t(n) * d * d, 0.f);
  for (int p = 0; p < n; ++p) {
    for (int i = 0; i < d; ++i) X[std::size_t(p) * d + i] = float(pts[p].x[i]);
    for (int k = 0; k < d; ++k) V[(std::size_t(p) * d + k) * d + k] = 1.f;
  }
  taep::detail::MlpCpuEvaluator net(model);
  for (const int p : {0, 1, n / 2, n - 1}) {
    net.set_time(pts[p].t, 1 - pts[p].abar);
    net.evaluate(n, X.data(), score.data(), exact.data());
    net.evaluate(n, X.data(), hscore.data(), est.data(), d, V.data());
    EXPECT_EQ(hscore, score) << "the score must not depend on the tangents carried";
    for (int q = 0; q < n; ++q) {
      double sum = 0, abs_sum = 0;
      for (int k = 0; k < d; ++k) {
        sum += est[std::size_t(q) * d + k];
        abs_sum += std::abs(est[std::size_t(q) * d + k]);
      }
      EXPECT_NEAR(sum, exact[q], 1e-6 * abs_sum + 1e-30) << fixture_case().name << " t " << pts[p].t << " point " << q;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Mlp, MlpEvaluatorFixture,
                         ::testing::Combine(::testing::ValuesIn(taep_test::cpu_loops()),
                                            ::testing::Values(EvaluatorCase{"mlp_d2_score", 1e-5},
                                                              EvaluatorCase{"mlp_d2_eps_bf16", 1e-5},
                                                              EvaluatorCase{"mlp_d16", 1e-5},
                                                              EvaluatorCase{"ring8_trained", 3e-5})),
                         taep_test::backend_and<EvaluatorCase>(
                             [](const EvaluatorCase& e) { return std::string(e.name); }));

// ---- 2. Hutchinson's estimator is unbiased ------------------------------------------------------

// At fixed points of the d = 16 fixture, the mean of 2e4 estimates v^T J v (probes drawn here,
// seeded) equals the exact trace within 4 standard errors of the mean, the standard error coming
// from the estimates' own spread. The exact value is the float64 autograd one; the evaluator's FP32
// rounding (< 1e-5 relative, test 1) is far below the standard errors (~1e-2).
class MlpHutchinson : public taep_test::OnBackendWith<taep::ProbeDistribution> {
 protected:
  taep::ProbeDistribution distribution() const { return std::get<1>(GetParam()); }
};

const auto kDistributionName = [](taep::ProbeDistribution d) { return std::string(taep::to_string(d)); };

TEST_P(MlpHutchinson, MeanOfProbeEstimatesIsTheExactDivergence) {
  const nlohmann::json doc = read_json(fixture("mlp_d16.json"));
  const taep::MlpModel model = taep::load_mlp(fixture("mlp_d16.safetensors"));
  const std::vector<FixturePoint> pts = fixture_points(doc);
  const int d = model.dim, P = 20000;
  const bool rademacher = distribution() == taep::ProbeDistribution::rademacher;
  taep::detail::MlpCpuEvaluator net(model);
  TestRng rng(rademacher ? 101 : 202);
  std::vector<float> V(std::size_t(P) * d), est(static_cast<std::size_t>(P)), score(static_cast<std::size_t>(d));
  for (const int p : {0, 1, 5, 16, 31}) {
    const FixturePoint& pt = pts[p];
    std::vector<float> x(pt.x.begin(), pt.x.end());
    for (float& v : V) v = rademacher ? rng.rademacher() : float(rng.normal());
    net.set_time(pt.t, 1 - pt.abar);
    net.evaluate(1, x.data(), score.data(), est.data(), P, V.data());
    double s1 = 0, s2 = 0;
    for (float e : est) s1 += e;
    const double mean = s1 / P;
    for (float e : est) s2 += (e - mean) * (e - mean);
    const double sd = std::sqrt(s2 / (P - 1)), se = sd / std::sqrt(double(P));
    EXPECT_NEAR(mean, pt.divergence, 4 * se)
        << taep::to_string(distribution()) << " point " << p << ": sd of one estimate " << sd;
    std::printf("[ %s point %2d ] exact %+.5f  mean %+.5f  (diff %+.2f se, sd %.3f)\n",
                taep::to_string(distribution()), p, pt.divergence, mean, (mean - pt.divergence) / se, sd);
  }
}

INSTANTIATE_TEST_SUITE_P(Mlp, MlpHutchinson,
                         ::testing::Combine(::testing::ValuesIn(taep_test::cpu_loops()),
                                            ::testing::Values(taep::ProbeDistribution::rademacher,
                                                              taep::ProbeDistribution::gaussian)),
                         taep_test::backend_and<taep::ProbeDistribution>(kDistributionName));

// ---- 3. the score-matching identity <S> = I end to end (docs/physics.md eq. 33) ---------------------

// The engine's mean TAEP against the independent estimate of
//   I = int_{t_min}^{t_max} beta(t)/2 E_{x ~ p(x,t)} |s_theta(x, t) - s*(x, t)|^2 dt,
// x drawn from the diffused mixture in closed form, s_theta from the double-precision reference
// evaluation, s* analytic: no divergence and no SDE anywhere in it. The identity holds only because
// E_p[div s_theta] = -E_p[s_theta . s*] (integration by parts) and because the Ito term has zero
// mean, so it fails for a wrong divergence or a wrong stochastic-integral convention.
//
// Tolerance: 4 combined standard errors plus an allowance `bias` for the Euler time-discretization
// bias of the mean. In discrete time the Ito sum has exactly zero mean (x_k is independent of dW_k),
// so the bias is O(h): the left Riemann sum and the Euler-Maruyama marginals. It is measured by
// discrete_scheme_mean (the exact mean of the discrete scheme, from the EM marginals in closed form);
// the numbers are at each case (2e6 samples per N), and each test checks again that the allowance
// covers the bias it measures. For the random-init networks the engine is also held to the exact
// discrete mean with no allowance at all (4 standard errors), which catches O(h) mistakes too, such
// as a score evaluated at the wrong step's time, that an allowance for O(h) bias cannot see.
//
// What it catches (same measurement, and checked by perturbing a scratch copy of the backend):
// evaluating the noise term at the end of the step adds ~ sum_k beta_k h E[div s_theta - div s*]:
// +20 on the ring (345 sigma) and +170 in d = 16 (680 sigma). A divergence off by a fraction f moves
// <S> by f sum_k beta_k h E[div s_theta]: f * -0.69 for the random ring network and f * -7.7 for the
// d = 16 one, whose S is dominated by |s_theta - s*|^2 (a 10% error is inside the tolerance there;
// a wrong sign, a lost factor 2 or summed instead of averaged probes is not), but f * -21.2 for the
// ring-trained network, whose S is a small difference of large terms: there a 10% error is ~100
// standard errors off (RingTrainedNetworkHutchinson below, and MlpFluctuationTheorem for the exact
// trace).

class MlpScoreMatching : public taep_test::OnBackend {};
class MlpFluctuationTheorem : public taep_test::OnBackend {};

struct EngineCase {
  const char* what;
  taep::Divergence divergence;
  int probes;
  taep::ProbeDistribution distribution;
};

// I: the independent estimate of the continuum loss; bias: the allowance for the step bias;
// discrete: the exact mean of the discrete scheme at cfg's steps, or null.
void expect_mean_is_score_matching_loss(taep::Config cfg, const EngineCase& e, const Estimate& I,
                                        double bias, const Estimate* discrete = nullptr) {
  cfg.model.divergence = e.divergence;
  cfg.model.probes = e.probes;
  cfg.model.probe_distribution = e.distribution;
  const taep::RunResult r = taep::run(cfg);
  const double sigma = std::hypot(r.taep.stderr_mean, I.stderr_), tol = 4 * sigma + bias;
  EXPECT_EQ(r.taep.nonfinite, 0u) << e.what;
  EXPECT_NEAR(r.taep.mean, I.value, tol)
      << e.what << ": <S> " << r.taep.mean << " +- " << r.taep.stderr_mean << ", I " << I.value
      << " +- " << I.stderr_ << ", bias allowance " << bias;
  std::printf("[ %s, N = %d ] <S> = %.4f +- %.4f, I = %.4f +- %.4f: difference %+.4f, tolerance "
              "%.4f (4 sigma %.4f + bias allowance %.4f)\n",
              e.what, cfg.schedule.steps, r.taep.mean, r.taep.stderr_mean, I.value, I.stderr_,
              r.taep.mean - I.value, tol, 4 * sigma, bias);
  if (discrete) {
    const double sd = std::hypot(r.taep.stderr_mean, discrete->stderr_);
    EXPECT_NEAR(r.taep.mean, discrete->value, 4 * sd)
        << e.what << ": <S> " << r.taep.mean << " +- " << r.taep.stderr_mean
        << ", exact mean of the discrete scheme " << discrete->value << " +- " << discrete->stderr_;
    std::printf("[ %s, N = %d ] exact mean of the discrete scheme %.4f +- %.4f: difference %+.4f "
                "= %+.2f sigma\n",
                e.what, cfg.schedule.steps, discrete->value, discrete->stderr_,
                r.taep.mean - discrete->value, (r.taep.mean - discrete->value) / sd);
  }
}

// The allowance must cover the step bias measured in this run.
void expect_bias_within_allowance(const Estimate& discrete, const Estimate& I, double bias) {
  EXPECT_LT(std::abs(discrete.value - I.value), bias)
      << "the step bias " << discrete.value - I.value << " +- " << std::hypot(discrete.stderr_, I.stderr_)
      << " exceeds the allowance";
}

const EngineCase kExact{"exact divergence", taep::Divergence::exact, 1,
                        taep::ProbeDistribution::rademacher};
const EngineCase kRademacher1{"hutchinson, 1 rademacher probe", taep::Divergence::hutchinson, 1,
                              taep::ProbeDistribution::rademacher};
const EngineCase kGaussian2{"hutchinson, 2 gaussian probes", taep::Divergence::hutchinson, 2,
                            taep::ProbeDistribution::gaussian};

// The ring with a network and the exact divergence: I from `samples` draws (seed i_seed), the exact
// mean of the discrete scheme at `steps` from `per_step` draws a step (seed d_seed), the engine with
// 8192 paths of `steps` steps.
struct RingScoreMatching {
  const char* weights;
  long samples;
  std::uint64_t i_seed;
  int steps;
  long per_step;
  std::uint64_t d_seed;
  double bias;
};

void expect_ring_score_matching(const RingScoreMatching& k, taep::Backend backend) {
  const Mixture ring = mixture_of(taep::ring8());
  const taep::MlpModel model = taep::load_mlp(fixture(k.weights));
  const Estimate I = score_matching_loss(ring, model, k.samples, k.i_seed);
  const Estimate D = discrete_scheme_mean(ring, model, k.steps, k.per_step, k.d_seed);
  expect_bias_within_allowance(D, I, k.bias);
  expect_mean_is_score_matching_loss(taep_test::mlp_config(k.weights, 8192, k.steps, backend), kExact,
                                     I, k.bias, &D);
}

// (a) The 2D ring with the random-init network. Measured bias <S_N> - I, with I = 15.439 +- 0.009
// (4e6 samples): -0.25 (N = 100), -0.11 (200), -0.05 (400), -0.02 (800), each +- 0.03: O(h), about
// -23/N. (The engine: 15.18, 15.34, 15.39 at N = 100, 200, 400 with 65536 paths, +- 0.017, against
// the exact discrete means 15.19, 15.33, 15.39.) Allowance at N = 200: 0.2, which also leaves room
// for the +- 0.04 noise of this run's own, smaller measurement of the bias.
TEST_P(MlpScoreMatching, RingRandomNetworkExactDivergence) {
  expect_ring_score_matching({"mlp_d2_score.safetensors", 500000, 31, 200, 2500, 41, 0.2}, backend());
}

// (a') The same ring with the eps-parameterized BF16 network: score = -eps / sqrt(1 - abar(t_k)),
// so the engine must hand the evaluator the abar of the step's own time (near t_min the factor is
// ~100 and changes by 2.1x between t_0 and t_1 at N = 400). The large scores near t_min make the
// step bias large: measured <S_N> - I, with I = 27.66 +- 0.03 (1e6 samples): +3.87 (N = 200),
// +1.74 (400), each +- 0.08 (the engine: 31.48, 29.36, 28.41 at N = 200, 400, 800, +- 0.06, 65536
// paths): O(h), ~+700/N. Allowance at N = 400: 2.2. The allowance alone would not see the abar of
// the next step being used (that moves <S> by -3.6, inside I +- (4 sigma + 2.2)); the comparison with
// the exact discrete mean does (25 sigma).
TEST_P(MlpScoreMatching, RingEpsNetworkExactDivergence) {
  expect_ring_score_matching({"mlp_d2_eps_bf16.safetensors", 500000, 34, 400, 1250, 44, 2.2}, backend());
}

// (b)-(d) d = 16: the exact trace and Hutchinson (Rademacher with one probe, Gaussian with two: a
// backend that summed the probe estimates instead of averaging them is off by 7.7; Hutchinson adds
// variance, not bias, to S). Measured bias <S_N> - I, with I = 125.18 +- 0.04 (2e6 samples): -2.20
// (N = 100), -1.09 (200), -0.53 (400), each +- 0.06: O(h), -218/N. Allowance at N = 200: 1.5 (this
// run's own measurement of the bias has +- 0.14 of noise).
TEST_P(MlpScoreMatching, SixteenDimensionalMixtureExactAndHutchinson) {
  const Mixture target = mixture_of(d16_target());
  const taep::MlpModel model = taep::load_mlp(fixture("mlp_d16.safetensors"));
  const Estimate I = score_matching_loss(target, model, 400000, 32);
  const Estimate D = discrete_scheme_mean(target, model, 200, 1500, 42);
  expect_bias_within_allowance(D, I, 1.5);
  const taep::Config cfg = d16_config(4096, 200, backend());
  for (const EngineCase& e : {kExact, kRademacher1, kGaussian2})
    expect_mean_is_score_matching_loss(cfg, e, I, 1.5, &D);
}

// (e) The ring-trained network with Hutchinson's divergence, against the score-matching loss the
// fixture records (PyTorch, x ~ p(x, t) exactly, analytic s*: the same independent estimate; this
// test's own estimator agrees with it, see MlpFluctuationTheorem). The probe noise inflates Var(S)
// (0.15 with the exact trace, 0.30 with one Rademacher probe, 3.1 with two Gaussian ones) but not the
// mean. Measured bias <S_N> - I: +0.0108 +- 0.0003 at N = 100 (see MlpFluctuationTheorem); allowance
// 0.014. A divergence estimate 10% off (e.g. Gaussian probes of variance 1.1) moves <S> by ~2.1,
// against tolerances of ~0.05 (one Rademacher probe) and ~0.13 (two Gaussian probes).
TEST_P(MlpScoreMatching, RingTrainedNetworkHutchinson) {
  const nlohmann::json doc = read_json(fixture("ring8_trained.json"));
  const Estimate I{doc["score_matching_loss"].get<double>(), doc["score_matching_loss_stderr"].get<double>()};
  const taep::Config cfg = taep_test::mlp_config("ring8_trained.safetensors", 4096, 100, backend());
  for (const EngineCase& e : {kRademacher1, kGaussian2}) expect_mean_is_score_matching_loss(cfg, e, I, 0.014);
}

// ---- 4. the fluctuation theorem for the ring-trained network ----------------------------------

// The network of tools/make_fixtures.py trained on the ring, with the exact divergence.
//   - IFT: |<exp(-S)> - 1| <= 4 stderr, with an ESS of at least a tenth of the paths. Paths that start
//     where the network puts much more mass than the target (between the ring's modes) have S << 0
//     and dominate exp(-S): in a scan of 10 seeds at this size, 8 had ESS 0.72-0.80 n and
//     |<exp(-S)> - 1| <= 2.7 stderr (a typical deficit of 0.003, what a heavy right tail of the
//     weights leaves in a finite sample), and 2 had ESS 190 and 838 with <exp(-S)> = 1.09 +- 0.08
//     and 1.03 +- 0.04. The seed here (1) has ESS ~0.73 n. This is the check that sees an S with the
//     right mean but the wrong fluctuations: with the Ito term dropped (a scratch copy of the
//     backend), <S> stays at I but the ESS falls to 943 of 32768 (<exp(-S)> = 1.09 +- 0.03; 1.032 +-
//     0.011 with 8192 paths of 200 steps).
//   - <S> against the fixture's score-matching loss (PyTorch, 4e5 samples) and against this test's own
//     stratified estimate of I, within 4 combined standard errors plus the step bias. Measured bias
//     <S_N> - I, with I = 0.07369 +- 0.00016 (2e6 samples; the fixture says 0.07381 +- 0.0007):
//     +0.0108 (N = 100), +0.0054 (200), +0.0026 (400), each +- 0.0003: O(h), +1.08/N. Allowance at
//     N = 100: 0.014. S is a small difference of large terms here (div s_theta ~ div s* ~ -2/v), so a
//     10% error in the divergence moves <S> by ~2.1: ~1000 standard errors.
TEST_P(MlpFluctuationTheorem, RingTrainedNetworkExactDivergence) {
  const nlohmann::json doc = read_json(fixture("ring8_trained.json"));
  const double loss = doc["score_matching_loss"].get<double>();
  const double loss_se = doc["score_matching_loss_stderr"].get<double>();
  const Estimate I = score_matching_loss(mixture_of(taep::ring8()),
                                         taep::load_mlp(fixture("ring8_trained.safetensors")), 50000, 33);
  // The test's machinery (sampler, analytic score, reference network) against PyTorch's.
  EXPECT_NEAR(I.value, loss, 4 * std::hypot(I.stderr_, loss_se));

  const taep::RunResult r = taep::run(taep_test::mlp_config("ring8_trained.safetensors", 32768, 100, backend()));
  const double n = double(r.taep.count);
  EXPECT_EQ(r.taep.nonfinite, 0u);
  EXPECT_GT(r.ift.ess, 0.1 * n) << "the IFT check is dominated by rare paths";
  EXPECT_NEAR(r.ift.estimate, 1.0, 4 * r.ift.stderr_) << "ESS " << r.ift.ess << " of " << n << " paths";
  const double bias = 0.014;
  EXPECT_NEAR(r.taep.mean, loss, 4 * std::hypot(r.taep.stderr_mean, loss_se) + bias)
      << "fixture loss " << loss << " +- " << loss_se;
  EXPECT_NEAR(r.taep.mean, I.value, 4 * std::hypot(r.taep.stderr_mean, I.stderr_) + bias)
      << "own estimate " << I.value << " +- " << I.stderr_;
  std::printf("[ ring8_trained ] <exp(-S)> = %.4f +- %.4f (%+.2f stderr, ESS %.0f of %.0f); "
              "<S> = %.4f +- %.4f; I = %.4f +- %.4f (fixture %.4f +- %.4f)\n",
              r.ift.estimate, r.ift.stderr_, (r.ift.estimate - 1) / r.ift.stderr_, r.ift.ess, n,
              r.taep.mean, r.taep.stderr_mean, I.value, I.stderr_, loss, loss_se);
}

INSTANTIATE_TEST_SUITE_P(Backends, MlpScoreMatching, ::testing::ValuesIn(taep_test::all_backends()),
                         taep_test::backend_param_name);
INSTANTIATE_TEST_SUITE_P(Backends, MlpFluctuationTheorem,
                         ::testing::ValuesIn(taep_test::all_backends()), taep_test::backend_param_name);

// ---- 5. the probe-noise share of Var(S) --------------------------------------------------------

// The same path ids with the exact trace and with Hutchinson (P = 2): x0 and every dW are the same
// (streams keyed by path id), the divergence does not move x, and the score GEMM does not depend on
// the tangents carried, so the x trajectories are identical and D = S_hutch - S_exact is the probe
// noise alone: sum_k beta_k h (mean of the P estimates - div). Given the path it has mean zero and
// variance sum_k (beta_k h)^2 Var_k / P, which is what the engine estimates per path from the spread
// of the P estimates and averages into hutchinson.probe_noise_variance. So that number must equal
// Var(D) = E[Var(D | path)]. Tolerance: 4 standard errors of the sample variance of D (from D's own
// fourth moment). The engine's estimate is a mean over the same paths of an average over N steps of
// the per-step spread; its own noise given the paths is far smaller, and the variation across paths
// it shares with Var(D) is included in that standard error. Measured: reported 3.61 against Var(D) =
// 3.68 +- 0.12 (Rademacher), 4.23 against 4.31 +- 0.14 (Gaussian), both -0.6 se; Var(S) ~ 200, so
// Var(D) ~ 4 also shows that the two runs' trajectories are the same. Dropping the 1/P, or dividing
// the spread by P instead of P - 1, is off by a factor 2 (~30 se); scaling the backend's divergence
// by 1.1 after the probe average shifts Var(D) by ~6 se.
// CPU loops only: that the exact and the Hutchinson runs share their x trajectories bit for bit is
// a property of the CPU backend's GEMMs (cuBLAS may pick other kernels for other tangent counts).
class MlpProbeNoise : public taep_test::OnBackendWith<taep::ProbeDistribution> {
 protected:
  taep::ProbeDistribution distribution() const { return std::get<1>(GetParam()); }
};

TEST_P(MlpProbeNoise, ReportedVarianceIsTheVarianceOfHutchinsonMinusExact) {
  const std::uint64_t n = 2048;
  taep::Config exact = d16_config(n, 100, backend());
  exact.histogram.lo = -1e4;  // fixed range: no pilot paths
  exact.histogram.hi = 1e4;
  taep::Config hutch = exact;
  hutch.model.divergence = taep::Divergence::hutchinson;
  hutch.model.probes = 2;
  hutch.model.probe_distribution = distribution();
  const taep::PathValues se = taep::simulate_paths(exact, backend(), 0, n);
  const taep::PathValues sh = taep::simulate_paths(hutch, backend(), 0, n);
  const taep::RunResult r = taep::run(hutch);
  ASSERT_TRUE(r.hutchinson.has_value());
  ASSERT_TRUE(r.hutchinson->probe_noise_variance.has_value());
  EXPECT_EQ(r.hutchinson->probes, 2);
  EXPECT_EQ(r.hutchinson->distribution, taep::to_string(distribution()));
  EXPECT_DOUBLE_EQ(*r.hutchinson->variance_without_probe_noise,
                   r.taep.variance - *r.hutchinson->probe_noise_variance);

  std::vector<double> D(n);
  double mean = 0;
  for (std::size_t i = 0; i < n; ++i) mean += (D[i] = sh.taep[i] - se.taep[i]) / double(n);
  double m2 = 0, m4 = 0;
  for (double x : D) {
    m2 += (x - mean) * (x - mean) / double(n);
    m4 += std::pow(x - mean, 4) / double(n);
  }
  const double var = m2 * double(n) / double(n - 1);
  const double var_se = std::sqrt(std::max(0.0, m4 - var * var * double(n - 3) / double(n - 1)) / double(n));
  const double reported = *r.hutchinson->probe_noise_variance;
  EXPECT_NEAR(reported, var, 4 * var_se) << taep::to_string(distribution()) << ": mean of D " << mean;
  // Hutchinson is unbiased, so D has mean zero (its sd over sqrt(n) sets the scale).
  EXPECT_NEAR(mean, 0.0, 4 * std::sqrt(var / double(n)));
  std::printf("[ %s ] probe noise: reported %.4f, Var(S_hutch - S_exact) %.4f +- %.4f (%+.2f se); "
              "mean of D %+.4f; Var(S) %.2f\n",
              taep::to_string(distribution()), reported, var, var_se, (reported - var) / var_se, mean,
              r.taep.variance);
}

INSTANTIATE_TEST_SUITE_P(Mlp, MlpProbeNoise,
                         ::testing::Combine(::testing::ValuesIn(taep_test::cpu_loops()),
                                            ::testing::Values(taep::ProbeDistribution::rademacher,
                                                              taep::ProbeDistribution::gaussian)),
                         taep_test::backend_and<taep::ProbeDistribution>(kDistributionName));

// ---- 6. invariance to chunking and threads ------------------------------------------------------

void expect_same_result(const taep::RunResult& a, const taep::RunResult& b, const std::string& what) {
  taep_test::expect_same_statistics(a, b, what);
  ASSERT_TRUE(a.hutchinson && b.hutchinson) << what;
  EXPECT_EQ(a.hutchinson->probe_noise_variance, b.hutchinson->probe_noise_variance) << what;
}

// CPU loops only: on CUDA the GEMMs over a chunk of another size may take another cuBLAS kernel, so
// there the agreement is to float rounding (gpu_test.cpp, Gpu.MlpReversePathsDoNotDependOnChunking).
class MlpInvariance : public taep_test::OnBackend {};

// A Hutchinson config (P = 2, so the probe-noise accumulator is covered too) whose path count is
// not a multiple of the 4096-path reduce block, with the automatic histogram range (pilot paths).
TEST_P(MlpInvariance, RunResultIdenticalForAnyChunkSizeAndThreadCount) {
  taep::Config c = taep_test::mlp_config("mlp_d2_score.safetensors", 3 * 4096 + 1000, 10, backend());
  c.model.divergence = taep::Divergence::hutchinson;
  c.model.probes = 2;
  c.run.chunk_paths = 4096;
  c.run.threads = 1;
  const taep::RunResult base = taep::run(c);
  EXPECT_EQ(base.taep.count + base.taep.nonfinite, c.run.paths);
  for (const std::uint64_t chunk : {4096ull, 8192ull, 0ull})
    for (const int threads : {1, 2}) {
      if (chunk == 4096 && threads == 1) continue;
      c.run.chunk_paths = chunk;
      c.run.threads = threads;
      expect_same_result(taep::run(c), base,
                         "chunk_paths " + std::to_string(chunk) + ", threads " + std::to_string(threads));
    }
}

// Per-path values depend on the path id only, when both ranges start at multiples of 256: the
// backend evaluates the network over batches of 256 paths counted from the range's start, and on its
// GEMM path a path's score is bitwise the same only within the same batch composition (a BLAS kernel
// may use a different blocking, hence a different summation order, for different row counts or row
// positions, so a path in another batch can differ in the last bits of float). Measured with the
// GEMM path (TAEP_CPU_SIMD=0): a range starting at path 100 gives 180 of 300 values of S that differ
// from the aligned run's, by up to 1.2e-5 (S ~ 125, i.e. a few float roundings). The random numbers
// themselves are keyed by path id and never differ.
TEST_P(MlpInvariance, PathValuesDependOnThePathIdNotOnTheRangeAsked) {
  taep::Config c = d16_config(1, 20, backend());
  c.model.divergence = taep::Divergence::hutchinson;
  c.model.probes = 2;
  c.model.probe_distribution = taep::ProbeDistribution::gaussian;
  const auto all = taep::simulate_paths(c, backend(), 0, 4096 + 600);
  const auto tail = taep::simulate_paths(c, backend(), 4096, 600);
  const auto mid = taep::simulate_paths(c, backend(), 512, 256);
  ASSERT_EQ(tail.taep.size(), 600u);
  EXPECT_TRUE(tail.reference.empty());
  for (int i = 0; i < 600; ++i) EXPECT_EQ(tail.taep[i], all.taep[4096 + i]) << "path " << 4096 + i;
  for (int i = 0; i < 256; ++i) EXPECT_EQ(mid.taep[i], all.taep[512 + i]) << "path " << 512 + i;
}

INSTANTIATE_TEST_SUITE_P(Backends, MlpInvariance, ::testing::ValuesIn(taep_test::cpu_loops()),
                         taep_test::backend_param_name);

// ---- 7. bad input -------------------------------------------------------------------------------

std::string mlp_json(const std::string& weights, const std::string& extra = "") {
  return R"({"model": {"type": "mlp", "weights": )" + nlohmann::json(weights).dump() + "}" + extra + "}";
}

TEST(MlpConfig, NetworkDimensionMustEqualTheTargets) {
  // The weight file is read (and checked against the target) by build_problem, not by validate().
  taep_test::expect_config_error(
      [&] { taep::build_problem(taep::parse_config(mlp_json(fixture("mlp_d16.safetensors")))); },
      "model.weights", "the MLP's dimension d = 16 must equal the target's dimension 2");
  taep::Config c = taep_test::mlp_config("mlp_d2_score.safetensors", 1, 1);
  c.target.preset.clear();
  c.target.mixture = d16_target();
  taep_test::expect_config_error([&] { taep::build_problem(c); }, "model.weights", "d = 2");
  taep_test::expect_config_error([&] { taep::run(c); }, "model.weights", "d = 2");
}

TEST(MlpConfig, MilsteinIsRefusedWithHutchinson) {
  const std::string json = R"({"model": {"type": "mlp", "divergence": "hutchinson", "weights": )" +
                           nlohmann::json(fixture("mlp_d2_score.safetensors")).dump() +
                           R"(}, "schedule": {"scheme": "milstein"}})";
  taep_test::expect_config_error([&] { taep::parse_config(json); }, "schedule.scheme",
                                 "needs model.divergence");
}

TEST(MlpConfig, CorruptWeightFileIsAConfigErrorOnModelWeights) {
  std::ifstream in(fixture("mlp_d2_score.safetensors"), std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_GT(bytes.size(), 100u);
  const std::string dir = ::testing::TempDir();
  struct Cut {
    const char* name;
    std::size_t size;
  };
  for (const Cut cut : {Cut{"empty", 0}, Cut{"header_length_only", 8}, Cut{"inside_header", 40},
                        Cut{"last_byte_missing", bytes.size() - 1}}) {
    const std::string path = dir + "taep_mlp_engine_test_" + cut.name + ".safetensors";
    std::ofstream(path, std::ios::binary).write(bytes.data(), std::streamsize(cut.size));
    taep_test::expect_config_error([&] { taep::build_problem(taep::parse_config(mlp_json(path))); },
                                   "model.weights", path);
    std::remove(path.c_str());
  }
  taep_test::expect_config_error(
      [&] {
        taep::build_problem(
            taep::parse_config(mlp_json(dir + "taep_mlp_engine_test_missing.safetensors")));
      },
      "model.weights", "taep_mlp_engine_test_missing.safetensors");
}

}  // namespace

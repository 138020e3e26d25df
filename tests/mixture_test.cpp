// Score, divergence and quadratic form of the streaming mixture evaluator against finite differences
// of log p(x, t) (computed in double), in 2D and in d = 16, across diffusion times.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "taep/config.hpp"
#include "taep/physics/mixture.hpp"
#include "taep/physics/schedule.hpp"

namespace {

using namespace taep::physics;

struct Mix {
  int d, K;
  std::vector<double> mean, log_w, sigma2;
  std::vector<float> mean_f;
};

Mix from_spec(const taep::MixtureSpec& s) {
  Mix m{s.dim(), s.components(), {}, {}, {}, {}};
  double total = 0;
  for (double w : s.weights) total += w;
  for (int k = 0; k < m.K; ++k) {
    for (double v : s.means[k]) m.mean.push_back(v), m.mean_f.push_back(float(v));
    m.log_w.push_back(std::log(s.weights[k] / total));
    m.sigma2.push_back(s.sigmas[k] * s.sigmas[k]);
  }
  return m;
}

// A random mixture in d dimensions with unequal weights and widths.
Mix random_mixture(int d, int K, std::mt19937_64& g) {
  std::normal_distribution<double> n(0.0, 2.0);
  std::uniform_real_distribution<double> u(0.2, 1.0);
  taep::MixtureSpec s;
  for (int k = 0; k < K; ++k) {
    std::vector<double> m(d);
    for (auto& v : m) v = n(g);
    s.means.push_back(m);
    s.weights.push_back(u(g));
    s.sigmas.push_back(0.3 * u(g) + 0.1);
  }
  return from_spec(s);
}

double log_p(const Mix& m, double abar, const std::vector<double>& x) {
  return mixture_log_density(m.d, m.K, m.mean.data(), m.log_w.data(), m.sigma2.data(), Marginal{abar, std::sqrt(abar), 1 - abar}, x.data());
}

template <int D>
ScoreEval<D> evaluate(const Mix& m, double abar, const std::vector<double>& x,
                      const std::vector<double>& a) {
  std::vector<ComponentStep> comp;
  for (int k = 0; k < m.K; ++k) {
    const double v = abar * m.sigma2[k] + 1.0 - abar;
    comp.push_back({float(1.0 / v), float(m.log_w[k] - 0.5 * m.d * std::log(2 * kPi * v))});
  }
  std::vector<float> xf(x.begin(), x.end()), af(a.begin(), a.end());
  MixtureSums<D> sums{}, unused{};
  accumulate_mixture<D>(m.d, m.K, m.mean_f.data(), comp.data(), nullptr, float(std::sqrt(abar)),
                        xf.data(), af.data(), true, sums, unused);
  ScoreEval<D> e{};
  e.finish(sums, af.data(), m.d, true);
  return e;
}

// Compares against central differences; tolerances are relative to the natural scale 1/v_min of the
// second derivatives (float evaluation: ~1e-6 relative; difference error: ~1e-7).
template <int D>
void check_against_finite_differences(const Mix& m, double t, std::mt19937_64& g) {
  const Schedule sched;
  const double abar = sched.abar(t);
  double v_min = 1e300;
  for (double s2 : m.sigma2) v_min = std::min(v_min, abar * s2 + 1 - abar);
  const double h = 1e-3 * std::sqrt(v_min);
  std::normal_distribution<double> n(0.0, 1.0);
  std::uniform_int_distribution<int> pick(0, m.K - 1);
  for (int trial = 0; trial < 20; ++trial) {
    // Points near a diffused component, and some between components.
    std::vector<double> x(m.d), a(m.d);
    const int k = pick(g);
    const double spread = trial % 4 == 0 ? 3.0 : 1.0;
    for (int i = 0; i < m.d; ++i) {
      x[i] = std::sqrt(abar) * m.mean[k * m.d + i] + spread * std::sqrt(v_min) * n(g);
      a[i] = n(g);
    }
    const ScoreEval<D> e = evaluate<D>(m, abar, x, a);
    const double f0 = log_p(m, abar, x);
    double div_fd = 0;
    for (int i = 0; i < m.d; ++i) {
      auto xp = x, xm = x;
      xp[i] += h;
      xm[i] -= h;
      const double fp = log_p(m, abar, xp), fm = log_p(m, abar, xm);
      const double grad = (fp - fm) / (2 * h);
      div_fd += (fp - 2 * f0 + fm) / (h * h);
      EXPECT_NEAR(e.s[i], grad, 2e-4 * (1 + std::abs(grad)) + 1e-4 / std::sqrt(v_min))
          << "score component " << i << " at t=" << t;
    }
    auto xp = x, xm = x;
    for (int i = 0; i < m.d; ++i) xp[i] += h * a[i], xm[i] -= h * a[i];
    const double quad_fd = (log_p(m, abar, xp) - 2 * f0 + log_p(m, abar, xm)) / (h * h);
    const double scale = m.d / v_min;
    EXPECT_NEAR(e.div, div_fd, 1e-3 * scale) << "divergence at t=" << t;
    EXPECT_NEAR(e.quad, quad_fd, 1e-3 * scale * 2) << "quadratic form at t=" << t;
  }
}

}  // namespace

TEST(MixtureScore, Ring8MatchesFiniteDifferences2D) {
  std::mt19937_64 g(1);
  const Mix ring = from_spec(taep::ring8());
  for (double t : {1e-3, 0.05, 0.3, 1.0}) check_against_finite_differences<2>(ring, t, g);
}

TEST(MixtureScore, RandomMixtureMatchesFiniteDifferencesD16) {
  std::mt19937_64 g(2);
  const Mix m = random_mixture(16, 5, g);
  for (double t : {1e-3, 0.1, 0.6}) {
    check_against_finite_differences<16>(m, t, g);
    check_against_finite_differences<0>(m, t, g);  // the dynamic-dimension path
  }
}

TEST(MixtureScore, SharedPassEqualsSeparatePasses) {
  // Target and collapse model on the same components: one pass with weight ratios must give the
  // model's own score.
  const taep::MixtureSpec ring = taep::ring8();
  const taep::MixtureSpec model = taep::collapse(ring, {2, 0.01});
  const Mix p = from_spec(ring), q = from_spec(model);
  const double abar = Schedule{}.abar(0.02);
  std::vector<ComponentStep> cp, cq;
  std::vector<float> ratio;
  for (int k = 0; k < p.K; ++k) {
    const double v = abar * p.sigma2[k] + 1 - abar;
    cp.push_back({float(1 / v), float(p.log_w[k] - std::log(2 * kPi * v))});
    cq.push_back({float(1 / v), float(q.log_w[k] - std::log(2 * kPi * v))});
    ratio.push_back(float(std::exp(q.log_w[k] - p.log_w[k])));
  }
  const float x[2] = {3.1f, 0.4f}, a[2] = {0.3f, -0.7f};
  MixtureSums<2> sp{}, sq{}, alone{}, unused{};
  accumulate_mixture<2>(2, p.K, p.mean_f.data(), cp.data(), ratio.data(), float(std::sqrt(abar)), x, a,
                        true, sp, sq);
  accumulate_mixture<2>(2, q.K, q.mean_f.data(), cq.data(), nullptr, float(std::sqrt(abar)), x, a, true,
                        alone, unused);
  ScoreEval<2> shared{}, separate{};
  shared.finish(sq, a, 2, true);
  separate.finish(alone, a, 2, true);
  for (int i = 0; i < 2; ++i) EXPECT_NEAR(shared.s[i], separate.s[i], 1e-5 * (1 + std::abs(separate.s[i])));
  EXPECT_NEAR(shared.div, separate.div, 1e-4 * (1 + std::abs(separate.div)));
  EXPECT_NEAR(shared.quad, separate.quad, 1e-4 * (1 + std::abs(separate.quad)));
}

TEST(MixtureScore, LogDensityIsStableFarFromEveryComponent) {
  // Components ~12 sigma apart: naive densities underflow; the log-space evaluation must not.
  const Mix ring = from_spec(taep::ring8());
  const std::vector<double> far{40.0, -40.0};
  const double lp = log_p(ring, 1.0, far);  // abar = 1: widths 0.25
  EXPECT_TRUE(std::isfinite(lp));
  EXPECT_LT(lp, -1e4);
}

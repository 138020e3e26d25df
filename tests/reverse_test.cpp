// The reverse (generative) process and the detailed fluctuation theorem (docs/physics.md sections 8, 9;
// taep/sample.hpp): per-path agreement with an independent double-precision re-implementation
// (mixture and learned models), sampling reproduces the model's distribution, S on reverse paths
// converges to the closed form, the integral and detailed fluctuation theorems, invariance to
// chunking and threads, and the `taep sample` / `taep dft` commands. Per-path and invariance
// properties run on every CPU loop (support/backends.hpp), chunking invariance on CUDA too.
//
// Random numbers the tests draw themselves come from support/test_rng.hpp (fully specified), so the
// tests are deterministic on every platform.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

#include "host/engine/backend.hpp"
#include "host/cpu/cpu_simd.hpp"
#include "host/problem/forward_problem.hpp"
#include "taep/mlp.hpp"
#include "taep/physics/philox.hpp"
#include "taep/physics/reverse_path.hpp"
#include "taep/physics/rng_streams.hpp"
#include "taep/sample.hpp"
#include "taep/taep.hpp"
#include "support/backends.hpp"
#include "support/cli_support.hpp"
#include "support/test_rng.hpp"
#include "support/test_support.hpp"

#ifndef TAEP_FIXTURE_DIR
#error "TAEP_FIXTURE_DIR must name tests/fixtures"
#endif

namespace {

using taep::Backend;
using taep::Config;

using taep_test::fixture;
using taep_test::TestRng;

Config three_modes(int steps, taep::Scheme scheme = taep::Scheme::euler) {
  Config c = taep_test::three_mode_config();
  c.run.backend = Backend::cpu;
  c.schedule.steps = steps;
  c.schedule.scheme = scheme;
  return c;
}

Config ring(int modes, double eps, int steps) {
  return taep_test::ring_config(modes, eps, taep::default_config().run.paths, steps);
}

// ---- an independent double-precision model of the process (docs/physics.md sections 1, 2, 8, 9) -----

struct Schedule {
  double beta_min, beta_max, t_min, t_max;
  int steps;
  double h() const { return (t_max - t_min) / steps; }
  double t(int k) const { return t_min + k * h(); }
  double beta(double t) const { return beta_min + t * (beta_max - beta_min); }
  double abar(double t) const {
    return std::exp(-(beta_min * t + 0.5 * (beta_max - beta_min) * t * t));
  }
};

Schedule schedule_of(const Config& c) {
  return {c.schedule.sde.beta_min, c.schedule.sde.beta_max, c.schedule.t_min, c.schedule.t_max,
          c.schedule.steps};
}

// A diffused mixture sum_k w_k N(sqrt(abar) m_k, (abar sigma_k^2 + 1 - abar) I) in double.
struct Mixture {
  std::vector<double> w;
  std::vector<std::vector<double>> m;
  std::vector<double> s2;
  explicit Mixture(const taep::MixtureSpec& spec) {
    const double total = std::accumulate(spec.weights.begin(), spec.weights.end(), 0.0);
    for (int k = 0; k < spec.components(); ++k) {
      if (spec.weights[std::size_t(k)] <= 0) continue;
      w.push_back(spec.weights[std::size_t(k)] / total);
      m.push_back(spec.means[std::size_t(k)]);
      s2.push_back(spec.sigmas[std::size_t(k)] * spec.sigmas[std::size_t(k)]);
    }
  }
  int dim() const { return int(m.front().size()); }

  struct Eval {
    std::vector<double> s;
    double div = 0, quad = 0, log_density = 0;
  };
  // Score, divergence, a.(grad s).a and log density at x.
  Eval at(const std::vector<double>& x, double abar, const std::vector<double>& a) const {
    const int d = dim();
    const std::size_t K = w.size();
    std::vector<double> logit(K), v(K);
    std::vector<std::vector<double>> u(K, std::vector<double>(std::size_t(d)));
    double mx = -1e300;
    for (std::size_t k = 0; k < K; ++k) {
      v[k] = abar * s2[k] + 1.0 - abar;
      double uu = 0;
      for (int i = 0; i < d; ++i) {
        u[k][std::size_t(i)] = std::sqrt(abar) * m[k][std::size_t(i)] - x[std::size_t(i)];
        uu += u[k][std::size_t(i)] * u[k][std::size_t(i)];
      }
      logit[k] = std::log(w[k]) - uu / (2 * v[k]) - 0.5 * d * std::log(2 * M_PI * v[k]);
      mx = std::max(mx, logit[k]);
    }
    double z = 0;
    for (std::size_t k = 0; k < K; ++k) z += std::exp(logit[k] - mx);
    Eval e;
    e.log_density = mx + std::log(z);
    e.s.assign(std::size_t(d), 0.0);
    double aa = 0;
    for (double ai : a) aa += ai * ai;
    for (std::size_t k = 0; k < K; ++k) {
      const double r = std::exp(logit[k] - mx) / z;
      double uu = 0, ua = 0;
      for (int i = 0; i < d; ++i) {
        e.s[std::size_t(i)] += r * u[k][std::size_t(i)] / v[k];
        uu += u[k][std::size_t(i)] * u[k][std::size_t(i)];
        ua += u[k][std::size_t(i)] * a[std::size_t(i)];
      }
      e.div += r * (uu / (v[k] * v[k]) - d / v[k]);
      e.quad += r * (ua * ua / (v[k] * v[k]) - aa / v[k]);
    }
    double ss = 0, sa = 0;
    for (int i = 0; i < d; ++i) {
      ss += e.s[std::size_t(i)] * e.s[std::size_t(i)];
      sa += e.s[std::size_t(i)] * a[std::size_t(i)];
    }
    e.div -= ss;
    e.quad -= sa * sa;
    return e;
  }
};

// The normals of one (seed, stream, path) subsequence, in order.
class Normals {
 public:
  Normals(std::uint64_t seed, std::uint32_t stream, std::uint64_t path)
      : s_(seed, taep::rng::subsequence(stream, path)) {}
  double next() {
    if (left_ == 0) {
      const taep::rng::F4 b = s_.next_normal4();
      buf_[0] = b.x, buf_[1] = b.y, buf_[2] = b.z, buf_[3] = b.w;
      left_ = 4;
    }
    return buf_[4 - left_--];
  }

 private:
  taep::rng::PhiloxHostStream s_;
  float buf_[4] = {};
  int left_ = 0;
};

struct Reference {
  double taep = 0, closed_form = 0;
  std::vector<double> sample;
};

// A reverse path written from docs/physics.md alone, in double: `model_score(x, k)` gives s_theta and its
// divergence at grid point k (and, for the Milstein term, a.(grad s_theta).a).
template <class ModelAt>
Reference reverse_path_double(const Schedule& S, int d, std::uint64_t seed, std::uint64_t path,
                              const Mixture& target, bool milstein, ModelAt&& model_at) {
  Normals start(seed, taep::rng::kReverseStart, path), noise(seed, taep::rng::kReverseNoise, path);
  const int N = S.steps;
  const double h = S.h();
  const std::size_t n = static_cast<std::size_t>(d);
  std::vector<double> x(n), x_next(n), dw(n);
  for (auto& v : x) v = start.next();
  Reference out;
  const std::vector<double> none(n, 0.0);
  for (int k = N; k >= 0; --k) {
    const double t = S.t(k), b = S.beta(t), ab = S.abar(t);
    if (k < N) {
      for (int i = 0; i < d; ++i)
        dw[std::size_t(i)] = (x_next[std::size_t(i)] - x[std::size_t(i)] + 0.5 * b * x[std::size_t(i)] * h) / std::sqrt(b);
      const Mixture::Eval p = target.at(x, ab, dw);
      const Mixture::Eval q = model_at(x, k, dw);
      double l = 2 * (q.div - p.div), noise_term = 0;
      for (int i = 0; i < d; ++i) {
        l += q.s[std::size_t(i)] * q.s[std::size_t(i)] - p.s[std::size_t(i)] * p.s[std::size_t(i)];
        noise_term += (q.s[std::size_t(i)] - p.s[std::size_t(i)]) * dw[std::size_t(i)];
      }
      out.taep += 0.5 * b * h * l + std::sqrt(b) * noise_term;
      if (milstein) out.taep += 0.5 * b * ((q.quad - p.quad) - h * (q.div - p.div));
    }
    if (k == 0) break;
    const Mixture::Eval q = model_at(x, k, none);
    x_next = x;
    for (int i = 0; i < d; ++i)
      x[std::size_t(i)] += (0.5 * b * x[std::size_t(i)] + b * q.s[std::size_t(i)]) * h +
                           std::sqrt(b * h) * noise.next();
  }
  out.sample = x;
  return out;
}

double log_ratio(const Mixture& p, const Mixture& q, const std::vector<double>& x, double abar) {
  const std::vector<double> a(x.size(), 0.0);
  return p.at(x, abar, a).log_density - q.at(x, abar, a).log_density;
}

double rms(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (std::size_t i = 0; i < a.size(); ++i) s += (a[i] - b[i]) * (a[i] - b[i]);
  return std::sqrt(s / double(a.size()));
}

}  // namespace

// ---- the physics of one path --------------------------------------------------------------------

namespace {

// Per-path values against references written in double, with tolerances set by the CPU's float
// rounding: on every CPU loop. CUDA's paths are held to the CPU's path by path instead, with
// tolerances for the device's own rounding (gpu_test.cpp, Gpu.ReversePerPathAgreementWithCpu).
class Reverse : public taep_test::OnBackend {};

}  // namespace

// The step scalars of every grid point (the forward tables' k < N and the reverse end point's
// k = N) and the model's per-step component coefficients against the closed forms of
// docs/physics.md sections 1 and 2, written out here in double: each is one float rounding of its
// double value (2^-24 relative; the tolerance allows a few ulp).
TEST(Reverse, StepTablesMatchTheScheduleClosedForms) {
  const Config c = [] {
    Config c = three_modes(37);
    taep::validate(c);
    return c;
  }();
  const taep::detail::ForwardProblem P = taep::detail::build_forward_problem(c);
  const taep::detail::ReverseEndTables end = taep::detail::build_reverse_end(P);
  ASSERT_EQ(end.model_last.size(), std::size_t(P.model.K));
  const double b0 = c.schedule.sde.beta_min, b1 = c.schedule.sde.beta_max;
  const int N = c.schedule.steps;
  const double h = (c.schedule.t_max - c.schedule.t_min) / N;
  auto expect_rounded = [](float got, double want, const char* what, int k) {
    EXPECT_NEAR(double(got), want, 2.5e-7 * std::abs(want)) << what << " at k = " << k;
  };
  for (int k = 0; k <= N; ++k) {
    const double t = c.schedule.t_min + k * h;
    const double beta = b0 + t * (b1 - b0);
    const double abar = std::exp(-(b0 * t + 0.5 * (b1 - b0) * t * t));
    const taep::physics::StepScalars& a = k < N ? P.step[std::size_t(k)] : end.last;
    expect_rounded(a.half_g2, beta / 2, "half_g2", k);
    expect_rounded(a.h, h, "h", k);
    expect_rounded(a.sqrt_h, std::sqrt(h), "sqrt_h", k);
    expect_rounded(a.sqrt_g2, std::sqrt(beta), "sqrt_g2", k);
    expect_rounded(a.mean_scale, std::sqrt(abar), "mean_scale", k);
    if (k < N) expect_rounded(a.decay, 1 - beta * h / 2, "decay", k);
    for (int j = 0; j < P.model.K; ++j) {
      const double v = abar * P.model.sigma2[std::size_t(j)] + 1 - abar;
      const taep::physics::ComponentStep& e =
          k < N ? P.model.comp[std::size_t(k * P.model.K + j)] : end.model_last[std::size_t(j)];
      expect_rounded(e.inv_v, 1 / v, "1/v", k);
      expect_rounded(e.log_norm, P.model.log_w[std::size_t(j)] - 0.5 * P.d * std::log(2 * M_PI * v),
                     "log_norm", k);
    }
  }
  EXPECT_FLOAT_EQ(end.last.sqrt_g2, float(std::sqrt(c.schedule.sde.beta_max)));
}

// The engine's float path (vector loop where the CPU has one) against the double model above, on
// non-shared (3-mode) and shared (ring collapse) mixtures, Euler and Milstein, at path ids inside
// and across packets and blocks. Float rounding (and a few ulp of Box-Muller) separate the two
// paths; over 200 steps they stay within ~1e-4 (observed: S 1e-6 .. 2e-5, samples 1e-6 .. 1e-5).
TEST_P(Reverse, PathsAgreeWithAnIndependentDoublePrecisionModel) {
  for (Config c : {three_modes(200), three_modes(200, taep::Scheme::milstein), ring(1, 0.05, 200)}) {
    taep::validate(c);
    const Schedule S = schedule_of(c);
    const Mixture p(c.target.mixture);
    const Mixture q(c.model.collapse ? taep::collapse(c.target.mixture, *c.model.collapse)
                                     : *c.model.mixture);
    const bool milstein = c.schedule.scheme == taep::Scheme::milstein;
    const std::uint64_t first = 4090;  // spans a 4096-path block boundary and several packets
    const auto engine = taep::simulate_reverse_paths(c, backend(), first, 20);
    ASSERT_EQ(engine.taep.size(), 20u);
    ASSERT_EQ(engine.reference.size(), 20u);
    ASSERT_EQ(engine.samples.size(), 40u);
    for (int i = 0; i < 20; ++i) {
      const Reference r = reverse_path_double(
          S, 2, c.run.seed, first + i, p, milstein,
          [&](const std::vector<double>& x, int k, const std::vector<double>& a) {
            return q.at(x, S.abar(S.t(k)), a);
          });
      const double R = log_ratio(p, q, r.sample, S.abar(S.t_min)) -
                       log_ratio(p, q, [&] {
                         Normals start(c.run.seed, taep::rng::kReverseStart, first + i);
                         std::vector<double> xN(2);
                         for (auto& v : xN) v = start.next();
                         return xN;
                       }(), S.abar(S.t_max));
      EXPECT_NEAR(engine.taep[std::size_t(i)], r.taep, 1e-4) << "path " << first + i;
      EXPECT_NEAR(engine.reference[std::size_t(i)], R, 1e-4) << "path " << first + i;
      for (int j = 0; j < 2; ++j)
        EXPECT_NEAR(engine.samples[std::size_t(2 * i + j)], r.sample[std::size_t(j)], 1e-4);
    }
  }
}

// Learned model (the ring-trained 3x128 fixture network) against mlp_evaluate_reference in
// double: the engine evaluates the network in float with its vector kernels (relative error about
// 1e-5), so over 40 steps the paths agree to a few 1e-4.
TEST_P(Reverse, MlpPathsAgreeWithTheReferenceNetworkInDouble) {
  Config c = taep_test::mlp_config("ring8_trained.safetensors", 1, 40);
  taep::validate(c);
  const taep::MlpModel net = taep::load_mlp(c.model.weights);
  const Schedule S = schedule_of(c);
  const Mixture p(c.target.mixture);
  const std::uint64_t first = 250;  // the default batch of 256 paths ends inside this range
  const auto engine = taep::simulate_reverse_paths(c, backend(), first, 10);
  ASSERT_EQ(engine.taep.size(), 10u);
  EXPECT_TRUE(engine.reference.empty());
  for (int i = 0; i < 10; ++i) {
    const Reference r = reverse_path_double(
        S, 2, c.run.seed, first + i, p, false,
        [&](const std::vector<double>& x, int k, const std::vector<double>&) {
          const double t = S.t(k);
          const taep::MlpPointEval e = taep::mlp_evaluate_reference(net, x, t, 1 - S.abar(t), true);
          Mixture::Eval out;
          out.s = e.score;
          out.div = e.divergence;
          return out;
        });
    const double tol = 5e-4 * (1.0 + std::abs(r.taep));
    EXPECT_NEAR(engine.taep[std::size_t(i)], r.taep, tol) << "path " << first + i;
    for (int j = 0; j < 2; ++j)
      EXPECT_NEAR(engine.samples[std::size_t(2 * i + j)], r.sample[std::size_t(j)], 5e-4)
          << "path " << first + i;
  }
}

// The divergence never moves a reverse path: the samples are the same with and without TAEP (and
// with a Hutchinson divergence), and Hutchinson's S differs from the exact divergence's only by
// zero-mean probe noise on the same paths.
TEST_P(Reverse, SamplesDoNotDependOnTheTaepOrTheDivergence) {
  for (const Config& c : {three_modes(100, taep::Scheme::milstein), ring(1, 0.05, 100)}) {
    const auto with = taep::simulate_reverse_paths(c, backend(), 0, 1000, true);
    const auto without = taep::simulate_reverse_paths(c, backend(), 0, 1000, false);
    EXPECT_EQ(with.samples, without.samples);
    EXPECT_TRUE(without.taep.empty() && without.reference.empty());
  }
  Config c = taep_test::mlp_config("ring8_trained.safetensors", 1, 50);
  const auto exact = taep::simulate_reverse_paths(c, backend(), 0, 1024, true);
  const auto plain = taep::simulate_reverse_paths(c, backend(), 0, 1024, false);
  c.model.divergence = taep::Divergence::hutchinson;
  c.model.probes = 2;
  const auto hutch = taep::simulate_reverse_paths(c, backend(), 0, 1024, true);
  EXPECT_EQ(exact.samples, plain.samples);
  EXPECT_EQ(exact.samples, hutch.samples);
  double m = 0, m2 = 0;
  for (std::size_t i = 0; i < 1024; ++i) {
    const double diff = hutch.taep[i] - exact.taep[i];
    m += diff;
    m2 += diff * diff;
  }
  m /= 1024;
  const double se = std::sqrt((m2 / 1024 - m * m) / 1023);
  EXPECT_GT(se, 0.0) << "the probes add noise";
  EXPECT_NEAR(m, 0.0, 4 * se);
}

INSTANTIATE_TEST_SUITE_P(Backends, Reverse, ::testing::ValuesIn(taep_test::cpu_loops()),
                         taep_test::backend_param_name);

namespace {

class ReverseVectorLoop : public taep_test::OnBackend {};

}  // namespace

// Each vector loop and the scalar loop run the same physics; their per-path values agree to float
// rounding (a few ulp of log and sincos in Box-Muller).
TEST_P(ReverseVectorLoop, VectorLoopAgreesWithScalarLoop) {
  using taep::detail::CpuLoop;
  const CpuLoop loop = taep_test::cpu_loop(GetParam().loop);
  const char* isa = taep::detail::to_string(*taep_test::vector_isa(GetParam().loop));
  for (Config c : {three_modes(300, taep::Scheme::milstein), ring(1, 0.01, 300)}) {
    taep::validate(c);
    const taep::detail::ForwardProblem P = taep::detail::build_forward_problem(c);
    std::vector<double> s0, r0, s1, r1;
    std::vector<float> x0, x1;
    taep::detail::make_cpu_backend(P, 2, CpuLoop::scalar)
        ->simulate_reverse(3, 500, true, &s0, &r0, &x0);
    taep::detail::make_cpu_backend(P, 2, loop)->simulate_reverse(3, 500, true, &s1, &r1, &x1);
    ASSERT_EQ(s1.size(), s0.size());
    double ds = 0, dr = 0, dx = 0;
    for (std::size_t i = 0; i < s0.size(); ++i) {
      ds = std::max(ds, std::abs(s1[i] - s0[i]));
      dr = std::max(dr, std::abs(r1[i] - r0[i]));
    }
    for (std::size_t i = 0; i < x0.size(); ++i) dx = std::max(dx, double(std::abs(x1[i] - x0[i])));
    EXPECT_LT(ds, 1e-3) << isa;
    EXPECT_LT(dr, 1e-3) << isa;
    EXPECT_LT(dx, 1e-3) << isa;
  }
}

INSTANTIATE_TEST_SUITE_P(Isas, ReverseVectorLoop, ::testing::ValuesIn(taep_test::vector_loops()),
                         taep_test::backend_param_name);

// ---- sampling -----------------------------------------------------------------------------------

namespace {

// Expected nearest-target-mode fractions of a mixture's samples at t_min, by direct sampling
// (1e6 draws with the test's own generator), with their standard errors.
void direct_fractions(const Config& c, const taep::MixtureSpec& spec, std::vector<double>& f,
                      std::vector<double>& se) {
  const Mixture m(spec);
  const Schedule S = schedule_of(c);
  const double ab = S.abar(S.t_min);
  const auto& means = c.target.mixture.means;
  const int d = m.dim();
  constexpr int n = 1000000;
  TestRng rng(42);
  std::vector<double> counts(means.size(), 0.0), x(static_cast<std::size_t>(d));
  std::vector<double> cum(m.w.size());
  std::partial_sum(m.w.begin(), m.w.end(), cum.begin());
  for (int s = 0; s < n; ++s) {
    const double u = rng.uniform();
    std::size_t k = 0;
    while (k + 1 < cum.size() && u >= cum[k]) ++k;
    const double sd = std::sqrt(ab * m.s2[k] + 1 - ab);
    for (int i = 0; i < d; ++i) x[std::size_t(i)] = std::sqrt(ab) * m.m[k][std::size_t(i)] + sd * rng.cosine_normal();
    std::size_t best = 0;
    double best_d2 = 1e300;
    for (std::size_t j = 0; j < means.size(); ++j) {
      double d2 = 0;
      for (int i = 0; i < d; ++i) d2 += std::pow(x[std::size_t(i)] - means[j][std::size_t(i)], 2);
      if (d2 < best_d2) best_d2 = d2, best = j;
    }
    counts[best] += 1;
  }
  f.clear(), se.clear();
  for (double cnt : counts) {
    f.push_back(cnt / n);
    se.push_back(std::sqrt(f.back() * (1 - f.back()) / n));
  }
}

// Mean and variance of each coordinate of q(x, t_min) in closed form, against the samples': within
// 4 standard errors (at 1000 steps the sampler's discretization bias, measured with 1e6 samples, is
// under 1 standard error of 2e5 samples).
void expect_moments(const Config& c, const taep::MixtureSpec& spec, const taep::SampleResult& r) {
  const Mixture m(spec);
  const Schedule S = schedule_of(c);
  const double ab = S.abar(S.t_min);
  const std::size_t n = r.count;
  for (int i = 0; i < r.d; ++i) {
    double mean = 0, e2 = 0;
    for (std::size_t k = 0; k < m.w.size(); ++k) {
      mean += m.w[k] * std::sqrt(ab) * m.m[k][std::size_t(i)];
      e2 += m.w[k] * (ab * m.s2[k] + 1 - ab + ab * m.m[k][std::size_t(i)] * m.m[k][std::size_t(i)]);
    }
    const double var = e2 - mean * mean;
    double sm = 0;
    for (std::size_t p = 0; p < n; ++p) sm += r.samples[p * std::size_t(r.d) + std::size_t(i)];
    sm /= double(n);
    double sv = 0, s4 = 0;
    for (std::size_t p = 0; p < n; ++p) {
      const double dd = r.samples[p * std::size_t(r.d) + std::size_t(i)] - sm;
      sv += dd * dd;
      s4 += dd * dd * dd * dd;
    }
    sv /= double(n - 1);
    s4 /= double(n);
    EXPECT_NEAR(sm, mean, 4 * std::sqrt(var / double(n))) << "coordinate " << i;
    EXPECT_NEAR(sv, var, 4 * std::sqrt((s4 - sv * sv) / double(n))) << "coordinate " << i;
  }
}

}  // namespace

// Default loop only: too slow for every loop (see the note before ReverseFluctuationTheorem below).
TEST(Sampling, RingCollapseSamplesTheModelsWeights) {
  Config c = ring(2, 0.05, 1000);
  taep::validate(c);
  const taep::SampleResult r = taep::sample(c, 200000);
  ASSERT_EQ(r.samples.size(), 400000u);
  EXPECT_EQ(r.nonfinite, 0u);
  const taep::ModeOccupancy& o = r.occupancy;
  ASSERT_EQ(o.counts.size(), 8u);
  ASSERT_EQ(o.model_weights.size(), 8u);
  EXPECT_DOUBLE_EQ(o.model_weights[0], 0.05);
  EXPECT_DOUBLE_EQ(o.target_weights[0], 0.125);
  EXPECT_EQ(std::accumulate(o.counts.begin(), o.counts.end(), std::uint64_t(0)), r.count);
  // The ring's modes are 6 sigma from every Voronoi boundary: the fractions are q's weights.
  for (std::size_t k = 0; k < 8; ++k)
    EXPECT_NEAR(o.fractions[k], o.model_weights[k], 4 * o.fraction_stderr[k]) << "mode " << k;
  expect_moments(c, taep::collapse(c.target.mixture, *c.model.collapse), r);
}

TEST(Sampling, ThreeModeModelAndExactTargetScore) {
  Config c = three_modes(1000);
  taep::validate(c);
  // q: the model's mixture. Then s_theta = s_*: the model is the target itself.
  for (const taep::MixtureSpec& spec : {*c.model.mixture, c.target.mixture}) {
    Config run = c;
    run.model.mixture = spec;
    const taep::SampleResult r = taep::sample(run, 200000);
    EXPECT_EQ(r.nonfinite, 0u);
    std::vector<double> f, se;
    direct_fractions(c, spec, f, se);
    for (std::size_t k = 0; k < f.size(); ++k)
      EXPECT_NEAR(r.occupancy.fractions[k], f[k],
                  4 * std::hypot(r.occupancy.fraction_stderr[k], se[k]))
          << "mode " << k;
    expect_moments(c, spec, r);
  }
}

// ---- TAEP on reverse paths ----------------------------------------------------------------------

// On reverse paths too, S converges path by path to the closed form R (the pathwise Ito-Taylor
// argument of docs/physics.md section 5 needs only the implied increments' quadratic variation, which a
// reverse path shares with a forward one): Euler with slope -1/2 in log-log, Milstein steeper and
// several times smaller.
// Default loop only (see the note below); the forward Convergence test runs on every CPU loop.
TEST(ReverseConvergence, PathsConvergeToTheClosedForm) {
  // 8192 paths: the fitted slopes scatter by about 0.02 (observed: Euler -0.57, Milstein -0.96).
  const std::vector<int> steps{100, 200, 400, 800, 1600};
  std::vector<double> euler, milstein;
  for (int n : steps)
    for (taep::Scheme s : {taep::Scheme::euler, taep::Scheme::milstein}) {
      const auto v = taep::simulate_reverse_paths(three_modes(n, s), Backend::cpu, 0, 8192);
      (s == taep::Scheme::euler ? euler : milstein).push_back(rms(v.taep, v.reference));
    }
  auto loglog_slope = [&](const std::vector<double>& e) {
    double sx = 0, sy = 0, sxx = 0, sxy = 0;
    const double m = double(steps.size());
    for (std::size_t i = 0; i < steps.size(); ++i) {
      const double x = std::log(steps[i]), y = std::log(e[i]);
      sx += x, sy += y, sxx += x * x, sxy += x * y;
    }
    return (m * sxy - sx * sy) / (m * sxx - sx * sx);
  };
  EXPECT_NEAR(loglog_slope(euler), -0.5, 0.15) << ::testing::PrintToString(euler);
  EXPECT_LT(loglog_slope(milstein), -0.8) << ::testing::PrintToString(milstein);
  EXPECT_LT(milstein.back(), euler.back() / 3) << "Milstein should cut the error several-fold";
}

// The fluctuation theorems below (1e5 to 1e6 paths of 500 to 1000 steps), the convergence test
// above and the sampling tests (2e5 samples of 1000 steps) run on the default loop only: on the
// scalar loop they take six to ten times as long, more than the suite's time allows. The other
// loops run the same paths to float rounding (ReverseVectorLoop), and CUDA's mode occupancy has its
// own test in gpu_test.cpp.

// <exp(+S)>_reverse = 1: the integral fluctuation theorem seen from the reverse side, within 4
// standard errors (the discretization bias at 1000 Milstein steps, about +0.002 with 1e6 paths, is
// below one standard error here); and <exp(-S)>_forward = 1 on the same run.
TEST(ReverseFluctuationTheorem, IntegralTheoremOnBothSides) {
  Config c = three_modes(1000, taep::Scheme::milstein);
  c.run.paths = 1 << 17;
  const taep::DetailedFtResult r = taep::detailed_ft(c);
  EXPECT_EQ(r.reverse.count, c.run.paths);
  EXPECT_EQ(r.reverse.nonfinite, 0u);
  EXPECT_NEAR(r.reverse_ift.estimate, 1.0, 4 * r.reverse_ift.stderr_);
  EXPECT_NEAR(r.forward_ift.estimate, 1.0, 4 * r.forward_ift.stderr_);
  // Forward paths are the engine's own: the same statistics as taep::run.
  const taep::RunResult f = taep::run(c);
  EXPECT_EQ(r.forward.mean, f.taep.mean);
  EXPECT_EQ(r.forward.variance, f.taep.variance);
  EXPECT_EQ(r.forward_ift.log_estimate, f.ift.log_estimate);
}

// The detailed theorem P_f(sigma) / P_r(sigma) = exp(sigma) on the 3-mode exact-score test. A
// per-path error of RMS e blurs both histograms; for a locally Gaussian density of variance V it
// flattens the fitted slope to about 1 - e^2 / V (docs/physics.md section 9), so:
//   - the closed form R of the same paths fits slope 1 within 3 standard errors;
//   - Milstein at 500 steps (e ~ 0.017): slope within 3 standard errors of that prediction;
//   - Euler at 100 steps (e ~ 0.13): flattened by many standard errors, by an amount of the
//     predicted size (measured/predicted was 1.6; the test allows 0.5 .. 4), and below Milstein.
TEST(ReverseFluctuationTheorem, DetailedTheoremSlopeAndItsDiscretizationBlur) {
  auto predicted_flattening = [](const taep::DetailedFtResult& r) {
    const double e2 = 0.5 * (std::pow(*r.forward_rms_path_error, 2) +
                             std::pow(*r.reverse_rms_path_error, 2));
    const double V = 0.5 * (r.forward.variance + r.reverse.variance);
    return e2 / V;
  };
  Config c = three_modes(500, taep::Scheme::milstein);
  c.run.paths = 1000000;
  const taep::DetailedFtResult mil = taep::detailed_ft(c);
  ASSERT_TRUE(mil.reference_fit.has_value());
  const taep::DetailedFtFit& ref = *mil.reference_fit;
  EXPECT_GT(ref.bins_used, 50);
  EXPECT_NEAR(ref.slope, 1.0, 3 * ref.slope_stderr);
  EXPECT_NEAR(ref.intercept, 0.0, 3 * ref.intercept_stderr + 0.002);
  EXPECT_NEAR(mil.fit.slope, 1.0 - predicted_flattening(mil), 3 * mil.fit.slope_stderr);
  EXPECT_LT(*mil.forward_rms_path_error, 0.03);

  c.schedule = three_modes(100).schedule;
  const taep::DetailedFtResult eul = taep::detailed_ft(c);
  const double deficit = 1.0 - eul.fit.slope, predicted = predicted_flattening(eul);
  EXPECT_GT(deficit, 5 * eul.fit.slope_stderr) << "Euler at 100 steps flattens the slope";
  EXPECT_GT(deficit, 0.5 * predicted);
  EXPECT_LT(deficit, 4.0 * predicted);
  EXPECT_LT(eul.fit.slope, mil.fit.slope - 3 * std::hypot(eul.fit.slope_stderr, mil.fit.slope_stderr));
  std::printf("    slopes: closed form %.4f +/- %.4f, Milstein(500) %.4f, Euler(100) %.4f "
              "(predicted flattening %.4f / %.4f)\n",
              ref.slope, ref.slope_stderr, mil.fit.slope, eul.fit.slope, predicted_flattening(mil),
              predicted);
}

// ---- invariance ---------------------------------------------------------------------------------

namespace {

class ReverseInvariance : public taep_test::OnBackend {};
class ReversePathInvariance : public taep_test::OnBackend {};

}  // namespace

// On every backend; on CUDA the thread count does nothing and the chunks are what varies.

TEST_P(ReverseInvariance, ReverseResultsIdenticalForAnyChunkSizeAndThreadCount) {
  Config c = on_backend(three_modes(50, taep::Scheme::milstein));
  c.run.paths = 3 * 4096 + 1234;
  std::vector<taep::DetailedFtResult> runs;
  std::vector<taep::SampleResult> samples;
  for (auto [chunk, threads] : {std::pair<std::uint64_t, int>{0, 0}, {4096, 1}, {8192, 2}}) {
    c.run.chunk_paths = chunk;
    c.run.threads = threads;
    runs.push_back(taep::detailed_ft(c));
    samples.push_back(taep::sample(c, 5000));
  }
  for (const auto& r : runs) {
    EXPECT_EQ(r.forward.mean, runs[0].forward.mean);
    EXPECT_EQ(r.reverse.mean, runs[0].reverse.mean);
    EXPECT_EQ(r.reverse.variance, runs[0].reverse.variance);
    EXPECT_EQ(r.reverse.skewness, runs[0].reverse.skewness);
    EXPECT_EQ(r.reverse_ift.log_estimate, runs[0].reverse_ift.log_estimate);
    EXPECT_EQ(r.reverse_ift.ess, runs[0].reverse_ift.ess);
    EXPECT_EQ(r.forward_histogram.edges, runs[0].forward_histogram.edges);
    EXPECT_EQ(r.forward_histogram.counts, runs[0].forward_histogram.counts);
    EXPECT_EQ(r.reverse_histogram.counts, runs[0].reverse_histogram.counts);
    EXPECT_EQ(r.fit.slope, runs[0].fit.slope);
    EXPECT_EQ(*r.reverse_rms_path_error, *runs[0].reverse_rms_path_error);
    EXPECT_EQ(r.reference_fit->slope, runs[0].reference_fit->slope);
  }
  for (const auto& s : samples) {
    EXPECT_EQ(s.samples, samples[0].samples);
    EXPECT_EQ(s.occupancy.counts, samples[0].occupancy.counts);
  }
  // Every path lands in exactly one bin (or under/overflow) on each side.
  const auto& h = runs[0].reverse_histogram;
  EXPECT_EQ(std::accumulate(h.counts.begin(), h.counts.end(), std::uint64_t(0)) + h.underflow +
                h.overflow,
            c.run.paths);
}

// A path's values depend only on its id. Mixture paths: any range. Learned models: ranges that start
// on a batch boundary (multiples of 256 paths, as every chunk does), since without a vector kernel
// (TAEP_CPU_SIMD=0) the network is a BLAS GEMM over the batch, whose rounding may depend on the
// batch's other paths. On every CPU loop; CUDA's learned-model paths agree across ranges to float
// rounding only (gpu_test.cpp, Gpu.MlpReversePathsDoNotDependOnChunking).
TEST_P(ReversePathInvariance, ReversePathValuesDependOnPathIdNotOnTheRangeAsked) {
  const Config mlp = taep_test::mlp_config("mlp_d2_score.safetensors", 1, 20);
  for (const auto& [c, offset] : {std::pair<Config, std::size_t>{three_modes(60), 321}, {mlp, 512}}) {
    const auto all = taep::simulate_reverse_paths(c, backend(), 0, 1000);
    const auto tail = taep::simulate_reverse_paths(c, backend(), offset, 1000 - offset);
    EXPECT_EQ(tail.taep, std::vector<double>(all.taep.begin() + std::ptrdiff_t(offset), all.taep.end()));
    EXPECT_EQ(tail.samples,
              std::vector<float>(all.samples.begin() + std::ptrdiff_t(2 * offset), all.samples.end()));
    Config one = c;
    one.run.threads = 1;
    EXPECT_EQ(taep::simulate_reverse_paths(one, backend(), 0, 1000).taep, all.taep);
  }
}

INSTANTIATE_TEST_SUITE_P(Backends, ReverseInvariance, ::testing::ValuesIn(taep_test::all_backends()),
                         taep_test::backend_param_name);
INSTANTIATE_TEST_SUITE_P(Backends, ReversePathInvariance, ::testing::ValuesIn(taep_test::cpu_loops()),
                         taep_test::backend_param_name);

// ---- bad input ----------------------------------------------------------------------------------

TEST(Reverse, BadInputNamesTheField) {
  auto field_of = [](auto&& f) -> std::string {
    try {
      f();
    } catch (const taep::ConfigError& e) {
      return e.field();
    }
    return "(no error)";
  };
  const Config c = three_modes(10);
  EXPECT_EQ(field_of([&] { taep::sample(c, 0); }), "count");
  EXPECT_EQ(field_of([&] { taep::sample(c, taep::rng::kMaxPaths); }), "count");
  Config bad = c;
  bad.schedule.steps = 0;
  EXPECT_EQ(field_of([&] { taep::sample(bad, 10); }), "schedule.steps");
  EXPECT_EQ(field_of([&] { taep::detailed_ft(bad); }), "schedule.steps");
  EXPECT_EQ(field_of([&] { taep::detailed_ft(c, {}, 0); }), "min_count");
  if (!taep::cuda_available()) {
    EXPECT_THROW(taep::simulate_reverse_paths(c, Backend::cuda, 0, 10), taep::BackendUnavailable);
  }
}

TEST(Reverse, JsonHasTheDocumentedSections) {
  Config c = three_modes(20);
  c.run.paths = 4096;
  const auto s = nlohmann::json::parse(taep::sample_result_to_json(taep::sample(c, 1000)));
  for (const char* key : {"samples", "occupancy", "performance", "config"})
    EXPECT_TRUE(s.contains(key)) << key;
  EXPECT_EQ(s["samples"]["count"], 1000);
  EXPECT_EQ(s["occupancy"]["fractions"].size(), 3u);
  EXPECT_EQ(s["occupancy"]["model_weights"].size(), 3u);
  const auto d = nlohmann::json::parse(taep::detailed_ft_to_json(taep::detailed_ft(c)));
  for (const char* key : {"forward", "reverse", "histogram", "fit", "reference_fit", "performance", "config"})
    EXPECT_TRUE(d.contains(key)) << key;
  EXPECT_EQ(d["histogram"]["edges"].size(), 201u);
  EXPECT_EQ(d["fit"]["min_count"], 20);
  EXPECT_TRUE(d["reverse"]["rms_path_error"].is_number());
}

// ---- the commands -------------------------------------------------------------------------------

namespace {

using taep_test::read_text;

class ReverseCli : public taep_test::CliSandbox {
 protected:
  // The exit code; stdout and stderr in out_ and err_.
  int run(const std::string& args) {
    Outcome o = CliSandbox::run(args);
    out_ = std::move(o.out);
    err_ = std::move(o.err);
    return o.exit_code;
  }
  std::string out_, err_;
};

}  // namespace

TEST_F(ReverseCli, SampleWritesCountRowsAndTheOccupancy) {
  ASSERT_EQ(run("sample --count 3000 --steps 50 --seed 3 --backend cpu --out s.csv --result r.json --quiet"), 0)
      << err_;
  EXPECT_TRUE(err_.empty()) << err_;
  std::istringstream csv(read_text(work_ / "s.csv"));
  std::string line;
  std::getline(csv, line);
  EXPECT_EQ(line, "x0,x1");
  int rows = 0;
  while (std::getline(csv, line)) {
    ++rows;
    EXPECT_EQ(std::count(line.begin(), line.end(), ','), 1) << line;
  }
  EXPECT_EQ(rows, 3000);
  const auto j = nlohmann::json::parse(read_text(work_ / "r.json"));
  EXPECT_EQ(j["samples"]["count"], 3000);
  EXPECT_EQ(j["occupancy"]["counts"].size(), 8u);
  EXPECT_EQ(j["config"]["run"]["seed"], 3);
  EXPECT_EQ(j["config"]["schedule"]["steps"], 50);
  EXPECT_EQ(listing(), (std::vector<std::string>{"r.json", "s.csv"}));
}

TEST_F(ReverseCli, DftWritesTheResultJson) {
  write("cfg.json", R"({"target": {"weights": [0.5, 0.3, 0.2], "means": [[-2, 0], [2, 1], [0, -2.5]],
                        "sigmas": [0.4, 0.3, 0.5]},
              "model": {"mixture": {"weights": [0.3, 0.4, 0.3],
                        "means": [[-1.8, 0.2], [2.2, 1.0], [0.1, -2.3]], "sigmas": [0.45, 0.3, 0.4]}},
              "run": {"backend": "cpu"}})");
  ASSERT_EQ(run("dft cfg.json --paths 20000 --steps 100 --min-count 10"), 0) << err_;
  const auto j = nlohmann::json::parse(out_);
  EXPECT_EQ(j["forward"]["taep"]["count"], 20000);
  EXPECT_EQ(j["fit"]["min_count"], 10);
  EXPECT_NEAR(j["fit"]["slope"].get<double>(), 1.0, 0.2);
  EXPECT_NE(err_.find("eq. 31 fit"), std::string::npos) << err_;
}

TEST_F(ReverseCli, BadInputExitsTwoNamingTheFieldAndLeavesNoFile) {
  write("bad.json", R"({"schedule": {"steps": 0}})");
  struct Case {
    std::string args, field;
  };
  const std::vector<Case> cases = {
      {"sample --count 0 --out s.csv", "--count"},
      {"sample --count -3 --out s.csv", "--count"},
      {"sample --out s.csv", "--count"},
      {"sample --count 10", "--out"},
      {"sample bad.json --count 10 --out s.csv --result r.json", "schedule.steps"},
      {"sample --count 10 --steps 0 --out s.csv", "--steps"},
      {"sample --count 10 --backend gpu --out s.csv", "--backend"},
      {"sample missing.json --count 10 --out s.csv", "CONFIG"},
      {"dft bad.json --out d.json", "schedule.steps"},
      {"dft --paths 0 --out d.json", "--paths"},
      {"dft --min-count 0 --out d.json", "--min-count"},
  };
  for (const Case& k : cases) {
    EXPECT_EQ(run(k.args), 2) << k.args << ": " << err_;
    EXPECT_EQ(err_.rfind("taep: error: ", 0), 0u) << err_;
    EXPECT_NE(err_.find(k.field), std::string::npos) << k.args << ": " << err_;
    EXPECT_EQ(std::count(err_.begin(), err_.end(), '\n'), 1) << err_;
    EXPECT_EQ(listing(), std::vector<std::string>{"bad.json"}) << k.args;
  }
}

// The fused forward kernel's formulas, run on the CPU (docs/gpu-kernels.md): the intrinsic wrappers
// are the exact std:: functions on the host (so the CPU backend's results are what they were), the
// two-pass log2 mixture evaluation gives the one-pass evaluator's scores, and the kernel's path
// (physics::forward_path_log2: whole Philox blocks, per-step tables folded in the log2 domain) gives
// the CPU backend's S path by path. The last test derives the CPU-GPU tolerance of the per-path
// checks in gpu_test.cpp: the device's MUFU approximations perturb each normal by up to a few 1e-6,
// and the paths must stay within that tolerance of the CPU's.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "host/problem/forward_problem.hpp"
#include "taep/physics/forward_taep.hpp"
#include "taep/physics/mixture.hpp"
#include "taep/physics/philox.hpp"
#include "taep/physics/rng_streams.hpp"
#include "taep/taep.hpp"
#include "support/test_support.hpp"

namespace {

using namespace taep::physics;
namespace rng = taep::rng;

TEST(Intrinsics, HostWrappersAreTheStdFunctions) {
  std::mt19937 g(5);
  std::uniform_real_distribution<float> u(-30.f, 30.f), pos(1e-30f, 1e3f);
  for (int i = 0; i < 10000; ++i) {
    const float x = u(g), p = pos(g);
    EXPECT_EQ(fast_exp2(x), std::exp2(x));
    EXPECT_EQ(fast_log(p), std::log(p));
    EXPECT_EQ(fast_sqrt(p), std::sqrt(p));
    EXPECT_EQ(fast_rcp(p), 1.f / p);
    float s, c;
    fast_sincos(x, s, c);
    EXPECT_EQ(s, std::sin(x));
    EXPECT_EQ(c, std::cos(x));
  }
}

TEST(Intrinsics, BoxMullerIsTheHostMirror) {
  // The host mirror's normals through the wrappers: bit for bit those of logf/sqrtf/sinf/cosf.
  rng::PhiloxHostStream words(0x1234, 99), normals(0x1234, 99);
  for (int b = 0; b < 256; ++b) {
    const rng::U4 w = words.next_u4();
    const rng::F4 n = normals.next_normal4();
    const float u = rng::uniform_from_bits(w.x);
    const float v = float(w.y) * (2.3283064e-10f * 6.2831855f) + ((2.3283064e-10f * 6.2831855f) / 2.0f);
    const float s = std::sqrt(-2.0f * std::log(u));
    EXPECT_EQ(n.x, std::sin(v) * s);
    EXPECT_EQ(n.y, std::cos(v) * s);
  }
}

// Host copies of the kernel's log2-domain tables (Log2DeviceTables in kernels/device_problem.cuh).
struct HostLog2 {
  std::vector<ComponentLog2> target, model;
  Log2Tables view;
};

std::vector<ComponentLog2> fold(const taep::detail::ForwardProblem& P,
                                const taep::detail::MixtureTablesHost& m) {
  std::vector<ComponentLog2> out;
  for (int s = 0; s < P.steps; ++s)
    for (int k = 0; k < m.K; ++k)
      out.push_back(component_log2_at(P.d, m.log_w[k], m.sigma2[k], P.schedule.marginal(P.grid.t(s))));
  return out;
}

HostLog2 host_log2(const taep::detail::ForwardProblem& P) {
  HostLog2 h{fold(P, P.target), fold(P, P.model), {}};
  h.view.target = h.target.data();
  h.view.model = h.model.data();
  h.view.target_mean = P.target.mean.data();
  h.view.model_mean = P.model.mean.data();
  h.view.ratio = P.shared ? P.ratio.data() : nullptr;
  return h;
}

// The one-pass and the two-pass evaluation at random points of a random mixture, with and without
// a second (shared) mixture: scores, divergences and quadratic forms to float rounding.
template <int D, int K>
void expect_same_scores(int d, int n, std::mt19937_64& g) {
  std::normal_distribution<double> z(0.0, 1.0);
  std::uniform_real_distribution<double> w(0.2, 1.0);
  std::vector<float> mean;
  std::vector<double> log_w, sigma2;
  std::vector<float> ratio;
  for (int k = 0; k < n; ++k) {
    for (int i = 0; i < d; ++i) mean.push_back(float(2.0 * z(g)));
    log_w.push_back(std::log(w(g) / n));
    sigma2.push_back(0.05 + 0.2 * w(g));
    ratio.push_back(float(2.0 * w(g)));
  }
  for (double abar : {0.999, 0.9, 0.3, 0.01}) {
    std::vector<ComponentStep> comp;
    std::vector<ComponentLog2> comp2;
    for (int k = 0; k < n; ++k) {
      const Marginal m{abar, std::sqrt(abar), 1 - abar};
      comp.push_back(component_step_at(d, log_w[k], sigma2[k], m));
      comp2.push_back(component_log2_at(d, log_w[k], sigma2[k], m));
    }
    const float sab = float(std::sqrt(abar));
    for (int trial = 0; trial < 20; ++trial) {
      std::vector<float> x(d), a(d), s1(d), s2(d);
      const int k0 = trial % n;
      float aa = 0.f;
      for (int i = 0; i < d; ++i) {
        x[i] = float(sab * mean[k0 * d + i] + (trial % 3 + 0.3) * z(g));
        a[i] = float(0.1 * z(g));
        aa += a[i] * a[i];
      }
      MixtureSums<0> p, q;
      accumulate_mixture<0>(d, n, mean.data(), comp.data(), ratio.data(), sab, x.data(), a.data(),
                            true, p, q);
      ScoreEval<0> ep, eq;
      ep.finish(p, a.data(), d, true);
      eq.finish(q, a.data(), d, true);
      Log2Sums lp{0.f, 0.f, 0.f, s1.data()}, lq{0.f, 0.f, 0.f, s2.data()};
      accumulate_mixture_log2<D, K, true>(d, n, mean.data(), comp2.data(), ratio.data(), sab,
                                          x.data(), a.data(), aa, lp, lq);
      float div_p, quad_p, div_q, quad_q;
      finish_log2<D>(d, lp, a.data(), true, div_p, quad_p);
      finish_log2<D>(d, lq, a.data(), true, div_q, quad_q);
      // The natural scale of a score is 1/sqrt(v), of div and the form d/v (v >= v_min ~ 0.05).
      double scale = 0;
      for (int i = 0; i < d; ++i) scale = std::max({scale, std::abs(double(ep.s[i])), 1.0});
      for (int i = 0; i < d; ++i) {
        EXPECT_NEAR(s1[i], ep.s[i], 2e-5 * scale) << "target score " << i;
        EXPECT_NEAR(s2[i], eq.s[i], 2e-5 * scale) << "shared model score " << i;
      }
      const double dscale = std::max({1.0, std::abs(double(ep.div)), scale * scale}) * d;
      EXPECT_NEAR(div_p, ep.div, 2e-5 * dscale);
      EXPECT_NEAR(div_q, eq.div, 2e-5 * dscale);
      EXPECT_NEAR(quad_p, ep.quad, 2e-5 * dscale);
      EXPECT_NEAR(quad_q, eq.quad, 2e-5 * dscale);
    }
  }
}

TEST(Log2Mixture, EqualsOnePassEvaluator) {
  std::mt19937_64 g(11);
  expect_same_scores<2, 8>(2, 8, g);   // the ring's kernel: K compiled in, u kept in registers
  expect_same_scores<2, 0>(2, 8, g);   // K at run time: two passes, u recomputed
  expect_same_scores<16, 8>(16, 8, g); // K compiled in, u recomputed (K d > 64)
  expect_same_scores<0, 0>(5, 3, g);   // d and K at run time
}

// A normal stream whose values are the host mirror's perturbed like the device's MUFU Box-Muller:
// relative 2^-21 and absolute 2.4e-6 (sin/cos 2^-21.4 absolute times sqrt(-2 log u) <= 6.7; log2 to
// 2^-22 absolute inside the square root), with signs drawn at random.
class PerturbedStream {
 public:
  PerturbedStream(std::uint64_t seed, std::uint64_t sub, bool perturb)
      : s_(seed, sub), g_(sub), perturb_(perturb) {}
  rng::U4 next_u4() { return s_.next_u4(); }
  rng::F4 next_normal4() {
    rng::F4 n = s_.next_normal4();
    if (perturb_)
      for (float* v : {&n.x, &n.y, &n.z, &n.w}) *v = *v * (1.f + 4.8e-7f * sign()) + 2.4e-6f * sign();
    return n;
  }

 private:
  float sign() { return (g_() & 1u) ? 1.f : -1.f; }
  rng::PhiloxHostStream s_;
  std::mt19937 g_;
  bool perturb_;
};

struct PathDiffs {
  double median = 0, max = 0, ref_max = 0;
};

// forward_path (the CPU backend's) against forward_path_log2 (the kernel's) on paths 0..count-1.
template <int D, int K>
PathDiffs compare_paths(const taep::Config& config, int count, bool perturb) {
  taep::Config c = config;
  taep::validate(c);
  const auto P = taep::detail::build_forward_problem(c);
  const ForwardView V = P.view([](const auto& v) { return v.data(); });
  const HostLog2 L = host_log2(P);
  const int d = P.d;
  std::vector<float> x(d), dw(d), sp(d), sq(d);
  std::vector<double> diff;
  PathDiffs out;
  for (int path = 0; path < count; ++path) {
    const std::uint64_t a = rng::subsequence(rng::kInitialState, std::uint64_t(path));
    const std::uint64_t b = rng::subsequence(rng::kForwardNoise, std::uint64_t(path));
    rng::PhiloxHostStream init1(V.seed, a), noise1(V.seed, b);
    const PathResult cpu = forward_path<D>(V, init1, noise1);
    PerturbedStream init2(V.seed, a, false), noise2(V.seed, b, perturb);
    const PathStorage store{x.data(), dw.data(), sp.data(), sq.data()};
    const PathResult gpu = P.shared
                               ? forward_path_log2<D, K, Sharing::shared>(V, L.view, init2, noise2, store)
                               : forward_path_log2<D, K, Sharing::separate>(V, L.view, init2, noise2, store);
    EXPECT_TRUE(std::isfinite(gpu.taep)) << "path " << path;
    diff.push_back(std::abs(gpu.taep - cpu.taep));
    out.ref_max = std::max(out.ref_max, std::abs(gpu.reference - cpu.reference));
  }
  std::sort(diff.begin(), diff.end());
  out.median = diff[diff.size() / 2];
  out.max = diff.back();
  return out;
}

taep::Config ring(taep::Scheme scheme, int steps) {
  taep::Config c = taep_test::ring_config(1, 0.01, 1, steps);
  c.schedule.scheme = scheme;
  return c;
}

// Per path, the kernel's formulas on the host equal the CPU backend's up to the order of the
// softmax: a wrong draw, step or table index would move S by O(0.1).
TEST(Log2Path, EqualsForwardPathPerPath) {
  for (auto scheme : {taep::Scheme::euler, taep::Scheme::milstein}) {
    SCOPED_TRACE(scheme == taep::Scheme::euler ? "euler" : "milstein");
    // 301 steps: the two-step groups and one step after them (the tail).
    const PathDiffs shared = compare_paths<2, 8>(ring(scheme, 301), 300, false);
    EXPECT_LT(shared.median, 1e-5);
    EXPECT_LT(shared.max, 1e-3);
    EXPECT_LT(shared.ref_max, 1e-9);  // the closed form is the same double code on the same x0
    taep::Config three = taep_test::three_mode_config();
    three.schedule.steps = 150;
    three.schedule.scheme = scheme;
    const PathDiffs separate = compare_paths<2, 3>(three, 300, false);
    EXPECT_LT(separate.median, 1e-5);
    EXPECT_LT(separate.max, 1e-3);
    const PathDiffs any_k = compare_paths<2, 0>(three, 100, false);
    EXPECT_LT(any_k.median, 1e-5);
    EXPECT_LT(any_k.max, 1e-3);
  }
  for (int d : {3, 5}) {
    taep::Config c = taep_test::random_mixture_config(d);
    c.schedule.steps = 50;
    const PathDiffs r = d == 3 ? compare_paths<3, 4>(c, 100, false) : compare_paths<0, 0>(c, 100, false);
    EXPECT_LT(r.median, 1e-5) << "d " << d;
    EXPECT_LT(r.max, 1e-3) << "d " << d;
  }
}

// The tolerance of gpu_test.cpp's per-path checks (median |S_gpu - S_cpu| < 1e-4, max < 1e-2 on
// the ring, 300 steps): the kernel's formulas with every normal perturbed by the size of the
// device's intrinsic errors stay well inside it (measured: medians ~2e-6, maxima ~1e-4).
TEST(Log2Path, DeviceSizedNoiseErrorsStayWithinGpuTolerance) {
  for (auto scheme : {taep::Scheme::euler, taep::Scheme::milstein}) {
    const PathDiffs r = compare_paths<2, 8>(ring(scheme, 300), 1000, true);
    EXPECT_LT(r.median, 1e-4 / 10) << "median |S_gpu - S_cpu|";
    EXPECT_LT(r.max, 1e-2 / 10) << "max |S_gpu - S_cpu|";
    std::printf("[ info ] ring %s: median %.3g, max %.3g\n",
                scheme == taep::Scheme::euler ? "euler" : "milstein", r.median, r.max);
  }
  // The other kernels gpu_test.cpp checks per path (ForwardKernelsAgreeWithCpu), same bounds.
  taep::Config three = taep_test::three_mode_config();
  three.schedule.steps = 300;
  three.schedule.scheme = taep::Scheme::milstein;
  const PathDiffs cases[] = {compare_paths<2, 3>(three, 500, true),
                             compare_paths<16, 4>(taep_test::random_mixture_config(16), 200, true),
                             compare_paths<0, 0>(taep_test::random_mixture_config(5), 200, true)};
  for (const PathDiffs& r : cases) {
    EXPECT_LT(r.median, 1e-4 / 10) << "median |S_gpu - S_cpu|";
    EXPECT_LT(r.max, 1e-2 / 10) << "max |S_gpu - S_cpu|";
    std::printf("[ info ] median %.3g, max %.3g, closed form %.3g\n", r.median, r.max, r.ref_max);
  }
}

}  // namespace

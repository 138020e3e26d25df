#pragma once
// The per-path parts of a learned-score (MLP) path, forward or reverse, shared by the CPU backend
// (scalar and vector loops) and the CUDA kernels. The network itself is evaluated step-synchronously
// over a batch of paths (CPU BLAS or vector kernels / cuBLAS); around it every path does, at each
// TAEP evaluation (forward step k, or reverse grid point k < N):
//   mlp_prepare  (before the network): its tangents -- P Hutchinson probes (stream kHutchinson,
//                P*d values per evaluation, in evaluation order: forward step k reads values k*P*d ..,
//                a reverse path's x_{N-1} is evaluation 0), or for Milstein with the exact trace the
//                d vectors of milstein_basis -- and the target's analytic score, divergence and
//                (Milstein) quadratic form;
//   mlp_increment (after it): the model's divergence from the tangents' estimates (the Hutchinson
//                mean and its probe-noise variance, or the Milstein basis's trace), the TAEP
//                increment and (Milstein) its correction (docs/physics.md sections 4 and 6).
// The caller draws dW (forward: stream kForwardNoise, values k*d .. k*d+d-1, the numbers an
// exact-score path with the same id uses; reverse: implied_increment) and moves the state
// (euler_maruyama_step, or reverse_step).
//
// T is float (one path) or a packet of floats (one path per lane: hd.hpp, "Lane types").
#include <cstdint>
#include <utility>

#include "taep/physics/forward_taep.hpp"
#include "taep/physics/taep_increment.hpp"

namespace taep {
namespace physics {

// Rademacher value of a word: its top bit picks the sign.
TAEP_HD float rademacher(std::uint32_t word) { return (word >> 31) ? -1.f : 1.f; }
// The same for a packet of words, lane by lane (1 - 2 * top bit: exactly +1 or -1).
template <class U>
TAEP_HD auto rademacher(const U& word) {
  return 1.f - 2.f * to_float_(word >> 31);
}

// The probe values of a path (or packet) from one stream: Rademacher signs from its words, or its
// normals. Value j of the stream is the same number whichever step consumes it.
template <class Stream>
struct ProbeSource {
  using T = typename NormalSource<Stream>::T;
  WordSource<Stream> words;
  NormalSource<Stream> normals;
  bool signs;
  TAEP_HD ProbeSource(Stream& s, bool rademacher_probes) : words(s), normals(s), signs(rademacher_probes) {}
  TAEP_HD T next() { return signs ? T(rademacher(words.next())) : normals.next(); }
};

// Score and divergence of the target alone at x and step k, and with `dw` (Milstein) also its
// quadratic form dw.(grad s_*).dw. T: float, or a packet of floats.
template <int D, class T>
TAEP_HD void target_score(const ForwardView& V, int k, float mean_scale, const T* x,
                          ScoreEval<D, T>& p, const T* dw = nullptr) {
  const int d = D > 0 ? D : V.d;
  MixtureSums<D, T> sums, unused;
  unused.clear(d);
  const bool quad = dw != nullptr;
  accumulate_mixture<D>(d, V.target.K, V.target.mean, V.target.comp + std::size_t(k) * V.target.K,
                        nullptr, mean_scale, x, quad ? dw : x, quad, sums, unused);
  p.finish(sums, quad ? dw : x, d, quad);
}

// The Milstein correction for a learned score (docs/physics.md section 4) needs dW.(grad s_theta).dW
// besides the exact divergence. Carrying the d tangents of an orthonormal basis whose first vector
// is dW/|dW| gives both for the cost of the exact trace alone: the trace of J is the sum of
// v_q.J v_q over any orthonormal basis, and dW.J dW = |dW|^2 v_0.J v_0. The basis is the columns of
// the Householder reflection H = I - w w^T / (1 + |u_0|), w = u + sign(u_0) e_0, u = dW/|dW| (its
// column 0 is -sign(u_0) u; the sign is immaterial to a quadratic form). basis[q*d + i] is component
// i of vector q. Returns |dW|^2 (for dW = 0, the standard basis). Only the symmetric part of J enters
// a quadratic form: for a network, whose J is not exactly symmetric, the correction removes the
// symmetric part's O(h) error per step and leaves the antisymmetric part's (Levy-area) term.
TAEP_HD float milstein_basis(int d, const float* dw, float* basis) {
  float r2 = 0.f;
  for (int i = 0; i < d; ++i) r2 += dw[i] * dw[i];
  for (int q = 0; q < d; ++q)
    for (int i = 0; i < d; ++i) basis[q * d + i] = q == i ? 1.f : 0.f;
  if (!(r2 > 0.f)) return r2;
  const float inv_r = 1.f / sqrt_(r2);
  const float u0 = dw[0] * inv_r;
  const float sign = u0 >= 0.f ? 1.f : -1.f;
  const float c = 1.f / (1.f + sign * u0);
  for (int q = 0; q < d; ++q) {
    const float wq = dw[q] * inv_r + (q == 0 ? sign : 0.f);
    for (int i = 0; i < d; ++i) {
      const float wi = dw[i] * inv_r + (i == 0 ? sign : 0.f);
      basis[q * d + i] -= c * wq * wi;
    }
  }
  return r2;
}

// The trace from the estimates v_q.J v_q of a milstein_basis (q ascending: one fixed order).
template <class T>
TAEP_HD T milstein_trace(int d, const T* est) {
  T tr = est[0];
  for (int q = 1; q < d; ++q) tr = tr + est[q];
  return tr;
}

// Mean of P Hutchinson estimates and the probe-noise variance their spread implies for this step's
// TAEP increment: the divergence enters S as beta h div, so Var = (beta h)^2 s^2 / P with s^2 the
// unbiased sample variance of the estimates (needs P >= 2; 0 otherwise). The variance is a double per
// path (lane by lane for a packet).
template <class T>
struct ProbeAverageOf {
  T mean;
  typename Lanes<T>::wide noise_variance;
};
using ProbeAverage = ProbeAverageOf<float>;
template <class T>
TAEP_HD ProbeAverageOf<T> average_probes(const T* est, int P, float half_g2, float h) {
  using W = typename Lanes<T>::wide;
  T sum = 0.f;
  for (int j = 0; j < P; ++j) sum += est[j];
  const T mean = sum / float(P);
  W noise(0.0);
  if (P >= 2) {
    const double bh = 2.0 * double(half_g2) * double(h);
    for (int l = 0; l < Lanes<T>::count; ++l) {
      const float m = get_lane(mean, l);
      double var = 0.0;
      for (int j = 0; j < P; ++j) {
        const float e = get_lane(est[j], l);
        var += double(e - m) * double(e - m);
      }
      var /= double(P - 1);
      set_lane(noise, l, bh * bh * var / double(P));
    }
  }
  return {mean, noise};
}

// What the network carries per path at one evaluation besides x: P Hutchinson probes, or (Milstein
// with the exact trace) the d vectors of milstein_basis, or nothing (the exact trace's own
// e_1..e_d, which the evaluators supply).
struct MlpTangentPlan {
  bool hutch = false;
  bool milstein = false;
  int count = 0;  // tangents per path: P, d or 0
};
// with_taep: whether this evaluation adds a TAEP increment (a reverse path without one carries no
// tangents); probes: P, or 0 for the exact divergence.
TAEP_HD MlpTangentPlan mlp_tangent_plan(bool with_taep, int probes, bool milstein, int d) {
  MlpTangentPlan t;
  t.hutch = with_taep && probes > 0;
  t.milstein = with_taep && milstein && probes == 0;
  t.count = t.hutch ? probes : t.milstein ? d : 0;
  return t;
}

// The tangents of one path (T = float) at v: value j = q*d + i is component i of tangent q. A
// packet's tangents have their own store (host/cpu/cpu_mlp_loop.hpp) with the same three members.
struct PathTangents {
  float* v;
  TAEP_HD void put(int j, float x) const { v[j] = x; }
  // Lane l's d*d Milstein basis is written here, then handed over by basis_done (in place here).
  TAEP_HD float* basis(int) const { return v; }
  TAEP_HD void basis_done(int) const {}
};

// The Milstein basis of each lane's dW into `tan`; returns |dW|^2 per lane.
template <int D, class T, class Tangents>
TAEP_HD T milstein_tangents(int d, const T* dw, Tangents& tan) {
  if constexpr (Lanes<T>::count == 1) {
    const T r2 = milstein_basis(d, dw, tan.basis(0));
    tan.basis_done(0);
    return r2;
  } else {
    T r2 = 0.f;
    for (int l = 0; l < Lanes<T>::count; ++l) {
      float a[storage_dim<D>()];
      for (int i = 0; i < d; ++i) a[i] = get_lane(dw[i], l);
      set_lane(r2, l, milstein_basis(d, a, tan.basis(l)));
      tan.basis_done(l);
    }
    return r2;
  }
}

// A TAEP evaluation of a path (or packet) before the network, at x with the increment dw and the
// step scalars of grid point k: its tangents into `tan` (probes from open_probes(), a callable that
// returns the path's ProbeSource, called only when there are probes) and the target's score,
// divergence and (Milstein) quadratic form into `target`. Returns |dW|^2 for Milstein (else 0).
template <int D, class T, class OpenProbes, class Tangents>
TAEP_HD T mlp_prepare(const ForwardView& V, int k, float mean_scale, const MlpTangentPlan& plan,
                      const T* x, const T* dw, OpenProbes&& open_probes, Tangents& tan,
                      ScoreEval<D, T>& target) {
  const int d = D > 0 ? D : V.d;
  T r2 = 0.f;
  if (plan.milstein) {
    r2 = milstein_tangents<D>(d, dw, tan);
  } else if (plan.hutch) {
    auto&& probes = open_probes();
    for (int j = 0; j < plan.count * d; ++j) tan.put(j, probes.next());
  }
  target_score<D>(V, k, mean_scale, x, target, plan.milstein ? dw : nullptr);
  return r2;
}

// The same evaluation after the network: s_model, and est the tangents' estimates (Hutchinson: P
// values v_q.J v_q; Milstein: the d values of the basis; exact: est[0], the trace), with what
// mlp_prepare left: the target's s_target, div_target, quad_target and |dW|^2 r2. Returns the float
// TAEP increment with (Milstein) its correction; for Hutchinson the increment's probe-noise variance
// is added to *noise_variance when it is given.
template <class T>
TAEP_HD T mlp_increment(int d, const StepScalars& c, const MlpTangentPlan& plan, const T* s_model,
                        const T* est, const T* s_target, const T& div_target, const T& quad_target,
                        const T& r2, const T* dw, typename Lanes<T>::wide* noise_variance) {
  T div = est[0];
  if (plan.hutch) {
    const ProbeAverageOf<T> avg = average_probes(est, plan.count, c.half_g2, c.h);
    div = avg.mean;
    if (noise_variance)
      for (int l = 0; l < Lanes<T>::count; ++l)
        set_lane(*noise_variance, l, get_lane(*noise_variance, l) + get_lane(avg.noise_variance, l));
  } else if (plan.milstein) {
    div = milstein_trace(d, est);
  }
  T inc = taep_increment(d, c.half_g2, c.h, c.sqrt_g2, s_model, div, s_target, div_target, dw);
  if (plan.milstein) inc += milstein_correction(c, T(r2 * est[0]), quad_target, div, div_target);
  return inc;
}

}  // namespace physics
}  // namespace taep

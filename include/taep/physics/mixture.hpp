#pragma once
// Isotropic Gaussian mixtures diffused by the forward SDE (docs/physics.md section 2), evaluated in one pass
// over the components with an online (streaming) softmax: one exp per component, no array of K
// responsibilities, so K is unbounded on the GPU. With
//   u_k = c m_k - x (c the transition's mean scale, v_k = c^2 sigma_k^2 + n its variance),  logit_k = log w_k - |u_k|^2 / (2 v_k) - d/2 log(2 pi v_k),
//   r_k = softmax(logit)_k,
//   s        = sum_k r_k u_k / v_k
//   div s    = sum_k r_k (|u_k|^2/v_k^2 - d/v_k) - |s|^2
//   a.grad s.a = sum_k r_k ((u_k.a)^2/v_k^2 - |a|^2/v_k) - (s.a)^2
#include "taep/physics/hd.hpp"
#include "taep/physics/schedule.hpp"

namespace taep {
namespace physics {

// Largest dimension the fixed-storage evaluators accept (the dynamic-dimension kernel's arrays).
constexpr int kMaxDim = 256;

template <int D>
constexpr int storage_dim() {
  return D > 0 ? D : kMaxDim;
}

// Per-step coefficients of one component: 1/v_k(t) and log w_k - d/2 log(2 pi v_k(t)).
struct ComponentStep {
  float inv_v;
  float log_norm;
};

// d/2 log(2 pi v): the normalization of an isotropic Gaussian of variance v in dimension d.
TAEP_HD double gaussian_log_norm(int d, double v) { return 0.5 * d * log_(2.0 * kPi * v); }

// The coefficients of a component of log weight log_w and (diffused) variance v.
TAEP_HD ComponentStep component_step(int d, double log_w, double v) {
  return {float(1.0 / v), float(log_w - gaussian_log_norm(d, v))};
}
// ... and of a component of width sigma2 carried by the transition m from 0 to t (the forward
// tables' and the reverse end point's).
TAEP_HD ComponentStep component_step_at(int d, double log_w, double sigma2, const Marginal& m) {
  return component_step(d, log_w, diffused_variance(sigma2, m));
}

// The component a uniform u in (0, 1) picks by the cumulative weights cum_w (K of them, the last 1):
// the first k with u < cum_w[k].
TAEP_HD int pick_component(double u, const double* cum_w, int K) {
  int k = 0;
  while (k + 1 < K && u >= cum_w[k]) ++k;
  return k;
}

// Unnormalized sums of one mixture's online softmax (the common factor exp(-M) is left out).
// T: float or a packet of floats (hd.hpp, "Lane types").
template <int D, class T = float>
struct MixtureSums {
  T z = 0.f;  // sum e_k
  T a = 0.f;  // sum e_k (|u|^2/v^2 - d/v)
  T b = 0.f;  // sum e_k ((u.a)^2/v^2 - |a|^2/v)
  T s[storage_dim<D>()];

  TAEP_HD void clear(int d) {
    z = a = b = 0.f;
    for (int i = 0; i < d; ++i) s[i] = 0.f;
  }
  TAEP_HD void scale(const T& c, int d, bool quad) {
    z *= c;
    a *= c;
    if (quad) b *= c;  // b is summed for the quadratic form only
    for (int i = 0; i < d; ++i) s[i] *= c;
  }
  TAEP_HD void add(const T& e, const T* u, float inv_v, const T& uu, const T& ua, const T& aa,
                   int d, bool quad) {
    z += e;
    const T ev = e * inv_v;
    for (int i = 0; i < d; ++i) s[i] += ev * u[i];
    a += ev * (uu * inv_v - float(d));
    if (quad) b += ev * (ua * ua * inv_v - aa);
  }
};

// Score, divergence and (optionally) the quadratic form dW.grad s.dW of one mixture at one point.
template <int D, class T = float>
struct ScoreEval {
  T s[storage_dim<D>()];
  T div;
  T quad;

  TAEP_HD void finish(const MixtureSums<D, T>& m, const T* a, int d, bool quad_wanted) {
    const T inv_z = 1.f / m.z;
    T ss = 0.f, sa = 0.f;
    for (int i = 0; i < d; ++i) {
      s[i] = m.s[i] * inv_z;
      ss += s[i] * s[i];
      if (quad_wanted) sa += s[i] * a[i];
    }
    div = m.a * inv_z - ss;
    quad = quad_wanted ? T(m.b * inv_z - sa * sa) : T(0.f);
  }
};

// One pass over K components centred at mean_scale * mean[k], weighted per step by comp[k].
// With ratio != nullptr a second mixture on the same components (same means and widths, weights
// w'_k = ratio_k w_k) is accumulated from the same exponentials: the target and a collapse model
// then cost one exp per component together.
template <int D, class T>
TAEP_HD void accumulate_mixture(int d, int K, const float* mean, const ComponentStep* comp,
                                const float* ratio, float mean_scale, const T* x, const T* a,
                                bool quad, MixtureSums<D, T>& first, MixtureSums<D, T>& second) {
  T aa = 0.f;
  if (quad)
    for (int i = 0; i < d; ++i) aa += a[i] * a[i];
  first.clear(d);
  if (ratio) second.clear(d);
  T max_logit = 0.f;
  for (int k = 0; k < K; ++k) {
    T u[storage_dim<D>()];
    T uu = 0.f, ua = 0.f;
    const float* mk = mean + k * d;
    for (int i = 0; i < d; ++i) {
      u[i] = mean_scale * mk[i] - x[i];
      uu += u[i] * u[i];
      if (quad) ua += u[i] * a[i];
    }
    const float inv_v = comp[k].inv_v;
    const T logit = comp[k].log_norm - 0.5f * inv_v * uu;
    T e = 1.f;
    if (k == 0) {
      max_logit = logit;
    } else {
      // A new maximum rescales what was summed so far by exp(old max - new max) and adds the new
      // term with weight 1; otherwise the term gets exp(logit - max). Selects, not a branch, so
      // every lane of a packet does the same work; scaling by exactly 1 leaves the sums unchanged.
      const T diff = logit - max_logit;
      const T ex = exp_(-abs_(diff));
      const auto new_max = diff > 0.f;
      const T rescale = select(new_max, ex, T(1.f));
      first.scale(rescale, d, quad);
      if (ratio) second.scale(rescale, d, quad);
      max_logit = select(new_max, logit, max_logit);
      e = select(new_max, T(1.f), ex);
    }
    first.add(e, u, inv_v, uu, ua, aa, d, quad);
    if (ratio) second.add(e * ratio[k], u, inv_v, uu, ua, aa, d, quad);
  }
}

// ---- The GPU's evaluation: two passes in the log2 domain (docs/gpu-kernels.md) ------------------
// The fused forward kernel evaluates the sums above in another order: a first pass takes the
// largest logit, a second adds e_k = 2^(l_k - M) with l_k = log2(e) logit_k = c_k + g_k |u_k|^2, the
// factor -log2(e)/(2 v_k) folded into g_k on the host, in double. One exp2 per component and no
// rescaling. The CPU keeps accumulate_mixture (its results are bitwise those of every earlier
// version); these functions run on the host too, with the exact std:: functions behind the
// intrinsic wrappers (hd.hpp), which is how the CPU tests check them against accumulate_mixture.

// Per-step coefficients of one component in the log2 domain: 16 bytes, one vector load.
struct alignas(16) ComponentLog2 {
  float g;      // -log2(e) / (2 v)
  float c;      // log2(e) (log w - d/2 log(2 pi v))
  float inv_v;  // 1 / v
  float unused;
};

TAEP_HD ComponentLog2 component_log2_at(int d, double log_w, double sigma2, const Marginal& m) {
  const double v = diffused_variance(sigma2, m);
  return {float(-0.5 * kLog2e / v), float(kLog2e * (log_w - gaussian_log_norm(d, v))),
          float(1.0 / v), 0.f};
}

// The sums of one mixture (the common factor 2^-M left out); s points at the caller's d floats
// (registers for a compiled d, a row of shared memory otherwise).
struct Log2Sums {
  float z, a, b;  // sum e_k; sum e_k (|u|^2/v^2 - d/v); sum e_k ((u.a)^2/v^2 - |a|^2/v)
  float* s;       // sum e_k u_k / v_k
};

// Adds the term of a component with exponential e, weight w (1, or a second mixture's ratio on
// shared components) and ev = w e / v: q = |u|^2/v - d, p = (u.a)^2/v - |a|^2, u(i) the coordinates
// of u_k.
template <int D, class U>
TAEP_HD void add_log2_term(int d, float e, float ev, float w, float q, float p, U&& u,
                           Log2Sums& m) {
  m.z = fmaf(e, w, m.z);
  for (int i = 0; i < (D > 0 ? D : d); ++i) m.s[i] = fmaf(ev, u(i), m.s[i]);
  m.a = fmaf(ev, q, m.a);
  m.b = fmaf(ev, p, m.b);
}

TAEP_HD void clear_log2(int d, Log2Sums& m) {
  m.z = m.a = m.b = 0.f;
  for (int i = 0; i < d; ++i) m.s[i] = 0.f;
}

// One mixture of n components (K > 0: exactly K, known at compile time) centred at sab * mean[k]
// (K x d, row-major), coefficients comp[k] at this step; with kShared a second mixture on the same
// components with weights ratio_k w_k is summed from the same exponentials (as in
// accumulate_mixture; a template argument, so that no code tests the pointer). aa = |a|^2. The quadratic form's sums are taken whether or not `quad` asks
// for them (a few FMAs, against a branch per component); finish_log2 drops them.
template <int D, int K, bool kShared>
TAEP_HD void accumulate_mixture_log2(int d_runtime, int n, const float* mean,
                                     const ComponentLog2* comp, const float* ratio, float sab,
                                     const float* x, const float* a, float aa,
                                     Log2Sums& first, Log2Sums& second) {
  const int d = D > 0 ? D : d_runtime;
  const float fd = float(d);
  clear_log2(d, first);
  if (kShared) clear_log2(d, second);
  const auto u_at = [&](int k, int i) { return fmaf(sab, mean[k * d + i], -x[i]); };
  if constexpr (K > 0) {
    // Keep u_k in registers when that is cheap; otherwise recompute it in the second pass.
    constexpr bool kKeepU = D > 0 && K * D <= 64;
    float l[K], q[K], p[K], inv_v[K];
    float u[kKeepU ? K : 1][kKeepU ? D : 1];
    float M = 0.f;
    TAEP_UNROLL
    for (int k = 0; k < K; ++k) {
      const ComponentLog2 ck = comp[k];
      float uu = 0.f, ua = 0.f;
      TAEP_UNROLL
      for (int i = 0; i < d; ++i) {
        const float ui = u_at(k, i);
        if constexpr (kKeepU) u[k][i] = ui;
        uu = fmaf(ui, ui, uu);
        ua = fmaf(ui, a[i], ua);
      }
      inv_v[k] = ck.inv_v;
      l[k] = fmaf(ck.g, uu, ck.c);
      q[k] = fmaf(uu, ck.inv_v, -fd);
      p[k] = fmaf(ua * ua, ck.inv_v, -aa);
      M = k == 0 ? l[k] : fmaxf(M, l[k]);
    }
    TAEP_UNROLL
    for (int k = 0; k < K; ++k) {
      const float e = fast_exp2(l[k] - M);
      const auto uk = [&](int i) {
        if constexpr (kKeepU) return u[k][i];
        else return u_at(k, i);
      };
      const float ev = e * inv_v[k];
      add_log2_term<D>(d, e, ev, 1.f, q[k], p[k], uk, first);
      if (kShared) add_log2_term<D>(d, e, ev * ratio[k], ratio[k], q[k], p[k], uk, second);
    }
  } else {
    const auto uu_of = [&](int k) {
      float uu = 0.f;
      for (int i = 0; i < d; ++i) {
        const float ui = u_at(k, i);
        uu = fmaf(ui, ui, uu);
      }
      return uu;
    };
    float M = 0.f;
    for (int k = 0; k < n; ++k) {
      const float l = fmaf(comp[k].g, uu_of(k), comp[k].c);
      M = k == 0 ? l : fmaxf(M, l);
    }
    for (int k = 0; k < n; ++k) {
      const ComponentLog2 ck = comp[k];
      float uu = 0.f, ua = 0.f;
      for (int i = 0; i < d; ++i) {
        const float ui = u_at(k, i);
        uu = fmaf(ui, ui, uu);
        ua = fmaf(ui, a[i], ua);
      }
      const float e = fast_exp2(fmaf(ck.g, uu, ck.c) - M);
      const float q = fmaf(uu, ck.inv_v, -fd);
      const float p = fmaf(ua * ua, ck.inv_v, -aa);
      const auto uk = [&](int i) { return u_at(k, i); };
      const float ev = e * ck.inv_v;
      add_log2_term<D>(d, e, ev, 1.f, q, p, uk, first);
      if (kShared) add_log2_term<D>(d, e, ev * ratio[k], ratio[k], q, p, uk, second);
    }
  }
}

// Score (into m.s, in place), divergence and quadratic form a.grad s.a from a mixture's sums.
template <int D>
TAEP_HD void finish_log2(int d_runtime, Log2Sums& m, const float* a, bool quad, float& div,
                         float& quad_form) {
  const int d = D > 0 ? D : d_runtime;
  const float inv_z = fast_rcp(m.z);
  float ss = 0.f, sa = 0.f;
  for (int i = 0; i < d; ++i) {
    m.s[i] *= inv_z;
    ss = fmaf(m.s[i], m.s[i], ss);
    if (quad) sa = fmaf(m.s[i], a[i], sa);
  }
  div = fmaf(m.a, inv_z, -ss);
  quad_form = quad ? fmaf(m.b, inv_z, -sa * sa) : 0.f;
}

// log p(x, t) of a mixture in double precision (endpoints of the closed-form reference).
// mean: K*d, log_w: K, sigma2: K; m the transition from 0 to t; x float (path state) or double
// (tests), or a packet state of which lane `lane` is read.
template <class X>
TAEP_HD double mixture_log_density(int d, int K, const double* mean, const double* log_w,
                                   const double* sigma2, const Marginal& m, const X* x,
                                   int lane = 0) {
  const double sab = m.scale;
  double max_l = 0.0, sum = 0.0;
  for (int k = 0; k < K; ++k) {
    const double v = diffused_variance(sigma2[k], m);
    double uu = 0.0;
    for (int i = 0; i < d; ++i) {
      const double u = sab * mean[k * d + i] - double(get_lane(x[i], lane));
      uu += u * u;
    }
    const double l = log_w[k] - 0.5 * uu / v - gaussian_log_norm(d, v);
    if (k == 0 || l > max_l) {
      sum = (k == 0) ? 1.0 : sum * exp_(max_l - l) + 1.0;
      max_l = l;
    } else {
      sum += exp_(l - max_l);
    }
  }
  return max_l + log_(sum);
}

}  // namespace physics
}  // namespace taep

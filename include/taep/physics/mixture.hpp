#pragma once
// Isotropic Gaussian mixtures diffused by the VP SDE (docs/physics.md section 2), evaluated in one pass
// over the components with an online (streaming) softmax: one exp per component, no array of K
// responsibilities, so K is unbounded on the GPU. With
//   u_k = sqrt(abar) m_k - x,  logit_k = log w_k - |u_k|^2 / (2 v_k) - d/2 log(2 pi v_k),
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
// ... and of a component of width sigma2 at abar = abar(t) (the forward tables' and the reverse
// end point's).
TAEP_HD ComponentStep component_step_at(int d, double log_w, double sigma2, double abar) {
  return component_step(d, log_w, diffused_variance(sigma2, abar));
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

// One pass over K components centred at sqrt_abar * mean[k], weighted per step by comp[k].
// With ratio != nullptr a second mixture on the same components (same means and widths, weights
// w'_k = ratio_k w_k) is accumulated from the same exponentials: the target and a collapse model
// then cost one exp per component together.
template <int D, class T>
TAEP_HD void accumulate_mixture(int d, int K, const float* mean, const ComponentStep* comp,
                                const float* ratio, float sqrt_abar, const T* x, const T* a,
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
      u[i] = sqrt_abar * mk[i] - x[i];
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

// log p(x, t) of a mixture in double precision (endpoints of the closed-form reference).
// mean: K*d, log_w: K, sigma2: K; abar = abar(t); x float (path state) or double (tests), or a
// packet state of which lane `lane` is read.
template <class X>
TAEP_HD double mixture_log_density(int d, int K, const double* mean, const double* log_w,
                                   const double* sigma2, double abar, const X* x, int lane = 0) {
  const double sab = sqrt_(abar);
  double max_l = 0.0, sum = 0.0;
  for (int k = 0; k < K; ++k) {
    const double v = diffused_variance(sigma2[k], abar);
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

#pragma once
// One reverse-process (generative) path of docs/physics.md section 8 and its TAEP read on the forward
// clock (section 9), written once for the CPU backends and the CUDA kernels (as forward_taep.hpp is
// for forward paths). On the grid t_k = t_min + k h, k = 0..N:
//
//   x_N ~ N(0, pi^2 I) (pi^2 the prior variance)    stream kReverseStart: normal4 blocks, d values
//   x_{k-1} = x_k + [a_k x_k + g_k^2 s_theta(x_k, t_k)] h + g_k sqrt(h) xi_k,  k = N..1
//                                                    xi: stream kReverseNoise, d normals per step in
//                                                    step order from t_max (the step from t_k uses
//                                                    values (N-k) d .. (N-k) d + d-1)
//   dW_k = (x_{k+1} - x_k + a_k x_k h) / g_k                             (implied forward increment)
//   S   += g_k^2/2 [l_theta - l_*](x_k) h + g_k (s_theta - s_*)(x_k) . dW_k,   k = N-1..0
//   (milstein) += g_k^2/2 [dW_k.(grad s_theta - grad s_*).dW_k - h (div s_theta - div s_*)]
//
// i.e. exactly the functional of a forward path (taep_increment.hpp), evaluated at the earlier
// forward time t_k of each step. One score evaluation at x_k serves both the TAEP increment of
// forward step k and the reverse step from t_k. The first reverse step (from t_N = t_max) needs the
// model's score at t_N, where no forward step evaluates anything: ReverseView carries that point's
// step scalars and the model's component coefficients. Exact-score models also get the closed form
// R = log(p/q)(x_0, t_min) - log(p/q)(x_N, t_max) of the same path (docs/physics.md eq. 36, 39).
//
// Learned-score (MLP) models run the same steps step-synchronously over batches (the network is a
// GEMM over the batch); they use reverse_start, reverse_step and implied_increment below with
// mlp_prepare and mlp_increment (mlp_path.hpp). Their Hutchinson probes, when the divergence is
// estimated, come from stream kHutchinson of the reverse path's own id, P*d values per TAEP
// evaluation in evaluation order (x_{N-1} first).
//
// State and score are float (or packets of floats, one path per lane: hd.hpp, "Lane types"); S and
// the closed form are double.
#include <cstdint>

#include "taep/physics/forward_taep.hpp"
#include "taep/physics/hd.hpp"
#include "taep/physics/mixture.hpp"
#include "taep/physics/schedule.hpp"
#include "taep/physics/taep_increment.hpp"

namespace taep {
namespace physics {

// Everything a reverse path needs, as non-owning pointers into host or device memory.
struct ReverseView {
  ForwardView fwd;     // the forward tables (steps 0..N-1), mixtures, seed, scheme, reference flag
  StepScalars last{};  // at t_N = t_max (decay unused)
  const ComponentStep* model_last = nullptr;  // fwd.model.K coefficients at t_N (exact-score models)
};

// x(t_max) ~ N(0, prior_std^2 I), the schedule's prior: d normals of the start stream (a packet
// stream fills one path per lane).
template <class Stream, class T>
TAEP_HD void reverse_start(int d, float prior_std, Stream& start, T* x) {
  NormalSource<Stream> z(start);
  for (int i = 0; i < d; ++i) x[i] = prior_std * z.next();
}

// One reverse step from t_k, in place: x <- x + [a_k x + g_k^2 s] h + g_k sqrt(h) xi.
// c: the scalars of grid point k; s: s_theta(x, t_k); xi: d standard normals.
template <class T>
TAEP_HD void reverse_step(int d, const StepScalars& c, const T* s, const T* xi, T* x) {
  const float a_h = c.drift * c.h;
  const float hg2_h = c.half_g2 * c.h;
  const float noise = c.sqrt_g2 * c.sqrt_h;
  for (int i = 0; i < d; ++i) x[i] = x[i] + (a_h * x[i] + 2.f * hg2_h * s[i]) + noise * xi[i];
}

// The forward increment that the pair (x_k, x_{k+1}) implies on the forward clock:
// dW_k = (x_{k+1} - x_k + a_k x_k h) / g_k. c: the scalars of grid point k.
template <class T>
TAEP_HD void implied_increment(int d, const StepScalars& c, const T* x_next, const T* x, T* dw) {
  const float a_h = c.drift * c.h;
  for (int i = 0; i < d; ++i) dw[i] = ((x_next[i] - x[i]) + a_h * x[i]) / c.sqrt_g2;
}

// The model's score alone at x from per-component coefficients `comp` (model.K of them).
template <int D, class T>
TAEP_HD void model_score(const ForwardView& V, const ComponentStep* comp, float mean_scale,
                         const T* x, ScoreEval<D, T>& q) {
  const int d = D > 0 ? D : V.d;
  MixtureSums<D, T> sums, unused;
  unused.clear(d);
  accumulate_mixture<D>(d, V.model.K, V.model.mean, comp, nullptr, mean_scale, x, x, false, sums,
                        unused);
  q.finish(sums, x, d, false);
}

// The whole reverse path of an exact-score (mixture) model: start, N reverse steps, and (with_taep)
// S read on the forward clock and the closed form. The final state x_0 goes to sample[0..d). The
// noise stream fixes the state type T (float: one path; a packet stream: one path per lane, and
// then start is the packet stream of the lanes' start subsequences).
template <int D, class Start, class Noise, class T>
TAEP_HD auto reverse_path(const ReverseView& R, Start& start, Noise& noise, bool with_taep,
                          T* sample) {
  using W = typename Lanes<T>::wide;
  const ForwardView& V = R.fwd;
  const int d = D > 0 ? D : V.d;
  const bool reference = with_taep && V.reference;
  T x[storage_dim<D>()];
  T x_next[storage_dim<D>()];  // x_{k+1}
  T dw[storage_dim<D>()];      // implied dW_k (and xi before each reverse step)
  PathResultOf<W> out{W(0.0), W(0.0)};
  reverse_start(d, V.prior_std, start, x);
  if (reference)
    for (int l = 0; l < Lanes<T>::count; ++l)
      set_lane(out.reference, l, -log_ratio_at<D>(V, V.marginal_end, x, l));

  NormalSource<Noise> z(noise);
  ScoreEval<D, T> p, q;
  // The step from t_N = t_max: the model's score there, nothing else.
  model_score<D>(V, R.model_last, R.last.mean_scale, x, q);
  for (int i = 0; i < d; ++i) {
    x_next[i] = x[i];
    dw[i] = z.next();
  }
  reverse_step(d, R.last, q.s, dw, x);

  W S(0.0);
  for (int k = V.steps - 1; k >= 0; --k) {
    const StepScalars c = V.step[k];
    if (with_taep) {
      implied_increment(d, c, x_next, x, dw);
      evaluate_scores<D>(V, k, c.mean_scale, x, dw, p, q);
      T inc = taep_increment(d, c.half_g2, c.h, c.sqrt_g2, q.s, q.div, p.s, p.div, dw);
      if (V.milstein) inc += milstein_correction(c, q.quad, p.quad, q.div, p.div);
      add_widened(S, inc);
    } else if (k > 0) {
      // The model's score by the same operations as with TAEP, so that a path's samples do not
      // depend on with_taep: the shared pass when model and target share components (then it costs
      // no more than the model alone), else the model's own pass (which is what evaluate_scores
      // runs for it).
      if (V.shared)
        evaluate_scores<D>(V, k, c.mean_scale, x, x, p, q);
      else
        model_score<D>(V, V.model.comp + std::size_t(k) * V.model.K, c.mean_scale, x, q);
    }
    if (k == 0) break;
    for (int i = 0; i < d; ++i) {
      x_next[i] = x[i];
      dw[i] = z.next();
    }
    reverse_step(d, c, q.s, dw, x);
  }
  out.taep = S;
  if (reference)
    for (int l = 0; l < Lanes<T>::count; ++l)
      set_lane(out.reference, l, get_lane(out.reference, l) + log_ratio_at<D>(V, V.marginal_start, x, l));
  for (int i = 0; i < d; ++i) sample[i] = x[i];
  return out;
}

}  // namespace physics
}  // namespace taep

// taep: reverse interface ready

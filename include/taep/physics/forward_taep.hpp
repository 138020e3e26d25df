#pragma once
// One forward path of the SDE dx = -a x dt + g dW (VP or VE, physics/schedule.hpp) and its
// time-asymmetry entropy production (docs/physics.md section 4), written once and called by the CPU
// backend's loop and by the CUDA kernel alike.
//
//   S      += g_k^2/2 [l_theta - l_*](x_k) h + g_k (s_theta - s_*)(x_k) . dW_k
//   (milstein) += g_k^2/2 [dW.(grad s_theta - grad s_*).dW - h (div s_theta - div s_*)]
//   x_{k+1} = (1 - a_k h) x_k + g_k dW_k,     l = |s|^2 + 2 div s
//
// Everything at the start of the step, the same dW that moves x (Ito). The state and the score are
// float (or packets of floats, one path per lane: hd.hpp, "Lane types"); S is accumulated in
// double.
#include <cstdint>
#include <utility>

#include "taep/physics/hd.hpp"
#include "taep/physics/mixture.hpp"
#include "taep/physics/philox.hpp"
#include "taep/physics/schedule.hpp"
#include "taep/physics/taep_increment.hpp"

namespace taep {
namespace physics {

// Per-step constants shared by every path (precomputed once per run in double, stored as float).
// (8-byte aligned: a kernel reads it with 64-bit loads.)
struct alignas(8) StepScalars {
  float half_g2;     // g(t_k)^2 / 2
  float h;           // t_{k+1} - t_k
  float sqrt_h;
  float sqrt_g2;     // g(t_k)
  float mean_scale;  // the transition's mean scale at t_k (sqrt(abar(t_k)) for VP, 1 for VE)
  float decay;       // 1 - a(t_k) h
  float drift;       // a(t_k) of the drift f = -a x (g^2/2 for VP, 0 for VE)
  float unused = 0;
};

// The step scalars of grid point k = 0..N (docs/physics.md section 1), in double, stored as float:
// the forward tables' (k < N) and the reverse process's first step (k = N).
TAEP_HD StepScalars step_scalars_at(const Schedule& sched, const TimeGrid& grid, int k) {
  const double h = grid.h();
  const double t = grid.t(k);
  const double g2 = sched.g2(t), a = sched.drift_rate(t);
  return {float(0.5 * g2), float(h), float(sqrt_(h)), float(sqrt_(g2)),
          float(sched.marginal(t).scale), float(1.0 - a * h), float(a)};
}

// The Milstein correction of a step: g^2/2 [dW.(grad s_theta - grad s_*).dW - h (div s_theta -
// div s_*)] (docs/physics.md section 4), from the two quadratic forms and divergences.
template <class T>
TAEP_HD T milstein_correction(const StepScalars& c, const T& quad_model, const T& quad_target,
                              const T& div_model, const T& div_target) {
  return c.half_g2 * ((quad_model - quad_target) - c.h * (div_model - div_target));
}

struct MixtureTables {
  int K = 0;
  const float* mean = nullptr;     // K*d, float, for the path integrator
  const double* mean_d = nullptr;  // K*d, double, for the closed-form endpoints
  const double* log_w = nullptr;   // K
  const double* sigma2 = nullptr;  // K
  const ComponentStep* comp = nullptr;  // steps*K: per-step (1/v_k, log w_k - d/2 log 2 pi v_k)
};

// Everything a forward path needs, as non-owning pointers into host or device memory.
struct ForwardView {
  int d = 0;
  int steps = 0;
  bool milstein = false;
  bool reference = false;  // exact-score model: also evaluate log(p/q) at both ends
  bool shared = false;     // model = target components with other weights: one pass, one exp each
  // false: a reference network supplies s* (learned-score models only), the target's mixture
  // only starts the paths and target.comp is empty.
  bool analytic_target = true;
  MixtureTables target;
  MixtureTables model;
  const float* ratio = nullptr;  // shared: w_model / w_target per component
  const StepScalars* step = nullptr;  // steps
  // x0 ~ p(x, t_min): component by cumulative weight, then c m_k + sqrt(v_k) z (c the mean scale).
  const double* init_cum_w = nullptr;  // K of target, last = 1
  const float* init_std = nullptr;     // sqrt(v_k(t_min)), K of target
  float init_mean_scale = 1.f;
  Marginal marginal_start;  // the transition from 0 to t_min
  Marginal marginal_end;    // ... and to t_max
  float prior_std = 1.f;    // sqrt of the schedule's prior variance (the reverse process's start)
  std::uint64_t seed = 0;
};

// S and the closed form of one path (W = double), or of a packet's paths (W = a packet of doubles).
template <class W>
struct PathResultOf {
  W taep;       // S
  W reference;  // log(p/q)(x_0,t_min) - log(p/q)(x_N,t_max), exact-score models; else 0
};
using PathResult = PathResultOf<double>;

// The two kinds of 4-value block a stream deals: normals (next_normal4: rng::F4, or four packets
// for a packet stream) and raw 32-bit words (next_u4).
struct NormalBlocks {
  template <class Stream>
  TAEP_HD static auto next(Stream& s) -> decltype(s.next_normal4()) { return s.next_normal4(); }
};
struct WordBlocks {
  template <class Stream>
  TAEP_HD static auto next(Stream& s) -> decltype(s.next_u4()) { return s.next_u4(); }
};

// Serves a stream's values one at a time from its 4-value blocks without indexing an array, so the
// buffer stays in registers on the GPU. Value j of the stream is always the same number, whatever
// consumes it.
template <class Stream, class Kind>
struct ValueSource {
  using Block = decltype(Kind::next(std::declval<Stream&>()));
  using T = decltype(Block{}.x);
  Stream& stream;
  Block buf{};
  int left = 0;
  TAEP_HD explicit ValueSource(Stream& s) : stream(s) {}
  TAEP_HD T next() {
    if (left == 0) {
      buf = Kind::next(stream);
      left = 4;
    }
    const T r = buf.x;
    buf.x = buf.y;
    buf.y = buf.z;
    buf.z = buf.w;
    --left;
    return r;
  }
};

// Normals one at a time (the noise, x0, Gaussian probes).
template <class Stream>
using NormalSource = ValueSource<Stream, NormalBlocks>;
// 32-bit words one at a time (the signs of Rademacher probes); a packet stream serves packets.
template <class Stream>
using WordSource = ValueSource<Stream, WordBlocks>;

// log(p/q)(x, t) at the transition m from 0 to t, in double precision, of the path in lane `lane` of the state.
// (d is D when it is fixed, so that a kernel indexes its state with constants and keeps it in
// registers.)
template <int D, class T>
TAEP_HD double log_ratio_at(const ForwardView& V, const Marginal& m, const T* x, int lane = 0) {
  const int d = D > 0 ? D : V.d;
  const double lp = mixture_log_density(d, V.target.K, V.target.mean_d, V.target.log_w,
                                        V.target.sigma2, m, x, lane);
  const double lq = mixture_log_density(d, V.model.K, V.model.mean_d, V.model.log_w,
                                        V.model.sigma2, m, x, lane);
  return lp - lq;
}

// Draws x0 from p(x, t_min) with the initial-state stream of one path, into lane `lane` of the
// state (even in a packet the start is drawn path by path: the component pick is data-dependent,
// and it runs once per path).
template <int D, class Stream, class T>
TAEP_HD void sample_initial_state(const ForwardView& V, Stream& init, T* x, int lane = 0) {
  const int d = D > 0 ? D : V.d;
  const rng::U4 pick = init.next_u4();
  const int k = pick_component(rng::uniform_open(pick.x), V.init_cum_w, V.target.K);
  NormalSource<Stream> z(init);
  const float sd = V.init_std[k];
  const float* mk = V.target.mean + k * d;
  for (int i = 0; i < d; ++i) set_lane(x[i], lane, V.init_mean_scale * mk[i] + sd * z.next());
}

// Whether model and target share their components (V.shared): read at run time, or fixed at
// compile time so a kernel's step loop holds only the passes its case takes.
enum class Sharing { runtime, shared, separate };

// Score, divergence and quadratic form of target (p) and model (q) at x and step k.
template <int D, Sharing Mode = Sharing::runtime, class T>
TAEP_HD void evaluate_scores(const ForwardView& V, int k, float mean_scale, const T* x, const T* dw,
                             ScoreEval<D, T>& p, ScoreEval<D, T>& q) {
  const int d = D > 0 ? D : V.d;
  const bool shared = Mode == Sharing::runtime ? V.shared : Mode == Sharing::shared;
  MixtureSums<D, T> sp, sq;  // each is cleared by the pass that fills it ...
  sq.clear(d);  // ... but the compiler cannot see that V.ratio is set whenever V.shared is
  // 64-bit offsets: steps x K may exceed 2^31.
  const ComponentStep* target_k = V.target.comp + std::size_t(k) * V.target.K;
  if (shared) {
    accumulate_mixture<D>(d, V.target.K, V.target.mean, target_k, V.ratio, mean_scale, x, dw,
                          V.milstein, sp, sq);
  } else {
    accumulate_mixture<D>(d, V.target.K, V.target.mean, target_k, nullptr, mean_scale, x, dw,
                          V.milstein, sp, sq);
    accumulate_mixture<D>(d, V.model.K, V.model.mean, V.model.comp + std::size_t(k) * V.model.K,
                          nullptr, mean_scale, x, dw, V.milstein, sq, sp);
  }
  p.finish(sp, dw, d, V.milstein);
  q.finish(sq, dw, d, V.milstein);
}

// The initial-state stream of lane l: a single stream serves a float state, an array of streams
// (one per path) a packet.
template <class Stream>
TAEP_HD Stream& lane_stream(Stream& s, int) { return s; }
template <class Stream, int N>
TAEP_HD Stream& lane_stream(Stream (&s)[N], int l) { return s[l]; }

// Where forward_path leaves the path's start x_0 and end x_N (d values each, lane l of a packet
// being path l) when a pointer is not null: per-path output only, and outside the step loop, so
// that asking for them changes no number.
template <class T>
struct PathEnds {
  T* x0 = nullptr;
  T* xN = nullptr;
};

// The whole path: sample x0, run all steps, return S (and the closed form for exact models).
// The noise stream fixes the state type T: a float stream gives one path, a packet stream one path
// per lane, whose initial-state streams init holds (see lane_stream).
template <int D, Sharing Mode = Sharing::runtime, class Init, class Noise>
TAEP_HD auto forward_path(const ForwardView& V, Init& init, Noise& noise,
                          PathEnds<typename NormalSource<Noise>::T> ends = {}) {
  using T = typename NormalSource<Noise>::T;
  using W = typename Lanes<T>::wide;
  const int d = D > 0 ? D : V.d;
  T x[storage_dim<D>()];
  T dw[storage_dim<D>()];
  PathResultOf<W> out{W(0.0), W(0.0)};
  for (int i = 0; i < d; ++i) x[i] = 0.f;  // filled lane by lane below
  for (int l = 0; l < Lanes<T>::count; ++l) {
    sample_initial_state<D>(V, lane_stream(init, l), x, l);
    if (V.reference) set_lane(out.reference, l, log_ratio_at<D>(V, V.marginal_start, x, l));
  }
  if (ends.x0)
    for (int i = 0; i < d; ++i) ends.x0[i] = x[i];

  NormalSource<Noise> z(noise);
  W S(0.0);
  ScoreEval<D, T> p, q;
  for (int k = 0; k < V.steps; ++k) {
    const StepScalars c = V.step[k];
    for (int i = 0; i < d; ++i) dw[i] = c.sqrt_h * z.next();
    evaluate_scores<D, Mode>(V, k, c.mean_scale, x, dw, p, q);
    T inc = taep_increment(d, c.half_g2, c.h, c.sqrt_g2, q.s, q.div, p.s, p.div, dw);
    if (V.milstein) inc += milstein_correction(c, q.quad, p.quad, q.div, p.div);
    add_widened(S, inc);
    euler_maruyama_step(d, c.decay, c.sqrt_g2, dw, x);
  }
  out.taep = S;
  if (ends.xN)
    for (int i = 0; i < d; ++i) ends.xN[i] = x[i];
  if (V.reference)
    for (int l = 0; l < Lanes<T>::count; ++l)
      set_lane(out.reference, l, get_lane(out.reference, l) - log_ratio_at<D>(V, V.marginal_end, x, l));
  return out;
}

// ---- The fused kernel's path: two-pass log2 mixtures, whole Philox blocks (docs/gpu-kernels.md) --
// The same path as forward_path (the same streams, draws, steps and formulas of docs/physics.md
// sections 2 and 4), evaluated the GPU's way: accumulate_mixture_log2 for the scores, the intrinsic
// wrappers of hd.hpp for exp2 and 1/z, and for a compiled d the noise of G = 4/gcd(d, 4) steps taken
// as whole 4-normal blocks (no branch on a buffer, no reference to the stream that could keep it in
// local memory). On the host it is forward_path's arithmetic up to rounding (the order of the
// softmax), which the CPU tests check (tests/intrinsics_test.cpp); the CPU backend runs
// forward_path.

// The log2-domain tables next to a ForwardView; the means and ratios may point at a kernel's
// constant parameters.
struct Log2Tables {
  const ComponentLog2* target = nullptr;  // steps * target.K
  const ComponentLog2* model = nullptr;   // steps * model.K (separate components only)
  const float* target_mean = nullptr;     // target.K * d
  const float* model_mean = nullptr;      // model.K * d
  const float* ratio = nullptr;           // shared components: w_model / w_target
};

// Steps whose d normals fill whole 4-normal blocks (d = 2: two steps per block).
template <int D>
constexpr int steps_per_block_group() {
  return D % 4 == 0 ? 1 : D % 2 == 0 ? 2 : 4;
}

// Where the kernel keeps a path's vectors: four arrays of d floats.
struct PathStorage {
  float* x;
  float* dw;
  float* sp;  // target's score sums, then its score
  float* sq;  // model's
  // Where the start point x_0 goes when not null (per-path output only, written outside the step
  // loop; the end point is x after the path).
  float* x0 = nullptr;
};

// One step k of a path whose dW is already in P.dw; returns the float TAEP increment.
template <int D, int K, Sharing Mode>
TAEP_HD float forward_step_log2(const ForwardView& V, const Log2Tables& F, const StepScalars& c,
                                int k, const PathStorage& P) {
  const int d = D > 0 ? D : V.d;
  const bool shared = Mode == Sharing::runtime ? V.shared : Mode == Sharing::shared;
  const bool quad = V.milstein;
  float aa = 0.f;
  if (quad)
    for (int i = 0; i < d; ++i) aa = fmaf(P.dw[i], P.dw[i], aa);
  Log2Sums p{0.f, 0.f, 0.f, P.sp}, q{0.f, 0.f, 0.f, P.sq};
  const int Kt = K > 0 ? K : V.target.K;
  const ComponentLog2* target_k = F.target + std::size_t(k) * Kt;
  if (shared) {
    accumulate_mixture_log2<D, K, true>(d, Kt, F.target_mean, target_k, F.ratio, c.mean_scale,
                                        P.x, P.dw, aa, p, q);
  } else {
    const int Km = K > 0 ? K : V.model.K;
    const ComponentLog2* model_k = F.model + std::size_t(k) * Km;
    accumulate_mixture_log2<D, K, false>(d, Kt, F.target_mean, target_k, nullptr, c.mean_scale,
                                         P.x, P.dw, aa, p, q);
    accumulate_mixture_log2<D, K, false>(d, Km, F.model_mean, model_k, nullptr, c.mean_scale, P.x,
                                         P.dw, aa, q, p);
  }
  float div_p, quad_p, div_q, quad_q;
  finish_log2<D>(d, p, P.dw, quad, div_p, quad_p);
  finish_log2<D>(d, q, P.dw, quad, div_q, quad_q);
  float inc = taep_increment(d, c.half_g2, c.h, c.sqrt_g2, P.sq, div_q, P.sp, div_p, P.dw);
  if (quad) inc += milstein_correction(c, quad_q, quad_p, div_q, div_p);
  euler_maruyama_step(d, c.decay, c.sqrt_g2, P.dw, P.x);
  return inc;
}

// The whole path (one float path; K > 0: both mixtures have exactly K components).
template <int D, int K, Sharing Mode, class Init, class Noise>
TAEP_HD PathResult forward_path_log2(const ForwardView& V, const Log2Tables& F, Init& init,
                                     Noise& noise, const PathStorage& P) {
  const int d = D > 0 ? D : V.d;
  PathResult out{0.0, 0.0};
  sample_initial_state<D>(V, init, P.x);
  if (P.x0)
    for (int i = 0; i < d; ++i) P.x0[i] = P.x[i];
  if (V.reference) out.reference = log_ratio_at<D>(V, V.marginal_start, P.x);
  double S = 0.0;
  if constexpr (D > 0) {
    constexpr int G = steps_per_block_group<D>();
    // The noise of G steps, then the steps: `steps` of them (fewer only in the last group, whose
    // unused normals no step reads).
    const auto group = [&](int k, int steps) {
      float z[G * D];
      TAEP_UNROLL
      for (int b = 0; b < G * D / 4; ++b) {
        const auto n = noise.next_normal4();
        z[4 * b] = n.x;
        z[4 * b + 1] = n.y;
        z[4 * b + 2] = n.z;
        z[4 * b + 3] = n.w;
      }
      TAEP_UNROLL
      for (int g = 0; g < G; ++g) {
        if (g >= steps) break;
        const StepScalars c = V.step[k + g];
        for (int i = 0; i < D; ++i) P.dw[i] = c.sqrt_h * z[g * D + i];
        S += double(forward_step_log2<D, K, Mode>(V, F, c, k + g, P));
      }
    };
    int k = 0;
    for (; k + G <= V.steps; k += G) group(k, G);
    if (k < V.steps) group(k, V.steps - k);
  } else {
    NormalSource<Noise> z(noise);
    for (int k = 0; k < V.steps; ++k) {
      const StepScalars c = V.step[k];
      for (int i = 0; i < d; ++i) P.dw[i] = c.sqrt_h * z.next();
      S += double(forward_step_log2<D, K, Mode>(V, F, c, k, P));
    }
  }
  out.taep = S;
  if (V.reference) out.reference -= log_ratio_at<D>(V, V.marginal_end, P.x);
  return out;
}

}  // namespace physics
}  // namespace taep

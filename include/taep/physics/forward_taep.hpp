#pragma once
// One forward VP-SDE path and its time-asymmetry entropy production (docs/physics.md section 4), written
// once and called by the CPU backend's loop and by the CUDA kernel alike.
//
//   S      += beta_k/2 [l_theta - l_*](x_k) h + sqrt(beta_k) (s_theta - s_*)(x_k) . dW_k
//   (milstein) += beta_k/2 [dW.(grad s_theta - grad s_*).dW - h (div s_theta - div s_*)]
//   x_{k+1} = x_k - 1/2 beta_k x_k h + sqrt(beta_k) dW_k,     l = |s|^2 + 2 div s
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
struct StepScalars {
  float half_beta;   // beta(t_k) / 2
  float h;           // t_{k+1} - t_k
  float sqrt_h;
  float sqrt_beta;
  float sqrt_abar;   // sqrt(abar(t_k))
  float decay;       // 1 - beta_k h / 2
};

// The step scalars of grid point k = 0..N (docs/physics.md section 1), in double, stored as float:
// the forward tables' (k < N) and the reverse process's first step (k = N).
TAEP_HD StepScalars step_scalars_at(const VpSchedule& sched, const TimeGrid& grid, int k) {
  const double h = grid.h();
  const double t = grid.t(k);
  const double beta = sched.beta(t);
  return {float(0.5 * beta), float(h), float(sqrt_(h)), float(sqrt_(beta)),
          float(sqrt_(sched.abar(t))), float(1.0 - 0.5 * beta * h)};
}

// The Milstein correction of a step: beta/2 [dW.(grad s_theta - grad s_*).dW - h (div s_theta -
// div s_*)] (docs/physics.md section 4), from the two quadratic forms and divergences.
template <class T>
TAEP_HD T milstein_correction(const StepScalars& c, const T& quad_model, const T& quad_target,
                              const T& div_model, const T& div_target) {
  return c.half_beta * ((quad_model - quad_target) - c.h * (div_model - div_target));
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
  MixtureTables target;
  MixtureTables model;
  const float* ratio = nullptr;  // shared: w_model / w_target per component
  const StepScalars* step = nullptr;  // steps
  // x0 ~ p(x, t_min): component by cumulative weight, then sqrt(abar) m_k + sqrt(v_k) z.
  const double* init_cum_w = nullptr;  // K of target, last = 1
  const float* init_std = nullptr;     // sqrt(v_k(t_min)), K of target
  float init_sqrt_abar = 1.f;
  double abar_start = 1.0;  // abar(t_min)
  double abar_end = 0.0;    // abar(t_max)
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

// log(p/q)(x, t) at abar = abar(t), in double precision, of the path in lane `lane` of the state.
template <int D, class T>
TAEP_HD double log_ratio_at(const ForwardView& V, double abar, const T* x, int lane = 0) {
  const double lp = mixture_log_density(V.d, V.target.K, V.target.mean_d, V.target.log_w,
                                        V.target.sigma2, abar, x, lane);
  const double lq = mixture_log_density(V.d, V.model.K, V.model.mean_d, V.model.log_w,
                                        V.model.sigma2, abar, x, lane);
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
  for (int i = 0; i < d; ++i) set_lane(x[i], lane, V.init_sqrt_abar * mk[i] + sd * z.next());
}

// Whether model and target share their components (V.shared): read at run time, or fixed at
// compile time so a kernel's step loop holds only the passes its case takes.
enum class Sharing { runtime, shared, separate };

// Score, divergence and quadratic form of target (p) and model (q) at x and step k.
template <int D, Sharing Mode = Sharing::runtime, class T>
TAEP_HD void evaluate_scores(const ForwardView& V, int k, float sqrt_abar, const T* x, const T* dw,
                             ScoreEval<D, T>& p, ScoreEval<D, T>& q) {
  const int d = D > 0 ? D : V.d;
  const bool shared = Mode == Sharing::runtime ? V.shared : Mode == Sharing::shared;
  MixtureSums<D, T> sp, sq;  // each is cleared by the pass that fills it ...
  sq.clear(d);  // ... but the compiler cannot see that V.ratio is set whenever V.shared is
  // 64-bit offsets: steps x K may exceed 2^31.
  const ComponentStep* target_k = V.target.comp + std::size_t(k) * V.target.K;
  if (shared) {
    accumulate_mixture<D>(d, V.target.K, V.target.mean, target_k, V.ratio, sqrt_abar, x, dw,
                          V.milstein, sp, sq);
  } else {
    accumulate_mixture<D>(d, V.target.K, V.target.mean, target_k, nullptr, sqrt_abar, x, dw,
                          V.milstein, sp, sq);
    accumulate_mixture<D>(d, V.model.K, V.model.mean, V.model.comp + std::size_t(k) * V.model.K,
                          nullptr, sqrt_abar, x, dw, V.milstein, sq, sp);
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
    if (V.reference) set_lane(out.reference, l, log_ratio_at<D>(V, V.abar_start, x, l));
  }
  if (ends.x0)
    for (int i = 0; i < d; ++i) ends.x0[i] = x[i];

  NormalSource<Noise> z(noise);
  W S(0.0);
  ScoreEval<D, T> p, q;
  for (int k = 0; k < V.steps; ++k) {
    const StepScalars c = V.step[k];
    for (int i = 0; i < d; ++i) dw[i] = c.sqrt_h * z.next();
    evaluate_scores<D, Mode>(V, k, c.sqrt_abar, x, dw, p, q);
    T inc = taep_increment(d, c.half_beta, c.h, c.sqrt_beta, q.s, q.div, p.s, p.div, dw);
    if (V.milstein) inc += milstein_correction(c, q.quad, p.quad, q.div, p.div);
    add_widened(S, inc);
    euler_maruyama_step(d, c.decay, c.sqrt_beta, dw, x);
  }
  out.taep = S;
  if (ends.xN)
    for (int i = 0; i < d; ++i) ends.xN[i] = x[i];
  if (V.reference)
    for (int l = 0; l < Lanes<T>::count; ++l)
      set_lane(out.reference, l, get_lane(out.reference, l) - log_ratio_at<D>(V, V.abar_end, x, l));
  return out;
}

}  // namespace physics
}  // namespace taep

#pragma once
// What the CPU's batched learned-score backends (the MLP's scalar loop and the callback's) share
// around the model: the random streams of a batch of paths, and a path's evaluation before the
// model. The streams: paths [first, first + n), each path's read in step order, its noise (stream noise_id:
// the forward dW or the reverse xi) and its Hutchinson probes. The same numbers an exact-score path
// with the same id reads (docs/architecture.md principle 3).
#include <cstdint>
#include <vector>

#include "taep/physics/mlp_path.hpp"
#include "taep/physics/philox.hpp"
#include "taep/physics/reverse_path.hpp"
#include "taep/physics/rng_streams.hpp"

namespace taep {
namespace detail {

struct PathStreams {
  std::vector<rng::PhiloxHostStream> noise_streams, probe_streams;
  std::vector<physics::NormalSource<rng::PhiloxHostStream>> noise;
  std::vector<physics::ProbeSource<rng::PhiloxHostStream>> probes;
  PathStreams(std::uint64_t seed, std::uint64_t first, int n, rng::Stream noise_id, bool rademacher) {
    noise_streams.reserve(std::size_t(n));  // the sources keep references: no reallocation
    probe_streams.reserve(std::size_t(n));
    noise.reserve(std::size_t(n));
    probes.reserve(std::size_t(n));
    for (int p = 0; p < n; ++p) {
      noise_streams.emplace_back(seed, rng::subsequence(noise_id, first + p));
      probe_streams.emplace_back(seed, rng::subsequence(rng::kHutchinson, first + p));
      noise.emplace_back(noise_streams.back());
      probes.emplace_back(probe_streams.back(), rademacher);
    }
  }
  PathStreams(const PathStreams&) = delete;
  PathStreams& operator=(const PathStreams&) = delete;
};

// Path p's TAEP evaluation at grid point k before the model (physics::mlp_prepare): x and dw its
// state and increment, `tangents` its plan.count * d tangent values; the target's score, divergence
// and (Milstein) quadratic form go to s_target[0..d), *div_target, *quad_target. Returns |dW|^2
// (Milstein; else 0).
template <int D>
float prepare_learned_path(const physics::ForwardView& V, int k, float mean_scale,
                           const physics::MlpTangentPlan& plan, const float* x, const float* dw,
                           float* tangents, physics::ProbeSource<rng::PhiloxHostStream>& probes,
                           float* s_target, float* div_target, float* quad_target) {
  if (!V.analytic_target) {
    // A reference network gives s* after the model ran (host/cpu/cpu_mlp_backend.cpp, evaluate);
    // only the probes are drawn here (no Milstein with a reference network: config.cpp).
    if (plan.hutch)
      for (int j = 0; j < plan.count * V.d; ++j) tangents[j] = probes.next();
    for (int i = 0; i < V.d; ++i) s_target[i] = 0.f;
    *div_target = *quad_target = 0.f;
    return 0.f;
  }
  physics::PathTangents tan{tangents};
  physics::ScoreEval<D, float> target;
  const float r2 = physics::mlp_prepare<D>(
      V, k, mean_scale, plan, x, dw,
      [&]() -> physics::ProbeSource<rng::PhiloxHostStream>& { return probes; }, tan, target);
  for (int i = 0; i < V.d; ++i) s_target[i] = target.s[i];
  *div_target = target.div;
  *quad_target = target.quad;
  return r2;
}

// The starts x(t_max) ~ N(0, prior_std^2 I) of reverse paths [first, first + n) of view V into x
// (n * d), and S = 0 into taep (n; unless null).
inline void start_reverse_paths(const physics::ForwardView& V, std::uint64_t first, int n, float* x,
                                double* taep) {
  const int d = V.d;
  for (int p = 0; p < n; ++p) {
    rng::PhiloxHostStream start(V.seed, rng::subsequence(rng::kReverseStart, first + p));
    physics::reverse_start(d, V.prior_std, start, x + std::size_t(p) * d);
    if (taep) taep[p] = 0.0;
  }
}

// Every path's reverse step from grid point k (scalars c) with the model's score s_theta(x_k, t_k)
// in `score` (n * d), the noise xi from st.noise; x_next keeps x_k (the implied increment of the
// next TAEP evaluation needs it).
template <int D>
void reverse_step_all(int n, int d, const physics::StepScalars& c, const float* score,
                      PathStreams& st, float* x, float* x_next) {
  float xi[physics::storage_dim<D>()];
  for (int p = 0; p < n; ++p) {
    const std::size_t o = std::size_t(p) * d;
    for (int i = 0; i < d; ++i) {
      x_next[o + i] = x[o + i];
      xi[i] = st.noise[std::size_t(p)].next();
    }
    physics::reverse_step(d, c, score + o, xi, x + o);
  }
}

}  // namespace detail
}  // namespace taep

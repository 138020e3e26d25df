// Per-path and elementwise kernels of the learned-score (MLP) forward and reverse paths. The GEMMs
// between them are cuBLAS calls (cuda_mlp_backend.cu). Every per-path formula is the shared physics
// of physics/mlp_path.hpp, reverse_path.hpp, taep_increment.hpp and mlp_elementwise.hpp, as on the
// CPU.
#include "cuda_check.cuh"
#include "curand_stream.cuh"
#include "mlp_drivers.hpp"
#include "host/engine/dispatch.hpp"
#include "taep/physics/mlp_elementwise.hpp"
#include "taep/physics/mlp_path.hpp"
#include "taep/physics/reverse_path.hpp"
#include "taep/physics/rng_streams.hpp"

namespace taep {
namespace detail {
namespace {

constexpr int kThreads = 128;

unsigned blocks_for(std::uint64_t n) { return unsigned((n + kThreads - 1) / kThreads); }

// A stream of path `path` entered at value `index` (word or normal index): the block holding it is
// reached by curand_init's offset, the values before it in that block are skipped, so the numbers
// equal those a host stream consumed from the start would give. Source: the NormalSource or the
// ProbeSource (physics/mlp_path.hpp) over the stream, built with `args` after the stream.
template <class Source>
struct StreamAt {
  CurandPhiloxStream stream;
  Source source;
  template <class... Args>
  __device__ StreamAt(std::uint64_t seed, std::uint32_t id, std::uint64_t path, std::uint64_t index,
                      Args... args)
      : stream(seed, rng::subsequence(id, path), 4ULL * (index / 4)), source(stream, args...) {
    for (std::uint64_t s = 0; s < index % 4; ++s) source.next();
  }
  __device__ float next() { return source.next(); }
};
using NormalsAt = StreamAt<physics::NormalSource<CurandPhiloxStream>>;
using ProbesAt = StreamAt<physics::ProbeSource<CurandPhiloxStream>>;

// The kernels take Euler steps only (the backend rejects Milstein for learned models), so the plan
// of every TAEP evaluation is known up to P, and the Milstein code folds away.
__device__ physics::MlpTangentPlan plan_of(int P, int d) {
  return physics::mlp_tangent_plan(true, P, false, d);
}

template <int D>
__global__ void __launch_bounds__(kThreads) mlp_init_kernel(const physics::ForwardView V, std::uint64_t first,
                                                            int n, MlpPathBuffers b) {
  const int p = blockIdx.x * blockDim.x + threadIdx.x;
  if (p >= n) return;
  const int d = D > 0 ? D : V.d;
  CurandPhiloxStream init(V.seed, rng::subsequence(rng::kInitialState, first + p));
  physics::sample_initial_state<D>(V, init, b.x + std::size_t(p) * d);
  b.taep[p] = 0.0;
  b.aux[p] = 0.0;
}

// A TAEP evaluation of path p at step k before the network (physics::mlp_prepare), forward and
// reverse alike: forward paths first draw dW_k (stream kForwardNoise, values k d ..; a reverse
// path's increment is implied, in its finish kernel); evaluation `eval` of the path reads its probes
// from values eval P d .. of stream kHutchinson.
template <int D>
__global__ void __launch_bounds__(kThreads)
    mlp_prepare_kernel(const physics::ForwardView V, std::uint64_t first, int n, int k, int eval,
                       int P, bool rademacher, bool forward, MlpPathBuffers b) {
  const int p = blockIdx.x * blockDim.x + threadIdx.x;
  if (p >= n) return;
  const int d = D > 0 ? D : V.d;
  const std::uint64_t path = first + p;
  const std::size_t o = std::size_t(p) * d;
  const physics::StepScalars c = V.step[k];
  float x[physics::storage_dim<D>()], dw[physics::storage_dim<D>()];
  if (forward) {
    NormalsAt noise(V.seed, rng::kForwardNoise, path, std::uint64_t(k) * d);
    for (int i = 0; i < d; ++i) {
      dw[i] = c.sqrt_h * noise.next();
      b.dw[o + i] = dw[i];
    }
  }
  for (int i = 0; i < d; ++i) x[i] = b.x[o + i];
  if (!V.analytic_target) {
    // A reference network gives s* after the model ran (launch_reference_score); only the probes
    // are drawn here, as on the CPU (host/cpu/path_streams.hpp).
    if (P > 0) {
      ProbesAt probes(V.seed, rng::kHutchinson, path, std::uint64_t(eval) * P * d, rademacher);
      for (int j = 0; j < P * d; ++j) b.probes[std::size_t(p) * P * d + j] = probes.next();
    }
    for (int i = 0; i < d; ++i) b.s_target[o + i] = 0.f;
    b.div_target[p] = 0.f;
    return;
  }
  physics::PathTangents tan{b.probes + std::size_t(p) * P * d};
  physics::ScoreEval<D, float> target;
  physics::mlp_prepare<D>(
      V, k, c.mean_scale, plan_of(P, d), x, dw,
      [&] { return ProbesAt(V.seed, rng::kHutchinson, path, std::uint64_t(eval) * P * d, rademacher); },
      tan, target);
  for (int i = 0; i < d; ++i) b.s_target[o + i] = target.s[i];
  b.div_target[p] = target.div;
}

// The estimates of path p's divergence from the network's output tangents, times out_scale, into
// est: the P Hutchinson values v_j.J v_j (T = P tangents v_j), or the exact trace (T = d tangents
// e_i) in est[0].
__device__ void divergence_estimates(int d, int P, std::size_t p, float out_scale,
                                     const float* __restrict__ out_tan,
                                     const float* __restrict__ probes, float* est) {
  if (P > 0) {
    for (int j = 0; j < P; ++j) {
      const float* tj = out_tan + (p * P + j) * d;
      const float* vj = probes + (p * P + j) * d;
      float vjv = 0.f;
      for (int i = 0; i < d; ++i) vjv += vj[i] * tj[i];
      est[j] = vjv * out_scale;
    }
    return;
  }
  float trace = 0.f;
  for (int i = 0; i < d; ++i) trace += out_tan[(p * d + i) * d + i];
  est[0] = trace * out_scale;
}

template <int D>
__global__ void __launch_bounds__(kThreads)
    mlp_finish_kernel(const physics::ForwardView V, int n, int k, int P, MlpPathBuffers b,
                      const float* __restrict__ out, const float* __restrict__ out_bias,
                      float out_scale, const float* __restrict__ out_tan) {
  const int p = blockIdx.x * blockDim.x + threadIdx.x;
  if (p >= n) return;
  const int d = D > 0 ? D : V.d;
  const physics::StepScalars c = V.step[k];
  const std::size_t o = std::size_t(p) * d;
  float s[physics::storage_dim<D>()], x[physics::storage_dim<D>()], dw[physics::storage_dim<D>()],
      st[physics::storage_dim<D>()], est[64];  // probes <= 64 (config limit)
  for (int i = 0; i < d; ++i) {
    s[i] = (out[o + i] + out_bias[i]) * out_scale;
    x[i] = b.x[o + i];
    dw[i] = b.dw[o + i];
    st[i] = b.s_target[o + i];
  }
  divergence_estimates(d, P, std::size_t(p), out_scale, out_tan, b.probes, est);
  b.taep[p] += double(physics::mlp_increment(d, c, plan_of(P, d), s, est, st, b.div_target[p], 0.f,
                                             0.f, dw, P > 0 ? b.aux + p : nullptr));
  physics::euler_maruyama_step(d, c.decay, c.sqrt_g2, dw, x);
  for (int i = 0; i < d; ++i) b.x[o + i] = x[i];
}

// The scalars of grid point k of a reverse path: the forward table's for k < N, the extra point's
// for k = N.
__device__ physics::StepScalars reverse_scalars(const physics::ReverseView& R, int k) {
  return k == R.fwd.steps ? R.last : R.fwd.step[k];
}

template <int D>
__global__ void __launch_bounds__(kThreads)
    mlp_reverse_init_kernel(const physics::ReverseView R, std::uint64_t first, int n,
                            MlpPathBuffers b) {
  const int p = blockIdx.x * blockDim.x + threadIdx.x;
  if (p >= n) return;
  const int d = D > 0 ? D : R.fwd.d;
  CurandPhiloxStream start(R.fwd.seed, rng::subsequence(rng::kReverseStart, first + p));
  float x[physics::storage_dim<D>()];
  physics::reverse_start(d, R.fwd.prior_std, start, x);
  for (int i = 0; i < d; ++i) b.x[std::size_t(p) * d + i] = x[i];
  if (b.taep) b.taep[p] = 0.0;
}

template <int D>
__global__ void __launch_bounds__(kThreads)
    mlp_reverse_finish_kernel(const physics::ReverseView R, std::uint64_t first, int n, int k,
                              int P, bool with_taep, MlpPathBuffers b,
                              const float* __restrict__ out, const float* __restrict__ out_bias,
                              float out_scale, const float* __restrict__ out_tan) {
  const int p = blockIdx.x * blockDim.x + threadIdx.x;
  if (p >= n) return;
  const physics::ForwardView& V = R.fwd;
  const int d = D > 0 ? D : V.d;
  const int N = V.steps;
  const physics::StepScalars c = reverse_scalars(R, k);
  const std::size_t o = std::size_t(p) * d;
  float s[physics::storage_dim<D>()], x[physics::storage_dim<D>()];
  for (int i = 0; i < d; ++i) {
    s[i] = (out[o + i] + out_bias[i]) * out_scale;
    x[i] = b.x[o + i];
  }
  if (with_taep && k < N) {
    float x_next[physics::storage_dim<D>()], dw[physics::storage_dim<D>()],
        st[physics::storage_dim<D>()], est[64];  // probes <= 64 (config limit)
    for (int i = 0; i < d; ++i) {
      x_next[i] = b.x_next[o + i];
      st[i] = b.s_target[o + i];
    }
    physics::implied_increment(d, c, x_next, x, dw);
    divergence_estimates(d, P, std::size_t(p), out_scale, out_tan, b.probes, est);
    b.taep[p] += double(physics::mlp_increment(d, c, plan_of(P, d), s, est, st, b.div_target[p],
                                               0.f, 0.f, dw, nullptr));
  }
  if (k == 0) return;
  float xi[physics::storage_dim<D>()];
  NormalsAt noise(V.seed, rng::kReverseNoise, first + p, std::uint64_t(N - k) * d);
  for (int i = 0; i < d; ++i) {
    xi[i] = noise.next();
    b.x_next[o + i] = x[i];
  }
  physics::reverse_step(d, c, s, xi, x);
  for (int i = 0; i < d; ++i) b.x[o + i] = x[i];
}

// deriv == nullptr: the activations alone (no tangents follow), which saves a third of the kernel's
// memory traffic.
__global__ void bias_silu_kernel(std::size_t total, int width, const float* __restrict__ bias,
                                 float* __restrict__ z, float* __restrict__ deriv) {
  for (std::size_t e = std::size_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total;
       e += std::size_t(gridDim.x) * blockDim.x) {
    float act, dz;
    physics::silu_and_derivative(z[e] + bias[e % width], act, dz);
    z[e] = act;
    if (deriv) deriv[e] = dz;
  }
}

__global__ void tangent_basis_kernel(int n, int d, int width, const float* __restrict__ w0, int ld,
                                     const float* __restrict__ deriv, float* __restrict__ tan) {
  const std::size_t total = std::size_t(n) * d * width;
  for (std::size_t e = std::size_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total;
       e += std::size_t(gridDim.x) * blockDim.x) {
    const int j = int(e % width);
    const std::size_t row = e / width;  // p*d + i
    const int i = int(row % d);
    const std::size_t p = row / d;
    tan[e] = w0[std::size_t(j) * ld + i] * deriv[p * width + j];
  }
}

__global__ void scale_tangents_kernel(int n, int T, int width, const float* __restrict__ deriv,
                                      float* __restrict__ tan) {
  const std::size_t total = std::size_t(n) * T * width;
  for (std::size_t e = std::size_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total;
       e += std::size_t(gridDim.x) * blockDim.x) {
    const int j = int(e % width);
    const std::size_t p = e / width / T;
    tan[e] *= deriv[p * width + j];
  }
}

unsigned grid_for(std::size_t total) {
  return unsigned(std::min<std::size_t>((total + 255) / 256, 65535u * 4));
}

__global__ void reference_score_kernel(std::size_t total, int d, const float* __restrict__ out,
                                       const float* __restrict__ bias, float scale,
                                       float* __restrict__ s_target) {
  for (std::size_t e = std::size_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total;
       e += std::size_t(gridDim.x) * blockDim.x)
    s_target[e] = (out[e] + bias[e % std::size_t(d)]) * scale;
}

__global__ void subtract_scaled_kernel(std::size_t total, float ratio, const float* __restrict__ from,
                                       float* __restrict__ to) {
  for (std::size_t e = std::size_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total;
       e += std::size_t(gridDim.x) * blockDim.x)
    to[e] -= ratio * from[e];
}

}  // namespace

void launch_mlp_init(const MlpStepLaunch& a) {
  if (a.n == 0) return;
  dispatch_dim(a.view.fwd.d, [&](auto dim) {
    mlp_init_kernel<decltype(dim)::value>
        <<<blocks_for(a.n), kThreads, 0, a.stream>>>(a.view.fwd, a.first, a.n, a.buf);
  });
  TAEP_CUDA_CHECK(cudaGetLastError());
}

namespace {

// The prepare kernel of TAEP evaluation `eval` of the paths at step a.step (forward: its noise too).
void launch_prepare(const MlpStepLaunch& a, int eval, bool forward) {
  if (a.n == 0) return;
  dispatch_dim(a.view.fwd.d, [&](auto dim) {
    mlp_prepare_kernel<decltype(dim)::value><<<blocks_for(a.n), kThreads, 0, a.stream>>>(
        a.view.fwd, a.first, a.n, a.step, eval, a.probes, a.rademacher, forward, a.buf);
  });
  TAEP_CUDA_CHECK(cudaGetLastError());
}

}  // namespace

void launch_mlp_prepare(const MlpStepLaunch& a) { launch_prepare(a, a.step, true); }

void launch_mlp_finish(const MlpFinishLaunch& a) {
  const MlpStepLaunch& s = a.step;
  if (s.n == 0) return;
  dispatch_dim(s.view.fwd.d, [&](auto dim) {
    mlp_finish_kernel<decltype(dim)::value><<<blocks_for(s.n), kThreads, 0, s.stream>>>(
        s.view.fwd, s.n, s.step, s.probes, s.buf, a.out, a.out_bias, a.out_scale, a.out_tan);
  });
  TAEP_CUDA_CHECK(cudaGetLastError());
}

void launch_mlp_reverse_init(const MlpStepLaunch& a) {
  if (a.n == 0) return;
  dispatch_dim(a.view.fwd.d, [&](auto dim) {
    mlp_reverse_init_kernel<decltype(dim)::value>
        <<<blocks_for(a.n), kThreads, 0, a.stream>>>(a.view, a.first, a.n, a.buf);
  });
  TAEP_CUDA_CHECK(cudaGetLastError());
}

void launch_mlp_reverse_prepare(const MlpStepLaunch& a) {
  TAEP_EXPECTS(a.with_taep && a.step >= 0 && a.step < a.view.fwd.steps,
               "launch_mlp_reverse_prepare: a TAEP evaluation at a forward step");
  launch_prepare(a, a.view.fwd.steps - 1 - a.step, false);  // x_{N-1} is evaluation 0
}

void launch_mlp_reverse_finish(const MlpFinishLaunch& a) {
  const MlpStepLaunch& s = a.step;
  if (s.n == 0) return;
  TAEP_EXPECTS(s.step >= 0 && s.step <= s.view.fwd.steps,
               "launch_mlp_reverse_finish: a grid point 0 .. N");
  dispatch_dim(s.view.fwd.d, [&](auto dim) {
    mlp_reverse_finish_kernel<decltype(dim)::value><<<blocks_for(s.n), kThreads, 0, s.stream>>>(
        s.view, s.first, s.n, s.step, s.probes, s.with_taep, s.buf, a.out, a.out_bias,
        a.out_scale, a.out_tan);
  });
  TAEP_CUDA_CHECK(cudaGetLastError());
}

void launch_bias_silu(int rows, int width, const float* bias, float* z, float* deriv,
                      cudaStream_t stream) {
  const std::size_t total = std::size_t(rows) * width;
  if (total == 0) return;
  bias_silu_kernel<<<grid_for(total), 256, 0, stream>>>(total, width, bias, z, deriv);
  TAEP_CUDA_CHECK(cudaGetLastError());
}

void launch_reference_score(int n, int d, const float* out, const float* bias, float scale,
                            float* s_target, cudaStream_t stream) {
  const std::size_t total = std::size_t(n) * d;
  if (total == 0) return;
  reference_score_kernel<<<grid_for(total), 256, 0, stream>>>(total, d, out, bias, scale, s_target);
  TAEP_CUDA_CHECK(cudaGetLastError());
}

void launch_subtract_scaled(std::size_t total, float ratio, const float* from, float* to,
                            cudaStream_t stream) {
  if (total == 0) return;
  subtract_scaled_kernel<<<grid_for(total), 256, 0, stream>>>(total, ratio, from, to);
  TAEP_CUDA_CHECK(cudaGetLastError());
}

void launch_tangent_basis(int n, int d, int width, const float* w0, int ld_w0, const float* deriv,
                          float* tan, cudaStream_t stream) {
  const std::size_t total = std::size_t(n) * d * width;
  if (total == 0) return;
  tangent_basis_kernel<<<grid_for(total), 256, 0, stream>>>(n, d, width, w0, ld_w0, deriv, tan);
  TAEP_CUDA_CHECK(cudaGetLastError());
}

void launch_scale_tangents(int n, int T, int width, const float* deriv, float* tan,
                           cudaStream_t stream) {
  const std::size_t total = std::size_t(n) * T * width;
  if (total == 0) return;
  scale_tangents_kernel<<<grid_for(total), 256, 0, stream>>>(n, T, width, deriv, tan);
  TAEP_CUDA_CHECK(cudaGetLastError());
}

}  // namespace detail
}  // namespace taep

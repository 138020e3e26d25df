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
// equal those a host stream consumed from the start would give.
template <template <class> class Source>
struct StreamAt {
  CurandPhiloxStream stream;
  Source<CurandPhiloxStream> source;
  __device__ StreamAt(std::uint64_t seed, std::uint32_t id, std::uint64_t path, std::uint64_t index)
      : stream(seed, rng::subsequence(id, path), 4ULL * (index / 4)), source(stream) {
    for (std::uint64_t s = 0; s < index % 4; ++s) source.next();
  }
};

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

template <int D>
__global__ void __launch_bounds__(kThreads)
    mlp_prepare_kernel(const physics::ForwardView V, std::uint64_t first, int n, int k, int P,
                       bool rademacher, MlpPathBuffers b) {
  const int p = blockIdx.x * blockDim.x + threadIdx.x;
  if (p >= n) return;
  const int d = D > 0 ? D : V.d;
  const std::uint64_t path = first + p;
  const physics::StepScalars c = V.step[k];
  float* dw = b.dw + std::size_t(p) * d;
  StreamAt<physics::NormalSource> noise(V.seed, rng::kForwardNoise, path, std::uint64_t(k) * d);
  for (int i = 0; i < d; ++i) dw[i] = c.sqrt_h * noise.source.next();
  if (P > 0) {
    float* v = b.probes + std::size_t(p) * P * d;
    const std::uint64_t at = std::uint64_t(k) * P * d;
    if (rademacher) {
      StreamAt<physics::WordSource> words(V.seed, rng::kHutchinson, path, at);
      for (int j = 0; j < P * d; ++j) v[j] = physics::rademacher(words.source.next());
    } else {
      StreamAt<physics::NormalSource> normals(V.seed, rng::kHutchinson, path, at);
      for (int j = 0; j < P * d; ++j) v[j] = normals.source.next();
    }
  }
  float x[physics::storage_dim<D>()];
  for (int i = 0; i < d; ++i) x[i] = b.x[std::size_t(p) * d + i];
  physics::ScoreEval<D, float> target;
  physics::target_score<D>(V, k, c.sqrt_abar, x, target);
  for (int i = 0; i < d; ++i) b.s_target[std::size_t(p) * d + i] = target.s[i];
  b.div_target[p] = target.div;
}

// The model's divergence at path p from the network's output tangents: the exact trace (T = d
// tangents e_i; noise_variance 0), or the mean of the P Hutchinson estimates v_j.J v_j (T = P
// tangents v_j) with the probe-noise variance their spread implies for the step's TAEP increment.
__device__ physics::ProbeAverage model_divergence(int d, int P, std::size_t p,
                                                  const float* __restrict__ out_tan,
                                                  const float* __restrict__ probes, float out_scale,
                                                  const physics::StepScalars& c) {
  if (P > 0) {
    float est[64];  // probes <= 64 (config limit)
    for (int j = 0; j < P; ++j) {
      const float* tj = out_tan + (p * P + j) * d;
      const float* vj = probes + (p * P + j) * d;
      float vjv = 0.f;
      for (int i = 0; i < d; ++i) vjv += vj[i] * tj[i];
      est[j] = vjv * out_scale;
    }
    return physics::average_probes(est, P, c.half_beta, c.h);
  }
  float trace = 0.f;
  for (int i = 0; i < d; ++i) trace += out_tan[(p * d + i) * d + i];
  return {trace * out_scale, 0.0};
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
      st[physics::storage_dim<D>()];
  for (int i = 0; i < d; ++i) {
    s[i] = (out[o + i] + out_bias[i]) * out_scale;
    x[i] = b.x[o + i];
    dw[i] = b.dw[o + i];
    st[i] = b.s_target[o + i];
  }
  const physics::ProbeAverage avg =
      model_divergence(d, P, std::size_t(p), out_tan, b.probes, out_scale, c);
  const float div = avg.mean;
  if (P > 0) b.aux[p] += avg.noise_variance;
  b.taep[p] += double(physics::taep_increment(d, c.half_beta, c.h, c.sqrt_beta, s, div, st,
                                              b.div_target[p], dw));
  physics::euler_maruyama_step(d, c.decay, c.sqrt_beta, dw, x);
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
                            MlpReverseBuffers b) {
  const int p = blockIdx.x * blockDim.x + threadIdx.x;
  if (p >= n) return;
  const int d = D > 0 ? D : R.fwd.d;
  CurandPhiloxStream start(R.fwd.seed, rng::subsequence(rng::kReverseStart, first + p));
  float x[physics::storage_dim<D>()];
  physics::reverse_start(d, start, x);
  for (int i = 0; i < d; ++i) b.x[std::size_t(p) * d + i] = x[i];
  if (b.taep) b.taep[p] = 0.0;
}

template <int D>
__global__ void __launch_bounds__(kThreads)
    mlp_reverse_prepare_kernel(const physics::ReverseView R, std::uint64_t first, int n, int k,
                               int P, bool rademacher, MlpReverseBuffers b) {
  const int p = blockIdx.x * blockDim.x + threadIdx.x;
  if (p >= n) return;
  const physics::ForwardView& V = R.fwd;
  const int d = D > 0 ? D : V.d;
  const std::uint64_t path = first + p;
  const physics::StepScalars c = V.step[k];
  if (P > 0) {
    float* v = b.probes + std::size_t(p) * P * d;
    const std::uint64_t at = std::uint64_t(V.steps - 1 - k) * P * d;  // x_{N-1} is evaluation 0
    if (rademacher) {
      StreamAt<physics::WordSource> words(V.seed, rng::kHutchinson, path, at);
      for (int j = 0; j < P * d; ++j) v[j] = physics::rademacher(words.source.next());
    } else {
      StreamAt<physics::NormalSource> normals(V.seed, rng::kHutchinson, path, at);
      for (int j = 0; j < P * d; ++j) v[j] = normals.source.next();
    }
  }
  float x[physics::storage_dim<D>()];
  for (int i = 0; i < d; ++i) x[i] = b.x[std::size_t(p) * d + i];
  physics::ScoreEval<D, float> target;
  physics::target_score<D>(V, k, c.sqrt_abar, x, target);
  for (int i = 0; i < d; ++i) b.s_target[std::size_t(p) * d + i] = target.s[i];
  b.div_target[p] = target.div;
}

template <int D>
__global__ void __launch_bounds__(kThreads)
    mlp_reverse_finish_kernel(const physics::ReverseView R, std::uint64_t first, int n, int k,
                              int P, bool with_taep, MlpReverseBuffers b,
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
        st[physics::storage_dim<D>()];
    for (int i = 0; i < d; ++i) {
      x_next[i] = b.x_next[o + i];
      st[i] = b.s_target[o + i];
    }
    physics::implied_increment(d, c, x_next, x, dw);
    const float div =
        model_divergence(d, P, std::size_t(p), out_tan, b.probes, out_scale, c).mean;
    b.taep[p] += double(physics::taep_increment(d, c.half_beta, c.h, c.sqrt_beta, s, div, st,
                                                b.div_target[p], dw));
  }
  if (k == 0) return;
  float xi[physics::storage_dim<D>()];
  StreamAt<physics::NormalSource> noise(V.seed, rng::kReverseNoise, first + p,
                                        std::uint64_t(N - k) * d);
  for (int i = 0; i < d; ++i) {
    xi[i] = noise.source.next();
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

}  // namespace

void launch_mlp_init(const MlpStepLaunch& a) {
  if (a.n == 0) return;
  dispatch_dim(a.view.d, [&](auto dim) {
    mlp_init_kernel<decltype(dim)::value><<<blocks_for(a.n), kThreads, 0, a.stream>>>(a.view, a.first, a.n, a.buf);
  });
  TAEP_CUDA_CHECK(cudaGetLastError());
}

void launch_mlp_prepare(const MlpStepLaunch& a) {
  if (a.n == 0) return;
  dispatch_dim(a.view.d, [&](auto dim) {
    mlp_prepare_kernel<decltype(dim)::value><<<blocks_for(a.n), kThreads, 0, a.stream>>>(
        a.view, a.first, a.n, a.step, a.probes, a.rademacher, a.buf);
  });
  TAEP_CUDA_CHECK(cudaGetLastError());
}

void launch_mlp_finish(const MlpFinishLaunch& a) {
  const MlpStepLaunch& s = a.step;
  if (s.n == 0) return;
  dispatch_dim(s.view.d, [&](auto dim) {
    mlp_finish_kernel<decltype(dim)::value><<<blocks_for(s.n), kThreads, 0, s.stream>>>(
        s.view, s.n, s.step, s.probes, s.buf, a.out, a.out_bias, a.out_scale, a.out_tan);
  });
  TAEP_CUDA_CHECK(cudaGetLastError());
}

void launch_mlp_reverse_init(const MlpReverseLaunch& a) {
  if (a.n == 0) return;
  dispatch_dim(a.view.fwd.d, [&](auto dim) {
    mlp_reverse_init_kernel<decltype(dim)::value>
        <<<blocks_for(a.n), kThreads, 0, a.stream>>>(a.view, a.first, a.n, a.buf);
  });
  TAEP_CUDA_CHECK(cudaGetLastError());
}

void launch_mlp_reverse_prepare(const MlpReverseLaunch& a) {
  if (a.n == 0) return;
  TAEP_EXPECTS(a.with_taep && a.point >= 0 && a.point < a.view.fwd.steps,
               "launch_mlp_reverse_prepare: a TAEP evaluation at a forward step");
  dispatch_dim(a.view.fwd.d, [&](auto dim) {
    mlp_reverse_prepare_kernel<decltype(dim)::value><<<blocks_for(a.n), kThreads, 0, a.stream>>>(
        a.view, a.first, a.n, a.point, a.probes, a.rademacher, a.buf);
  });
  TAEP_CUDA_CHECK(cudaGetLastError());
}

void launch_mlp_reverse_finish(const MlpReverseFinishLaunch& a) {
  const MlpReverseLaunch& s = a.step;
  if (s.n == 0) return;
  TAEP_EXPECTS(s.point >= 0 && s.point <= s.view.fwd.steps,
               "launch_mlp_reverse_finish: a grid point 0 .. N");
  dispatch_dim(s.view.fwd.d, [&](auto dim) {
    mlp_reverse_finish_kernel<decltype(dim)::value><<<blocks_for(s.n), kThreads, 0, s.stream>>>(
        s.view, s.first, s.n, s.point, s.probes, s.with_taep, s.buf, a.out, a.out_bias,
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

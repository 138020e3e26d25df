// The per-example, elementwise and per-parameter kernels of the CUDA DSM trainer; the GEMMs between
// them are cuBLAS calls (cuda_trainer.cu). Every formula is the shared physics of physics/dsm.hpp and
// mlp_elementwise.hpp, as in the CPU trainer. Every reduction has a fixed order and no kernel uses
// floating-point atomics, so a training run is bitwise reproducible on one GPU.
#include <algorithm>
#include <cstring>

#include "cuda_check.cuh"
#include "curand_stream.cuh"
#include "taep/physics/dsm.hpp"
#include "taep/physics/mlp_elementwise.hpp"
#include "train_drivers.hpp"

namespace taep {
namespace detail {
namespace {

// Examples kernel: a block draws kExamplesPerBlock examples (one thread each), then all its threads
// compute their embeddings, one (sin, cos) pair per thread: the double-precision transcendentals
// are the kernel's longest dependency chain, and spreading them keeps it short.
constexpr int kExamplesPerBlock = 32;
constexpr int kExampleThreads = 256;
constexpr int kThreads = 256;      // elementwise and reduction kernels
constexpr int kNormChunk = 4096;   // gradient elements per block of the norm's first pass

unsigned grid_for(std::size_t total) {
  return unsigned(std::min<std::size_t>((total + kThreads - 1) / kThreads, 65535u * 4));
}

// Pair i of physics::example_embedding (out[i] = sin, out[half + i] = cos), by the same
// expressions, for one frequency alone.
__device__ void embedding_pair(double t, int i, int half, double time_scale, double max_period,
                               float* out) {
  const double a = time_scale * t * physics::embedding_frequency(i, 2 * half, max_period);
  out[i] = float(::sin(a));
  out[half + i] = float(::cos(a));
}

__global__ void __launch_bounds__(kExampleThreads) train_examples_kernel(const TrainExamplesLaunch a) {
  __shared__ double t_of[kExamplesPerBlock];
  const int tid = threadIdx.x;
  const int base = blockIdx.x * kExamplesPerBlock;
  const int d = a.data.d;
  if (tid < kExamplesPerBlock) {
    const int i = base + tid;
    if (i < a.batch) {
      const std::uint64_t step = *a.step;
      CurandPhiloxStream stream(a.seed, physics::train_example_subsequence(step, a.batch, i));
      const physics::DsmTime tm = physics::draw_example(
          a.data, stream, a.input + std::size_t(i) * a.ld_input, a.z + std::size_t(i) * d);
      a.coef[i] = physics::output_coefficient(a.eps, tm.sigma_t);
      t_of[tid] = tm.t;
    }
  }
  __syncthreads();
  const int half = a.embedding_dim / 2;
  const int items = kExamplesPerBlock * half;
  for (int it = tid; it < items; it += kExampleThreads) {
    const int ex = it / half;
    const int i = base + ex;
    if (i >= a.batch) break;  // items are example-major: the rest belong to absent examples too
    embedding_pair(t_of[ex], it - ex * half, half, a.time_scale, a.max_period,
                   a.input + std::size_t(i) * a.ld_input + d);
  }
}

// Index type I: 32-bit where the element count allows (its division is several times cheaper).
template <class I>
__global__ void train_silu_kernel(I total, int width, float* __restrict__ z, int ld,
                                  float* __restrict__ deriv) {
  for (I e = I(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += I(gridDim.x) * blockDim.x) {
    const I r = e / I(width);
    const I c = e - r * I(width);
    float& v = z[std::size_t(r) * ld + c];
    physics::silu_and_derivative(v, v, deriv[e]);  // z is taken by value before v is written
  }
}

__global__ void train_output_kernel(const TrainOutputLaunch a) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= a.batch) return;
  const std::size_t o = std::size_t(i) * a.d;
  a.loss[i] = physics::dsm_example_loss(a.d, a.coef[i], a.o + o, a.z + o, a.grad_scale, a.grad + o);
}

__global__ void train_scale_kernel(std::size_t count, float* __restrict__ g,
                                   const float* __restrict__ deriv) {
  for (std::size_t e = std::size_t(blockIdx.x) * blockDim.x + threadIdx.x; e < count;
       e += std::size_t(gridDim.x) * blockDim.x)
    g[e] *= deriv[e];
}

// Fixed-order block sum of one double per thread (a halving tree); the result is in part[0].
__device__ void block_sum(double* part, double value) {
  const int tid = threadIdx.x;
  part[tid] = value;
  __syncthreads();
  for (int stride = kThreads / 2; stride > 0; stride /= 2) {
    if (tid < stride) part[tid] += part[tid + stride];
    __syncthreads();
  }
}

__global__ void __launch_bounds__(kThreads) train_norm_kernel(const TrainNormLaunch a, int blocks) {
  __shared__ double part[kThreads];
  const int tid = threadIdx.x;
  double s = 0.0;
  if (int(blockIdx.x) < blocks) {
    const std::size_t begin = std::size_t(blockIdx.x) * kNormChunk;
    const std::size_t end = std::min(begin + kNormChunk, a.count);
    for (std::size_t e = begin + tid; e < end; e += kThreads) {
      const double g = a.grad[e];
      s += g * g;
    }
  } else {
    for (int i = tid; i < a.batch; i += kThreads) s += double(a.loss[i]);
  }
  block_sum(part, s);
  if (tid != 0) return;
  if (int(blockIdx.x) < blocks) {
    a.partials[blockIdx.x] = part[0];
  } else {
    const double mean = part[0] / double(a.batch);
    *a.batch_loss = mean;
    if (a.loss_sum) *a.loss_sum += mean;
    if (a.steps_done) *a.steps_done += 1;
  }
}

__global__ void __launch_bounds__(kThreads) train_adam_kernel(const TrainAdamLaunch a) {
  __shared__ double part[kThreads];
  // AdamCoefficients has default member initializers, which a __shared__ variable cannot have:
  // thread 0 computes it into raw shared bytes and every thread copies it out.
  __shared__ __align__(16) unsigned char coef_bytes[sizeof(physics::AdamCoefficients)];
  __shared__ float clip;
  const int tid = threadIdx.x;
  double s = 0.0;
  for (int b = tid; b < a.partial_count; b += kThreads) s += a.partials[b];
  block_sum(part, s);
  if (tid == 0) {
    const double norm = ::sqrt(part[0]);
    clip = physics::clip_scale(norm, a.clip_norm);
    const physics::AdamCoefficients c = physics::adam_coefficients(
        a.lr, a.beta1, a.beta2, a.adam_eps, a.ema_decay, *a.steps_done);
    std::memcpy(coef_bytes, &c, sizeof c);
    if (blockIdx.x == 0 && blockIdx.y == 0 && a.norm_sum) *a.norm_sum += norm;
  }
  __syncthreads();
  physics::AdamCoefficients c;
  std::memcpy(&c, coef_bytes, sizeof c);
  const float scale = clip;
  const TrainDeviceLayer L = a.layers[blockIdx.y];
  const std::size_t n = std::size_t(L.out) * L.ld;
  for (std::size_t e = std::size_t(blockIdx.x) * kThreads + tid; e < n;
       e += std::size_t(gridDim.x) * kThreads) {
    if (int(e % L.ld) > L.in) continue;  // padding: not a parameter
    const std::size_t k = L.offset + e;
    float p = a.param[k], m = a.m[k], v = a.v[k], ema = a.ema[k];
    physics::adam_ema_update(c, a.grad[k], scale, p, m, v, ema);
    a.param[k] = p;
    a.m[k] = m;
    a.v[k] = v;
    a.ema[k] = ema;
  }
}

}  // namespace

void launch_train_examples(const TrainExamplesLaunch& a) {
  if (a.batch <= 0) return;
  const unsigned blocks = unsigned((a.batch + kExamplesPerBlock - 1) / kExamplesPerBlock);
  train_examples_kernel<<<blocks, kExampleThreads, 0, a.stream>>>(a);
  TAEP_CUDA_CHECK(cudaGetLastError());
}

void launch_train_silu(int rows, int width, float* z, int ld, float* deriv, cudaStream_t stream) {
  const std::size_t total = std::size_t(rows) * width;
  if (total == 0) return;
  if (total <= 0x7fffffffu)  // e + grid stride stays below 2^32
    train_silu_kernel<unsigned><<<grid_for(total), kThreads, 0, stream>>>(unsigned(total), width, z, ld, deriv);
  else
    train_silu_kernel<std::size_t><<<grid_for(total), kThreads, 0, stream>>>(total, width, z, ld, deriv);
  TAEP_CUDA_CHECK(cudaGetLastError());
}

void launch_train_output(const TrainOutputLaunch& a) {
  if (a.batch <= 0) return;
  constexpr int threads = 128;
  train_output_kernel<<<unsigned((a.batch + threads - 1) / threads), threads, 0, a.stream>>>(a);
  TAEP_CUDA_CHECK(cudaGetLastError());
}

void launch_train_scale_by_derivative(std::size_t count, float* g, const float* deriv,
                                      cudaStream_t stream) {
  if (count == 0) return;
  train_scale_kernel<<<grid_for(count), kThreads, 0, stream>>>(count, g, deriv);
  TAEP_CUDA_CHECK(cudaGetLastError());
}

int train_norm_blocks(std::size_t count) {
  return int(std::max<std::size_t>(1, (count + kNormChunk - 1) / kNormChunk));
}

void launch_train_norm(const TrainNormLaunch& a) {
  const int blocks = train_norm_blocks(a.count);
  train_norm_kernel<<<unsigned(blocks + 1), kThreads, 0, a.stream>>>(a, blocks);
  TAEP_CUDA_CHECK(cudaGetLastError());
}

void launch_train_adam(const TrainAdamLaunch& a) {
  if (a.layer_count <= 0 || a.max_layer_size == 0) return;
  const dim3 grid(std::min<unsigned>(unsigned((a.max_layer_size + kThreads - 1) / kThreads), 1024u),
                  unsigned(a.layer_count));
  train_adam_kernel<<<grid, kThreads, 0, a.stream>>>(a);
  TAEP_CUDA_CHECK(cudaGetLastError());
}

}  // namespace detail
}  // namespace taep

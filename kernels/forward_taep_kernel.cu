// The fused forward kernel: one thread carries one path through all steps and writes only S (and the
// closed form). All physics is physics::forward_path_log2 (forward_taep.hpp), the GPU's evaluation
// of the CPU backend's forward_path: two-pass log2 mixtures, fast intrinsics, whole Philox blocks
// (docs/gpu-kernels.md, "Mixture kernel at the floor").
#include <algorithm>
#include <utility>

#include "cuda_check.cuh"
#include "drivers.hpp"
#include "host/engine/dispatch.hpp"
#include "taep/physics/forward_taep.hpp"
#include "taep/physics/philox.hpp"
#include "taep/physics/rng_streams.hpp"

namespace taep {
namespace detail {
namespace {

constexpr int kForwardThreads = 128;
// Other d: the four vectors of a path in a row of shared memory (no local memory in the step
// loop), an odd number of floats apart so that a warp's accesses fall in distinct banks.
constexpr int kGenericThreads = 32;
__host__ __device__ constexpr int generic_row(int d) { return d | 1; }
// Threads per block of the other-d kernel: 32, fewer where the rows would exceed the device's
// shared memory per block (d = 256 needs 132 KB for 32 threads; sm_86 and sm_89 have 99 KB).
int generic_threads(int d) {
  static const int limit = [] {
    int device = 0, bytes = 48 << 10;
    if (cudaGetDevice(&device) != cudaSuccess ||
        cudaDeviceGetAttribute(&bytes, cudaDevAttrMaxSharedMemoryPerBlockOptin, device) != cudaSuccess)
      cudaGetLastError();
    return bytes;
  }();
  int threads = kGenericThreads;
  while (threads > 1 && threads * 4 * generic_row(d) * int(sizeof(float)) > limit) threads /= 2;
  return threads;
}

// The component tables of a kernel with K components per mixture, passed by value: they sit in the
// constant bank and enter the FMAs as operands, no load instruction.
template <int D, int K>
struct ComponentConstants {
  float target_mean[K * D];
  float model_mean[K * D];
  float ratio[K];
};
template <int D>
struct ComponentConstants<D, 0> {};

// Component counts compiled as constants; others (or model and target of different K) run with K = 0.
using FixedComponents = std::integer_sequence<int, 2, 3, 4, 8>;

using Stream = rng::PhiloxStream<std::uint32_t>;
__device__ __forceinline__ Stream stream_of(std::uint64_t seed, std::uint64_t subsequence) {
  return Stream(seed, std::uint32_t(subsequence), std::uint32_t(subsequence >> 32));
}

template <int D, int K>
__device__ __forceinline__ physics::Log2Tables tables_of(
    const physics::Log2Tables& global, const ComponentConstants<D, K>& constants) {
  physics::Log2Tables t = global;
  if constexpr (K > 0) {
    t.target_mean = constants.target_mean;
    t.model_mean = constants.model_mean;
    t.ratio = constants.ratio;
  }
  return t;
}

// D: the compiled d (0: any d, vectors in shared memory). Mode: shared or separate components,
// fixed per kernel so the step loop has no branch on it and its code can be counted per case
// (bench/sass_count.py). K: components per mixture, fixed (both mixtures) or 0 (any).
template <int D, physics::Sharing Mode, int K>
__global__ void __launch_bounds__(D > 0 ? kForwardThreads : kGenericThreads)
    forward_taep_kernel(const physics::ForwardView V, const physics::Log2Tables L,
                        const __grid_constant__ ComponentConstants<D, K> constants,
                        std::uint64_t first, std::uint64_t count, double* __restrict__ taep,
                        double* __restrict__ reference, float* __restrict__ x0,
                        float* __restrict__ xN) {
  const std::uint64_t i = std::uint64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= count) return;
  const std::uint64_t path = first + i;
  // taep's own Philox (physics/philox.hpp): cuRAND's words bit for bit, Box-Muller on the fast
  // intrinsics, and no cuRAND state beyond the counter.
  Stream init = stream_of(V.seed, rng::subsequence(rng::kInitialState, path));
  Stream noise = stream_of(V.seed, rng::subsequence(rng::kForwardNoise, path));
  const physics::Log2Tables F = tables_of<D, K>(L, constants);
  // The points (per-path output only): x0 written by the path before its steps, xN copied after.
  const std::uint64_t d = D > 0 ? D : V.d;
  float* const start = x0 ? x0 + i * d : nullptr;
  physics::PathResult r;
  if constexpr (D > 0) {
    float x[D], dw[D], sp[D], sq[D];
    r = physics::forward_path_log2<D, K, Mode>(V, F, init, noise, {x, dw, sp, sq, start});
    if (xN)
      for (int j = 0; j < D; ++j) xN[i * d + j] = x[j];
  } else {
    extern __shared__ float rows[];
    const int row = generic_row(V.d);
    float* mine = rows + std::size_t(threadIdx.x) * 4 * row;
    r = physics::forward_path_log2<0, 0, Mode>(
        V, F, init, noise, {mine, mine + row, mine + 2 * row, mine + 3 * row, start});
    if (xN)
      for (std::uint64_t j = 0; j < d; ++j) xN[i * d + j] = mine[j];
  }
  taep[i] = r.taep;
  if (reference) reference[i] = r.reference;
}

template <int D, physics::Sharing Mode, int K>
void launch(const ForwardLaunch& a, const ComponentConstants<D, K>& constants) {
  const int threads = D > 0 ? kForwardThreads : generic_threads(a.view.d);
  const unsigned blocks = unsigned((a.count + threads - 1) / threads);
  int shared_bytes = 0;
  if constexpr (D == 0) {
    shared_bytes = int(sizeof(float)) * 4 * generic_row(a.view.d) * threads;
    TAEP_CUDA_CHECK(cudaFuncSetAttribute(forward_taep_kernel<D, Mode, K>,
                                         cudaFuncAttributeMaxDynamicSharedMemorySize, shared_bytes));
  }
  forward_taep_kernel<D, Mode, K><<<blocks, threads, shared_bytes, a.stream>>>(
      a.view, a.log2, constants, a.first, a.count, a.taep, a.reference, a.x0, a.xN);
}

template <int D, int K>
void launch_modes(const ForwardLaunch& a) {
  ComponentConstants<D, K> c{};
  if constexpr (K > 0) {
    std::copy_n(a.host_target_mean, K * D, c.target_mean);
    if (a.view.shared)
      std::copy_n(a.host_ratio, K, c.ratio);
    else
      std::copy_n(a.host_model_mean, K * D, c.model_mean);
  }
  if (a.view.shared)
    launch<D, physics::Sharing::shared, K>(a, c);
  else
    launch<D, physics::Sharing::separate, K>(a, c);
}

template <int D, int... Ks>
void launch_components(const ForwardLaunch& a, std::integer_sequence<int, Ks...>) {
  const int Kt = a.view.target.K;
  const bool fixed = a.view.shared || a.view.model.K == Kt;
  bool done = false;
  ((done = done || (fixed && Kt == Ks && (launch_modes<D, Ks>(a), true))), ...);
  if (!done) launch_modes<D, 0>(a);
}

}  // namespace

void launch_forward_taep(const ForwardLaunch& a) {
  if (a.count == 0) return;
  dispatch_dim(a.view.d, [&](auto dim) {
    constexpr int D = decltype(dim)::value;
    if constexpr (D > 0)
      launch_components<D>(a, FixedComponents{});
    else
      launch_modes<0, 0>(a);
  });
  TAEP_CUDA_CHECK(cudaGetLastError());
}

}  // namespace detail
}  // namespace taep

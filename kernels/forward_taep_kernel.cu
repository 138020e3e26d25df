// The fused forward kernel: one thread carries one path through all steps in registers and writes
// only S (and the closed form). All physics is physics::forward_path, shared with the CPU backend.
#include "curand_stream.cuh"
#include "drivers.hpp"
#include "cuda_check.cuh"
#include "host/engine/dispatch.hpp"
#include "taep/physics/forward_taep.hpp"
#include "taep/physics/rng_streams.hpp"

namespace taep {
namespace detail {
namespace {

constexpr int kForwardThreads = 128;

// Mode: shared or separate components, fixed per kernel (the launch picks by V.shared), so the
// step loop has no branch on it and its machine code can be counted per case (bench/sass_count.py).
template <int D, physics::Sharing Mode>
__global__ void __launch_bounds__(kForwardThreads)
    forward_taep_kernel(const physics::ForwardView V, std::uint64_t first, std::uint64_t count,
                        double* __restrict__ taep, double* __restrict__ reference,
                        float* __restrict__ x0, float* __restrict__ xN) {
  const std::uint64_t i = std::uint64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= count) return;
  const std::uint64_t path = first + i;
  CurandPhiloxStream init(V.seed, rng::subsequence(rng::kInitialState, path));
  CurandPhiloxStream noise(V.seed, rng::subsequence(rng::kForwardNoise, path));
  const std::uint64_t d = D > 0 ? D : V.d;
  const physics::PathResult r = physics::forward_path<D, Mode>(
      V, init, noise, {x0 ? x0 + i * d : nullptr, xN ? xN + i * d : nullptr});
  taep[i] = r.taep;
  if (reference) reference[i] = r.reference;
}

}  // namespace

void launch_forward_taep(const ForwardLaunch& a) {
  if (a.count == 0) return;
  const unsigned blocks = unsigned((a.count + kForwardThreads - 1) / kForwardThreads);
  dispatch_dim(a.view.d, [&](auto dim) {
    constexpr int D = decltype(dim)::value;
    if (a.view.shared)
      forward_taep_kernel<D, physics::Sharing::shared>
          <<<blocks, kForwardThreads, 0, a.stream>>>(a.view, a.first, a.count, a.taep, a.reference,
                                                     a.x0, a.xN);
    else
      forward_taep_kernel<D, physics::Sharing::separate>
          <<<blocks, kForwardThreads, 0, a.stream>>>(a.view, a.first, a.count, a.taep, a.reference,
                                                     a.x0, a.xN);
  });
  TAEP_CUDA_CHECK(cudaGetLastError());
}

}  // namespace detail
}  // namespace taep

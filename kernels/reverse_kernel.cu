// The fused reverse-process kernel of exact-score models: one thread carries one reverse path from
// x(t_max) ~ N(0, I) down to t_min in registers and writes its sample (and, with TAEP, S read on the
// forward clock and the closed form). All physics is physics::reverse_path, shared with the CPU
// backend; the streams are addressed by path id, so results do not depend on the launch shape.
#include "cuda_check.cuh"
#include "curand_stream.cuh"
#include "drivers.hpp"
#include "host/engine/dispatch.hpp"
#include "taep/physics/reverse_path.hpp"
#include "taep/physics/rng_streams.hpp"

namespace taep {
namespace detail {
namespace {

constexpr int kReverseThreads = 128;

// kTaep is a template argument so that sampling alone compiles to the lean loop (one model-score
// pass per step, no target, no divergence) with its own register allocation.
template <int D, bool kTaep>
__global__ void __launch_bounds__(kReverseThreads)
    reverse_kernel(const physics::ReverseView R, std::uint64_t first, std::uint64_t count,
                   double* __restrict__ taep, double* __restrict__ reference,
                   float* __restrict__ samples) {
  const std::uint64_t i = std::uint64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= count) return;
  const int d = D > 0 ? D : R.fwd.d;
  const std::uint64_t path = first + i;
  CurandPhiloxStream start(R.fwd.seed, rng::subsequence(rng::kReverseStart, path));
  CurandPhiloxStream noise(R.fwd.seed, rng::subsequence(rng::kReverseNoise, path));
  float x[physics::storage_dim<D>()];
  const physics::PathResult r = physics::reverse_path<D>(R, start, noise, kTaep, x);
  if (kTaep && taep) taep[i] = r.taep;
  if (kTaep && reference) reference[i] = r.reference;
  if (samples)
    for (int j = 0; j < d; ++j) samples[i * d + j] = x[j];
}

}  // namespace

void launch_reverse(const ReverseLaunch& a) {
  if (a.count == 0) return;
  const unsigned blocks = unsigned((a.count + kReverseThreads - 1) / kReverseThreads);
  dispatch_dim(a.view.fwd.d, [&](auto dim) {
    constexpr int D = decltype(dim)::value;
    if (a.with_taep)
      reverse_kernel<D, true><<<blocks, kReverseThreads, 0, a.stream>>>(
          a.view, a.first, a.count, a.taep, a.reference, a.samples);
    else
      reverse_kernel<D, false><<<blocks, kReverseThreads, 0, a.stream>>>(
          a.view, a.first, a.count, nullptr, nullptr, a.samples);
  });
  TAEP_CUDA_CHECK(cudaGetLastError());
}

}  // namespace detail
}  // namespace taep

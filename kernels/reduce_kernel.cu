// Device reduction of per-path values into the mergeable accumulators, in exactly the order of
// reduce_block_cpu (physics/accumulators.hpp): lane j adds paths 16j..16j+15 of its block in order,
// lanes merge by a halving tree. A library block reduction (CUB) does not promise that order, and the
// order is what makes results independent of chunking. The histogram uses the CPU's binning function.
#include <algorithm>

#include "cuda_check.cuh"
#include "drivers.hpp"

namespace taep {
namespace detail {
namespace {

using physics::kLaneSpan;
using physics::kReduceBlock;
using physics::kReduceLanes;
using physics::PathStats;

__global__ void __launch_bounds__(kReduceLanes)
    reduce_stats_kernel(const double* __restrict__ taep, const double* __restrict__ reference,
                        const double* __restrict__ aux, std::uint64_t count,
                        PathStats* __restrict__ blocks) {
  // 256 PathStats exceed the 48 KB of static shared memory: dynamic, opted in at launch.
  extern __shared__ __align__(16) unsigned char storage[];
  PathStats* lanes = reinterpret_cast<PathStats*>(storage);
  const std::uint64_t base = std::uint64_t(blockIdx.x) * kReduceBlock;
  const int n = count - base < std::uint64_t(kReduceBlock) ? int(count - base) : kReduceBlock;
  const int j = threadIdx.x;
  const bool with_ref = reference != nullptr;
  PathStats acc;
  const int end = min(n, (j + 1) * kLaneSpan);
  for (int i = j * kLaneSpan; i < end; ++i)
    acc.add(taep[base + i], with_ref ? reference[base + i] : 0.0, with_ref,
            aux ? aux[base + i] : 0.0, aux != nullptr);
  lanes[j] = acc;
  __syncthreads();
  for (int stride = kReduceLanes / 2; stride > 0; stride /= 2) {
    if (j < stride) lanes[j].merge(lanes[j + stride]);
    __syncthreads();
  }
  if (j == 0) blocks[blockIdx.x] = lanes[0];
}

constexpr int kHistThreads = 256;
constexpr int kSharedHistMax = 12000;  // bins + 2 counters of 4 bytes in shared memory

__global__ void __launch_bounds__(kHistThreads)
    histogram_kernel(const double* __restrict__ taep, const double* __restrict__ reference,
                     std::uint64_t count, HistogramSpec h, double inv_w,
                     unsigned long long* __restrict__ out, bool use_shared) {
  extern __shared__ unsigned int local[];
  const int slots = h.bins + 2;
  if (use_shared) {
    for (int b = threadIdx.x; b < slots; b += blockDim.x) local[b] = 0;
    __syncthreads();
  }
  for (std::uint64_t i = std::uint64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < count;
       i += std::uint64_t(gridDim.x) * blockDim.x) {
    const int slot = physics::histogram_slot(taep[i], reference ? reference[i] : 0.0,
                                             reference != nullptr, h.lo, inv_w, h.bins);
    if (slot < 0) continue;
    if (use_shared)
      atomicAdd(&local[slot], 1u);
    else
      atomicAdd(&out[slot], 1ull);
  }
  if (use_shared) {
    __syncthreads();
    for (int b = threadIdx.x; b < slots; b += blockDim.x)
      if (local[b]) atomicAdd(&out[b], (unsigned long long)local[b]);
  }
}

}  // namespace

void launch_reduce(const ReduceLaunch& a) {
  if (a.count == 0) return;
  const unsigned blocks = unsigned((a.count + kReduceBlock - 1) / kReduceBlock);
  constexpr int shared_bytes = int(sizeof(PathStats)) * kReduceLanes;
  TAEP_CUDA_CHECK(cudaFuncSetAttribute(reduce_stats_kernel,
                                       cudaFuncAttributeMaxDynamicSharedMemorySize, shared_bytes));
  reduce_stats_kernel<<<blocks, kReduceLanes, shared_bytes, a.stream>>>(a.taep, a.reference, a.aux,
                                                                        a.count, a.blocks);
  TAEP_CUDA_CHECK(cudaGetLastError());

  const int slots = a.hist.bins + 2;
  const bool use_shared = slots <= kSharedHistMax;
  const unsigned hist_blocks = std::min<unsigned>(1024u, unsigned((a.count + kHistThreads - 1) / kHistThreads));
  histogram_kernel<<<hist_blocks, kHistThreads, use_shared ? slots * sizeof(unsigned) : 0, a.stream>>>(
      a.taep, a.reference, a.count, a.hist, a.hist.inv_width(), a.histogram, use_shared);
  TAEP_CUDA_CHECK(cudaGetLastError());
}

}  // namespace detail
}  // namespace taep

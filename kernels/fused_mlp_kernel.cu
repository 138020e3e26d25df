// The fused learned-score forward kernel (docs/fused-mlp.md): each warp carries a tile of 16 paths
// through every step; the packed weights are staged into shared memory once per block, layer 0's
// per-step bias (the time embedding folded on the host, as the CPU folds it) once per step per
// block; activations, tangents and the paths' state live in the warp's slice of shared memory and in
// registers; only S (and the probe-noise variance) is written back. The step itself is the tile
// body of physics/mlp_fused.hpp on DeviceWarp (mma.sync m16n8k8 TF32), the code the CPU tests run
// on HostWarp.
#include <algorithm>
#include <cstdint>

#include "cuda_check.cuh"
#include "curand_stream.cuh"
#include "mlp_drivers.hpp"
#include "taep/error.hpp"
#include "taep/physics/mlp_fused.hpp"
#include "taep/physics/rng_streams.hpp"

namespace taep {
namespace detail {
namespace {

namespace fused = physics::fused;
using physics::tile::DeviceWarp;

// Path `path`'s stream `id` from value `index` on: cuRAND's offset enters the 4-value block that
// holds it, and the values before it in that block are drawn and dropped, so step k reads what a
// stream read from its start would (the CPU reads it so: host/cpu/path_streams.hpp).
template <class Source>
struct EnteredStream {
  CurandPhiloxStream philox;
  Source values;
  template <class... Extra>
  __device__ EnteredStream(std::uint64_t seed, rng::Stream id, std::uint64_t path, std::uint64_t index,
                           Extra... extra)
      : philox(seed, rng::subsequence(id, path), index & ~std::uint64_t(3)), values(philox, extra...) {
    for (unsigned drop = unsigned(index & 3); drop > 0; --drop) values.next();
  }
  __device__ float next() { return values.next(); }
};

// The tile's streams at step k: dW from kForwardNoise (values k d ..), probes from kHutchinson
// (values k P d ..).
struct DeviceTileRng {
  std::uint64_t seed, first;
  int d, P;
  bool rademacher;
  __device__ EnteredStream<physics::NormalSource<CurandPhiloxStream>> noise(int p, int k) const {
    return {seed, rng::kForwardNoise, first + std::uint64_t(p), std::uint64_t(k) * std::uint64_t(d)};
  }
  __device__ EnteredStream<physics::ProbeSource<CurandPhiloxStream>> probes(int p, int k) const {
    return {seed, rng::kHutchinson, first + std::uint64_t(p), std::uint64_t(k) * std::uint64_t(P) * d,
            rademacher};
  }
};

// NTH: the hidden layers' output tiles when all are 128 wide (unrolled loops), else 0. The launch
// arguments stay in the parameter space (__grid_constant__): the layer table is read from there.
template <int D, int NTH>
__global__ void __launch_bounds__(kFusedMaxWarps * 32, 1)
    fused_mlp_forward_kernel(const __grid_constant__ FusedMlpLaunch a) {
  extern __shared__ float4 smem4[];
  float* smem = reinterpret_cast<float*>(smem4);
  const int tid = int(threadIdx.x), threads = int(blockDim.x), warps = threads / 32, warp = tid / 32;
  const float4* w = reinterpret_cast<const float4*>(a.weights);
  for (std::size_t i = std::size_t(tid); i < a.weight_floats / 4; i += std::size_t(threads)) smem4[i] = w[i];
  const fused::Net& net = a.net;
  const int pad0 = net.layer[0].out;
  float* bias = smem + a.weight_floats;  // layer 0's bias of steps k even, k odd
  const fused::Scratch sc =
      fused::scratch_at(net, bias + 2 * pad0 + std::size_t(warp) * fused::scratch_floats(net));
  const std::uint64_t off = (std::uint64_t(blockIdx.x) * unsigned(warps) + unsigned(warp)) * fused::kRows;
  const int rows = off < std::uint64_t(a.n) ? int(min(std::uint64_t(fused::kRows), std::uint64_t(a.n) - off)) : 0;
  const physics::ForwardView& V = a.view;
  auto stage = [&](int k, float* dst) {
    for (int j = tid; j < pad0; j += threads)
      dst[j] = j < a.out0 ? a.bias0[std::size_t(k) * a.out0 + j] : 0.f;
  };
  stage(0, bias);
  __syncthreads();
  DeviceTileRng rng{V.seed, a.first + off, V.d, net.probes, a.rademacher};
  if (rows > 0)
    fused::tile_init<DeviceWarp, D>(net, V, rows, sc, [&](int p) {
      return CurandPhiloxStream(V.seed, rng::subsequence(rng::kInitialState, a.first + off + unsigned(p)));
    });
  // The tile's points (per-path output only), from its state rows in shared memory.
  const auto points = [&](float* to) {
    __syncwarp();
    const int d = V.d;
    for (int e = tid % 32; e < rows * d; e += 32) to[off * unsigned(d) + unsigned(e)] = sc.x[e];
  };
  if (rows > 0 && a.x0) points(a.x0);
  for (int k = 0; k < V.steps; ++k) {
    // Step k - 1 is done everywhere: its bias row may be overwritten by step k + 1's, and step k's
    // (staged during step k - 1) is visible.
    __syncthreads();
    if (k + 1 < V.steps) stage(k + 1, bias + ((k + 1) & 1) * pad0);
    if (rows > 0)
      fused::tile_step<DeviceWarp, D, NTH>(net, smem, V, k, bias + (k & 1) * pad0, a.out_scale[k], rows, sc, rng);
  }
  if (rows > 0)
    DeviceWarp::rows(rows, [&](int p) {
      a.taep[off + unsigned(p)] = sc.taep[p];
      a.aux[off + unsigned(p)] = sc.aux[p];
    });
  if (rows > 0 && a.xN) points(a.xN);
}

template <int D, int NTH>
void launch_with(const FusedMlpLaunch& a) {
  const std::size_t smem = fused_mlp_smem_bytes(a.net, a.weight_floats, a.warps);
  const unsigned per_block = unsigned(a.warps * fused::kRows);
  const unsigned blocks = (unsigned(a.n) + per_block - 1) / per_block;
  TAEP_CUDA_CHECK(cudaFuncSetAttribute(fused_mlp_forward_kernel<D, NTH>,
                                       cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
  fused_mlp_forward_kernel<D, NTH><<<blocks, unsigned(a.warps * 32), smem, a.stream>>>(a);
  TAEP_CUDA_CHECK(cudaGetLastError());
}

}  // namespace

// d = 2 (the paper's ring) keeps the per-path state in fixed-size arrays; every other d takes the
// runtime-d instantiation (arrays of kMaxDim in local memory for the per-path physics only). Each
// with the unrolled 128-wide hidden layers, or the general widths.
void launch_fused_mlp_forward(const FusedMlpLaunch& a) {
  if (a.n == 0) return;
  TAEP_EXPECTS(a.warps >= 1 && a.warps <= kFusedMaxWarps, "fused MLP kernel: 1 .. 8 warps per block");
  fused::dispatch_hidden_tiles(a.net, [&](auto nth) {
    if (a.view.d == 2)
      launch_with<2, decltype(nth)::value>(a);
    else
      launch_with<0, decltype(nth)::value>(a);
  });
}

}  // namespace detail
}  // namespace taep

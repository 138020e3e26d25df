#include "curand_stream.cuh"
#include "device_buffer.cuh"
#include "kernels/cuda_probe.hpp"

namespace taep {
namespace detail {
namespace {

__global__ void philox_probe_kernel(unsigned long long seed, unsigned long long subsequence,
                                    int blocks, std::uint32_t* words, float* normals) {
  if (blockIdx.x != 0 || threadIdx.x != 0) return;
  CurandPhiloxStream bits(seed, subsequence), gauss(seed, subsequence);
  for (int b = 0; b < blocks; ++b) {
    const rng::U4 u = bits.next_u4();
    const rng::F4 n = gauss.next_normal4();
    words[4 * b + 0] = u.x, words[4 * b + 1] = u.y, words[4 * b + 2] = u.z, words[4 * b + 3] = u.w;
    normals[4 * b + 0] = n.x, normals[4 * b + 1] = n.y, normals[4 * b + 2] = n.z, normals[4 * b + 3] = n.w;
  }
}

}  // namespace

void cuda_philox_probe(std::uint64_t seed, std::uint64_t subsequence, int blocks,
                       std::vector<std::uint32_t>& words, std::vector<float>& normals) {
  DeviceBuffer<std::uint32_t> w(std::size_t(4) * blocks);
  DeviceBuffer<float> n(std::size_t(4) * blocks);
  philox_probe_kernel<<<1, 1>>>(seed, subsequence, blocks, w.data(), n.data());
  TAEP_CUDA_CHECK(cudaGetLastError());
  w.copy_to_host(words, w.size(), nullptr);
  n.copy_to_host(normals, n.size(), nullptr);
  TAEP_CUDA_CHECK(cudaDeviceSynchronize());
}

}  // namespace detail
}  // namespace taep

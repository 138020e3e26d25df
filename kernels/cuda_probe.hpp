#pragma once
// Test hook: the first `blocks` outputs of cuRAND's Philox4_32_10 stream (seed, subsequence) on the
// device, as raw words (curand4) and as normals (curand_normal4 on a second state). Throws
// BackendUnavailable without CUDA.
#include <cstdint>
#include <vector>

namespace taep {
namespace detail {

void cuda_philox_probe(std::uint64_t seed, std::uint64_t subsequence, int blocks,
                       std::vector<std::uint32_t>& words, std::vector<float>& normals);

}  // namespace detail
}  // namespace taep

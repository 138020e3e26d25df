// The CPU backend's vector loop for AVX2 + FMA, 8 lanes (built with -mavx2 -mfma; see
// host/cpu_simd_loop.hpp).
#define TAEP_ISA_UNIT 1

#include "cpu_simd_loop.hpp"

namespace taep {
namespace detail {
namespace avx2 {

static_assert(simd_lanes(SimdIsa::avx2) == int(FloatPacket<Avx2>::size), "lanes of SimdIsa::avx2");

void simulate_range(const physics::ForwardView& V, std::uint64_t first, int count, double* taep,
                    double* reference) {
  simulate_range_packets<Avx2>(V, first, count, taep, reference);
}

void philox_probe(std::uint64_t seed, std::uint64_t first_subsequence, int blocks,
                  std::uint32_t* words, float* normals) {
  philox_probe_packets<Avx2>(seed, first_subsequence, blocks, words, normals);
}

}  // namespace avx2
}  // namespace detail
}  // namespace taep

// The CPU backend's vector loop for AVX-512, 16 lanes (built with -mavx512f -mavx512cd -mavx512dq
// -mavx512bw -mavx512vl -mfma; see host/cpu_simd_loop.hpp). On Zen 4, whose 512-bit units are
// double-pumped 256-bit ones, it still runs about twice as fast as AVX2: half the instructions per
// path and 32 vector registers instead of 16, so the mixture's sums no longer spill.
#define TAEP_ISA_UNIT 1

#include "cpu_simd_loop.hpp"

namespace taep {
namespace detail {
namespace avx512 {

static_assert(simd_lanes(SimdIsa::avx512) == int(FloatPacket<Avx512>::size),
              "lanes of SimdIsa::avx512");

void simulate_range(const physics::ForwardView& V, std::uint64_t first, int count, double* taep,
                    double* reference) {
  simulate_range_packets<Avx512>(V, first, count, taep, reference);
}

void philox_probe(std::uint64_t seed, std::uint64_t first_subsequence, int blocks,
                  std::uint32_t* words, float* normals) {
  philox_probe_packets<Avx512>(seed, first_subsequence, blocks, words, normals);
}

}  // namespace avx512
}  // namespace detail
}  // namespace taep

// The CPU backend's vector loop of reverse-process paths for AVX-512, 16 lanes (built with the
// flags of host/cpu_simd_avx512.cpp; see host/cpu_reverse_loop.hpp).
#define TAEP_ISA_UNIT 1

#include "cpu_reverse_loop.hpp"

namespace taep {
namespace detail {
namespace avx512 {

void simulate_reverse_range(const physics::ReverseView& R, std::uint64_t first, int count,
                            bool with_taep, double* taep, double* reference, float* samples) {
  simulate_reverse_range_packets<Avx512>(R, first, count, with_taep, taep, reference, samples);
}

}  // namespace avx512
}  // namespace detail
}  // namespace taep

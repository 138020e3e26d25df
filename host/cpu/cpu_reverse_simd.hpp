#pragma once
// The CPU backend's vector loop for reverse-process paths (physics/reverse_path.hpp): the same
// physics as the scalar loop, run on packets of paths, one path per SIMD lane, exactly as the
// forward vector loop (host/cpu/cpu_simd.hpp) runs forward paths. One translation unit per
// instruction set (host/cpu/isa_avx2_nocontract.cpp, host/cpu/isa_avx512_nocontract.cpp) instantiates
// host/cpu/cpu_reverse_loop.hpp. Plain C++ here: xsimd stays inside those units.
#include <cstdint>

#include "host/cpu/cpu_simd.hpp"
#include "taep/physics/reverse_path.hpp"

namespace taep {
namespace detail {

// Reverse paths [first, first + count) of R in packets of simd_lanes(isa) consecutive path ids (a
// last partial packet is padded with the following ids, whose values are dropped); each output that
// is not null gets S, the closed form, and the samples (d per path) at offset i. A path's values
// depend only on its id. Requires cpu_supports(isa).
void simulate_reverse_simd(SimdIsa isa, const physics::ReverseView& R, std::uint64_t first,
                           int count, bool with_taep, double* taep, double* reference,
                           float* samples);

namespace avx2 {
void simulate_reverse_range(const physics::ReverseView& R, std::uint64_t first, int count,
                            bool with_taep, double* taep, double* reference, float* samples);
}  // namespace avx2
namespace avx512 {
void simulate_reverse_range(const physics::ReverseView& R, std::uint64_t first, int count,
                            bool with_taep, double* taep, double* reference, float* samples);
}  // namespace avx512

}  // namespace detail
}  // namespace taep

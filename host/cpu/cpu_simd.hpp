#pragma once
// The CPU backend's vector loop: the same physics as the scalar loop, run on packets of paths, one
// path per SIMD lane. One translation unit per instruction set (host/cpu/isa_avx2.cpp,
// host/cpu/isa_avx512.cpp) instantiates host/cpu/cpu_simd_loop.hpp; the backend picks one at run time.
// Plain C++ here: xsimd stays inside those units.
#include <cstdint>
#include <string>

#include "taep/physics/forward_taep.hpp"

namespace taep {
namespace detail {

// Instruction sets of the vector loop: AVX2 + FMA (8 lanes) and AVX-512 F/CD/DQ/BW/VL (16 lanes).
enum class SimdIsa { avx2, avx512 };

constexpr int simd_lanes(SimdIsa isa) { return isa == SimdIsa::avx512 ? 16 : 8; }
const char* to_string(SimdIsa isa);

// Whether this build has the vector loop for `isa` and this CPU can run it.
bool cpu_supports(SimdIsa isa);

// A CPU backend's device line: "CPU (how), N OpenMP threads" ("CPU, ..." when how is empty).
std::string cpu_device(const std::string& how, int threads);

// Paths [first, first + count) of V, per-path values to taep (and reference, x0, xN: count * d
// start and end points, unless null), in packets of simd_lanes(isa) consecutive path ids; a last
// partial packet is padded with the following ids, whose values are discarded. Each path's values
// depend only on its id, never on its packet. Requires cpu_supports(isa).
void simulate_range_simd(SimdIsa isa, const physics::ForwardView& V, std::uint64_t first, int count,
                         double* taep, double* reference, float* x0, float* xN);

// For tests: `blocks` blocks of the packet Philox stream whose lane l is (seed, first_subsequence +
// l), l < simd_lanes(isa). words[(4 b + j) lanes + l] is word j of block b in lane l; normals
// likewise.
void cpu_simd_philox_probe(SimdIsa isa, std::uint64_t seed, std::uint64_t first_subsequence,
                           int blocks, std::uint32_t* words, float* normals);

// The entry points of each instruction set's unit (call only where cpu_supports says so), declared
// once for both namespaces.
#define TAEP_SIMD_LOOP_ENTRY_POINTS                                                                  \
  void simulate_range(const physics::ForwardView& V, std::uint64_t first, int count, double* taep, \
                      double* reference, float* x0, float* xN);                                    \
  void philox_probe(std::uint64_t seed, std::uint64_t first_subsequence, int blocks,               \
                    std::uint32_t* words, float* normals);
namespace avx2 {
TAEP_SIMD_LOOP_ENTRY_POINTS
}  // namespace avx2
namespace avx512 {
TAEP_SIMD_LOOP_ENTRY_POINTS
}  // namespace avx512
#undef TAEP_SIMD_LOOP_ENTRY_POINTS

}  // namespace detail
}  // namespace taep

#pragma once
// The vector loop of reverse-process paths for one instruction set Arch: physics::reverse_path run
// on packets of paths, lane l carrying path first + l with its own Philox streams (kReverseStart,
// kReverseNoise). Included by exactly one translation unit per instruction set
// (host/cpu_reverse_*.cpp), which defines TAEP_ISA_UNIT first; see host/cpu/cpu_simd_loop.hpp for why.
#if !defined(TAEP_ISA_UNIT)
#error "define TAEP_ISA_UNIT before including host/cpu/cpu_reverse_loop.hpp"
#endif

#include "host/cpu/cpu_reverse_simd.hpp"
#include "host/cpu/cpu_simd_loop.hpp"
#include "taep/physics/reverse_path.hpp"

namespace taep {
namespace detail {

template <class A, int D>
void simulate_reverse_packets(const physics::ReverseView& R, std::uint64_t first, int count,
                              bool with_taep, double* taep, double* reference, float* samples) {
  constexpr int n = int(FloatPacket<A>::size);
  const int d = D > 0 ? D : R.fwd.d;
  for (int i = 0; i < count; i += n) {
    const std::uint64_t path = first + std::uint64_t(i);
    PhiloxPacketStream<A> start =
        packet_stream<A>(R.fwd.seed, rng::subsequence(rng::kReverseStart, path));
    PhiloxPacketStream<A> noise =
        packet_stream<A>(R.fwd.seed, rng::subsequence(rng::kReverseNoise, path));
    FloatPacket<A> x[physics::storage_dim<D>()];
    const auto r = physics::reverse_path<D>(R, start, noise, with_taep, x);
    const int valid = count - i < n ? count - i : n;  // lanes past count are padding
    alignas(A::alignment()) double s[n], ref[n];
    r.taep.lo.store_aligned(s);
    r.taep.hi.store_aligned(s + n / 2);
    r.reference.lo.store_aligned(ref);
    r.reference.hi.store_aligned(ref + n / 2);
    for (int l = 0; l < valid; ++l) {
      if (taep) taep[i + l] = s[l];
      if (reference) reference[i + l] = ref[l];
    }
    if (!samples) continue;
    alignas(A::alignment()) float lane[n];
    for (int j = 0; j < d; ++j) {
      x[j].store_aligned(lane);
      for (int l = 0; l < valid; ++l) samples[std::size_t(i + l) * d + j] = lane[l];
    }
  }
}

template <class A>
void simulate_reverse_range_packets(const physics::ReverseView& R, std::uint64_t first, int count,
                                    bool with_taep, double* taep, double* reference,
                                    float* samples) {
  dispatch_dim(R.fwd.d, [&](auto dim) {
    simulate_reverse_packets<A, decltype(dim)::value>(R, first, count, with_taep, taep, reference,
                                                      samples);
  });
}

}  // namespace detail
}  // namespace taep

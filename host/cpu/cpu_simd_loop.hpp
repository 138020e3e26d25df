#pragma once
// The vector loop of the CPU backend, for one instruction set Arch: physics::forward_path run on
// packets of paths, lane l carrying path first + l with its own Philox streams. The physics is the
// same template the scalar loop and the CUDA kernel instantiate with float; only the lane type
// differs. Included by exactly one translation unit per instruction set (host/cpu/isa_*.cpp),
// which defines TAEP_ISA_UNIT first: every header function is then inlined there, so that unit
// leaves no out-of-line copy of a shared inline function for the linker to substitute for the
// baseline one. For the same reason these units use no standard containers or algorithms that
// might be emitted out of line (`nm -C --defined-only` on their objects shows weak symbols only
// for names that carry the instruction set, e.g. PacketOps<xsimd::batch<float, avx512bw>>).
#if !defined(TAEP_ISA_UNIT)
#error "define TAEP_ISA_UNIT before including host/cpu/cpu_simd_loop.hpp"
#endif

#include <algorithm>
#include <utility>

#include "host/cpu/cpu_simd.hpp"
#include "host/engine/dispatch.hpp"
#include "host/cpu/simd.hpp"
#include "taep/physics/forward_taep.hpp"
#include "taep/physics/rng_streams.hpp"

namespace taep {
namespace detail {

// The packet of Philox streams (seed, first_subsequence + l), one per lane.
template <class A>
PhiloxPacketStream<A> packet_stream(std::uint64_t seed, std::uint64_t first_subsequence) {
  constexpr int n = int(WordPacket<A>::size);
  alignas(A::alignment()) std::uint32_t lo[n], hi[n];
  for (int l = 0; l < n; ++l) {
    const std::uint64_t sub = first_subsequence + std::uint64_t(l);
    lo[l] = std::uint32_t(sub);
    hi[l] = std::uint32_t(sub >> 32);
  }
  return PhiloxPacketStream<A>(seed, WordPacket<A>::load_aligned(lo),
                               WordPacket<A>::load_aligned(hi));
}

// Paths first, first + 1, ... through the whole time loop. The start of each path is drawn from its
// own scalar initial-state stream (physics::sample_initial_state works lane by lane).
template <class A, int D, std::size_t... L>
physics::PathResultOf<DoublePacket<A>> run_packet(const physics::ForwardView& V,
                                                  std::uint64_t first, std::index_sequence<L...>,
                                                  physics::PathEnds<FloatPacket<A>> ends) {
  rng::PhiloxHostStream init[] = {
      rng::PhiloxHostStream(V.seed, rng::subsequence(rng::kInitialState, first + L))...};
  PhiloxPacketStream<A> noise =
      packet_stream<A>(V.seed, rng::subsequence(rng::kForwardNoise, first));
  return physics::forward_path<D>(V, init, noise, ends);
}

// Lanes [0, valid) of the d packets p into rows i .. i + valid - 1 of the (count, d) array out.
template <class A>
void store_rows(const FloatPacket<A>* p, int d, int valid, float* out) {
  constexpr int n = int(FloatPacket<A>::size);
  alignas(A::alignment()) float lane[n];
  for (int j = 0; j < d; ++j) {
    p[j].store_aligned(lane);
    for (int l = 0; l < valid; ++l) out[std::size_t(l) * d + j] = lane[l];
  }
}

template <class A, int D>
void simulate_packets(const physics::ForwardView& V, std::uint64_t first, int count, double* taep,
                      double* reference, float* x0, float* xN) {
  constexpr int n = int(FloatPacket<A>::size);
  const int d = V.d;
  FloatPacket<A> e0[physics::storage_dim<D>()], eN[physics::storage_dim<D>()];
  const physics::PathEnds<FloatPacket<A>> ends{x0 ? e0 : nullptr, xN ? eN : nullptr};
  for (int i = 0; i < count; i += n) {
    const auto r =
        run_packet<A, D>(V, first + std::uint64_t(i), std::make_index_sequence<n>{}, ends);
    alignas(A::alignment()) double s[n], ref[n];
    r.taep.lo.store_aligned(s);
    r.taep.hi.store_aligned(s + n / 2);
    r.reference.lo.store_aligned(ref);
    r.reference.hi.store_aligned(ref + n / 2);
    const int valid = std::min(n, count - i);  // lanes past count are padding
    for (int l = 0; l < valid; ++l) {
      taep[i + l] = s[l];
      if (reference) reference[i + l] = ref[l];
    }
    if (x0) store_rows<A>(e0, d, valid, x0 + std::size_t(i) * d);
    if (xN) store_rows<A>(eN, d, valid, xN + std::size_t(i) * d);
  }
}

template <class A>
void simulate_range_packets(const physics::ForwardView& V, std::uint64_t first, int count,
                            double* taep, double* reference, float* x0, float* xN) {
  dispatch_dim(V.d, [&](auto dim) {
    simulate_packets<A, decltype(dim)::value>(V, first, count, taep, reference, x0, xN);
  });
}

template <class A>
void philox_probe_packets(std::uint64_t seed, std::uint64_t first_subsequence, int blocks,
                          std::uint32_t* words, float* normals) {
  constexpr int n = int(WordPacket<A>::size);
  PhiloxPacketStream<A> bits = packet_stream<A>(seed, first_subsequence);
  PhiloxPacketStream<A> gauss = packet_stream<A>(seed, first_subsequence);
  for (int b = 0; b < blocks; ++b) {
    const auto u = bits.next_u4();
    const auto g = gauss.next_normal4();
    const WordPacket<A> uw[4] = {u.x, u.y, u.z, u.w};
    const FloatPacket<A> gw[4] = {g.x, g.y, g.z, g.w};
    for (int j = 0; j < 4; ++j) {
      uw[j].store_unaligned(words + (4 * b + j) * n);
      gw[j].store_unaligned(normals + (4 * b + j) * n);
    }
  }
}

}  // namespace detail
}  // namespace taep

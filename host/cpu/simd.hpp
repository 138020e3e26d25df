#pragma once
// SIMD packets of paths for the CPU backend's vector loop (host/cpu/isa_*.cpp): xsimd batches of
// floats whose lane l is a path of its own, and the PacketOps the physics headers call for them
// (taep/physics/hd.hpp, "Lane types"). Arch is xsimd's instruction set: avx2 (8 lanes) or avx512
// (16 lanes). CPU only: included by translation units built for that instruction set, never by .cu
// files nor by the public headers.
#if !defined(__AVX2__) || !defined(__FMA__)
#error "host/cpu/simd.hpp needs a translation unit built with at least -mavx2 -mfma"
#endif

#include <immintrin.h>

#include <cstdint>
#include <type_traits>
#include <xsimd/xsimd.hpp>

#include "taep/physics/hd.hpp"
#include "taep/physics/philox.hpp"

namespace taep {
namespace detail {

using Avx2 = xsimd::fma3<xsimd::avx2>;
// AVX-512 F, CD, DQ, BW (and VL in the build flags): Skylake-SP, Ice Lake, Zen 4 and later.
using Avx512 = xsimd::avx512bw;

template <class A>
constexpr bool kIsAvx512 = std::is_base_of<xsimd::avx512f, A>::value;

template <class A>
using FloatPacket = xsimd::batch<float, A>;
template <class A>
using WordPacket = xsimd::batch<std::uint32_t, A>;
template <class A>
using DoubleHalf = xsimd::batch<double, A>;

// One double per lane of a FloatPacket (S and the closed form of each path): two double batches.
template <class A>
struct DoublePacket {
  static_assert(2 * DoubleHalf<A>::size == FloatPacket<A>::size,
                "a double half holds half the lanes");
  DoubleHalf<A> lo, hi;                           // lanes [0, n/2), [n/2, n)
  DoublePacket(double v = 0.0) : lo(v), hi(v) {}  // NOLINT: broadcasts, like the float packet
};

// The Philox streams of one packet of paths, read in lockstep (the same block index in every lane).
template <class A>
using PhiloxPacketStream = rng::PhiloxStream<WordPacket<A>>;

}  // namespace detail

namespace physics {

template <class A>
struct PacketOps<xsimd::batch<float, A>> {
  using P = xsimd::batch<float, A>;
  static constexpr int lanes = int(P::size);
  using wide = detail::DoublePacket<A>;

  static P exp(const P& x) { return xsimd::exp(x); }
  static P log(const P& x) { return xsimd::log(x); }
  static P sqrt(const P& x) { return xsimd::sqrt(x); }
  static P abs(const P& x) { return xsimd::abs(x); }
  static P select(const xsimd::batch_bool<float, A>& m, const P& a, const P& b) {
    return xsimd::select(m, a, b);
  }
  static void sincos(const P& x, P& s, P& c) {
    const auto sc = xsimd::sincos(x);
    s = sc.first;
    c = sc.second;
  }
  // Per-lane access: only at a path's start and end, never in the time loop.
  static float get_lane(const P& x, int l) { return x.get(std::size_t(l)); }
  static void set_lane(P& x, int l, float v) {
    alignas(A::alignment()) float tmp[P::size];
    x.store_aligned(tmp);
    tmp[l] = v;
    x = P::load_aligned(tmp);
  }
};

template <class A>
struct PacketOps<xsimd::batch<std::uint32_t, A>> {
  using U = xsimd::batch<std::uint32_t, A>;
  // Exact: xsimd converts as float(uint32) does (AVX-512 natively; AVX2 adds the converted 16-bit
  // halves, one rounding).
  static xsimd::batch<float, A> to_float(const U& x) { return xsimd::batch_cast<float>(x); }
  // The even 32-bit lanes multiply into 64-bit products (vpmuludq): once for the even lanes, once
  // for the odd lanes shifted down; then the high and low halves are blended back into place.
  static void mulhilo32(std::uint32_t m, const U& x, U& hi, U& lo) {
    if constexpr (detail::kIsAvx512<A>) {
      const __m512i mm = _mm512_set1_epi32(int(m));
      const __m512i even = _mm512_mul_epu32(x, mm);
      const __m512i odd = _mm512_mul_epu32(_mm512_srli_epi64(x, 32), mm);
      lo = _mm512_mask_blend_epi32(0xAAAA, even, _mm512_slli_epi64(odd, 32));
      hi = _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(even, 32), odd);
    } else {
      const __m256i mm = _mm256_set1_epi32(int(m));
      const __m256i even = _mm256_mul_epu32(x, mm);
      const __m256i odd = _mm256_mul_epu32(_mm256_srli_epi64(x, 32), mm);
      lo = _mm256_blend_epi32(even, _mm256_slli_epi64(odd, 32), 0xAA);
      hi = _mm256_blend_epi32(_mm256_srli_epi64(even, 32), odd, 0xAA);
    }
  }
};

template <class A>
struct PacketOps<detail::DoublePacket<A>> {
  using W = detail::DoublePacket<A>;
  using Half = detail::DoubleHalf<A>;
  static constexpr int kHalf = int(Half::size);

  static double get_lane(const W& x, int l) {
    return l < kHalf ? x.lo.get(std::size_t(l)) : x.hi.get(std::size_t(l - kHalf));
  }
  static void set_lane(W& x, int l, double v) {
    alignas(A::alignment()) double tmp[2 * kHalf];
    x.lo.store_aligned(tmp);
    x.hi.store_aligned(tmp + kHalf);
    tmp[l] = v;
    x.lo = Half::load_aligned(tmp);
    x.hi = Half::load_aligned(tmp + kHalf);
  }
  // Each float lane converted to double (exact) and added in double, as the scalar path does.
  static void add_widened(W& acc, const xsimd::batch<float, A>& x) {
    if constexpr (detail::kIsAvx512<A>) {
      const __m512 v = x;
      acc.lo += Half(_mm512_cvtps_pd(_mm512_castps512_ps256(v)));
      acc.hi += Half(_mm512_cvtps_pd(_mm512_extractf32x8_ps(v, 1)));
    } else {
      const __m256 v = x;
      acc.lo += Half(_mm256_cvtps_pd(_mm256_castps256_ps128(v)));
      acc.hi += Half(_mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
    }
  }
};

}  // namespace physics
}  // namespace taep

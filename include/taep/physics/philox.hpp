#pragma once
// A host mirror of cuRAND's Philox4_32_10 stream as the engine uses it: curand_init(seed, subsequence,
// offset = 0) followed by curand4() / curand_normal4() calls. Block i of subsequence s is
//   Philox4x32-10(counter = (i_lo, i_hi, s_lo, s_hi), key = (seed_lo, seed_hi)),
// and a normal pair is cuRAND's Box-Muller of two words. The GPU test rng_gpu_test checks this mirror
// against cuRAND itself; philox_test checks it against the Random123 known-answer vectors.
//
// Written once over the word type (hd.hpp, "Lane types"): uint32 for one stream, or a SIMD packet
// of uint32 whose lane l is the stream of its own subsequence (the CPU's vector loop).
#include <cmath>
#include <cstdint>

#include "taep/physics/hd.hpp"

namespace taep {
namespace rng {

template <class U>
struct Words4 {
  U x, y, z, w;
};
template <class F>
struct Floats4 {
  F x, y, z, w;
};
using U4 = Words4<std::uint32_t>;
using F4 = Floats4<float>;

// Ten Philox rounds; the key words k0, k1 are uint32 or (for packets) the key already broadcast.
template <class U, class K>
TAEP_HD Words4<U> philox_rounds(Words4<U> c, K k0, K k1) {
  constexpr std::uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;
  constexpr std::uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;
  for (int round = 0; round < 10; ++round) {
    U hi0, lo0, hi1, lo1;
    physics::mulhilo32(kM0, c.x, hi0, lo0);
    physics::mulhilo32(kM1, c.z, hi1, lo1);
    c = Words4<U>{hi1 ^ c.y ^ k0, lo1, hi0 ^ c.w ^ k1, lo0};
    k0 += kW0;
    k1 += kW1;
  }
  return c;
}

TAEP_HD U4 philox4x32_10(U4 c, std::uint32_t k0, std::uint32_t k1) {
  return philox_rounds(c, k0, k1);
}

// cuRAND's uniform float in (0, 1]: x 2^-32 + 2^-33, computed in float exactly as curand does. U:
// uint32, or a packet of words (one uniform per lane).
template <class U>
TAEP_HD auto uniform_from_bits(const U& x) {
  return physics::to_float_(x) * 2.3283064e-10f + (2.3283064e-10f / 2.0f);
}

// A word to (x + 1/2) 2^-32 in (0, 1), exact in double: the engine's and the trainer's discrete
// picks (a mixture component, an example's time), which must never see 0 or 1.
TAEP_HD double uniform_open(std::uint32_t x) { return (double(x) + 0.5) * 2.3283064365386963e-10; }

// cuRAND's host-side Box-Muller (curand_normal.h, _curand_box_muller). On the host the intrinsic
// wrappers (hd.hpp) are the exact logf, sqrtf, sinf and cosf, so this is the host mirror bit for
// bit; on the device (the fused forward kernel's stream) they are MUFU approximations, within
// float tolerance of it (docs/gpu-kernels.md). Packets' log and sincos are xsimd's.
template <class U, class F>
TAEP_HD void box_muller(const U& a, const U& b, F& n0, F& n1) {
  const F u = uniform_from_bits(a);
  const F v = physics::to_float_(b) * (2.3283064e-10f * 6.2831855f) +
              ((2.3283064e-10f * 6.2831855f) / 2.0f);
  const F s = physics::fast_sqrt(-2.0f * physics::fast_log(u));
  F sin_v, cos_v;
  physics::fast_sincos(v, sin_v, cos_v);
  n0 = sin_v * s;
  n1 = cos_v * s;
}

// The state of one (seed, subsequence) stream read from offset 0, block by block; for a packet of
// words, one stream per lane (subsequence words sub_lo, sub_hi per lane), all read in lockstep. The
// fused forward kernel runs it on the device too: its words are cuRAND's bit for bit.
template <class U>
class PhiloxStream {
 public:
  using Float = decltype(physics::to_float_(U{}));

  TAEP_HD PhiloxStream(std::uint64_t seed, U sub_lo, U sub_hi)
      : k0_(std::uint32_t(seed)), k1_(std::uint32_t(seed >> 32)), s0_(sub_lo), s1_(sub_hi) {}

  // Equivalent of curand4(): the next 128 bits.
  TAEP_HD Words4<U> next_u4() {
    const Words4<U> c{U(std::uint32_t(block_)), U(std::uint32_t(block_ >> 32)), s0_, s1_};
    ++block_;
    return philox_rounds(c, k0_, k1_);
  }
  // Equivalent of curand_normal4().
  TAEP_HD Floats4<Float> next_normal4() {
    const Words4<U> r = next_u4();
    Floats4<Float> out;
    box_muller(r.x, r.y, out.x, out.y);
    box_muller(r.z, r.w, out.z, out.w);
    return out;
  }

 private:
  U k0_, k1_, s0_, s1_;
  std::uint64_t block_ = 0;
};

class PhiloxHostStream : public PhiloxStream<std::uint32_t> {
 public:
  TAEP_HD PhiloxHostStream(std::uint64_t seed, std::uint64_t subsequence)
      : PhiloxStream(seed, std::uint32_t(subsequence), std::uint32_t(subsequence >> 32)) {}
};

}  // namespace rng
}  // namespace taep

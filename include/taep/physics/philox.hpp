#pragma once
// A host mirror of cuRAND's Philox4_32_10 stream as the engine uses it: curand_init(seed, subsequence,
// offset = 0) followed by curand4() / curand_normal4() calls. Block i of subsequence s is
//   Philox4x32-10(counter = (i_lo, i_hi, s_lo, s_hi), key = (seed_lo, seed_hi)),
// and a normal pair is cuRAND's Box-Muller of two words. The GPU test rng_gpu_test checks this mirror
// against cuRAND itself; philox_test checks it against the Random123 known-answer vectors.
#include <cmath>
#include <cstdint>

#include "taep/physics/hd.hpp"

namespace taep {
namespace rng {

struct U4 {
  std::uint32_t x, y, z, w;
};
struct F4 {
  float x, y, z, w;
};

inline U4 philox4x32_10(U4 c, std::uint32_t k0, std::uint32_t k1) {
  constexpr std::uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;
  constexpr std::uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;
  for (int round = 0; round < 10; ++round) {
    const std::uint64_t p0 = std::uint64_t(kM0) * c.x;
    const std::uint64_t p1 = std::uint64_t(kM1) * c.z;
    const std::uint32_t hi0 = std::uint32_t(p0 >> 32), lo0 = std::uint32_t(p0);
    const std::uint32_t hi1 = std::uint32_t(p1 >> 32), lo1 = std::uint32_t(p1);
    c = U4{hi1 ^ c.y ^ k0, lo1, hi0 ^ c.w ^ k1, lo0};
    k0 += kW0;
    k1 += kW1;
  }
  return c;
}

// cuRAND's uniform float in (0, 1]: x 2^-32 + 2^-33, computed in float exactly as curand does.
inline float uniform_from_bits(std::uint32_t x) {
  return float(x) * 2.3283064e-10f + (2.3283064e-10f / 2.0f);
}

// cuRAND's host-side Box-Muller (curand_normal.h, _curand_box_muller); the device uses __sincosf, so
// the two agree to a few ulp, not bit for bit.
inline void box_muller(std::uint32_t a, std::uint32_t b, float& n0, float& n1) {
  const float u = float(a) * 2.3283064e-10f + (2.3283064e-10f / 2.0f);
  const float v = float(b) * (2.3283064e-10f * 6.2831855f) + ((2.3283064e-10f * 6.2831855f) / 2.0f);
  const float s = std::sqrt(-2.0f * std::log(u));
  n0 = std::sin(v) * s;
  n1 = std::cos(v) * s;
}

// The state of one (seed, subsequence) stream read from offset 0, block by block.
class PhiloxHostStream {
 public:
  PhiloxHostStream(std::uint64_t seed, std::uint64_t subsequence)
      : k0_(std::uint32_t(seed)), k1_(std::uint32_t(seed >> 32)),
        s0_(std::uint32_t(subsequence)), s1_(std::uint32_t(subsequence >> 32)) {}

  // Equivalent of curand4(): the next 128 bits.
  U4 next_u4() {
    const U4 c{std::uint32_t(block_), std::uint32_t(block_ >> 32), s0_, s1_};
    ++block_;
    return philox4x32_10(c, k0_, k1_);
  }
  // Equivalent of curand_normal4().
  F4 next_normal4() {
    const U4 r = next_u4();
    F4 out;
    box_muller(r.x, r.y, out.x, out.y);
    box_muller(r.z, r.w, out.z, out.w);
    return out;
  }

 private:
  std::uint32_t k0_, k1_, s0_, s1_;
  std::uint64_t block_ = 0;
};

}  // namespace rng
}  // namespace taep

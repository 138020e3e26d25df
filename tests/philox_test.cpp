// The host Philox4x32-10 against the Random123 known-answer vectors, and the stream addressing and
// normal transform the engine relies on.
#include <gtest/gtest.h>

#include <cmath>

#include "taep/physics/philox.hpp"
#include "taep/physics/rng_streams.hpp"

using taep::rng::U4;

namespace {

void expect_u4(U4 got, U4 want) {
  EXPECT_EQ(got.x, want.x);
  EXPECT_EQ(got.y, want.y);
  EXPECT_EQ(got.z, want.z);
  EXPECT_EQ(got.w, want.w);
}

}  // namespace

TEST(Philox, Random123KnownAnswers) {
  // Random123 kat_vectors, philox4x32 with 10 rounds.
  expect_u4(taep::rng::philox4x32_10({0, 0, 0, 0}, 0, 0),
            {0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u});
  expect_u4(taep::rng::philox4x32_10({0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu},
                                     0xffffffffu, 0xffffffffu),
            {0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu});
  expect_u4(taep::rng::philox4x32_10({0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u},
                                     0xa4093822u, 0x299f31d0u),
            {0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u});
}

TEST(Philox, StreamAddressesBlocksLikeCurandInit) {
  // curand_init(seed, subsequence, 0): block i is Philox((i_lo, i_hi, sub_lo, sub_hi), seed).
  const std::uint64_t seed = 0x0123456789abcdefULL;
  const std::uint64_t sub = taep::rng::subsequence(taep::rng::kForwardNoise, 987654321ULL);
  taep::rng::PhiloxHostStream s(seed, sub);
  for (std::uint32_t i = 0; i < 5; ++i)
    expect_u4(s.next_u4(), taep::rng::philox4x32_10({i, 0, std::uint32_t(sub), std::uint32_t(sub >> 32)},
                                                    std::uint32_t(seed), std::uint32_t(seed >> 32)));
}

TEST(Philox, StreamsOfDifferentIdentityDiffer) {
  taep::rng::PhiloxHostStream a(1, taep::rng::subsequence(taep::rng::kInitialState, 7));
  taep::rng::PhiloxHostStream b(1, taep::rng::subsequence(taep::rng::kForwardNoise, 7));
  taep::rng::PhiloxHostStream c(2, taep::rng::subsequence(taep::rng::kInitialState, 7));
  const U4 x = a.next_u4(), y = b.next_u4(), z = c.next_u4();
  EXPECT_NE(x.x, y.x);
  EXPECT_NE(x.x, z.x);
}

TEST(Philox, NormalsHaveUnitMomentsWithinStandardError) {
  taep::rng::PhiloxHostStream s(42, 0);
  const int blocks = 250000;  // 10^6 normals
  double m1 = 0, m2 = 0, m4 = 0;
  for (int i = 0; i < blocks; ++i) {
    const taep::rng::F4 n = s.next_normal4();
    for (float v : {n.x, n.y, n.z, n.w}) {
      m1 += v;
      m2 += double(v) * v;
      m4 += double(v) * v * v * v;
    }
  }
  const double n = 4.0 * blocks;
  // Standard errors of the sample mean, second and fourth moment of N(0,1): 1, sqrt(2), sqrt(96).
  EXPECT_NEAR(m1 / n, 0.0, 5.0 / std::sqrt(n));
  EXPECT_NEAR(m2 / n, 1.0, 5.0 * std::sqrt(2.0 / n));
  EXPECT_NEAR(m4 / n, 3.0, 5.0 * std::sqrt(96.0 / n));
}

#pragma once
// cuRAND's Philox4_32_10 device API behind the stream interface the physics expects
// (next_u4, next_normal4); its host mirror is rng::PhiloxHostStream.
#include <curand_kernel.h>

#include "taep/physics/philox.hpp"

namespace taep {
namespace detail {

class CurandPhiloxStream {
 public:
  // offset: in 32-bit words, a multiple of 4 to start at a block boundary (as the host mirror's
  // block counter does), so the stream can be entered at any step without carrying state.
  __device__ CurandPhiloxStream(unsigned long long seed, unsigned long long subsequence,
                                unsigned long long offset = 0ULL) {
    curand_init(seed, subsequence, offset, &state_);
  }
  __device__ rng::U4 next_u4() {
    const uint4 r = curand4(&state_);
    return {r.x, r.y, r.z, r.w};
  }
  __device__ rng::F4 next_normal4() {
    const float4 n = curand_normal4(&state_);
    return {n.x, n.y, n.z, n.w};
  }

 private:
  curandStatePhilox4_32_10_t state_;
};

}  // namespace detail
}  // namespace taep

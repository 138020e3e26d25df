#pragma once
// Nearest-mode occupancy of reverse-process samples (ModeOccupancy in taep/sample.hpp).
#include <cstdint>
#include <vector>

#include "taep/sample.hpp"

namespace taep {
namespace detail {

// The occupancy of `samples` (row-major, d per sample) against config.target's means; `nonfinite`
// counts the samples with a non-finite coordinate, which are left out.
ModeOccupancy occupancy(const Config& config, const std::vector<float>& samples, int d,
                        std::uint64_t& nonfinite);

}  // namespace detail
}  // namespace taep

#pragma once
// The detailed fluctuation theorem's histogram range and the fit of eq. 31 (docs/physics.md
// section 9) over the binned S of forward and reverse paths; see DetailedFtFit in taep/sample.hpp.
#include <cstdint>
#include <vector>

#include "host/problem/forward_problem.hpp"
#include "taep/sample.hpp"

namespace taep {
namespace detail {

// The automatic range: what both sides' pilot values of S share, [max(min_f, min_r),
// min(max_f, max_r)], their union when they do not overlap, a unit interval about a single value.
HistogramSpec common_range(int bins, const std::vector<double>& pilot_f,
                           const std::vector<double>& pilot_r);

// The eq. 31 fit of the slot counts cf, cr ([underflow, bins, overflow]) of n_f forward and n_r
// reverse finite paths.
DetailedFtFit fit_detailed_ft(const std::vector<std::uint64_t>& cf, const std::vector<std::uint64_t>& cr,
                              double n_f, double n_r, const HistogramSpec& h,
                              std::uint64_t min_count);

}  // namespace detail
}  // namespace taep

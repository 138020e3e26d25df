#pragma once
// What a result's numbers should be read with: the `warnings` list of run, sample and dft results
// (README.md, "Result reference"), each check with its threshold.
#include <cstdint>
#include <string>
#include <vector>

#include "taep/config.hpp"
#include "taep/result.hpp"
#include "taep/sample.hpp"

namespace taep {
namespace detail {

// The IFT estimate should rest on at least 1% of the paths as effective sample (docs/physics.md
// section 6: below that the weights are heavy-tailed and its standard error is unreliable).
constexpr double kMinEssFraction = 0.01;
// The per-path discretization error of exact-score models, rms_path_error^2, should stay below 5%
// of Var(S), or it visibly inflates the variance and blurs the detailed-FT histograms.
constexpr double kMaxPathErrorShare = 0.05;
// A detailed-FT fit whose binned counts scatter as Poisson counts has chi^2/dof near 1.
constexpr double kMaxChi2PerDof = 2.0;

// Non-finite paths (or samples) of a run: `nonfinite` of `total` `what` ("paths"). Any adds a
// warning; all of them throw NonFiniteResult unless config.run.allow_nonfinite.
void check_nonfinite(const Config& config, const std::string& what, std::uint64_t nonfinite,
                     std::uint64_t total, std::vector<std::string>& warnings);

// `side` names the estimate in the message ("" for a run, "forward", "reverse" for dft).
void check_ift_support(const IftSummary& ift, std::uint64_t paths, const std::string& side,
                       std::vector<std::string>& warnings);
void check_path_error(double rms_path_error, double variance, const std::string& side,
                      std::vector<std::string>& warnings);
void check_fit(const DetailedFtFit& fit, const std::string& which,
               std::vector<std::string>& warnings);

}  // namespace detail
}  // namespace taep

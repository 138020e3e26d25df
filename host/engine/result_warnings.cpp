// The checks behind a result's warnings (result_warnings.hpp).
#include "host/engine/result_warnings.hpp"

#include <cmath>
#include <cstdio>

#include "taep/error.hpp"

namespace taep {
namespace detail {

namespace {
std::string prefixed(const std::string& side, const std::string& text) {
  return side.empty() ? text : side + ": " + text;
}
}  // namespace

void check_nonfinite(const Config& config, const std::string& what, std::uint64_t nonfinite,
                     std::uint64_t total, std::vector<std::string>& warnings) {
  if (nonfinite == 0) return;
  const std::string counted = std::to_string(nonfinite) + " of " + std::to_string(total) + " " + what;
  if (nonfinite < total) {
    warnings.push_back(counted + " are non-finite and were left out of the statistics");
    return;
  }
  const std::string message = "all " + counted + " are non-finite, so there are no statistics";
  if (!config.run.allow_nonfinite)
    throw NonFiniteResult(message + " (run.allow_nonfinite or --allow-nonfinite writes the result "
                                    "with null statistics)");
  warnings.push_back(message);
}

void check_ift_support(const IftSummary& ift, std::uint64_t paths, const std::string& side,
                       std::vector<std::string>& warnings) {
  if (paths == 0 || !(ift.ess_fraction < kMinEssFraction)) return;
  char text[300];
  std::snprintf(text, sizeof text,
                "the IFT estimate rests on an effective sample of %.4g paths (%.3g%% of %llu, under "
                "%g%%): a few paths dominate it and its standard error is unreliable",
                ift.ess, 100.0 * ift.ess_fraction, static_cast<unsigned long long>(paths),
                100.0 * kMinEssFraction);
  warnings.push_back(prefixed(side, text));
}

void check_path_error(double rms_path_error, double variance, const std::string& side,
                      std::vector<std::string>& warnings) {
  const double share = rms_path_error * rms_path_error / variance;
  if (!(variance > 0.0) || !(share > kMaxPathErrorShare)) return;
  char text[300];
  std::snprintf(text, sizeof text,
                "rms_path_error^2 = %.3g is %.3g%% of Var(S) (over %g%%): the integrator's error "
                "per path is large; use more schedule.steps, or schedule.scheme milstein",
                rms_path_error * rms_path_error, 100.0 * share, 100.0 * kMaxPathErrorShare);
  warnings.push_back(prefixed(side, text));
}

void check_fit(const DetailedFtFit& fit, const std::string& which,
               std::vector<std::string>& warnings) {
  if (fit.bins_used <= 2 || !(fit.chi2_per_dof > kMaxChi2PerDof)) return;
  char text[300];
  std::snprintf(text, sizeof text,
                "chi^2/dof = %.3g (over %g) over %d bins: the histograms scatter more than Poisson "
                "counts (per-path error blurring them, or too few paths)",
                fit.chi2_per_dof, kMaxChi2PerDof, fit.bins_used);
  warnings.push_back(which + ": " + text);
}

}  // namespace detail
}  // namespace taep

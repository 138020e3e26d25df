// The detailed-FT range and fit (dft_fit.hpp; docs/physics.md section 9).
#include "host/engine/dft_fit.hpp"

#include <algorithm>
#include <cmath>

#include "host/engine/chunk_driver.hpp"

namespace taep {
namespace detail {

HistogramSpec common_range(int bins, const std::vector<double>& pilot_f,
                           const std::vector<double>& pilot_r) {
  HistogramSpec h;
  h.bins = bins;
  double lo_f, hi_f, lo_r, hi_r;
  finite_range(pilot_f, lo_f, hi_f);
  finite_range(pilot_r, lo_r, hi_r);
  double lo = std::max(lo_f, lo_r), hi = std::min(hi_f, hi_r);
  if (!(lo < hi)) lo = std::min(lo_f, lo_r), hi = std::max(hi_f, hi_r);  // no overlap: the union
  if (!(lo < hi)) {
    if (lo == hi && std::isfinite(lo)) {
      lo -= 0.5;
      hi += 0.5;
    } else {
      lo = -1.0;
      hi = 1.0;
    }
  }
  h.lo = lo;
  h.hi = hi;
  return usable_range(h) ? h : widened_range(bins, lo, hi);
}

DetailedFtFit fit_detailed_ft(const std::vector<std::uint64_t>& cf, const std::vector<std::uint64_t>& cr,
                              double n_f, double n_r, const HistogramSpec& h,
                              std::uint64_t min_count) {
  DetailedFtFit fit;
  fit.min_count = min_count;
  const double nan = std::nan("");
  const double width = (h.hi - h.lo) / h.bins;
  double S = 0, Sx = 0, Sy = 0;
  std::vector<double> xs, ys, ws;
  // Adjacent bins are merged, left to right, until both sides hold min_count: a sparse cluster of S
  // (a rarely visited mode) then still enters the fit instead of being dropped bin by bin. A merged
  // bin's abscissa is the one eq. 31 predicts for it, log(sum_b c_r,b e^sigma_b / sum_b c_r,b) over
  // its bins' centres (for a single bin, its centre), so merging adds no bias of its own.
  std::uint64_t f = 0, r = 0;
  double er = 0;  // sum_b c_r,b e^(sigma_b - shift)
  int first_bin = -1;
  const double shift = h.lo + 0.5 * (h.hi - h.lo);  // keeps e^sigma in range
  for (int b = 0; b < h.bins; ++b) {
    const std::uint64_t fb = cf[std::size_t(b) + 1], rb = cr[std::size_t(b) + 1];
    if (first_bin < 0 && fb == 0 && rb == 0) continue;
    if (first_bin < 0) first_bin = b;
    const double centre = h.lo + (b + 0.5) * width;
    f += fb, r += rb;
    er += double(rb) * std::exp(centre - shift);
    if (f < min_count || r < min_count) continue;
    const double x = std::log(er / double(r)) + shift;
    const double y = std::log(double(f) / n_f) - std::log(double(r) / n_r);
    const double w = 1.0 / (1.0 / double(f) + 1.0 / double(r));
    if (xs.empty()) fit.lo = h.lo + first_bin * width;
    fit.hi = h.lo + (b + 1) * width;
    xs.push_back(x), ys.push_back(y), ws.push_back(w);
    S += w, Sx += w * x, Sy += w * y;
    f = r = 0, er = 0, first_bin = -1;
  }
  fit.bins_used = int(xs.size());
  fit.slope = fit.slope_stderr = fit.intercept = fit.intercept_stderr = fit.chi2_per_dof = nan;
  if (fit.bins_used < 2) return fit;
  // Centred sums: the same solution, without the cancellation of S Sxx - Sx^2 far from sigma = 0.
  const double xm = Sx / S, ym = Sy / S;
  double cxx = 0, cxy = 0;
  for (std::size_t i = 0; i < xs.size(); ++i) {
    cxx += ws[i] * (xs[i] - xm) * (xs[i] - xm);
    cxy += ws[i] * (xs[i] - xm) * (ys[i] - ym);
  }
  fit.slope = cxy / cxx;
  fit.intercept = ym - fit.slope * xm;
  fit.slope_stderr = std::sqrt(1.0 / cxx);
  fit.intercept_stderr = std::sqrt(1.0 / S + xm * xm / cxx);
  if (fit.bins_used >= 3) {
    double chi2 = 0;
    for (std::size_t i = 0; i < xs.size(); ++i) {
      const double res = ys[i] - fit.intercept - fit.slope * xs[i];
      chi2 += ws[i] * res * res;
    }
    fit.chi2_per_dof = chi2 / (fit.bins_used - 2);
  }
  return fit;
}

}  // namespace detail
}  // namespace taep

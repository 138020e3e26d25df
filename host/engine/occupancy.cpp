// Nearest-mode occupancy of samples (occupancy.hpp).
#include "host/engine/occupancy.hpp"

#include <cmath>
#include <limits>
#include <numeric>

namespace taep {
namespace detail {
namespace {

std::size_t nearest(const std::vector<std::vector<double>>& means, const double* x, int d) {
  std::size_t best = 0;
  double best_d2 = std::numeric_limits<double>::infinity();
  for (std::size_t k = 0; k < means.size(); ++k) {
    double d2 = 0.0;
    for (int i = 0; i < d; ++i) d2 += (x[i] - means[k][std::size_t(i)]) * (x[i] - means[k][std::size_t(i)]);
    if (d2 < best_d2) best_d2 = d2, best = k;
  }
  return best;
}

std::vector<double> normalized_weights(const std::vector<double>& w) {
  const double total = std::accumulate(w.begin(), w.end(), 0.0);
  std::vector<double> out;
  for (double v : w) out.push_back(v / total);
  return out;
}

}  // namespace

ModeOccupancy occupancy(const Config& c, const std::vector<float>& samples, int d,
                        std::uint64_t& nonfinite) {
  const MixtureSpec& target = c.target.mixture;
  ModeOccupancy occ;
  occ.means = target.means;
  const std::size_t K = occ.means.size();
  occ.counts.assign(K, 0);
  occ.target_weights = normalized_weights(target.weights);
  nonfinite = 0;
  std::vector<double> x(std::size_t(d), 0.0);
  const std::size_t n = samples.size() / std::size_t(d);
  for (std::size_t p = 0; p < n; ++p) {
    bool finite = true;
    for (int i = 0; i < d; ++i) {
      x[std::size_t(i)] = double(samples[p * std::size_t(d) + std::size_t(i)]);
      finite = finite && std::isfinite(x[std::size_t(i)]);
    }
    if (!finite) {
      ++nonfinite;
      continue;
    }
    occ.counts[nearest(occ.means, x.data(), d)]++;
  }
  const double finite_n = double(n - nonfinite);
  for (std::size_t k = 0; k < K; ++k) {
    const double f = finite_n > 0 ? double(occ.counts[k]) / finite_n : 0.0;
    occ.fractions.push_back(f);
    occ.fraction_stderr.push_back(finite_n > 0 ? std::sqrt(f * (1.0 - f) / finite_n) : 0.0);
  }
  if (c.model.type == "exact") {
    const MixtureSpec q = c.model.collapse ? collapse(target, *c.model.collapse) : *c.model.mixture;
    const std::vector<double> wq = normalized_weights(q.weights);
    occ.model_weights.assign(K, 0.0);
    for (int j = 0; j < q.components(); ++j)
      occ.model_weights[nearest(occ.means, q.means[std::size_t(j)].data(), d)] += wq[std::size_t(j)];
  }
  return occ;
}

}  // namespace detail
}  // namespace taep

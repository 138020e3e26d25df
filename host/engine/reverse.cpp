// The reverse (generative) process and the detailed fluctuation theorem (docs/physics.md sections 8, 9):
// sample(), detailed_ft() and simulate_reverse_paths() of taep/sample.hpp over the backends'
// per-path values (Backend::simulate for forward paths, Backend::simulate_reverse for reverse ones).
// Every reduction here runs on the host in path order, in blocks of kReduceBlock that start at path
// 0, so results do not depend on the chunk size or the thread count.
#include "taep/sample.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <numeric>
#include <string>

#include "host/engine/backend.hpp"
#include "taep/error.hpp"
#include "taep/physics/rng_streams.hpp"

namespace taep {
namespace {

using Clock = std::chrono::steady_clock;
constexpr std::uint64_t kBlock = physics::kReduceBlock;
// Paths of each side that fix the automatic histogram range (as run()'s pilot: the run's own first
// paths, a multiple of kBlock).
constexpr std::uint64_t kPilotPaths = 4 * kBlock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::unique_ptr<detail::Backend> make_backend(const detail::ForwardProblem& P, Backend b,
                                              int threads) {
  if (resolve_backend(b) == Backend::cuda) return detail::make_cuda_backend(P);
  return detail::make_cpu_backend(P, threads);
}

// Paths per chunk: config.run.chunk_paths or the backend's limit, whole blocks, at most `total`
// rounded up.
std::uint64_t chunk_size(const Config& c, const detail::Backend& b, std::uint64_t total) {
  std::uint64_t chunk = c.run.chunk_paths ? c.run.chunk_paths : b.max_chunk_paths();
  chunk = std::max<std::uint64_t>(kBlock, (chunk + kBlock - 1) / kBlock * kBlock);
  return std::min(chunk, std::max<std::uint64_t>(kBlock, (total + kBlock - 1) / kBlock * kBlock));
}

void fill_performance(PerformanceSummary& perf, const detail::Backend& b, std::uint64_t chunk,
                      double path_steps, Clock::time_point start) {
  perf.backend = b.name();
  perf.device = b.device();
  perf.threads = b.threads();
  perf.chunk_paths = chunk;
  perf.wall_seconds = seconds_since(start);
  perf.path_steps_per_second = perf.wall_seconds > 0 ? path_steps / perf.wall_seconds : 0.0;
}

void report(const RunOptions& options, std::uint64_t done, std::uint64_t total, int steps,
            Clock::time_point start) {
  if (!options.on_progress) return;
  Progress p;
  p.paths_done = done;
  p.paths_total = total;
  p.seconds = seconds_since(start);
  p.path_steps_per_second = p.seconds > 0 ? double(done) * steps / p.seconds : 0.0;
  options.on_progress(p);
}

// ---- occupancy ----------------------------------------------------------------------------------

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
  if (c.model.type != "mlp") {
    const MixtureSpec q = c.model.collapse ? collapse(target, *c.model.collapse) : *c.model.mixture;
    const std::vector<double> wq = normalized_weights(q.weights);
    occ.model_weights.assign(K, 0.0);
    for (int j = 0; j < q.components(); ++j)
      occ.model_weights[nearest(occ.means, q.means[std::size_t(j)].data(), d)] += wq[std::size_t(j)];
  }
  return occ;
}

// ---- detailed FT --------------------------------------------------------------------------------

TaepSummary summarize(const physics::Moments& m, double nonfinite) {
  TaepSummary s;
  s.count = std::uint64_t(m.n);
  s.mean = m.mean;
  s.variance = m.variance();
  s.skewness = m.skewness();
  s.excess_kurtosis = m.excess_kurtosis();
  s.stderr_mean = m.n > 0 ? std::sqrt(s.variance / m.n) : 0.0;
  s.nonfinite = std::uint64_t(nonfinite);
  return s;
}

IftSummary ift_of(const physics::LogSumExp& w) {
  IftSummary s;
  s.log_estimate = w.n > 0 ? w.log_mean() : std::nan("");
  s.estimate = std::exp(s.log_estimate);
  s.stderr_ = w.stderr_of_mean();
  s.ess = w.ess();
  return s;
}

// What one side (forward or reverse paths) reduces to.
struct Side {
  physics::PathStats stats;  // S and R moments, S - R, and exp(-S)
  physics::LogSumExp plus;   // exp(+S)
  std::vector<std::uint64_t> hist_s, hist_r;  // [underflow, bins, overflow] of S and of R

  explicit Side(int bins) : hist_s(std::size_t(bins) + 2, 0), hist_r(std::size_t(bins) + 2, 0) {}

  // Per-path values of paths [first, first + n), first a multiple of kBlock.
  void add(const std::vector<double>& s, const std::vector<double>& r,
           const detail::HistogramSpec& h) {
    const bool with_ref = !r.empty();
    const std::size_t n = s.size();
    std::vector<double> neg(std::min<std::size_t>(n, kBlock));
    for (std::size_t off = 0; off < n; off += kBlock) {
      const int m = int(std::min<std::size_t>(kBlock, n - off));
      stats.merge(detail::reduce_block_cpu(s.data() + off, with_ref ? r.data() + off : nullptr, m));
      // exp(+S) over the same paths that enter the moments (a non-finite R excludes the path).
      for (int i = 0; i < m; ++i) {
        const bool ok = !with_ref || physics::isfinite_(r[off + std::size_t(i)]);
        neg[std::size_t(i)] = ok ? -s[off + std::size_t(i)] : std::nan("");
      }
      plus.merge(detail::reduce_block_cpu(neg.data(), nullptr, m).ift);
    }
    const double inv_w = h.inv_width();
    for (std::size_t i = 0; i < n; ++i) {
      if (!physics::isfinite_(s[i]) || (with_ref && !physics::isfinite_(r[i]))) continue;
      hist_s[std::size_t(physics::histogram_bin(s[i], h.lo, inv_w, h.bins) + 1)]++;
      if (with_ref) hist_r[std::size_t(physics::histogram_bin(r[i], h.lo, inv_w, h.bins) + 1)]++;
    }
  }

  double rms_error() const {
    const physics::Moments& e = stats.error;
    return e.n > 0 ? std::sqrt(e.mean * e.mean + e.m2 / e.n) : 0.0;
  }
};

void min_max(const std::vector<double>& v, double& lo, double& hi) {
  lo = std::numeric_limits<double>::infinity();
  hi = -lo;
  for (double s : v)
    if (std::isfinite(s)) lo = std::min(lo, s), hi = std::max(hi, s);
}

detail::HistogramSpec common_range(const Config& c, const std::vector<double>* pilot_f,
                                   const std::vector<double>* pilot_r) {
  detail::HistogramSpec h;
  h.bins = c.histogram.bins;
  if (!pilot_f) {
    h.lo = *c.histogram.lo;
    h.hi = *c.histogram.hi;
    return h;
  }
  double lo_f, hi_f, lo_r, hi_r;
  min_max(*pilot_f, lo_f, hi_f);
  min_max(*pilot_r, lo_r, hi_r);
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
  return h;
}

DetailedFtFit fit_detailed_ft(const std::vector<std::uint64_t>& cf, const std::vector<std::uint64_t>& cr,
                              double n_f, double n_r, const detail::HistogramSpec& h,
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

HistogramResult histogram_of(const std::vector<std::uint64_t>& counts, const detail::HistogramSpec& h) {
  HistogramResult r;
  r.underflow = counts.front();
  r.overflow = counts.back();
  r.counts.assign(counts.begin() + 1, counts.end() - 1);
  for (int i = 0; i <= h.bins; ++i) r.edges.push_back(h.lo + (h.hi - h.lo) * i / h.bins);
  return r;
}

}  // namespace

SampleResult sample(const Problem& problem, std::uint64_t count, const RunOptions& options) {
  const auto start = Clock::now();
  SampleResult result;
  result.config = problem.config();
  if (count < 1 || count >= rng::kMaxPaths)
    throw ConfigError("count", "must be an integer in [1, 2^40) (got " + std::to_string(count) + ")");
  const Config& c = result.config;
  const detail::ForwardProblem& P = problem.forward();
  auto backend = make_backend(P, c.run.backend, c.run.threads);
  const int d = P.d;
  result.d = d;
  result.count = count;
  result.samples.resize(count * std::uint64_t(d));

  const std::uint64_t chunk = chunk_size(c, *backend, count);
  std::vector<float> part;
  for (std::uint64_t first = 0; first < count; first += chunk) {
    const std::uint64_t n = std::min(chunk, count - first);
    backend->simulate_reverse(first, n, false, nullptr, nullptr, &part);
    std::copy(part.begin(), part.end(), result.samples.begin() + std::ptrdiff_t(first * d));
    report(options, first + n, count, P.steps, start);
  }
  result.occupancy = occupancy(c, result.samples, d, result.nonfinite);
  fill_performance(result.performance, *backend, chunk, double(count) * P.steps, start);
  return result;
}

ReversePathValues simulate_reverse_paths(const Problem& problem, Backend backend, std::uint64_t first,
                                         std::uint64_t count, bool with_taep) {
  const Config& c = problem.config();
  const detail::ForwardProblem& P = problem.forward();
  auto b = make_backend(P, backend, c.run.threads);
  ReversePathValues out;
  b->simulate_reverse(first, count, with_taep, &out.taep, &out.reference, &out.samples);
  return out;
}

DetailedFtResult detailed_ft(const Problem& problem, const RunOptions& options,
                             std::uint64_t min_count) {
  const auto start = Clock::now();
  DetailedFtResult result;
  result.config = problem.config();
  if (min_count < 1)
    throw ConfigError("min_count", "must be at least 1 (got " + std::to_string(min_count) + ")");
  const Config& c = result.config;
  const detail::ForwardProblem& P = problem.forward();
  auto backend = make_backend(P, c.run.backend, c.run.threads);
  const std::uint64_t N = c.run.paths;
  const std::uint64_t total = 2 * N;

  // Both sides' first paths: the automatic range, then they are reduced like any chunk.
  std::vector<double> f_s, f_r, r_s, r_r;
  const bool automatic = !(c.histogram.lo && c.histogram.hi);
  const std::uint64_t pilot = automatic ? std::min(N, kPilotPaths) : 0;
  if (pilot > 0) {
    backend->simulate(0, pilot, f_s, f_r);
    backend->simulate_reverse(0, pilot, true, &r_s, &r_r, nullptr);
  }
  const detail::HistogramSpec hist =
      common_range(c, automatic ? &f_s : nullptr, automatic ? &r_s : nullptr);
  Side fwd(hist.bins), rev(hist.bins);
  if (pilot > 0) {
    fwd.add(f_s, f_r, hist);
    rev.add(r_s, r_r, hist);
    report(options, 2 * pilot, total, P.steps, start);
  }

  const std::uint64_t chunk = chunk_size(c, *backend, N);
  for (std::uint64_t first = pilot; first < N; first += chunk) {
    const std::uint64_t n = std::min(chunk, N - first);
    backend->simulate(first, n, f_s, f_r);
    fwd.add(f_s, f_r, hist);
    report(options, pilot + first + n, total, P.steps, start);
  }
  for (std::uint64_t first = pilot; first < N; first += chunk) {
    const std::uint64_t n = std::min(chunk, N - first);
    backend->simulate_reverse(first, n, true, &r_s, &r_r, nullptr);
    rev.add(r_s, r_r, hist);
    report(options, N + first + n, total, P.steps, start);
  }

  result.forward = summarize(fwd.stats.taep, fwd.stats.nonfinite);
  result.reverse = summarize(rev.stats.taep, rev.stats.nonfinite);
  result.forward_ift = ift_of(fwd.stats.ift);
  result.reverse_ift = ift_of(rev.plus);
  result.forward_histogram = histogram_of(fwd.hist_s, hist);
  result.reverse_histogram = histogram_of(rev.hist_s, hist);
  result.fit = fit_detailed_ft(fwd.hist_s, rev.hist_s, fwd.stats.taep.n, rev.stats.taep.n, hist,
                               min_count);
  if (P.reference) {
    result.forward_rms_path_error = fwd.rms_error();
    result.reverse_rms_path_error = rev.rms_error();
    result.reference_fit = fit_detailed_ft(fwd.hist_r, rev.hist_r, fwd.stats.reference.n,
                                           rev.stats.reference.n, hist, min_count);
  }
  fill_performance(result.performance, *backend, chunk, double(total) * P.steps, start);
  return result;
}

}  // namespace taep

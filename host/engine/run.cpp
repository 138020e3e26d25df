// Orchestration of one run: validate -> tables -> backend -> histogram range -> chunks -> merge ->
// summaries (docs/architecture.md, "Data flow of one run").
#include "taep/engine.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>

#include "host/engine/backend.hpp"
#include "taep/error.hpp"

namespace taep {
namespace {

using Clock = std::chrono::steady_clock;

std::unique_ptr<detail::Backend> make_backend(const detail::ForwardProblem& P, Backend b,
                                              int threads) {
  if (resolve_backend(b) == Backend::cuda) return detail::make_cuda_backend(P);
  return detail::make_cpu_backend(P, threads);
}

// Paths 0 .. kPilotPaths-1 fix the automatic histogram range. They are the run's own first paths
// (reduced on the host in the same block order, then the chunks go on after them), so the range and
// every count are the same whatever the chunking, and no path is simulated twice.
constexpr std::uint64_t kPilotPaths = 4 * physics::kReduceBlock;

struct Pilot {
  std::vector<double> taep, reference, aux;
};

detail::HistogramSpec histogram_range(const Config& c, const Pilot* pilot) {
  detail::HistogramSpec h;
  h.bins = c.histogram.bins;
  if (!pilot) {
    h.lo = *c.histogram.lo;
    h.hi = *c.histogram.hi;
    return h;
  }
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  for (double s : pilot->taep)
    if (std::isfinite(s)) lo = std::min(lo, s), hi = std::max(hi, s);
  if (!(lo <= hi)) {
    lo = -1.0;
    hi = 1.0;
  }
  const double margin = hi > lo ? 0.1 * (hi - lo) : 0.5;
  h.lo = lo - margin;
  h.hi = hi + margin;
  return h;
}

// The pilot's paths reduced exactly as a chunk would be: per block of kReduceBlock, in path order.
void reduce_pilot(const Pilot& pilot, bool with_aux, const detail::HistogramSpec& hist,
                  physics::PathStats& total, std::vector<std::uint64_t>& counts) {
  constexpr std::size_t B = physics::kReduceBlock;
  const bool with_ref = !pilot.reference.empty();
  const std::size_t n = pilot.taep.size();
  for (std::size_t off = 0; off < n; off += B) {
    const int m = int(std::min(B, n - off));
    total.merge(detail::reduce_block_cpu(pilot.taep.data() + off,
                                         with_ref ? pilot.reference.data() + off : nullptr, m,
                                         with_aux ? pilot.aux.data() + off : nullptr));
  }
  const double inv_w = hist.inv_width();
  for (std::size_t i = 0; i < n; ++i) {
    if (!physics::isfinite_(pilot.taep[i]) || (with_ref && !physics::isfinite_(pilot.reference[i])))
      continue;
    counts[std::size_t(physics::histogram_bin(pilot.taep[i], hist.lo, inv_w, hist.bins) + 1)]++;
  }
}

std::optional<TheorySummary> theory(const detail::ForwardProblem& P) {
  if (!P.shared) return std::nullopt;
  const auto& s2 = P.target.sigma2;
  if (std::adjacent_find(s2.begin(), s2.end(), std::not_equal_to<>()) != s2.end())
    return std::nullopt;  // eq. 53 assumes equal widths
  TheorySummary t;
  double m1 = 0.0, m2 = 0.0;
  for (int k = 0; k < P.target.K; ++k) {
    const double p = P.target.weight[k], L = std::log(p / P.model.weight[k]);
    m1 += p * L;
    m2 += p * L * L;
  }
  t.mean_eq53 = m1;
  t.variance_eq53 = m2 - m1 * m1;
  return t;
}

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

}  // namespace

bool built_with_cuda() {
#ifdef TAEP_WITH_CUDA
  return true;
#else
  return false;
#endif
}

bool cuda_available(std::string* why) { return detail::cuda_device_available(why); }

Backend resolve_backend(Backend requested) {
  if (requested != Backend::automatic) return requested;
  return cuda_available() ? Backend::cuda : Backend::cpu;
}

PathValues simulate_paths(const Problem& problem, Backend backend, std::uint64_t first,
                          std::uint64_t count) {
  const Config& c = problem.config();
  const detail::ForwardProblem& P = problem.forward();
  auto b = make_backend(P, backend, c.run.threads);
  PathValues out;
  b->simulate(first, count, out.taep, out.reference);
  return out;
}

RunResult run(const Problem& problem, const RunOptions& options) {
  const auto start = Clock::now();
  RunResult result;
  result.config = problem.config();
  const Config& c = result.config;
  const detail::ForwardProblem& P = problem.forward();
  auto backend = make_backend(P, c.run.backend, c.run.threads);

  const bool with_aux = P.mlp && P.mlp->hutchinson() && P.mlp->probes >= 2;
  Pilot pilot;
  const bool automatic_range = !(c.histogram.lo && c.histogram.hi);
  if (automatic_range)
    backend->simulate(0, std::min<std::uint64_t>(c.run.paths, kPilotPaths), pilot.taep,
                      pilot.reference, with_aux ? &pilot.aux : nullptr);
  const detail::HistogramSpec hist = histogram_range(c, automatic_range ? &pilot : nullptr);

  constexpr std::uint64_t B = physics::kReduceBlock;
  std::uint64_t chunk = c.run.chunk_paths ? c.run.chunk_paths : backend->max_chunk_paths();
  chunk = std::max<std::uint64_t>(B, (chunk + B - 1) / B * B);
  chunk = std::min(chunk, (c.run.paths + B - 1) / B * B);

  physics::PathStats total;
  std::vector<std::uint64_t> counts(std::size_t(hist.bins) + 2, 0);
  reduce_pilot(pilot, with_aux, hist, total, counts);  // kPilotPaths is a multiple of B
  detail::ChunkStats cs;
  for (std::uint64_t first = pilot.taep.size(); first < c.run.paths; first += chunk) {
    const std::uint64_t n = std::min(chunk, c.run.paths - first);
    backend->run_chunk(first, n, hist, cs);
    for (const auto& b : cs.blocks) total.merge(b);  // fixed order: path order
    for (std::size_t i = 0; i < counts.size(); ++i) counts[i] += cs.histogram[i];
    if (options.on_progress) {
      Progress p;
      p.paths_done = first + n;
      p.paths_total = c.run.paths;
      p.seconds = std::chrono::duration<double>(Clock::now() - start).count();
      p.path_steps_per_second = p.seconds > 0 ? double(p.paths_done) * P.steps / p.seconds : 0.0;
      options.on_progress(p);
    }
  }

  result.taep = summarize(total.taep, total.nonfinite);
  const physics::LogSumExp& w = total.ift;
  result.ift.log_estimate = w.n > 0 ? w.log_mean() : std::nan("");
  result.ift.estimate = std::exp(result.ift.log_estimate);
  result.ift.stderr_ = w.stderr_of_mean();
  result.ift.ess = w.ess();

  result.histogram.underflow = counts.front();
  result.histogram.overflow = counts.back();
  result.histogram.counts.assign(counts.begin() + 1, counts.end() - 1);
  for (int i = 0; i <= hist.bins; ++i)
    result.histogram.edges.push_back(hist.lo + (hist.hi - hist.lo) * i / hist.bins);

  if (P.reference) {
    ReferenceSummary r;
    r.mean = total.reference.mean;
    r.variance = total.reference.variance();
    r.error_mean = total.error.mean;
    r.error_variance = total.error.variance();
    const double n = total.error.n;
    r.rms_path_error = n > 0 ? std::sqrt(total.error.mean * total.error.mean + total.error.m2 / n) : 0.0;
    result.reference = r;
  }
  result.theory = theory(P);
  if (P.mlp && P.mlp->hutchinson()) {
    HutchinsonSummary h;
    h.probes = P.mlp->probes;
    h.distribution = to_string(P.mlp->probe_distribution);
    if (h.probes >= 2 && total.aux.n > 0) {
      h.probe_noise_variance = total.aux.mean;
      h.variance_without_probe_noise = result.taep.variance - total.aux.mean;
    }
    result.hutchinson = h;
  }

  auto& perf = result.performance;
  perf.backend = backend->name();
  perf.device = backend->device();
  perf.threads = backend->threads();
  perf.chunk_paths = chunk;
  perf.wall_seconds = std::chrono::duration<double>(Clock::now() - start).count();
  perf.path_steps_per_second = double(c.run.paths) * P.steps / perf.wall_seconds;
  return result;
}

}  // namespace taep

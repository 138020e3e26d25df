// Orchestration of one run: validate -> tables -> backend -> histogram range -> chunks -> merge ->
// summaries (docs/architecture.md, "Data flow of one run").
#include "taep/engine.hpp"

#include <algorithm>
#include <chrono>
#include <functional>
#include <optional>

#include "host/engine/chunk_driver.hpp"
#include "host/engine/result_warnings.hpp"
#include "taep/distributed.hpp"
#include "taep/error.hpp"
#include "taep/physics/theory.hpp"

namespace taep {
namespace {

using Clock = std::chrono::steady_clock;

std::optional<TheorySummary> theory(const detail::ForwardProblem& P) {
  if (!P.shared) return std::nullopt;
  const auto& s2 = P.target.sigma2;
  if (std::adjacent_find(s2.begin(), s2.end(), std::not_equal_to<>()) != s2.end())
    return std::nullopt;  // eq. 53 assumes equal widths
  const physics::Eq53Moments m = physics::eq53_moments(P.target.weight, P.model.weight);
  TheorySummary t;
  t.mean_eq53 = m.mean;
  t.variance_eq53 = m.variance;
  return t;
}

// The Hutchinson setup of a learned or callback model (none for exact divergence).
struct ProbeSetup {
  int probes;
  ProbeDistribution distribution;
};
std::optional<ProbeSetup> hutchinson_of(const detail::ForwardProblem& P) {
  if (P.mlp && P.mlp->hutchinson()) return ProbeSetup{P.mlp->probes, P.mlp->probe_distribution};
  if (P.callback && P.callback->hutchinson())
    return ProbeSetup{P.callback->probes, P.callback->probe_distribution};
  return std::nullopt;
}

// run() after the tables: result.config is the validated config P was built from.
void run_forward(const detail::ForwardProblem& P,
                 std::vector<std::unique_ptr<detail::Backend>> backend,
                 const RunOptions& options, Clock::time_point start, RunResult& result) {
  const Config& c = result.config;
  detail::ChunkDriver driver(std::move(backend), c, P.steps, options, c.run.paths, c.run.paths,
                             start);
  driver.enable_checkpoints("run");
  const std::optional<ProbeSetup> probes = hutchinson_of(P);
  const bool with_aux = probes && probes->probes >= 2;
  const detail::ForwardTotals t = driver.run_forward(with_aux, options.per_path);
  result.performance = driver.performance();
  result.provenance = driver.provenance();
  if (!is_root()) return;  // rank 0 alone holds the statistics (taep/distributed.hpp)

  result.taep = detail::summarize(t.stats.taep, t.stats.nonfinite);
  detail::check_nonfinite(c, "paths", result.taep.nonfinite, c.run.paths, result.warnings);
  result.ift = detail::ift_summary(t.stats.ift);
  result.histogram = detail::histogram_result(t.counts, t.hist);
  if (P.reference) {
    ReferenceSummary r;
    r.mean = t.stats.reference.mean;
    r.variance = t.stats.reference.variance();
    r.error_mean = t.stats.error.mean;
    r.error_variance = t.stats.error.variance();
    r.rms_path_error = t.stats.error.rms();
    result.reference = r;
  }
  result.theory = theory(P);
  detail::check_ift_support(result.ift, result.taep.count, "", result.warnings);
  if (result.reference)
    detail::check_path_error(result.reference->rms_path_error, result.taep.variance, "",
                             result.warnings);
  if (probes) {
    HutchinsonSummary h;
    h.probes = probes->probes;
    h.distribution = to_string(probes->distribution);
    if (h.probes >= 2 && t.stats.aux.n > 0) {
      h.probe_noise_variance = t.stats.aux.mean;
      h.variance_without_probe_noise = result.taep.variance - t.stats.aux.mean;
    }
    result.hutchinson = h;
  }
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
  auto b = detail::make_backend(P, backend, c.run.threads);
  PathValues out;
  b->simulate(first, count, out.taep, out.reference, nullptr, &out.x0, &out.xN);
  return out;
}

RunResult run(const Problem& problem, const RunOptions& options) {
  const auto start = Clock::now();
  RunResult result;
  result.config = problem.config();
  const Config& c = result.config;
  const detail::ForwardProblem& P = problem.forward();
  run_forward(P, detail::make_backends(P, c), options, start, result);
  return result;
}

}  // namespace taep

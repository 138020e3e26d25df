#include <nlohmann/json.hpp>

#include "taep/result.hpp"

namespace taep {

std::string result_to_json(const RunResult& r, int indent) {
  // ordered: sections in the documented order, keys as written
  using json = nlohmann::ordered_json;
  json j;
  j["taep"] = {{"count", r.taep.count},
               {"mean", r.taep.mean},
               {"stderr_mean", r.taep.stderr_mean},
               {"variance", r.taep.variance},
               {"skewness", r.taep.skewness},
               {"excess_kurtosis", r.taep.excess_kurtosis},
               {"nonfinite", r.taep.nonfinite}};
  j["ift"] = {{"estimate", r.ift.estimate},
              {"stderr", r.ift.stderr_},
              {"log_estimate", r.ift.log_estimate},
              {"ess", r.ift.ess}};
  j["histogram"] = {{"edges", r.histogram.edges},
                    {"counts", r.histogram.counts},
                    {"underflow", r.histogram.underflow},
                    {"overflow", r.histogram.overflow}};
  j["reference"] = nullptr;
  if (r.reference)
    j["reference"] = {{"mean", r.reference->mean},
                      {"variance", r.reference->variance},
                      {"error_mean", r.reference->error_mean},
                      {"error_variance", r.reference->error_variance},
                      {"rms_path_error", r.reference->rms_path_error}};
  j["theory"] = nullptr;
  if (r.theory)
    j["theory"] = {{"variance_eq53", r.theory->variance_eq53}, {"mean_eq53", r.theory->mean_eq53}};
  j["hutchinson"] = nullptr;
  if (r.hutchinson) {
    auto opt = [](const std::optional<double>& v) { return v ? json(*v) : json(nullptr); };
    j["hutchinson"] = {{"probes", r.hutchinson->probes},
                       {"distribution", r.hutchinson->distribution},
                       {"probe_noise_variance", opt(r.hutchinson->probe_noise_variance)},
                       {"variance_without_probe_noise", opt(r.hutchinson->variance_without_probe_noise)}};
  }
  j["performance"] = {{"backend", r.performance.backend},
                      {"device", r.performance.device},
                      {"threads", r.performance.threads},
                      {"chunk_paths", r.performance.chunk_paths},
                      {"wall_seconds", r.performance.wall_seconds},
                      {"path_steps_per_second", r.performance.path_steps_per_second}};
  j["config"] = json::parse(config_to_json(r.config));
  return j.dump(indent) + "\n";
}

}  // namespace taep

// The result JSON of `taep sample` and `taep dft` (README.md, "taep sample" and "taep dft").
#include <nlohmann/json.hpp>

#include "taep/sample.hpp"

namespace taep {
namespace {

using json = nlohmann::ordered_json;  // sections in the documented order, keys as written

json performance_json(const PerformanceSummary& p) {
  return {{"backend", p.backend},
          {"device", p.device},
          {"threads", p.threads},
          {"chunk_paths", p.chunk_paths},
          {"wall_seconds", p.wall_seconds},
          {"path_steps_per_second", p.path_steps_per_second}};
}

json taep_json(const TaepSummary& s) {
  return {{"count", s.count},
          {"mean", s.mean},
          {"stderr_mean", s.stderr_mean},
          {"variance", s.variance},
          {"skewness", s.skewness},
          {"excess_kurtosis", s.excess_kurtosis},
          {"nonfinite", s.nonfinite}};
}

json ift_json(const IftSummary& i) {
  return {{"estimate", i.estimate},
          {"stderr", i.stderr_},
          {"log_estimate", i.log_estimate},
          {"ess", i.ess}};
}

json fit_json(const DetailedFtFit& f) {
  return {{"slope", f.slope},
          {"slope_stderr", f.slope_stderr},
          {"intercept", f.intercept},
          {"intercept_stderr", f.intercept_stderr},
          {"bins_used", f.bins_used},
          {"chi2_per_dof", f.chi2_per_dof},
          {"min_count", f.min_count},
          {"lo", f.lo},
          {"hi", f.hi}};
}

json optional_json(const std::optional<double>& v) { return v ? json(*v) : json(nullptr); }

}  // namespace

std::string sample_result_to_json(const SampleResult& r, int indent) {
  json j;
  j["samples"] = {{"count", r.count}, {"dimension", r.d}, {"nonfinite", r.nonfinite}};
  const ModeOccupancy& o = r.occupancy;
  j["occupancy"] = {{"means", o.means},
                    {"counts", o.counts},
                    {"fractions", o.fractions},
                    {"fraction_stderr", o.fraction_stderr},
                    {"target_weights", o.target_weights},
                    {"model_weights", o.model_weights.empty() ? json(nullptr) : json(o.model_weights)}};
  j["performance"] = performance_json(r.performance);
  j["config"] = json::parse(config_to_json(r.config));
  return j.dump(indent) + "\n";
}

std::string detailed_ft_to_json(const DetailedFtResult& r, int indent) {
  json j;
  j["forward"] = {{"taep", taep_json(r.forward)},
                  {"ift", ift_json(r.forward_ift)},
                  {"rms_path_error", optional_json(r.forward_rms_path_error)}};
  j["reverse"] = {{"taep", taep_json(r.reverse)},
                  {"ift", ift_json(r.reverse_ift)},
                  {"rms_path_error", optional_json(r.reverse_rms_path_error)}};
  j["histogram"] = {{"edges", r.forward_histogram.edges},
                    {"forward_counts", r.forward_histogram.counts},
                    {"forward_underflow", r.forward_histogram.underflow},
                    {"forward_overflow", r.forward_histogram.overflow},
                    {"reverse_counts", r.reverse_histogram.counts},
                    {"reverse_underflow", r.reverse_histogram.underflow},
                    {"reverse_overflow", r.reverse_histogram.overflow}};
  j["fit"] = fit_json(r.fit);
  j["reference_fit"] = r.reference_fit ? fit_json(*r.reference_fit) : json(nullptr);
  j["performance"] = performance_json(r.performance);
  j["config"] = json::parse(config_to_json(r.config));
  return j.dump(indent) + "\n";
}

}  // namespace taep

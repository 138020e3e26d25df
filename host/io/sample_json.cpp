// The result JSON of `taep sample` and `taep dft` (README.md, "taep sample" and "taep dft").
#include "host/io/json_out.hpp"
#include "taep/sample.hpp"

namespace taep {

std::string sample_result_to_json(const SampleResult& r, int indent) {
  detail::ojson j;
  j["samples"] = {{"count", r.count}, {"dimension", r.d}, {"nonfinite", r.nonfinite}};
  j["occupancy"] = detail::to_json(r.occupancy);
  j["warnings"] = r.warnings;
  j["performance"] = detail::to_json(r.performance);
  j["provenance"] = detail::to_json(r.provenance);
  j["config"] = detail::to_json(r.config);
  return detail::dump(j, indent);
}

std::string detailed_ft_to_json(const DetailedFtResult& r, int indent) {
  using detail::optional_json;
  using detail::to_json;
  detail::ojson j;
  j["forward"] = {{"taep", to_json(r.forward)},
                  {"ift", to_json(r.forward_ift)},
                  {"rms_path_error", optional_json(r.forward_rms_path_error)}};
  j["reverse"] = {{"taep", to_json(r.reverse)},
                  {"ift", to_json(r.reverse_ift)},
                  {"rms_path_error", optional_json(r.reverse_rms_path_error)}};
  j["histogram"] = {{"edges", r.forward_histogram.edges},
                    {"forward_counts", r.forward_histogram.counts},
                    {"forward_underflow", r.forward_histogram.underflow},
                    {"forward_overflow", r.forward_histogram.overflow},
                    {"reverse_counts", r.reverse_histogram.counts},
                    {"reverse_underflow", r.reverse_histogram.underflow},
                    {"reverse_overflow", r.reverse_histogram.overflow}};
  j["fit"] = to_json(r.fit);
  j["reference_fit"] = optional_json(r.reference_fit);
  j["warnings"] = r.warnings;
  j["performance"] = to_json(r.performance);
  j["provenance"] = to_json(r.provenance);
  j["config"] = to_json(r.config);
  return detail::dump(j, indent);
}

}  // namespace taep

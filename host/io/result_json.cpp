// The result JSON of `taep run` (README.md, "Result reference").
#include "host/io/json_out.hpp"
#include "taep/result.hpp"

namespace taep {

std::string result_to_json(const RunResult& r, int indent) {
  detail::ojson j;
  j["taep"] = detail::to_json(r.taep);
  j["ift"] = detail::to_json(r.ift);
  j["histogram"] = detail::to_json(r.histogram);
  j["reference"] = detail::optional_json(r.reference);
  j["theory"] = detail::optional_json(r.theory);
  j["hutchinson"] = detail::optional_json(r.hutchinson);
  j["warnings"] = r.warnings;
  j["performance"] = detail::to_json(r.performance);
  j["provenance"] = detail::to_json(r.provenance);
  j["config"] = detail::to_json(r.config);
  return detail::dump(j, indent);
}

}  // namespace taep

#pragma once
// The pieces of every result JSON (README.md, "Result reference"), as ordered JSON values: sections
// in the documented order, keys as written. result_json.cpp and sample_json.cpp assemble them; the
// training and experiment results take their provenance from here too.
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "taep/config.hpp"
#include "taep/result.hpp"
#include "taep/sample.hpp"

namespace taep {
namespace detail {

using ojson = nlohmann::ordered_json;

ojson to_json(const TaepSummary& s);
ojson to_json(const IftSummary& i);
ojson to_json(const HistogramResult& h);  // edges, counts, underflow, overflow
ojson to_json(const ReferenceSummary& r);
ojson to_json(const TheorySummary& t);
ojson to_json(const HutchinsonSummary& h);
ojson to_json(const PerformanceSummary& p);
ojson to_json(const Provenance& p);
ojson to_json(const DetailedFtFit& f);
ojson to_json(const ModeOccupancy& o);
ojson to_json(const Config& c);  // as config_to_json writes it

// The value, or null.
template <class T>
ojson optional_json(const std::optional<T>& v) {
  return v ? to_json(*v) : ojson(nullptr);
}
inline ojson optional_json(const std::optional<double>& v) { return v ? ojson(*v) : ojson(nullptr); }

// "provenance" of a result made now on `backend`/`device` (make_provenance).
ojson provenance_json(const std::string& backend, const std::string& device,
                      const std::string& command = "");

// The document as written to a file: indented, with a final newline.
std::string dump(const ojson& document, int indent);

}  // namespace detail
}  // namespace taep

// Result JSON pieces (json_out.hpp) and the provenance of a result (taep/result.hpp).
#include "host/io/json_out.hpp"

#include <unistd.h>

#include <ctime>

#include "host/config/config_json.hpp"
#include "taep/version.hpp"

namespace taep {

namespace {

std::string host_name() {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0) return "";
  return name;
}

std::string utc_now() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  ::gmtime_r(&now, &tm);
  char text[32];
  return std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm) ? text : "";
}

}  // namespace

Provenance make_provenance(const std::string& backend, const std::string& device,
                           const std::string& command) {
  Provenance p;
  p.version = kVersion;
  p.commit = git_commit();
  p.build_type = build_type();
  p.backend = backend;
  p.device = device;
  p.host = host_name();
  p.time = utc_now();
  p.command = command;
  return p;
}

namespace detail {

ojson to_json(const TaepSummary& s) {
  return {{"count", s.count},       {"mean", s.mean},
          {"stderr_mean", s.stderr_mean}, {"variance", s.variance},
          {"stderr_variance", s.stderr_variance},
          {"skewness", s.skewness}, {"excess_kurtosis", s.excess_kurtosis},
          {"nonfinite", s.nonfinite}};
}

ojson to_json(const IftSummary& i) {
  return {{"estimate", i.estimate}, {"stderr", i.stderr_}, {"log_estimate", i.log_estimate},
          {"ess", i.ess}, {"ess_fraction", i.ess_fraction}};
}

ojson to_json(const HistogramResult& h) {
  return {{"edges", h.edges}, {"counts", h.counts}, {"underflow", h.underflow},
          {"overflow", h.overflow}};
}

ojson to_json(const ReferenceSummary& r) {
  return {{"mean", r.mean}, {"variance", r.variance}, {"error_mean", r.error_mean},
          {"error_variance", r.error_variance}, {"rms_path_error", r.rms_path_error}};
}

ojson to_json(const TheorySummary& t) {
  return {{"variance_eq53", t.variance_eq53}, {"mean_eq53", t.mean_eq53}};
}

ojson to_json(const HutchinsonSummary& h) {
  ojson j{{"probes", h.probes}, {"distribution", h.distribution}};
  j["probe_noise_variance"] = optional_json(h.probe_noise_variance);
  j["variance_without_probe_noise"] = optional_json(h.variance_without_probe_noise);
  return j;
}

ojson to_json(const PerformanceSummary& p) {
  return {{"backend", p.backend},         {"device", p.device},
          {"threads", p.threads},         {"chunk_paths", p.chunk_paths},
          {"wall_seconds", p.wall_seconds}, {"path_steps_per_second", p.path_steps_per_second}};
}

ojson to_json(const Provenance& p) {
  return {{"version", p.version}, {"commit", p.commit}, {"build_type", p.build_type},
          {"backend", p.backend}, {"device", p.device}, {"host", p.host},
          {"time", p.time},       {"command", p.command}};
}

ojson to_json(const DetailedFtFit& f) {
  return {{"slope", f.slope},         {"slope_stderr", f.slope_stderr},
          {"intercept", f.intercept}, {"intercept_stderr", f.intercept_stderr},
          {"bins_used", f.bins_used}, {"chi2_per_dof", f.chi2_per_dof},
          {"min_count", f.min_count}, {"lo", f.lo},
          {"hi", f.hi}};
}

ojson to_json(const ModeOccupancy& o) {
  ojson j{{"means", o.means}, {"counts", o.counts}, {"fractions", o.fractions},
          {"fraction_stderr", o.fraction_stderr}, {"target_weights", o.target_weights}};
  j["model_weights"] = o.model_weights.empty() ? ojson(nullptr) : ojson(o.model_weights);
  return j;
}

// config_to_json is the one writer of a config (host/config/config.cpp); its text is read back
// here rather than built a second time.
ojson to_json(const Config& c) { return config_json(c); }

ojson provenance_json(const std::string& backend, const std::string& device,
                      const std::string& command) {
  return to_json(make_provenance(backend, device, command));
}

// Strings that are not valid UTF-8 (a user's file name) are written with U+FFFD, never thrown on.
std::string dump(const ojson& document, int indent) {
  return document.dump(indent, ' ', false, ojson::error_handler_t::replace) + "\n";
}

}  // namespace detail
}  // namespace taep

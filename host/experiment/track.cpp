// TAEP and sample quality along a training run (taep/track.hpp).
#include "taep/track.hpp"

#include <chrono>
#include <cmath>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "host/config/config_json.hpp"
#include "host/io/input_file.hpp"
#include "host/io/json_fields.hpp"
#include "host/io/json_out.hpp"
#include "host/io/samples_file.hpp"
#include "taep/engine.hpp"
#include "taep/error.hpp"
#include "taep/problem.hpp"
#include "taep/sample.hpp"
#include "taep/train.hpp"

namespace taep {
namespace {

using fields::fail;
using ojson = nlohmann::ordered_json;

struct Snapshot {
  std::uint64_t step = 0;
  std::string file;  // as the manifest names it
  double loss = 0;
};

struct Manifest {
  std::vector<Snapshot> snapshots;
  TrainConfig train;
};

std::string in_dir(const std::string& dir, const std::string& file) {
  return !file.empty() && file[0] == '/' ? file : dir + "/" + file;
}

// The manifest of docs/snapshots.md: format and version checked, snapshots in step order.
Manifest read_manifest(const std::string& dir) {
  const std::string path = in_dir(dir, "manifest.json");
  const std::string text = detail::read_input_file(path, "snapshots");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    fail("snapshots", "\"" + path + "\" is not JSON: " + e.what());
  }
  if (!j.is_object() || j.value("format", "") != "taep-snapshots" || j.value("version", 0) != 1)
    fail("snapshots", "\"" + path + "\" is not a version-1 taep-snapshots manifest "
                      "(docs/snapshots.md)");
  Manifest m;
  const auto& list = j["snapshots"];
  if (!list.is_array() || list.empty())
    fail("snapshots", "\"" + path + "\" lists no snapshots (the training has not written one yet)");
  for (const auto& s : list) {
    if (!s.is_object() || !s["step"].is_number_unsigned() || !s["file"].is_string() ||
        !s["loss"].is_number())
      fail("snapshots", "\"" + path + "\": every snapshot needs step, file and loss");
    m.snapshots.push_back({s["step"].get<std::uint64_t>(), s["file"].get<std::string>(),
                           s["loss"].get<double>()});
    if (m.snapshots.size() > 1 && m.snapshots.back().step <= m.snapshots[m.snapshots.size() - 2].step)
      fail("snapshots", "\"" + path + "\": snapshots must be in increasing step order");
  }
  try {
    m.train = parse_train_config(j["config"].dump());
  } catch (const ConfigError& e) {
    fail("snapshots", "\"" + path + "\": its training config: " + e.what());
  }
  return m;
}

// The run config of the rows when none is given: the training's data and schedule.
Config run_config_of(const TrainConfig& t, int d) {
  Config c = default_config();
  c.target = TargetConfig{};
  if (!t.data.samples.empty())
    c.target.samples = t.data.samples;
  else
    c.target = t.data.target;
  c.schedule.sde = t.sde;
  c.schedule.t_min = t.t_min;
  c.run.paths = 10000;
  c.run.seed = t.seed;
  c.run.backend = t.backend;
  c.run.threads = t.threads;
  c.model = ModelConfig{};
  c.model.type = "mlp";
  if (d > 8) {
    c.model.divergence = Divergence::hutchinson;
    c.model.probes = 2;
  }
  return c;
}

std::vector<double> finite_rows(const std::vector<float>& x, int d, std::uint64_t& nonfinite) {
  std::vector<double> out;
  out.reserve(x.size());
  nonfinite = 0;
  for (std::size_t r = 0; r + std::size_t(d) <= x.size(); r += std::size_t(d)) {
    bool ok = true;
    for (int i = 0; i < d; ++i) ok = ok && std::isfinite(x[r + std::size_t(i)]);
    if (!ok) {
      ++nonfinite;
      continue;
    }
    for (int i = 0; i < d; ++i) out.push_back(x[r + std::size_t(i)]);
  }
  return out;
}

std::string reference_name(const Config& c, TrackReference r, const Snapshot& last) {
  if (r == TrackReference::last) return "snapshot " + last.file;
  const ReferenceType t = reference_type(c);
  return t == ReferenceType::mlp ? "mlp " + c.reference.weights : to_string(t);
}

std::string number(double x) {
  if (!std::isfinite(x)) return "";
  std::ostringstream s;
  s.precision(8);
  s << x;
  return s.str();
}

}  // namespace

TrackResult track(const TrackConfig& config,
                  const std::function<void(const TrackProgress&)>& on_progress) {
  const auto start = std::chrono::steady_clock::now();
  if (config.snapshots.empty()) fail("snapshots", "must name a snapshot directory (got none)");
  if (config.samples > 0 && config.k < 1) fail("coverage.k", "must be >= 1");
  const Manifest manifest = read_manifest(config.snapshots);
  const Snapshot& last = manifest.snapshots.back();
  const std::string last_path = in_dir(config.snapshots, last.file);
  const MlpModel last_model = load_mlp(last_path);

  TrackResult out;
  out.config = config;
  Config base = config.run ? *config.run : run_config_of(manifest.train, last_model.dim);
  const TrackConfig::Overrides& o = config.overrides;
  if (o.paths) base.run.paths = *o.paths;
  if (o.seed) base.run.seed = *o.seed;
  if (o.backend) base.run.backend = *o.backend;
  if (o.threads) base.run.threads = *o.threads;
  if (o.steps) base.schedule.steps = *o.steps;
  base.model.type = "mlp";
  if (config.reference == TrackReference::last) {
    base.reference.type = ReferenceType::mlp;
    base.reference.weights = last_path;
    base.schedule.scheme = Scheme::euler;  // no Milstein against a reference network
  }
  out.config.run = base;
  out.reference = reference_name(base, config.reference, last);

  std::optional<CoverageReference> real;
  if (!config.holdout.empty() && config.samples > 0) {
    const detail::SampleTable rows = detail::read_sample_file(config.holdout, "holdout");
    if (rows.d != last_model.dim)
      fail("holdout", "\"" + config.holdout + "\" has d = " + std::to_string(rows.d) +
                          ", the networks d = " + std::to_string(last_model.dim));
    CoverageOptions opt;
    opt.k = config.k;
    opt.threads = base.run.threads;
    real.emplace(SamplesView{rows.values.data(), rows.rows(), rows.d}, opt);
  }

  const int n = int(manifest.snapshots.size());
  for (int i = 0; i < n; ++i) {
    const Snapshot& s = manifest.snapshots[std::size_t(i)];
    const auto t0 = std::chrono::steady_clock::now();
    auto progress = [&](const char* stage) {
      if (on_progress) on_progress({i, n, s.step, stage});
    };
    TrackRow row;
    row.step = s.step;
    row.file = s.file;
    row.loss = s.loss;
    row.is_reference = config.reference == TrackReference::last && i + 1 == n;
    Config c = base;
    c.model.weights = in_dir(config.snapshots, s.file);
    MlpModel model = i + 1 == n ? last_model : load_mlp(c.model.weights);
    if (!row.is_reference) {
      progress("taep");
      RunOptions ro;
      ro.command = config.command;
      RunResult r = run(build_problem(c, model), ro);
      out.backend = r.performance.backend;
      out.device = r.performance.device;
      row.taep = std::move(r);
    }
    if (real) {
      progress("sample");
      Config sc = c;
      sc.reference = ReferenceConfig{};  // the samples need the model only
      if (sc.target.from_samples()) sc.reference.type = ReferenceType::empirical;
      const SampleResult samples = sample(build_problem(sc, std::move(model)), config.samples);
      progress("coverage");
      const std::vector<double> fake = finite_rows(samples.samples, samples.d, row.samples_nonfinite);
      const std::uint64_t nf = fake.size() / std::size_t(samples.d);
      if (nf > std::uint64_t(config.k))
        row.coverage = real->evaluate(SamplesView{fake.data(), nf, samples.d});
    }
    row.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    out.rows.push_back(std::move(row));
  }
  out.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  out.provenance = make_provenance(out.backend, out.device, config.command);
  return out;
}

std::string track_to_json(const TrackResult& r, int indent) {
  ojson rows = ojson::array();
  for (const TrackRow& row : r.rows) {
    ojson o{{"step", row.step}, {"file", row.file}, {"loss", row.loss},
            {"is_reference", row.is_reference}};
    if (row.taep) {
      o["taep"] = detail::to_json(row.taep->taep);
      o["ift"] = detail::to_json(row.taep->ift);
      o["hutchinson"] = row.taep->hutchinson ? detail::to_json(*row.taep->hutchinson) : ojson(nullptr);
      o["histogram"] = detail::to_json(row.taep->histogram);
    } else {
      o["taep"] = o["ift"] = o["hutchinson"] = o["histogram"] = nullptr;
    }
    if (row.coverage) {
      const CoverageResult& c = *row.coverage;
      o["coverage"] = ojson{{"precision", c.precision}, {"recall", c.recall},
                            {"density", c.density},     {"coverage", c.coverage},
                            {"k", c.k},                 {"n_real", c.n_real},
                            {"n_fake", c.n_fake}};
    } else {
      o["coverage"] = nullptr;
    }
    o["samples_nonfinite"] = row.samples_nonfinite;
    o["seconds"] = row.seconds;
    rows.push_back(std::move(o));
  }
  const TrackConfig& c = r.config;
  ojson doc{{"snapshots", c.snapshots},
            {"reference", r.reference},
            {"holdout", c.holdout.empty() ? ojson(nullptr) : ojson(c.holdout)},
            {"samples", c.samples},
            {"k", c.k},
            {"config", c.run ? detail::to_json(*c.run) : ojson(nullptr)},
            {"rows", rows},
            {"wall_seconds", r.wall_seconds},
            {"provenance", detail::to_json(r.provenance)}};
  return detail::dump(doc, indent);
}

namespace {
// The columns of the CSV and Markdown tables, one row per snapshot; empty where not measured.
std::vector<std::pair<std::string, std::vector<std::string>>> columns(const TrackResult& r) {
  std::vector<std::pair<std::string, std::vector<std::string>>> cols{
      {"step", {}},     {"loss", {}},      {"mean_S", {}},   {"stderr_mean", {}},
      {"var_S", {}},    {"stderr_var", {}}, {"ift", {}},     {"ift_stderr", {}},
      {"ess_fraction", {}}, {"precision", {}}, {"recall", {}}, {"density", {}},
      {"coverage", {}}};
  for (const TrackRow& row : r.rows) {
    const double nan = std::nan("");
    const TaepSummary* t = row.taep ? &row.taep->taep : nullptr;
    const IftSummary* f = row.taep ? &row.taep->ift : nullptr;
    const CoverageResult* c = row.coverage ? &*row.coverage : nullptr;
    const double v[] = {double(row.step), row.loss, t ? t->mean : nan, t ? t->stderr_mean : nan,
                        t ? t->variance : nan, t ? t->stderr_variance : nan,
                        f ? f->estimate : nan, f ? f->stderr_ : nan, f ? f->ess_fraction : nan,
                        c ? c->precision : nan, c ? c->recall : nan, c ? c->density : nan,
                        c ? c->coverage : nan};
    for (std::size_t i = 0; i < cols.size(); ++i)
      cols[i].second.push_back(i == 0 ? std::to_string(row.step) : number(v[i]));
  }
  return cols;
}
}  // namespace

std::string track_to_csv(const TrackResult& r) {
  const auto cols = columns(r);
  std::string out;
  for (std::size_t i = 0; i < cols.size(); ++i) out += (i ? "," : "") + cols[i].first;
  out += "\n";
  for (std::size_t row = 0; row < r.rows.size(); ++row) {
    for (std::size_t i = 0; i < cols.size(); ++i) out += (i ? "," : "") + cols[i].second[row];
    out += "\n";
  }
  return out;
}

std::string track_to_markdown(const TrackResult& r) {
  const auto cols = columns(r);
  std::string out = "TAEP against " + r.reference + " along training (" +
                    std::to_string(r.rows.size()) + " snapshots; " + r.backend + ", " +
                    number(r.wall_seconds) + " s)\n\n|";
  for (const auto& c : cols) out += " " + c.first + " |";
  out += "\n|";
  for (std::size_t i = 0; i < cols.size(); ++i) out += "---|";
  out += "\n";
  for (std::size_t row = 0; row < r.rows.size(); ++row) {
    out += "|";
    for (const auto& c : cols) out += " " + (c.second[row].empty() ? "-" : c.second[row]) + " |";
    out += "\n";
  }
  return out;
}

}  // namespace taep

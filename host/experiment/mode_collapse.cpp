// The mode-collapse experiment (experiment.hpp): train, sample, forward and reverse TAEP per model,
// and the tables. Each stage is the library's own entry point; this file only sequences them.
#include "taep/experiment.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <utility>

#include "host/config/config_json.hpp"
#include "host/io/atomic_file.hpp"
#include "host/io/input_file.hpp"
#include "host/io/json_out.hpp"
#include "host/mpi/communicator.hpp"
#include "taep/distributed.hpp"
#include "taep/engine.hpp"
#include "taep/error.hpp"
#include "taep/mlp.hpp"
#include "taep/physics/mixture.hpp"
#include "taep/physics/schedule.hpp"
#include "taep/physics/theory.hpp"

namespace taep {

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

std::string eps_name(double eps) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", eps);
  return buf;
}

bool file_exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::string read_file(const std::string& path) {
  detail::InputRead file = detail::read_input(path, detail::kMaxConfigBytes);
  if (!file.ok) throw Error("cannot read '" + path + "': " + std::strerror(file.error));
  return std::move(file.bytes);
}

// What --reuse-models takes from a model's training summary, and the config keys in which the
// training it records differs from the one this run would do ("" when none; threads and the log
// interval do not change the model).
struct StoredTraining {
  double seconds = 0, steps_per_second = 0, final_loss = 0;
  std::optional<double> loss_floor;
  std::string differs;
};

StoredTraining read_stored_training(const std::string& path, const TrainConfig& now) {
  StoredTraining s;
  try {
    const nlohmann::json j = nlohmann::json::parse(read_file(path));
    s.seconds = j.at("performance").at("wall_seconds").get<double>();
    s.steps_per_second = j.at("performance").at("steps_per_second").get<double>();
    s.final_loss = j.at("training").at("final_loss").get<double>();
    if (!j.at("training").at("loss_floor").is_null())
      s.loss_floor = j.at("training").at("loss_floor").get<double>();
    const nlohmann::json want = nlohmann::json::parse(detail::train_config_json(now).dump());
    for (const nlohmann::json& op : nlohmann::json::diff(j.at("config"), want)) {
      const std::string key = op.at("path").get<std::string>();
      if (key == "/run/threads" || key == "/run/log_every") continue;
      s.differs += (s.differs.empty() ? "" : ", ") + key.substr(1);
    }
  } catch (const nlohmann::json::exception& e) {
    throw ConfigError(path, std::string("not a training summary taep can reuse (") + e.what() +
                                "); delete it, or run without --reuse-models");
  }
  std::replace(s.differs.begin(), s.differs.end(), '/', '.');
  return s;
}

void make_dir(const std::string& path) {
  if (::mkdir(path.c_str(), 0777) != 0 && errno != EEXIST)
    throw ConfigError("--out-dir", "cannot create '" + path + "': " + std::strerror(errno));
}

std::vector<double> normalized(const std::vector<double>& w) {
  double sum = 0;
  for (double v : w) sum += v;
  std::vector<double> out(w.size());
  for (std::size_t i = 0; i < w.size(); ++i) out[i] = w[i] / sum;
  return out;
}

// The n-point Gauss-Hermite rule for E[g(Z)], Z ~ N(0, 1): Newton's method on the orthonormal
// Hermite recurrence for the physicists' rule (Numerical Recipes' gauher), rescaled by sqrt(2) and
// 1/sqrt(pi).
void gauss_hermite(int n, std::vector<double>& x, std::vector<double>& w) {
  x.assign(std::size_t(n), 0.0);
  w.assign(std::size_t(n), 0.0);
  const double pim4 = 0.7511255444649425;  // pi^(-1/4)
  double z = 0;
  for (int i = 0; i < (n + 1) / 2; ++i) {
    if (i == 0) z = std::sqrt(2.0 * n + 1) - 1.85575 * std::pow(2.0 * n + 1, -0.16667);
    else if (i == 1) z -= 1.14 * std::pow(double(n), 0.426) / z;
    else if (i == 2) z = 1.86 * z - 0.86 * x[0];
    else if (i == 3) z = 1.91 * z - 0.91 * x[1];
    else z = 2.0 * z - x[std::size_t(i - 2)];
    double pp = 0;
    for (int it = 0; it < 100; ++it) {
      double p1 = pim4, p2 = 0;
      for (int j = 0; j < n; ++j) {
        const double p3 = p2;
        p2 = p1;
        p1 = z * std::sqrt(2.0 / (j + 1)) * p2 - std::sqrt(double(j) / (j + 1)) * p3;
      }
      pp = std::sqrt(2.0 * n) * p2;
      const double z1 = z;
      z = z1 - p1 / pp;
      if (std::fabs(z - z1) <= 1e-15 * std::max(1.0, std::fabs(z))) break;
    }
    x[std::size_t(i)] = z;
    x[std::size_t(n - 1 - i)] = -z;
    w[std::size_t(i)] = w[std::size_t(n - 1 - i)] = 2.0 / (pp * pp);
  }
  for (int i = 0; i < n; ++i) {
    x[std::size_t(i)] *= std::sqrt(2.0);
    w[std::size_t(i)] /= std::sqrt(physics::kPi);
  }
}

// A mixture in the flat layout of physics::mixture_log_density.
struct FlatMixture {
  int d = 0, K = 0;
  std::vector<double> mean, log_w, w, sigma2;
  explicit FlatMixture(const MixtureSpec& m) : d(m.dim()), K(m.components()) {
    const std::vector<double> wn = normalized(m.weights);
    for (int k = 0; k < K; ++k) {
      for (double v : m.means[std::size_t(k)]) mean.push_back(v);
      w.push_back(wn[std::size_t(k)]);
      log_w.push_back(std::log(wn[std::size_t(k)]));
      sigma2.push_back(m.sigmas[std::size_t(k)] * m.sigmas[std::size_t(k)]);
    }
  }
  double log_density(double abar, const double* x) const {
    return physics::mixture_log_density(d, K, mean.data(), log_w.data(), sigma2.data(), abar, x);
  }
};

}  // namespace

LogRatioMoments log_ratio_moments(const MixtureSpec& p, const MixtureSpec& q, double abar, int nodes) {
  const FlatMixture fp(p), fq(q);
  if (fp.d < 1 || fp.d > 3 || fq.d != fp.d) throw ConfigError("same_mean_pair", "needs mixtures of one dimension d <= 3");
  std::vector<double> z, wz;
  gauss_hermite(nodes, z, wz);
  const int d = fp.d;
  std::size_t points = 1;
  for (int i = 0; i < d; ++i) points *= std::size_t(nodes);
  // Every component of p separately: log(p/q) is smooth on the scale of one component, so each
  // rule converges fast (the modes of the ring are 12 sigma apart).
  double m1 = 0, m2 = 0;
  const double sab = std::sqrt(abar);
  for (int k = 0; k < fp.K; ++k) {
    if (fp.w[std::size_t(k)] == 0) continue;
    const double sd = std::sqrt(physics::diffused_variance(fp.sigma2[std::size_t(k)], abar));
    double a1 = 0, a2 = 0;
    for (std::size_t pt = 0; pt < points; ++pt) {
      double x[3], weight = 1;
      std::size_t rest = pt;
      for (int i = 0; i < d; ++i) {
        const std::size_t j = rest % std::size_t(nodes);
        rest /= std::size_t(nodes);
        x[i] = sab * fp.mean[std::size_t(k * d + i)] + sd * z[j];
        weight *= wz[j];
      }
      const double f = fp.log_density(abar, x) - fq.log_density(abar, x);
      a1 += weight * f;
      a2 += weight * f * f;
    }
    m1 += fp.w[std::size_t(k)] * a1;
    m2 += fp.w[std::size_t(k)] * a2;
  }
  return {m1, m2 - m1 * m1};
}

double exact_mean_taep(const MixtureSpec& p, const MixtureSpec& q, const ScheduleConfig& s) {
  const physics::VpSchedule vp{s.beta_min, s.beta_max};
  return log_ratio_moments(p, q, vp.abar(s.t_min)).mean - log_ratio_moments(p, q, vp.abar(s.t_max)).mean;
}

MixtureSpec widened(const MixtureSpec& m, double c) {
  MixtureSpec out = m;
  for (double& s : out.sigmas) s *= c;
  return out;
}

WidthMatch match_mean_by_width(const MixtureSpec& p, double mean, const ScheduleConfig& schedule) {
  const auto g = [&](double c) { return exact_mean_taep(p, widened(p, c), schedule) - mean; };
  double lo = 1, hi = 2;
  WidthMatch out;
  while (g(hi) < 0) {
    lo = hi;
    hi *= 2;
    if (hi > 1e6) throw Error("same_mean_pair: no widening reaches the mean TAEP " + std::to_string(mean));
  }
  // The quadrature is deterministic and smooth in c, so bisection converges to the rounding level.
  while (hi - lo > 1e-12 * hi && out.steps < 200) {
    const double mid = 0.5 * (lo + hi);
    (g(mid) < 0 ? lo : hi) = mid;
    ++out.steps;
  }
  out.c = 0.5 * (lo + hi);
  return out;
}

ModeCollapseConfig mode_collapse_config(bool quick) {
  ModeCollapseConfig c;
  c.models.push_back({"uncollapsed", 0, 0.0});
  for (double eps : {0.09, 0.05, 0.02, 0.01, 0.005}) c.models.push_back({"m1_eps" + eps_name(eps), 1, eps});
  for (int m = 2; m <= 5; ++m) c.models.push_back({"m" + std::to_string(m) + "_eps0.01", m, 0.01});
  c.train = default_train_config();
  c.quick = quick;
  c.schedule.steps = 1000;
  c.schedule.scheme = Scheme::milstein;  // run_mode_collapse falls back to euler on cuda
  c.histogram.bins = 200;
  if (quick) {
    c.train.optimizer.steps = 2000;
    c.train.optimizer.batch = 1024;
    c.train.log_every = 250;
    c.paths = 16384;
    c.samples = 16384;
    c.plot_samples = 2000;
    c.schedule.steps = 200;
    c.histogram.bins = 100;
  }
  return c;
}

double relative_entropy_variance(const std::vector<double>& p, const std::vector<double>& q) {
  return physics::eq53_moments(p, q).variance;
}

double relative_entropy_variance_stderr(const std::vector<double>& p, const std::vector<double>& q,
                                        std::uint64_t n) {
  // dV/dq_j = -2 p_j (L_j - Lbar) / q_j; Cov(q) = (diag q - q q^T) / n for multinomial fractions.
  double lbar = 0;
  for (std::size_t k = 0; k < p.size(); ++k)
    if (p[k] != 0) lbar += p[k] * std::log(p[k] / q[k]);
  double gq = 0, g2q = 0;
  for (std::size_t k = 0; k < p.size(); ++k) {
    if (p[k] == 0) continue;
    const double g = -2.0 * p[k] * (std::log(p[k] / q[k]) - lbar) / q[k];
    gq += g * q[k];
    g2q += g * g * q[k];
  }
  return std::sqrt(std::max(0.0, (g2q - gq * gq) / double(n)));
}

ModeCollapseResult run_mode_collapse(const ModeCollapseConfig& cfg, const ExperimentOptions& options) {
  if (options.out_dir.empty()) throw ConfigError("--out-dir", "must name a directory");
  if (cfg.models.empty()) throw ConfigError("models", "must list at least one model");
  // Every setting is checked before the first model trains, not when its stage is reached.
  {
    TrainConfig tc = cfg.train;
    tc.backend = cfg.backend;
    tc.threads = cfg.threads;
    validate(tc);
    Config rc = default_config();  // the schedule, run and histogram fields (the model comes later)
    rc.schedule = cfg.schedule;
    rc.schedule.scheme = Scheme::euler;
    rc.run.paths = std::max(cfg.paths, cfg.samples);
    rc.run.seed = cfg.seed;
    rc.run.backend = cfg.backend;
    rc.run.threads = cfg.threads;
    rc.histogram = cfg.histogram;
    validate(rc);
    std::string why;
    if (cfg.backend == Backend::cuda && !cuda_available(&why))
      throw BackendUnavailable("--backend: 'cuda' is not available: " + why);
  }
  make_dir(options.out_dir);
  const std::string model_dir = options.out_dir + "/models";
  make_dir(model_dir);

  const auto t0 = Clock::now();
  ModeCollapseResult out;
  out.config = cfg;
  const MixtureSpec ring = ring8();
  const int K = ring.components();
  const std::vector<double> p = normalized(ring.weights);
  const int n_models = int(cfg.models.size());

  auto report = [&](const char* stage, int i, double fraction, const std::string& detail) {
    if (!options.on_progress) return;
    ExperimentProgress pr;
    pr.stage = stage;
    pr.model = cfg.models[std::size_t(i)].name;
    pr.model_index = i;
    pr.models = n_models;
    pr.fraction = fraction;
    pr.detail = detail;
    options.on_progress(pr);
  };

  // Model i's training config, weight file and training summary.
  const auto train_config_of = [&](int i) {
    const CollapseModelSpec& spec = cfg.models[std::size_t(i)];
    TrainConfig tc = cfg.train;
    tc.data = TrainDataConfig{};
    tc.data.target.preset = "ring8";
    if (spec.modes > 0) tc.data.collapse = CollapseSpec{spec.modes, spec.eps};
    tc.seed = cfg.seed + std::uint64_t(i);
    tc.backend = cfg.backend;
    tc.threads = cfg.threads;
    return tc;
  };
  const auto weights_of = [&](int i) { return model_dir + "/" + cfg.models[std::size_t(i)].name + ".safetensors"; };
  const auto summary_of = [&](int i) { return model_dir + "/" + cfg.models[std::size_t(i)].name + ".train.json"; };
  // Stage 1 of model i: train on the ring, collapsed or not (each model has its own training
  // seed), or reuse the files of an earlier run with the same training settings. Fills the row's
  // training fields; a model trained here goes to the TAEP stages from memory (`trained`), a reused
  // one is read from its file once, by build_problem.
  const auto train_stage = [&](int i, bool reuse, CollapseModelResult& row,
                               std::optional<MlpModel>& trained) {
    const TrainConfig tc = train_config_of(i);
    const std::string weights = weights_of(i), summary = summary_of(i);
    std::optional<StoredTraining> stored;
    if (reuse && file_exists(weights) && file_exists(summary)) {
      stored = read_stored_training(summary, tc);
      if (!stored->differs.empty())
        report("train", i, 0.0, "retraining: " + summary + " was trained with other " + stored->differs);
    }
    if (stored && stored->differs.empty()) {
      row.train_seconds = stored->seconds;
      row.train_steps_per_second = stored->steps_per_second;
      row.final_loss = stored->final_loss;
      row.loss_floor = stored->loss_floor;
      row.reused = true;
      report("train", i, 1.0, "reused " + weights);
      return;
    }
    TrainOptions to;
    to.on_log = [&](const TrainLogEntry& e, std::uint64_t total) {
      char detail[96];
      std::snprintf(detail, sizeof detail, "step %llu/%llu loss %.5f",
                    static_cast<unsigned long long>(e.step), static_cast<unsigned long long>(total), e.loss);
      report("train", i, double(e.step) / double(total), detail);
    };
    const TrainResult result = train(tc, to);
    row.train_seconds = result.wall_seconds;
    row.train_steps_per_second = result.steps_per_second;
    row.final_loss = result.final_loss;
    row.loss_floor = result.loss_floor;
    save_mlp(result.model, weights);
    detail::write_file_atomically(summary, train_result_to_json(result));
    trained = result.model;
  };

  // Under MPI (docs/distributed.md) the models train first, model i on rank i mod R by itself, and
  // their files are then every rank's: the TAEP stages below read them back and spread each
  // model's paths over all ranks (rank 0 alone writes the samples and holds the rows).
  const int ranks = job_size(), rank = job_rank();
  std::vector<char> trained_by_rank(std::size_t(n_models), 0);
  if (ranks > 1) {
    {
      detail::SoloScope solo;
      for (int i = rank; i < n_models; i += ranks) {
        CollapseModelResult row;
        std::optional<MlpModel> unused;
        train_stage(i, options.reuse_models, row, unused);
        trained_by_rank[std::size_t(i)] = row.reused ? 0 : 1;
      }
    }
    const std::vector<std::string> all = detail::world().gather(
        std::string(trained_by_rank.begin(), trained_by_rank.end()));
    for (const std::string& t : all)  // rank 0: which models some rank trained in this run
      for (std::size_t i = 0; i < t.size(); ++i) trained_by_rank[i] |= t[i];
    detail::world().broadcast("");  // with the gather, a barrier: every model's files are there
  }

  for (int i = 0; i < n_models; ++i) {
    const CollapseModelSpec& spec = cfg.models[std::size_t(i)];
    const auto tm = Clock::now();
    CollapseModelResult row;
    row.spec = spec;
    row.training_weights =
        normalized(spec.modes > 0 ? collapse(ring, CollapseSpec{spec.modes, spec.eps}).weights : ring.weights);
    const std::string weights = weights_of(i);
    std::optional<MlpModel> trained_model;
    train_stage(i, options.reuse_models || ranks > 1, row, trained_model);
    if (trained_by_rank[std::size_t(i)]) row.reused = false;  // trained in this run, by a rank

    // 2. The run config every TAEP stage shares: the uniform ring as target, the MLP as model.
    Config rc = default_config();
    rc.target = TargetConfig{};
    rc.target.preset = "ring8";
    rc.model = ModelConfig{};
    rc.model.type = "mlp";
    rc.model.weights = weights;
    rc.model.divergence = Divergence::exact;
    rc.schedule = cfg.schedule;
    // The CUDA MLP backend takes Euler steps only.
    if (resolve_backend(cfg.backend) == Backend::cuda) rc.schedule.scheme = Scheme::euler;
    rc.run.paths = cfg.paths;
    rc.run.seed = cfg.seed;
    rc.run.backend = cfg.backend;
    rc.run.threads = cfg.threads;
    rc.histogram = cfg.histogram;
    const Problem problem =
        trained_model ? build_problem(rc, std::move(*trained_model)) : build_problem(rc);

    // 3. Samples from the model and their mode occupancy.
    RunOptions ro;
    ro.on_progress = [&](const Progress& pr) {
      if (pr.paths_total) report("sample", i, double(pr.paths_done) / double(pr.paths_total), "");
    };
    const SampleResult samples = sample(problem, cfg.samples, ro);
    row.occupancy = samples.occupancy;
    if (is_root()) {
      std::string csv;
      csv.reserve(std::size_t(cfg.plot_samples) * 24 + 16);
      csv += "x0,x1\n";
      const std::uint64_t n = std::min<std::uint64_t>(cfg.plot_samples, samples.count);
      char line[64];
      for (std::uint64_t s = 0; s < n; ++s) {
        std::snprintf(line, sizeof line, "%.6g,%.6g\n", samples.samples[2 * s], samples.samples[2 * s + 1]);
        csv += line;
      }
      make_dir(options.out_dir + "/samples");
      detail::write_file_atomically(options.out_dir + "/samples/" + spec.name + ".csv", csv);
    }

    // 4. Forward and reverse TAEP: moments, IFT, detailed FT.
    ro.on_progress = [&](const Progress& pr) {
      if (pr.paths_total) report("dft", i, double(pr.paths_done) / double(pr.paths_total), "");
    };
    row.dft = detailed_ft(problem, ro);
    if (out.backend.empty()) {
      out.backend = row.dft.performance.backend;
      out.device = row.dft.performance.device;
      out.provenance = make_provenance(out.backend, out.device, options.command);
    }

    // 5. Theory: eq. 55 at the nominal collapse, eq. 53 at the measured weights.
    row.variance_eq55 = physics::eq55_variance(spec.modes, spec.eps, K);
    std::uint64_t finite = 0;
    for (auto c : row.occupancy.counts) finite += c;
    bool all_seen = finite > 0;
    for (double f : row.occupancy.fractions) all_seen = all_seen && f > 0;
    if (all_seen) {
      row.variance_eq53 = relative_entropy_variance(p, row.occupancy.fractions);
      row.variance_eq53_stderr = relative_entropy_variance_stderr(p, row.occupancy.fractions, finite);
    } else {
      row.variance_eq53 = std::numeric_limits<double>::infinity();
      row.variance_eq53_stderr = std::numeric_limits<double>::quiet_NaN();
    }
    row.seconds = seconds_since(tm);
    if (options.on_model) options.on_model(row);
    out.models.push_back(std::move(row));
  }
  out.wall_seconds = seconds_since(t0);
  return out;
}

// ---- outputs ------------------------------------------------------------------------------------

namespace {

using ojson = nlohmann::ordered_json;

ojson number(double v) { return std::isfinite(v) ? ojson(v) : ojson(nullptr); }

ojson fit_json(const DetailedFtFit& f) {
  return {{"slope", number(f.slope)},         {"slope_stderr", number(f.slope_stderr)},
          {"intercept", number(f.intercept)}, {"intercept_stderr", number(f.intercept_stderr)},
          {"bins_used", f.bins_used},         {"chi2_per_dof", number(f.chi2_per_dof)},
          {"min_count", f.min_count},         {"lo", number(f.lo)},
          {"hi", number(f.hi)}};
}

double ift_z(const IftSummary& s) { return s.stderr_ > 0 ? (s.estimate - 1.0) / s.stderr_ : 0.0; }

}  // namespace

std::string mode_collapse_to_json(const ModeCollapseResult& r, int indent) {
  ojson j;
  const ModeCollapseConfig& c = r.config;
  ojson models = ojson::array();
  for (const auto& m : c.models) models.push_back({{"name", m.name}, {"modes", m.modes}, {"eps", m.eps}});
  j["config"] = {{"quick", c.quick},
                 {"backend", to_string(c.backend)},
                 {"models", models},
                 {"train", detail::train_config_json(c.train)},
                 {"paths", c.paths},
                 {"samples", c.samples},
                 {"plot_samples", c.plot_samples},
                 {"steps", c.schedule.steps},
                 {"scheme", to_string(c.schedule.scheme)},
                 {"t_min", c.schedule.t_min},
                 {"t_max", c.schedule.t_max},
                 {"histogram_bins", c.histogram.bins},
                 {"seed", c.seed}};
  ojson rows = ojson::array();
  for (const auto& m : r.models) {
    const auto& f = m.dft.forward;
    ojson row;
    row["name"] = m.spec.name;
    row["modes"] = m.spec.modes;
    row["eps"] = m.spec.eps;
    row["scheme"] = to_string(m.dft.config.schedule.scheme);
    row["training_weights"] = m.training_weights;
    row["train"] = {{"reused", m.reused},
                    {"seconds", m.train_seconds},
                    {"steps_per_second", m.train_steps_per_second},
                    {"final_loss", m.final_loss},
                    {"loss_floor", m.loss_floor ? ojson(*m.loss_floor) : ojson(nullptr)}};
    row["occupancy"] = {{"counts", m.occupancy.counts},
                        {"fractions", m.occupancy.fractions},
                        {"fraction_stderr", m.occupancy.fraction_stderr}};
    row["taep"] = {{"count", f.count},         {"mean", f.mean},
                   {"stderr_mean", f.stderr_mean}, {"variance", f.variance},
                   {"skewness", f.skewness},   {"excess_kurtosis", f.excess_kurtosis},
                   {"nonfinite", f.nonfinite}};
    row["reverse_taep"] = {{"count", m.dft.reverse.count},
                           {"mean", m.dft.reverse.mean},
                           {"variance", m.dft.reverse.variance},
                           {"nonfinite", m.dft.reverse.nonfinite}};
    row["ift"] = {{"estimate", m.dft.forward_ift.estimate},
                  {"stderr", m.dft.forward_ift.stderr_},
                  {"z", ift_z(m.dft.forward_ift)},
                  {"ess", m.dft.forward_ift.ess}};
    row["reverse_ift"] = {{"estimate", m.dft.reverse_ift.estimate},
                          {"stderr", m.dft.reverse_ift.stderr_},
                          {"z", ift_z(m.dft.reverse_ift)},
                          {"ess", m.dft.reverse_ift.ess}};
    row["dft_fit"] = fit_json(m.dft.fit);
    row["theory"] = {{"variance_eq55", m.variance_eq55},
                     {"variance_eq53_measured", number(m.variance_eq53)},
                     {"variance_eq53_measured_stderr", number(m.variance_eq53_stderr)}};
    row["histograms"] = {{"edges", m.dft.forward_histogram.edges},
                         {"forward", m.dft.forward_histogram.counts},
                         {"reverse", m.dft.reverse_histogram.counts}};
    row["seconds"] = m.seconds;
    rows.push_back(row);
  }
  j["models"] = rows;
  j["performance"] = {{"backend", r.backend}, {"device", r.device}, {"wall_seconds", r.wall_seconds}};
  j["provenance"] = detail::to_json(r.provenance);
  return detail::dump(j, indent);
}

std::string mode_collapse_to_csv(const ModeCollapseResult& r) {
  std::ostringstream s;
  s.precision(8);
  s << "name,modes,eps,collapsed_fraction,collapsed_fraction_stderr,taep_mean,taep_mean_stderr,"
       "taep_variance,variance_eq55,variance_eq53_measured,variance_eq53_measured_stderr,"
       "ift,ift_stderr,dft_slope,dft_slope_stderr,dft_intercept,dft_intercept_stderr,"
       "final_loss,loss_floor,train_seconds,seconds\n";
  for (const auto& m : r.models) {
    double frac = 0, var = 0;
    for (int k = 0; k < m.spec.modes; ++k) frac += m.occupancy.fractions[std::size_t(k)];
    for (int k = 0; k < m.spec.modes; ++k) {
      const double e = m.occupancy.fraction_stderr[std::size_t(k)];
      var += e * e;
    }
    auto num = [&](double v) {
      if (std::isfinite(v)) s << v; else s << "";
    };
    s << m.spec.name << ',' << m.spec.modes << ',' << m.spec.eps << ',';
    if (m.spec.modes > 0) { num(frac); s << ','; num(std::sqrt(var)); } else { s << ','; }
    s << ',';
    const auto& f = m.dft.forward;
    num(f.mean); s << ','; num(f.stderr_mean); s << ','; num(f.variance); s << ',';
    num(m.variance_eq55); s << ','; num(m.variance_eq53); s << ','; num(m.variance_eq53_stderr); s << ',';
    num(m.dft.forward_ift.estimate); s << ','; num(m.dft.forward_ift.stderr_); s << ',';
    num(m.dft.fit.slope); s << ','; num(m.dft.fit.slope_stderr); s << ',';
    num(m.dft.fit.intercept); s << ','; num(m.dft.fit.intercept_stderr); s << ',';
    num(m.final_loss); s << ','; if (m.loss_floor) num(*m.loss_floor); s << ',';
    num(m.train_seconds); s << ','; num(m.seconds); s << '\n';
  }
  return s.str();
}

std::string mode_collapse_to_markdown(const ModeCollapseResult& r) {
  std::ostringstream s;
  char buf[512];
  s << "# Mode-collapse experiment" << (r.config.quick ? " (quick)" : "") << "\n\n";
  std::snprintf(buf, sizeof buf,
                "Backend %s (%s); %zu models; training %llu steps at batch %d; %llu forward and %llu "
                "reverse paths and %llu samples per model; %d %s steps on [%g, %g]; wall time %.0f s.\n\n",
                r.backend.c_str(), r.device.c_str(), r.models.size(),
                static_cast<unsigned long long>(r.config.train.optimizer.steps), r.config.train.optimizer.batch,
                static_cast<unsigned long long>(r.config.paths), static_cast<unsigned long long>(r.config.paths),
                static_cast<unsigned long long>(r.config.samples), r.config.schedule.steps,
                to_string(r.models.empty() ? r.config.schedule.scheme : r.models[0].dft.config.schedule.scheme),
                r.config.schedule.t_min, r.config.schedule.t_max,
                r.wall_seconds);
  s << buf;
  s << "| model | m | eps | collapsed-mode fraction | <S> | Var(S) | eq. 55 | eq. 53 (measured "
       "weights) | Var/eq.53 | <exp(-S)> | IFT z | DFT slope | DFT intercept |\n";
  s << "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";
  for (const auto& m : r.models) {
    double frac = 0, var = 0;
    for (int k = 0; k < m.spec.modes; ++k) {
      frac += m.occupancy.fractions[std::size_t(k)];
      var += m.occupancy.fraction_stderr[std::size_t(k)] * m.occupancy.fraction_stderr[std::size_t(k)];
    }
    const auto& f = m.dft.forward;
    std::string frac_s = "-";
    if (m.spec.modes > 0) {
      std::snprintf(buf, sizeof buf, "%.4f ± %.4f", frac, std::sqrt(var));
      frac_s = buf;
    }
    std::string eq53 = "n/a (a mode got no samples)", ratio = "-";
    if (std::isfinite(m.variance_eq53)) {
      std::snprintf(buf, sizeof buf, "%.4f ± %.4f", m.variance_eq53, m.variance_eq53_stderr);
      eq53 = buf;
      std::snprintf(buf, sizeof buf, "%.3f", f.variance / m.variance_eq53);
      ratio = buf;
    }
    std::snprintf(buf, sizeof buf,
                  "| %s | %d | %g | %s | %.4f ± %.4f | %.4f | %.4f | %s | %s | %.5f ± %.5f | %+.2f | "
                  "%.3f ± %.3f | %+.3f ± %.3f |\n",
                  m.spec.name.c_str(), m.spec.modes, m.spec.eps, frac_s.c_str(), f.mean, f.stderr_mean,
                  f.variance, m.variance_eq55, eq53.c_str(), ratio.c_str(), m.dft.forward_ift.estimate,
                  m.dft.forward_ift.stderr_, ift_z(m.dft.forward_ift), m.dft.fit.slope,
                  m.dft.fit.slope_stderr, m.dft.fit.intercept, m.dft.fit.intercept_stderr);
    s << buf;
  }
  s << "\nCollapsed-mode fraction: the share of reverse-process samples nearest the m collapsed modes "
       "(trained weight m eps). eq. 53 uses the measured per-mode fractions; its error is the "
       "multinomial error of those fractions. IFT z = (<exp(-S)> - 1) / stderr. The detailed-FT "
       "fit is log(P_f/P_r) against sigma over the bins where both histograms have counts.\n";
  return s.str();
}

}  // namespace taep

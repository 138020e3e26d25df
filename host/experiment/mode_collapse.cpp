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
  double log_density(const physics::Marginal& m, const double* x) const {
    return physics::mixture_log_density(d, K, mean.data(), log_w.data(), sigma2.data(), m, x);
  }
};

}  // namespace

LogRatioMoments log_ratio_moments(const MixtureSpec& p, const MixtureSpec& q,
                                  const physics::Marginal& m, int nodes) {
  const FlatMixture fp(p), fq(q);
  if (fp.d < 1 || fp.d > 3 || fq.d != fp.d)
    throw ConfigError("same_mean_pair", "needs mixtures of one dimension d <= 3");
  std::vector<double> z, wz;
  gauss_hermite(nodes, z, wz);
  const int d = fp.d;
  std::size_t points = 1;
  for (int i = 0; i < d; ++i) points *= std::size_t(nodes);
  // Every component of p separately: log(p/q) is smooth on the scale of one component, so each
  // rule converges fast (the modes of the ring are 12 sigma apart).
  double m1 = 0, m2 = 0;
  const double sab = m.scale;
  for (int k = 0; k < fp.K; ++k) {
    if (fp.w[std::size_t(k)] == 0) continue;
    const double sd = std::sqrt(physics::diffused_variance(fp.sigma2[std::size_t(k)], m));
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
      const double f = fp.log_density(m, x) - fq.log_density(m, x);
      a1 += weight * f;
      a2 += weight * f * f;
    }
    m1 += fp.w[std::size_t(k)] * a1;
    m2 += fp.w[std::size_t(k)] * a2;
  }
  return {m1, m2 - m1 * m1};
}

double exact_mean_taep(const MixtureSpec& p, const MixtureSpec& q, const ScheduleConfig& s) {
  return log_ratio_moments(p, q, s.sde.marginal(s.t_min)).mean -
         log_ratio_moments(p, q, s.sde.marginal(s.t_max)).mean;
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

  // Fig. 2c (same_mean_pair): the collapse's row among the models, and the width factor c of the
  // mediocre model, found first because the mediocre network trains on the widened ring.
  int pair_row = -1;
  for (int i = 0; i < n_models && cfg.same_mean_pair; ++i)
    if (cfg.models[std::size_t(i)].modes == cfg.same_mean_pair->modes &&
        cfg.models[std::size_t(i)].eps == cfg.same_mean_pair->eps && pair_row < 0)
      pair_row = i;
  const bool pair = pair_row >= 0;
  WidthMatch width;
  MixtureSpec mediocre;
  if (pair) {
    width = match_mean_by_width(ring, exact_mean_taep(ring, collapse(ring, *cfg.same_mean_pair), cfg.schedule),
                                cfg.schedule);
    mediocre = widened(ring, width.c);
  }
  // The networks to train: the models, then the pair's mediocre network (trained with seed + its index).
  std::vector<std::string> names;
  for (const auto& m : cfg.models) names.push_back(m.name);
  if (pair) names.push_back("mediocre");
  const int n_networks = int(names.size());

  auto report = [&](const char* stage, int i, double fraction, const std::string& detail) {
    if (!options.on_progress) return;
    ExperimentProgress pr;
    pr.stage = stage;
    pr.model = names[std::size_t(i)];
    pr.model_index = i;
    pr.models = n_networks;
    pr.fraction = fraction;
    pr.detail = detail;
    options.on_progress(pr);
  };

  // Network i's training config, weight file and training summary.
  const auto train_config_of = [&](int i) {
    TrainConfig tc = cfg.train;
    tc.data = TrainDataConfig{};
    if (i < n_models) {
      const CollapseModelSpec& spec = cfg.models[std::size_t(i)];
      tc.data.target.preset = "ring8";
      if (spec.modes > 0) tc.data.collapse = CollapseSpec{spec.modes, spec.eps};
    } else {
      tc.data.target.preset.clear();
      tc.data.target.mixture = mediocre;
    }
    tc.seed = cfg.seed + std::uint64_t(i);
    tc.backend = cfg.backend;
    tc.threads = cfg.threads;
    return tc;
  };
  const auto weights_of = [&](int i) { return model_dir + "/" + names[std::size_t(i)] + ".safetensors"; };
  const auto summary_of = [&](int i) { return model_dir + "/" + names[std::size_t(i)] + ".train.json"; };
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
  std::vector<char> trained_by_rank(std::size_t(n_networks), 0);
  if (ranks > 1) {
    {
      detail::SoloScope solo;
      for (int i = rank; i < n_networks; i += ranks) {
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

  // The run config every TAEP stage shares: the uniform ring as target, `model` as the model, on
  // the experiment's grid (Euler on CUDA, whose MLP backend takes Euler steps only).
  const auto run_config = [&](const ModelConfig& model) {
    Config rc = default_config();
    rc.target = TargetConfig{};
    rc.target.preset = "ring8";
    rc.model = model;
    rc.schedule = cfg.schedule;
    if (resolve_backend(cfg.backend) == Backend::cuda) rc.schedule.scheme = Scheme::euler;
    rc.run.paths = cfg.paths;
    rc.run.seed = cfg.seed;
    rc.run.backend = cfg.backend;
    rc.run.threads = cfg.threads;
    rc.histogram = cfg.histogram;
    return rc;
  };
  // Stages 2 and 3 of network i: its problem (from memory when trained here), and samples from it
  // with their mode occupancy, the first plot_samples written to samples/<name>.csv.
  const auto network_problem = [&](int i, std::optional<MlpModel>& trained_model) {
    ModelConfig mc;
    mc.type = "mlp";
    mc.weights = weights_of(i);
    mc.divergence = Divergence::exact;
    const Config rc = run_config(mc);
    return trained_model ? build_problem(rc, std::move(*trained_model)) : build_problem(rc);
  };
  const auto sample_stage = [&](int i, const Problem& problem) {
    RunOptions ro;
    ro.on_progress = [&](const Progress& pr) {
      if (pr.paths_total) report("sample", i, double(pr.paths_done) / double(pr.paths_total), "");
    };
    const SampleResult samples = sample(problem, cfg.samples, ro);
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
      detail::write_file_atomically(options.out_dir + "/samples/" + names[std::size_t(i)] + ".csv", csv);
    }
    return samples.occupancy;
  };

  for (int i = 0; i < n_models; ++i) {
    const CollapseModelSpec& spec = cfg.models[std::size_t(i)];
    const auto tm = Clock::now();
    CollapseModelResult row;
    row.spec = spec;
    row.training_weights =
        normalized(spec.modes > 0 ? collapse(ring, CollapseSpec{spec.modes, spec.eps}).weights : ring.weights);
    std::optional<MlpModel> trained_model;
    train_stage(i, options.reuse_models || ranks > 1, row, trained_model);
    if (trained_by_rank[std::size_t(i)]) row.reused = false;  // trained in this run, by a rank

    // 2. and 3. The network against the uniform ring, and its samples.
    const Problem problem = network_problem(i, trained_model);
    row.occupancy = sample_stage(i, problem);
    RunOptions ro;

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

  // Fig. 2c: the exact-score pair (engine runs of both models, and their exact means and variances
  // by quadrature), then the mediocre network through the stages of a model (its forward TAEP by
  // run(): the figure needs no reverse paths); the collapsed network is the pair's row.
  if (pair) {
    const auto tp = Clock::now();
    SameMeanPairResult pr;
    pr.collapse = *cfg.same_mean_pair;
    pr.collapse_model = names[std::size_t(pair_row)];
    pr.width_factor = width.c;
    pr.bisection_steps = width.steps;
    const physics::Marginal start = cfg.schedule.sde.marginal(cfg.schedule.t_min);
    const auto exact_model = [&](const ModelConfig& model, const MixtureSpec& q) {
      const RunResult r = run(build_problem(run_config(model)));
      ExactPairModel e;
      e.taep = r.taep;
      e.histogram = r.histogram;
      if (r.reference) e.reference = *r.reference;
      e.mean_theory = exact_mean_taep(ring, q, cfg.schedule);
      e.variance_theory = log_ratio_moments(ring, q, start).variance;
      return e;
    };
    ModelConfig exact;
    exact.collapse = *cfg.same_mean_pair;
    pr.exact_collapse = exact_model(exact, collapse(ring, *cfg.same_mean_pair));
    exact.collapse.reset();
    exact.mixture = mediocre;
    pr.exact_mediocre = exact_model(exact, mediocre);

    const int i = n_models;
    CollapseModelResult row;
    std::optional<MlpModel> trained_model;
    train_stage(i, options.reuse_models || ranks > 1, row, trained_model);
    pr.training_sigmas = mediocre.sigmas;
    pr.train_seconds = row.train_seconds;
    pr.train_steps_per_second = row.train_steps_per_second;
    pr.final_loss = row.final_loss;
    pr.loss_floor = row.loss_floor;
    pr.reused = row.reused && !trained_by_rank[std::size_t(i)];
    const Problem problem = network_problem(i, trained_model);
    pr.occupancy = sample_stage(i, problem);
    RunOptions ro;
    ro.on_progress = [&](const Progress& p) {
      if (p.paths_total) report("taep", i, double(p.paths_done) / double(p.paths_total), "");
    };
    const RunResult r = run(problem, ro);
    pr.network_taep = r.taep;
    pr.network_ift = r.ift;
    pr.network_histogram = r.histogram;
    pr.seconds = seconds_since(tp);
    out.same_mean_pair = std::move(pr);
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

ojson taep_json(const TaepSummary& t) {
  return {{"count", t.count},
          {"mean", number(t.mean)},
          {"stderr_mean", number(t.stderr_mean)},
          {"variance", number(t.variance)},
          {"stderr_variance", number(t.stderr_variance)},
          {"nonfinite", t.nonfinite}};
}

// The two means of a pair, and the error of their difference. The two sides' forward paths are the
// same paths (same target, seed and grid), but S of the collapse depends on the mode a path is in and
// S of the widened ring on its distance from the mode's centre, so their covariance is neglected.
void add_difference(ojson& j, double mean_a, double se_a, double mean_b, double se_b) {
  const double d = mean_a - mean_b, se = std::sqrt(se_a * se_a + se_b * se_b);
  j["mean_difference"] = number(d);
  j["mean_difference_stderr"] = number(se);
  j["z"] = number(se > 0 ? d / se : 0.0);
}
void add_difference(ojson& j, const TaepSummary& a, const TaepSummary& b) {
  add_difference(j, a.mean, a.stderr_mean, b.mean, b.stderr_mean);
}
double reference_stderr(const ExactPairModel& e) {
  return e.taep.count ? std::sqrt(e.reference.variance / double(e.taep.count)) : 0.0;
}

ojson histogram_json(const HistogramResult& h) {
  return {{"edges", h.edges}, {"counts", h.counts}, {"underflow", h.underflow}, {"overflow", h.overflow}};
}

ojson same_mean_pair_json(const ModeCollapseResult& r) {
  if (!r.same_mean_pair) return nullptr;
  const SameMeanPairResult& p = *r.same_mean_pair;
  const auto exact_json = [](const ExactPairModel& e) {
    return ojson{{"taep", taep_json(e.taep)},
                 {"reference", {{"mean", number(e.reference.mean)},
                                {"variance", number(e.reference.variance)},
                                {"rms_path_error", number(e.reference.rms_path_error)}}},
                 {"mean_theory", number(e.mean_theory)},
                 {"variance_theory", number(e.variance_theory)},
                 {"histogram", histogram_json(e.histogram)}};
  };
  ojson j;
  j["collapse"] = {{"model", p.collapse_model}, {"modes", p.collapse.modes}, {"eps", p.collapse.eps}};
  j["width_factor"] = p.width_factor;
  j["bisection_steps"] = p.bisection_steps;
  j["mediocre_sigmas"] = p.training_sigmas;
  ojson exact = {{"collapse", exact_json(p.exact_collapse)}, {"mediocre", exact_json(p.exact_mediocre)}};
  add_difference(exact, p.exact_collapse.taep, p.exact_mediocre.taep);
  // R has no time-discretization bias in its mean (S has O(h): docs/physics.md section 4).
  ojson reference;
  add_difference(reference, p.exact_collapse.reference.mean, reference_stderr(p.exact_collapse),
                 p.exact_mediocre.reference.mean, reference_stderr(p.exact_mediocre));
  exact["reference_difference"] = reference;
  j["exact"] = exact;
  const CollapseModelResult* row = nullptr;
  for (const auto& m : r.models)
    if (m.spec.name == p.collapse_model) row = &m;
  ojson network;
  network["collapse"] = {{"model", p.collapse_model}, {"taep", row ? taep_json(row->dft.forward) : ojson(nullptr)}};
  network["mediocre"] = {{"model", "mediocre"},
                         {"train", {{"reused", p.reused},
                                    {"seconds", p.train_seconds},
                                    {"steps_per_second", p.train_steps_per_second},
                                    {"final_loss", p.final_loss},
                                    {"loss_floor", p.loss_floor ? ojson(*p.loss_floor) : ojson(nullptr)}}},
                         {"occupancy", {{"counts", p.occupancy.counts},
                                        {"fractions", p.occupancy.fractions},
                                        {"fraction_stderr", p.occupancy.fraction_stderr}}},
                         {"taep", taep_json(p.network_taep)},
                         {"ift", {{"estimate", p.network_ift.estimate},
                                  {"stderr", p.network_ift.stderr_},
                                  {"z", ift_z(p.network_ift)},
                                  {"ess", p.network_ift.ess}}},
                         {"histogram", histogram_json(p.network_histogram)}};
  if (row) add_difference(network, row->dft.forward, p.network_taep);
  j["network"] = network;
  j["seconds"] = p.seconds;
  return j;
}

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
  j["same_mean_pair"] = same_mean_pair_json(r);
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
  if (r.same_mean_pair) {
    const SameMeanPairResult& p = *r.same_mean_pair;
    const CollapseModelResult* row = nullptr;
    for (const auto& m : r.models)
      if (m.spec.name == p.collapse_model) row = &m;
    std::snprintf(buf, sizeof buf,
                  "\n## Same mean, different variance (Fig. 2c)\n\n%s against the ring with every width "
                  "times c = %.6f (the c at which the exact models' mean TAEP are equal).\n\n",
                  p.collapse_model.c_str(), p.width_factor);
    s << buf;
    s << "| model | score | <S> | Var(S) | <R> | Var(R) | exact <S> | exact Var(S) |\n"
         "|---|---|---|---|---|---|---|---|\n";
    const auto line = [&](const char* name, bool exact, const TaepSummary& t, const ExactPairModel& e) {
      std::string ref = "- | -";
      if (exact) {
        std::snprintf(buf, sizeof buf, "%.4f ± %.4f | %.4f", e.reference.mean, reference_stderr(e),
                      e.reference.variance);
        ref = buf;
      }
      std::snprintf(buf, sizeof buf, "| %s | %s | %.4f ± %.4f | %.4f ± %.4f | %s | %.4f | %.4f |\n", name,
                    exact ? "exact" : "network", t.mean, t.stderr_mean, t.variance, t.stderr_variance, ref.c_str(),
                    e.mean_theory, e.variance_theory);
      s << buf;
    };
    line(p.collapse_model.c_str(), true, p.exact_collapse.taep, p.exact_collapse);
    line("mediocre", true, p.exact_mediocre.taep, p.exact_mediocre);
    if (row) line(p.collapse_model.c_str(), false, row->dft.forward, p.exact_collapse);
    line("mediocre", false, p.network_taep, p.exact_mediocre);
    s << "\nR: the closed form of S for exact scores (no time-discretization bias; S has O(h)). Exact <S>: "
         "KL(p||q) at t_min minus at t_max by quadrature; exact Var(S): Var of log(p/q) at t_min (eq. 40).\n";
  }
  return s.str();
}

}  // namespace taep

// `taep::train` (train.hpp): the TrainProblem a trainer runs, the training loop over log windows,
// the loss floor of mixture data, the DSM loss of a model, and the result JSON.
#include "taep/train.hpp"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "host/config/config_json.hpp"
#include "host/engine/byte_stream.hpp"
#include "host/engine/checkpoint.hpp"
#include "host/engine/trainer.hpp"
#include "host/io/atomic_file.hpp"
#include "host/io/input_file.hpp"
#include "host/io/json_out.hpp"
#include "host/io/safetensors.hpp"
#include "taep/engine.hpp"
#include "taep/error.hpp"
#include "taep/physics/dsm.hpp"
#include "taep/physics/mixture.hpp"
#include "taep/physics/philox.hpp"
#include "taep/physics/rng_streams.hpp"

namespace taep {
namespace detail {

// ---- TrainProblem ---------------------------------------------------------------------------------

int TrainProblem::max_width() const {
  int w = 0;
  for (const TrainLayer& l : layers) w = std::max(w, l.out);
  return w;
}

physics::DsmData TrainProblem::data() const {
  physics::DsmData D;
  D.d = d;
  D.K = K;
  D.mean = mean.empty() ? nullptr : mean.data();
  D.sigma = sigma.empty() ? nullptr : sigma.data();
  D.cum_w = cum_w.empty() ? nullptr : cum_w.data();
  D.samples = samples.empty() ? nullptr : samples.data();
  D.sample_count = sample_count;
  D.t_min = t_min;
  D.schedule = schedule;
  return D;
}

double TrainProblem::flops_per_step() const {
  double per_example = 0;
  for (std::size_t l = 0; l < layers.size(); ++l) {
    const double mac = double(layers[l].in) * layers[l].out;
    per_example += 2 * mac * (l == 0 ? 2 : 3);  // forward, weight gradient, input gradient (l > 0)
  }
  return per_example * batch;
}

MlpModel TrainProblem::to_model(const std::vector<float>& flat) const {
  TAEP_EXPECTS(flat.size() == parameter_count, "flat parameters of the wrong size");
  MlpModel m;
  m.dim = d;
  m.embedding_dim = embedding_dim;
  m.time_scale = time_scale;
  m.max_period = max_period;
  m.parameterization = parameterization;
  m.activation = "silu";
  m.trained_schedule = schedule;
  for (const TrainLayer& l : layers) {
    MlpLayer layer;
    layer.in = l.in;
    layer.out = l.out;
    layer.weight.assign(flat.begin() + std::ptrdiff_t(l.weight),
                        flat.begin() + std::ptrdiff_t(l.weight + std::size_t(l.in) * l.out));
    layer.bias.assign(flat.begin() + std::ptrdiff_t(l.bias),
                      flat.begin() + std::ptrdiff_t(l.bias + std::size_t(l.out)));
    m.layers.push_back(std::move(layer));
  }
  return m;
}

std::vector<float> TrainProblem::flatten(const MlpModel& m) const {
  TAEP_EXPECTS(m.layers.size() == layers.size(), "model does not match the problem's layers");
  std::vector<float> flat(parameter_count);
  for (std::size_t i = 0; i < layers.size(); ++i) {
    const TrainLayer& l = layers[i];
    TAEP_EXPECTS(m.layers[i].in == l.in && m.layers[i].out == l.out,
                 "model does not match the problem's layer shapes");
    std::copy(m.layers[i].weight.begin(), m.layers[i].weight.end(), flat.begin() + std::ptrdiff_t(l.weight));
    std::copy(m.layers[i].bias.begin(), m.layers[i].bias.end(), flat.begin() + std::ptrdiff_t(l.bias));
  }
  return flat;
}

std::vector<float> initial_parameters(const std::vector<TrainLayer>& layers,
                                      std::size_t parameter_count, std::uint64_t seed) {
  std::vector<float> flat(parameter_count, 0.f);
  for (std::size_t l = 0; l < layers.size(); ++l) {
    rng::PhiloxHostStream stream(seed, rng::subsequence(rng::kTrainInit, l));
    physics::WordSource<rng::PhiloxHostStream> words(stream);
    const float bound = float(1.0 / std::sqrt(double(layers[l].in)));
    const std::size_t nw = std::size_t(layers[l].in) * layers[l].out;
    for (std::size_t i = 0; i < nw; ++i)
      flat[layers[l].weight + i] = physics::init_uniform(words.next(), bound);
    for (int i = 0; i < layers[l].out; ++i)
      flat[layers[l].bias + std::size_t(i)] = physics::init_uniform(words.next(), bound);
  }
  return flat;
}

TrainProblem make_train_problem(const taep::TrainProblem& problem) {
  TrainProblem P;
  const TrainConfig& c = problem.config();
  const bool samples = !c.data.samples.empty();
  P.d = problem.dim();
  TAEP_EXPECTS(P.d >= 1, "make_train_problem needs a built problem");
  P.embedding_dim = c.network.embedding_dim;
  P.time_scale = c.network.time_scale;
  P.max_period = c.network.max_period;
  P.parameterization = c.network.parameterization;

  int in = P.d + P.embedding_dim;
  std::size_t offset = 0;
  std::vector<int> outs = c.network.hidden;
  outs.push_back(P.d);
  for (int out : outs) {
    TrainLayer l;
    l.in = in;
    l.out = out;
    l.weight = offset;
    l.bias = offset + std::size_t(in) * out;
    offset = l.bias + std::size_t(out);
    P.layers.push_back(l);
    in = out;
  }
  P.parameter_count = offset;
  P.initial = initial_parameters(P.layers, P.parameter_count, c.seed);

  if (samples) {
    P.sample_count = std::uint32_t(problem.sample_count());
    P.samples.reserve(problem.samples().size());
    for (double v : problem.samples()) P.samples.push_back(float(v));
  } else {
    const MixtureSpec m = c.data.collapse ? collapse(c.data.target.mixture, *c.data.collapse)
                                          : c.data.target.mixture;
    P.K = m.components();
    double total = 0;
    for (double w : m.weights) total += w;
    double cum = 0;
    for (int k = 0; k < P.K; ++k) {
      cum += m.weights[std::size_t(k)] / total;
      P.cum_w.push_back(k + 1 == P.K ? 1.0 : cum);
      for (double v : m.means[std::size_t(k)]) P.mean.push_back(float(v));
      P.sigma.push_back(float(m.sigmas[std::size_t(k)]));
    }
  }
  P.t_min = c.t_min;
  P.schedule = c.sde;

  P.batch = c.optimizer.batch;
  P.steps = c.optimizer.steps;
  P.lr = c.optimizer.lr;
  P.beta1 = c.optimizer.beta1;
  P.beta2 = c.optimizer.beta2;
  P.adam_eps = c.optimizer.adam_eps;
  P.clip_norm = c.optimizer.clip_norm;
  P.ema_decay = c.optimizer.ema_decay;
  P.seed = c.seed;
  return P;
}

TrainProblem make_train_problem(const TrainConfig& config) {
  return make_train_problem(build_train_problem(config));
}

}  // namespace detail

namespace {

using Clock = std::chrono::steady_clock;

// The exact score of the data mixture (positive-weight components only) at one example's time, by
// the streaming softmax of physics/mixture.hpp.
class ExactDataScore {
 public:
  explicit ExactDataScore(const TrainConfig& c) {
    const MixtureSpec m = c.data.collapse ? collapse(c.data.target.mixture, *c.data.collapse)
                                          : c.data.target.mixture;
    d_ = m.dim();
    double total = 0;
    for (double w : m.weights) total += w;
    for (int k = 0; k < m.components(); ++k) {
      if (!(m.weights[std::size_t(k)] > 0)) continue;
      log_w_.push_back(std::log(m.weights[std::size_t(k)] / total));
      sigma2_.push_back(m.sigmas[std::size_t(k)] * m.sigmas[std::size_t(k)]);
      for (double v : m.means[std::size_t(k)]) mean_.push_back(float(v));
    }
    comp_.resize(log_w_.size());
  }
  // s*(x, t) into s[0..d).
  void operator()(const physics::DsmTime& tm, const float* x, float* s) {
    const int K = int(log_w_.size());
    for (int k = 0; k < K; ++k)
      comp_[std::size_t(k)] = physics::component_step_at(d_, log_w_[std::size_t(k)],
                                                         sigma2_[std::size_t(k)], tm.marginal);
    physics::MixtureSums<0, float> sums, unused;
    unused.clear(d_);
    physics::accumulate_mixture<0>(d_, K, mean_.data(), comp_.data(), nullptr, tm.mean_scale, x, x,
                                   false, sums, unused);
    physics::ScoreEval<0, float> e;
    e.finish(sums, x, d_, false);
    for (int i = 0; i < d_; ++i) s[i] = e.s[i];
  }

 private:
  int d_ = 0;
  std::vector<double> log_w_, sigma2_;
  std::vector<float> mean_;
  std::vector<physics::ComponentStep> comp_;
};

struct MeanAndError {
  double mean = 0, stderr_ = 0;
};
// Sequential (fixed-order) mean and standard error of per-example values.
MeanAndError mean_and_error(const std::vector<double>& v) {
  const double n = double(v.size());
  double sum = 0;
  for (double x : v) sum += x;
  const double mean = sum / n;
  double ss = 0;
  for (double x : v) ss += (x - mean) * (x - mean);
  const double var = v.size() > 1 ? ss / (n - 1) : 0.0;
  return {mean, std::sqrt(var / n)};
}

// Draws example i of stream kTrainEval.
physics::DsmTime eval_example(const physics::DsmData& D, std::uint64_t seed, std::uint64_t i,
                              float* x, float* z) {
  rng::PhiloxHostStream stream(seed, rng::subsequence(rng::kTrainEval, i));
  return physics::draw_example(D, stream, x, z);
}

void check_examples(std::uint64_t examples) {
  if (examples < 2 || examples >= rng::kMaxPaths)
    throw ConfigError("examples", "must be an integer in [2, 2^40) (got " + std::to_string(examples) + ")");
}

}  // namespace

std::optional<std::pair<double, double>> dsm_loss_floor(const TrainProblem& problem,
                                                        std::uint64_t examples, std::uint64_t seed) {
  const TrainConfig& config = problem.config();
  if (!config.data.samples.empty()) return std::nullopt;
  check_examples(examples);
  const detail::TrainProblem P = detail::make_train_problem(problem);
  const physics::DsmData D = P.data();
  std::vector<double> f(examples);
  const std::int64_t n = std::int64_t(examples);
#pragma omp parallel num_threads(config.threads > 0 ? config.threads : omp_get_max_threads())
  {
    ExactDataScore score(config);
    std::vector<float> x(std::size_t(P.d)), z(std::size_t(P.d)), s(std::size_t(P.d));
#pragma omp for schedule(static)
    for (std::int64_t i = 0; i < n; ++i) {
      const physics::DsmTime tm = eval_example(D, seed, std::uint64_t(i), x.data(), z.data());
      score(tm, x.data(), s.data());
      double ss = 0;
      for (int j = 0; j < P.d; ++j) ss += double(s[std::size_t(j)]) * s[std::size_t(j)];
      f[std::size_t(i)] = P.d - tm.marginal.noise * ss;
    }
  }
  const MeanAndError r = mean_and_error(f);
  return std::make_pair(r.mean, r.stderr_);
}

std::optional<std::pair<double, double>> dsm_loss_floor(const TrainConfig& config,
                                                        std::uint64_t examples, std::uint64_t seed) {
  return dsm_loss_floor(build_train_problem(config), examples, seed);
}

DsmLossEstimate dsm_loss_estimate(const MlpModel& model, const TrainProblem& problem,
                                  std::uint64_t examples, std::uint64_t seed) {
  const TrainConfig& config = problem.config();
  check_examples(examples);
  const detail::TrainProblem P = detail::make_train_problem(problem);
  if (model.dim != P.d)
    throw ConfigError("model", "the model's dimension d = " + std::to_string(model.dim) +
                                   " must equal the data's dimension " + std::to_string(P.d));
  const physics::DsmData D = P.data();
  const bool mixture = config.data.samples.empty();
  std::vector<double> loss(examples), floor(mixture ? examples : 0);
  const std::int64_t n = std::int64_t(examples);
#pragma omp parallel num_threads(config.threads > 0 ? config.threads : omp_get_max_threads())
  {
    std::optional<ExactDataScore> exact;
    if (mixture) exact.emplace(config);
    std::vector<float> x(std::size_t(P.d)), z(std::size_t(P.d)), s(std::size_t(P.d));
    std::vector<double> xd(std::size_t(P.d));
#pragma omp for schedule(static)
    for (std::int64_t i = 0; i < n; ++i) {
      const physics::DsmTime tm = eval_example(D, seed, std::uint64_t(i), x.data(), z.data());
      const double sigma_t = std::sqrt(tm.marginal.noise);
      for (int j = 0; j < P.d; ++j) xd[std::size_t(j)] = x[std::size_t(j)];
      const MlpPointEval e = mlp_evaluate_reference(model, xd, tm.t, tm.marginal.noise, false);
      double l = 0;
      for (int j = 0; j < P.d; ++j) {
        const double r = sigma_t * e.score[std::size_t(j)] + z[std::size_t(j)];
        l += r * r;
      }
      loss[std::size_t(i)] = l;
      if (mixture) {
        (*exact)(tm, x.data(), s.data());
        double l0 = 0;
        for (int j = 0; j < P.d; ++j) {
          const double r = sigma_t * s[std::size_t(j)] + z[std::size_t(j)];
          l0 += r * r;
        }
        floor[std::size_t(i)] = l0;
      }
    }
  }
  DsmLossEstimate out;
  out.examples = examples;
  const MeanAndError L = mean_and_error(loss);
  out.loss = L.mean;
  out.loss_stderr = L.stderr_;
  if (mixture) {
    const MeanAndError F = mean_and_error(floor);
    out.floor = F.mean;
    out.floor_stderr = F.stderr_;
    for (std::size_t i = 0; i < floor.size(); ++i) floor[i] = loss[i] - floor[i];
    const MeanAndError X = mean_and_error(floor);
    out.excess = X.mean;
    out.excess_stderr = X.stderr_;
  }
  return out;
}

DsmLossEstimate dsm_loss_estimate(const MlpModel& model, const TrainConfig& config,
                                  std::uint64_t examples, std::uint64_t seed) {
  return dsm_loss_estimate(model, build_train_problem(config), examples, seed);
}

double dsm_loss(const MlpModel& model, const TrainProblem& problem, std::uint64_t examples,
                std::uint64_t seed) {
  return dsm_loss_estimate(model, problem, examples, seed).loss;
}

double dsm_loss(const MlpModel& model, const TrainConfig& config, std::uint64_t examples,
                std::uint64_t seed) {
  return dsm_loss(model, build_train_problem(config), examples, seed);
}

namespace {
// Examples of the loss-floor estimate that `train` reports (its standard error is about 1e-3 of
// the floor on the ring).
constexpr std::uint64_t kFloorExamples = std::uint64_t(1) << 20;

// Snapshots along training (TrainOptions::snapshot_every; the manifest is docs/snapshots.md): the
// EMA weights after every K-th step and the last, each file followed by a rewrite of the manifest
// that lists them, so a reader that opens the manifest finds every file it names complete.
class Snapshots {
 public:
  Snapshots(const TrainOptions& o, const TrainConfig& config, const std::string& backend,
            std::uint64_t total)
      : every_(o.snapshot_every), dir_(o.snapshot_dir), total_(total) {
    if (every_ == 0 && !dir_.empty())
      throw ConfigError("--snapshot-dir", "needs --snapshot-every (snapshot_every is 0)");
    if (every_ > 0 && dir_.empty())
      throw ConfigError("--snapshot-dir", "must name a directory when --snapshot-every is given");
    if (every_ == 0) return;
    manifest_["format"] = kFormat;
    manifest_["version"] = kManifestVersion;
    manifest_["every"] = every_;
    manifest_["steps"] = total;
    manifest_["weights"] = "ema";
    manifest_["backend"] = backend;
    manifest_["snapshots"] = ojson::array();
    manifest_["config"] = detail::train_config_json(config);
  }

  // Makes the directory, or checks what it holds: nothing for a new training; for one resumed at
  // step `resumed`, nothing or the manifest of this very training (`identity`, as the checkpoint
  // has it), whose entries up to that step it keeps (later ones, of a run that went past the
  // checkpoint, are written again as training passes them again; bitwise the same on the CPU).
  void open(const std::optional<std::uint64_t>& resumed, const std::string& identity) {
    namespace fs = std::filesystem;
    if (every_ == 0) return;
    std::error_code ec;
    const fs::path dir(dir_);
    const fs::file_status st = fs::status(dir, ec);
    if (!fs::exists(st)) {
      if (!fs::create_directory(dir, ec) && ec)
        fail("cannot make the directory '" + dir_ + "': " + ec.message());
      return;
    }
    if (!fs::is_directory(st)) fail("'" + dir_ + "' is not a directory");
    const fs::path manifest = dir / kManifest;
    if (!resumed) {
      const bool empty = fs::is_empty(dir, ec);
      if (ec) fail("cannot read the directory '" + dir_ + "': " + ec.message());
      if (!empty)
        fail("'" + dir_ + "' is not empty; give a new or empty directory (only --resume of the " +
             "training whose " + kManifest + " it holds continues it)");
      return;
    }
    if (!fs::exists(manifest, ec)) return;  // that training wrote none yet
    const std::string path = manifest.string();
    ojson old;
    std::string old_identity;
    try {
      old = ojson::parse(detail::read_input_file(path, "--snapshot-dir"));
      if (old.at("format") != kFormat || old.at("version") != kManifestVersion)
        throw std::runtime_error("not a taep-snapshots manifest of version 1");
      old_identity = detail::train_identity(parse_train_config(old.at("config").dump()),
                                            old.at("backend").get<std::string>());
      for (const ojson& e : old.at("snapshots"))
        if (e.at("step").get<std::uint64_t>() <= *resumed) manifest_["snapshots"].push_back(e);
    } catch (const std::exception& e) {
      fail("'" + path + "' cannot be continued: " + e.what());
    }
    if (old_identity != identity)
      fail("'" + path + "' lists the snapshots of another training (its config or backend " +
           "differs); give another directory");
    if (old["every"] != every_)
      throw ConfigError("--snapshot-every", "'" + path + "' lists snapshots every " +
                                                old["every"].dump() + " steps; resume with " +
                                                "--snapshot-every " + old["every"].dump());
  }

  // The end of the next stretch of steps from `done` in a log window ending at `end`: the next
  // snapshot step or `end`.
  std::uint64_t stop(std::uint64_t done, std::uint64_t end) const {
    return every_ == 0 ? end : std::min(end, (done / every_ + 1) * every_);
  }
  bool due(std::uint64_t step) const { return every_ > 0 && (step % every_ == 0 || step == total_); }

  // The snapshot after step `step`: `sums` are the steps `first`..`step` of the current log window.
  // Non-finite weights or loss write nothing: the training throws TrainingDiverged by itself at the
  // end of the window, as without snapshots.
  void write(std::uint64_t step, const detail::TrainProblem& P, const std::vector<float>& ema,
             const detail::TrainSums& sums, std::uint64_t first, double wall_s) {
    const double loss = sums.loss / double(sums.steps), grad_norm = sums.grad_norm / double(sums.steps);
    if (!std::isfinite(loss) || !std::isfinite(grad_norm) ||
        std::any_of(ema.begin(), ema.end(), [](float x) { return !std::isfinite(x); }))
      return;
    char name[48];
    std::snprintf(name, sizeof name, "step_%08llu.safetensors", static_cast<unsigned long long>(step));
    const std::string path = (std::filesystem::path(dir_) / name).string();
    detail::write_file_atomically(path, detail::mlp_file_bytes(P.to_model(ema), path), "--snapshot-dir");
    manifest_["snapshots"].push_back({{"step", step},
                                      {"file", name},
                                      {"loss", loss},
                                      {"grad_norm", grad_norm},
                                      {"loss_steps", {first, step}},
                                      {"wall_s", wall_s}});
    detail::write_file_atomically((std::filesystem::path(dir_) / kManifest).string(),
                                  detail::dump(manifest_, 2) + "\n", "--snapshot-dir");
  }

 private:
  using ojson = nlohmann::ordered_json;
  static constexpr const char* kFormat = "taep-snapshots";
  static constexpr int kManifestVersion = 1;
  static constexpr const char* kManifest = "manifest.json";
  [[noreturn]] static void fail(const std::string& message) {
    throw ConfigError("--snapshot-dir", message);
  }
  std::uint64_t every_;
  std::string dir_;
  std::uint64_t total_;
  ojson manifest_;
};
}  // namespace

TrainResult train(const TrainConfig& config, const TrainOptions& options) {
  return train(build_train_problem(config), options);
}

TrainResult train(const TrainProblem& problem, const TrainOptions& options) {
  TrainResult result;
  result.config = problem.config();
  const TrainConfig& config = result.config;
  const Backend backend = resolve_backend(config.backend);
  if (backend == Backend::cuda) {
    std::string why;
    if (!cuda_available(&why))
      throw BackendUnavailable("run.backend: 'cuda' is not available: " + why);
  }
  const detail::TrainProblem P = detail::make_train_problem(problem);
  std::unique_ptr<detail::Trainer> trainer = backend == Backend::cuda
                                                 ? detail::make_cuda_trainer(P)
                                                 : detail::make_cpu_trainer(P, config.threads);
  result.backend = trainer->name();
  result.device = trainer->device();
  result.threads = trainer->threads();
  result.provenance = make_provenance(result.backend, result.device, options.command);
  result.flops_per_step = P.flops_per_step();

  const auto start = Clock::now();
  const std::uint64_t total = P.steps;
  std::uint64_t done = 0;
  Snapshots snapshots(options, config, trainer->name(), total);
  // Checkpoints (docs/distributed.md) between log windows: the trainer's state and the log.
  const std::string identity =
      detail::train_identity(config, trainer->name());
  if (!options.resume.empty()) {
    detail::Checkpoint saved = detail::read_checkpoint(options.resume, "--resume");
    detail::check_resumable(saved, "train", identity, options.resume);
    const std::string& b = saved.sections["state"];
    detail::ByteReader r(b, "checkpoint '" + options.resume + "'");
    detail::TrainState st;
    st.steps = r.get<std::uint64_t>();
    st.last = r.get_vector<float>();
    st.m = r.get_vector<float>();
    st.v = r.get_vector<float>();
    st.ema = r.get_vector<float>();
    result.log = r.get_vector<TrainLogEntry>();
    if (st.last.size() != P.parameter_count || st.steps > total)
      throw ConfigError("--resume", "'" + options.resume + "' holds another training state");
    trainer->restore(st);
    done = st.steps;
  }
  snapshots.open(options.resume.empty() ? std::nullopt : std::optional<std::uint64_t>(done),
                 identity);
  const auto snapshot = [&](const detail::TrainSums& sums, std::uint64_t first) {
    std::vector<float> ema, last;
    trainer->read_parameters(ema, last);
    snapshots.write(done, P, ema, sums, first,
                    std::chrono::duration<double>(Clock::now() - start).count());
  };
  auto last_checkpoint = Clock::now();
  const auto save = [&] {
    const detail::TrainState st = trainer->state();
    detail::ByteWriter w;
    w.put(st.steps);
    for (const auto* v : {&st.last, &st.m, &st.v, &st.ema}) w.put_vector(*v);
    w.put_vector(result.log);
    detail::Checkpoint c;
    c.kind = "train";
    c.identity = identity;
    c.sections["state"] = w.take();
    detail::write_checkpoint(options.checkpoint, c, "--checkpoint");
    last_checkpoint = Clock::now();
  };
  while (done < total) {
    if (options.stop_requested && options.stop_requested()) {
      if (!options.checkpoint.empty()) save();
      throw detail::stopped(done, total, "steps", options.checkpoint);
    }
    if (!options.checkpoint.empty() &&
        std::chrono::duration<double>(Clock::now() - last_checkpoint).count() >=
            options.checkpoint_every)
      save();
    const std::uint64_t count = std::min(config.log_every, total - done);
    const std::uint64_t first = done + 1, end = done + count;
    detail::TrainSums sums;
    // Snapshot steps cut the window into stretches; each stretch adds its steps to the same sums,
    // in the same order, so the window's log entry is bitwise that of one run_steps.
    while (done < end) {
      const std::uint64_t next = snapshots.stop(done, end);
      trainer->run_steps(done, next - done, sums);
      done = next;
      if (done < end && snapshots.due(done)) snapshot(sums, first);
    }
    TrainLogEntry e;
    e.step = done;
    e.loss = sums.loss / double(sums.steps);
    e.grad_norm = sums.grad_norm / double(sums.steps);
    e.seconds = std::chrono::duration<double>(Clock::now() - start).count();
    if (!std::isfinite(e.loss) || !std::isfinite(e.grad_norm)) {
      char text[160];
      std::snprintf(text, sizeof text, "steps %llu to %llu have mean loss %g and gradient norm %g",
                    static_cast<unsigned long long>(done - count + 1),
                    static_cast<unsigned long long>(done), e.loss, e.grad_norm);
      throw TrainingDiverged(done, e.loss, std::string("training diverged: ") + text +
                                               " (lower optimizer.lr, or check the data's scale)");
    }
    result.log.push_back(e);
    if (snapshots.due(done)) snapshot(sums, first);
    if (options.on_log) options.on_log(e, total);
  }
  result.wall_seconds = std::chrono::duration<double>(Clock::now() - start).count();
  result.steps_per_second = result.wall_seconds > 0 ? double(total) / result.wall_seconds : 0.0;
  result.gflops = result.flops_per_step * result.steps_per_second * 1e-9;
  result.final_loss = result.log.empty() ? 0.0 : result.log.back().loss;

  std::vector<float> ema, last;
  trainer->read_parameters(ema, last);
  for (const std::vector<float>* w : {&ema, &last})
    if (std::any_of(w->begin(), w->end(), [](float x) { return !std::isfinite(x); }))
      throw TrainingDiverged(total, result.final_loss,
                             std::string("training diverged: the ") + (w == &ema ? "EMA" : "last") +
                                 " weights after step " + std::to_string(total) +
                                 " are non-finite (lower optimizer.lr, or check the data's scale)");
  result.model = P.to_model(ema);
  result.last = P.to_model(last);

  if (config.data.samples.empty()) {
    const auto floor = dsm_loss_floor(problem, kFloorExamples, config.seed);
    result.loss_floor = floor->first;
    result.loss_floor_stderr = floor->second;
    result.floor_examples = kFloorExamples;
  }
  return result;
}

std::string train_result_to_json(const TrainResult& r, int indent) {
  using json = nlohmann::ordered_json;
  auto opt = [](const std::optional<double>& v) { return v ? json(*v) : json(nullptr); };
  json j;
  std::vector<int> hidden;
  for (std::size_t l = 0; l + 1 < r.model.layers.size(); ++l) hidden.push_back(r.model.layers[l].out);
  std::size_t parameters = 0;
  for (const MlpLayer& l : r.model.layers) parameters += l.weight.size() + l.bias.size();
  j["training"] = {{"steps", r.config.optimizer.steps},
                   {"batch", r.config.optimizer.batch},
                   {"final_loss", r.final_loss},
                   {"loss_floor", opt(r.loss_floor)},
                   {"loss_floor_stderr", opt(r.loss_floor_stderr)},
                   {"loss_floor_examples", r.floor_examples},
                   {"weighting", r.config.sde.ve() ? "lambda(t) = sigma(t)^2 - sigma_min^2"
                                                    : "lambda(t) = 1 - abar(t)"}};
  json log = json::array();
  for (const TrainLogEntry& e : r.log)
    log.push_back({{"step", e.step}, {"loss", e.loss}, {"grad_norm", e.grad_norm}, {"seconds", e.seconds}});
  j["log"] = log;
  j["model"] = {{"dim", r.model.dim},
                {"hidden", hidden},
                {"embedding_dim", r.model.embedding_dim},
                {"time_scale", r.model.time_scale},
                {"max_period", r.model.max_period},
                {"parameterization", to_string(r.model.parameterization)},
                {"activation", r.model.activation},
                {"parameters", parameters},
                {"weights", "ema"}};
  j["performance"] = {{"backend", r.backend},
                      {"device", r.device},
                      {"threads", r.threads},
                      {"wall_seconds", r.wall_seconds},
                      {"steps_per_second", r.steps_per_second},
                      {"examples_per_second", r.steps_per_second * r.config.optimizer.batch},
                      {"flops_per_step", r.flops_per_step},
                      {"gflops", r.gflops}};
  j["provenance"] = detail::to_json(r.provenance);
  j["config"] = detail::train_config_json(r.config);
  return detail::dump(j, indent);
}

}  // namespace taep

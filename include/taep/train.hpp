#pragma once
// Native denoising score matching (DSM) training of the learned-score MLP (include/taep/mlp.hpp) for
// the VP SDE of docs/physics.md section 1, as the paper's Methods section describes:
//   loss(theta) = E_{t ~ U[t_min, 1], x0 ~ data, z ~ N(0, I)} [ lambda(t) |s_theta(x_t, t) + z / sqrt(1 - abar)|^2 ],
//   x_t = sqrt(abar) x0 + sqrt(1 - abar) z,   lambda(t) = 1 - abar(t)
// i.e. E |sqrt(1 - abar) s_theta + z|^2 (for an eps-prediction network, s = -eps/sqrt(1 - abar),
// this is E |z - eps_theta|^2). Adam, global gradient-norm clipping, and an exponential moving
// average (EMA) of the weights, which is the model written out and used for evaluation.
//
// Deterministic for a seed: the initial weights and every training example are counter-based random
// numbers (rng_streams.hpp: kTrainInit, kTrainExample), and every reduction over the batch has a fixed
// order, so the CPU trainer gives bitwise the same model whatever the thread count. The CUDA trainer
// sees the same examples and initial weights; its float arithmetic differs in the last bits.
// The JSON form of TrainConfig is documented in README.md ("taep train").
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "taep/config.hpp"
#include "taep/distributed.hpp"
#include "taep/mlp.hpp"
#include "taep/result.hpp"

namespace taep {

// Where the training examples x0 come from: a mixture (the target, optionally collapsed) or a file
// of samples (CSV: one sample per line, d numbers separated by commas or spaces; LF, CR or CRLF line
// ends; '#' comments and a first line with no number in it, a header, are skipped).
struct TrainDataConfig {
  TargetConfig target;                  // preset "ring8" by default
  std::optional<CollapseSpec> collapse; // train on the m-mode collapse of the target
  std::string samples;                  // when set: the file of samples (then target is not used);
                                        // read by build_train_problem
};

struct NetworkConfig {
  std::vector<int> hidden{128, 128, 128};
  int embedding_dim = 16;
  double time_scale = 100.0;
  double max_period = 10000.0;
  Parameterization parameterization = Parameterization::score;
};

struct OptimizerConfig {
  std::uint64_t steps = 50000;
  int batch = 2048;
  double lr = 1e-3;
  double beta1 = 0.9, beta2 = 0.999, adam_eps = 1e-8;
  double clip_norm = 1.0;     // global gradient-norm clipping; 0 disables
  double ema_decay = 0.999;   // EMA of the weights; the EMA is the trained model
};

struct TrainConfig {
  TrainDataConfig data;
  NetworkConfig network;
  OptimizerConfig optimizer;
  physics::Schedule sde;  // the forward SDE (schedule.type and its parameters)
  double t_min = 1e-3;    // t ~ U[t_min, 1]
  std::uint64_t seed = 1;
  Backend backend = Backend::automatic;
  int threads = 0;           // CPU threads, 0: all
  std::uint64_t log_every = 1000;  // steps per loss-log entry (and progress report)
};

TrainConfig default_train_config();
// Parses and validates (as validate below); a preset target gets its mixture filled in. Opens no
// file. Throws ConfigError naming the field.
TrainConfig parse_train_config(const std::string& json_text);
// Checks every field the config itself holds. Pure: no file is opened, nothing is changed. The
// samples file (its existence, format and dimension) is checked by build_train_problem.
void validate(const TrainConfig& config);

// A validated TrainConfig with its data loaded once: the samples file is read here and nowhere
// else; everything downstream (train, dsm_loss_estimate, dsm_loss_floor) takes the built problem.
class TrainProblem {
 public:
  // The validated config, a preset target's mixture filled in.
  const TrainConfig& config() const;
  int dim() const;  // d of the data
  // data.samples: the file's samples, row-major (sample_count() x dim()); empty for mixture data.
  const std::vector<double>& samples() const;
  std::uint64_t sample_count() const;

  struct Data;  // shared, immutable: copies of a TrainProblem are cheap

 private:
  explicit TrainProblem(std::shared_ptr<const Data> data) : data_(std::move(data)) {}
  friend TrainProblem build_train_problem(const TrainConfig& config);
  std::shared_ptr<const Data> data_;
};

// Validates, then reads data.samples (when set) once. Throws ConfigError("data.samples") when the
// file cannot be read or holds no valid samples, ConfigError("network.hidden") when the network is
// too large for the file's dimension.
TrainProblem build_train_problem(const TrainConfig& config);
std::string train_config_to_json(const TrainConfig& config, int indent = 2);
const char* to_string(Parameterization p);

// One entry of the loss log: means over the steps since the previous entry.
struct TrainLogEntry {
  std::uint64_t step = 0;     // steps done
  double loss = 0;            // mean batch loss (the DSM objective above)
  double grad_norm = 0;       // mean global gradient norm before clipping
  double seconds = 0;         // since the start of training
};

struct TrainResult {
  MlpModel model;   // the EMA weights (what `taep train` writes)
  MlpModel last;    // the last iterate
  std::vector<TrainLogEntry> log;
  double final_loss = 0;           // mean batch loss over the last log window
  std::optional<double> loss_floor;  // mixture data: the DSM loss of the exact score of the data
  std::optional<double> loss_floor_stderr;  // its Monte Carlo standard error
  std::uint64_t floor_examples = 0;  // examples of that estimate (stream kTrainEval)
  double wall_seconds = 0;           // the training loop (not the floor estimate)
  double steps_per_second = 0;
  double flops_per_step = 0;         // GEMM flops of one step (forward, backward)
  double gflops = 0;                 // flops_per_step * steps_per_second / 1e9
  std::string backend, device;
  int threads = 1;
  Provenance provenance;  // taep/result.hpp
  TrainConfig config;
};

// With CheckpointOptions (taep/distributed.hpp): between log windows, a checkpoint holds the
// weights, Adam's moments, the EMA, the step and the log so far; a resumed run ends with bitwise
// the same weights and log losses as one that never stopped.
struct TrainOptions : CheckpointOptions {
  // Called after every log entry, from the calling thread.
  std::function<void(const TrainLogEntry&, std::uint64_t steps_total)> on_log;
  // The result's provenance.command (the CLI passes its command line).
  std::string command;
  // Snapshots along training (docs/snapshots.md): with snapshot_every = K >= 1, the EMA weights
  // after every K-th step and after the last one go to snapshot_dir/step_<NNNNNNNN>.safetensors
  // (the weight file of `taep train --out`), each followed by a rewrite of snapshot_dir/manifest.json;
  // both atomically. The directory is made if missing (its parent must exist) and must be empty,
  // unless this is a resume of the training whose manifest it holds, which then continues. Snapshots
  // leave the training bitwise as it is. 0: none (then snapshot_dir must be empty too).
  // ConfigError("--snapshot-dir", ...) for an unusable directory.
  std::uint64_t snapshot_every = 0;
  std::string snapshot_dir;
};

// Trains a built problem. Throws BackendUnavailable, CudaError.
TrainResult train(const TrainProblem& problem, const TrainOptions& options = {});
// train(build_train_problem(config), options). Throws ConfigError too.
TrainResult train(const TrainConfig& config, const TrainOptions& options = {});

// The result without the weights (config, log, timing) as JSON (README.md, "taep train").
std::string train_result_to_json(const TrainResult& result, int indent = 2);

// The DSM loss of a model (docs/physics.md section 7 conventions) estimated on `examples` fresh examples
// of the config's data (stream kTrainEval of `seed`), in double precision on the CPU. For tests and
// tools.
double dsm_loss(const MlpModel& model, const TrainProblem& problem, std::uint64_t examples,
                std::uint64_t seed);
double dsm_loss(const MlpModel& model, const TrainConfig& config, std::uint64_t examples,
                std::uint64_t seed);

// The same estimate with its standard error and, for mixture data, paired on the same examples with
// the exact score s* of the data: `excess` = mean of |sqrt(1-abar) s_theta + z|^2 -
// |sqrt(1-abar) s* + z|^2, an estimate of the weighted explicit score-matching error
// E[(1-abar)|s_theta - s*|^2] >= 0, and `floor` = the DSM loss of s* on the same examples.
struct DsmLossEstimate {
  double loss = 0, loss_stderr = 0;
  std::optional<double> floor, floor_stderr;
  std::optional<double> excess, excess_stderr;
  std::uint64_t examples = 0;
};
DsmLossEstimate dsm_loss_estimate(const MlpModel& model, const TrainProblem& problem,
                                  std::uint64_t examples, std::uint64_t seed);
DsmLossEstimate dsm_loss_estimate(const MlpModel& model, const TrainConfig& config,
                                  std::uint64_t examples, std::uint64_t seed);

// Mixture data: the DSM loss of the exact score of the data (the least loss any model can reach),
// by Monte Carlo over `examples` examples of stream kTrainEval of `seed`, with the Rao-Blackwellized
// integrand d - (1 - abar)|s*(x_t)|^2 (E[z | x_t] = -sqrt(1 - abar) s*). {mean, standard error};
// std::nullopt for sample data.
std::optional<std::pair<double, double>> dsm_loss_floor(const TrainProblem& problem,
                                                        std::uint64_t examples, std::uint64_t seed);
std::optional<std::pair<double, double>> dsm_loss_floor(const TrainConfig& config,
                                                        std::uint64_t examples, std::uint64_t seed);

}  // namespace taep

#pragma once
// The paper's mode-collapse study (its Fig. 2) end to end: `taep experiment mode-collapse`.
//
// For each model: train an MLP score network (train.hpp) on the ring8 target with m modes collapsed
// to weight eps (or on the ring itself), draw samples from it with the reverse process (sample.hpp)
// and count the samples nearest each mode, run forward and reverse TAEP paths against the uniform
// ring (detailed_ft), and compare Var(S) with eq. 55 (the nominal collapse) and with eq. 53 evaluated
// at the measured mode weights. Then the paper's Fig. 2c: a "mediocre" model of the same mean TAEP
// as one collapse (same_mean_pair). README.md ("taep experiment mode-collapse") documents every output.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "taep/config.hpp"
#include "taep/result.hpp"
#include "taep/sample.hpp"
#include "taep/train.hpp"

namespace taep {

struct CollapseModelSpec {
  std::string name;  // "uncollapsed", "m1_eps0.09", ...
  int modes = 0;     // 0: trained on the ring itself
  double eps = 0;
};

struct ModeCollapseConfig {
  // The paper's set: the uncollapsed model; m = 1 at eps 0.09, 0.05, 0.02, 0.01, 0.005; m = 2..5
  // at eps 0.01.
  std::vector<CollapseModelSpec> models;
  TrainConfig train;              // data and seed are set per model; the rest is shared
  std::uint64_t paths = 100000;   // forward and reverse TAEP paths per model
  std::uint64_t samples = 100000; // reverse-process samples per model for the mode occupancy
  std::uint64_t plot_samples = 4000;  // of them written to samples/<name>.csv for the figures
  // TAEP and sampling grid. The scheme is milstein where the backend has it for networks (the CPU):
  // the detailed-FT check is very sensitive to per-path discretization error (docs/physics.md section 9).
  ScheduleConfig schedule;
  HistogramConfig histogram;
  std::uint64_t seed = 1;
  Backend backend = Backend::automatic;
  int threads = 0;
  bool quick = false;
  // Fig. 2c: the collapse whose mean TAEP a widened ring (every sigma times c) matches. Done when
  // the model list holds this collapse (its row is the pair's collapsed network); nullopt: never.
  std::optional<CollapseSpec> same_mean_pair = CollapseSpec{1, 0.01};
};

// The full experiment, or the quick one (fewer training steps and paths; for CI: it checks trends).
ModeCollapseConfig mode_collapse_config(bool quick);

struct CollapseModelResult {
  CollapseModelSpec spec;
  std::vector<double> training_weights;  // the weights the model was trained on (normalized)
  double train_seconds = 0, train_steps_per_second = 0;
  double final_loss = 0;
  std::optional<double> loss_floor;
  ModeOccupancy occupancy;               // of the reverse-process samples
  DetailedFtResult dft;                  // forward S (moments, IFT), reverse S, eq. 31 fit
  double variance_eq55 = 0;              // the nominal collapse (0 for the uncollapsed model)
  double variance_eq53 = 0;              // eq. 53 at the measured mode weights
  double variance_eq53_stderr = 0;       // from the multinomial error of the weights (delta method)
  double seconds = 0;                    // wall time for this model, all stages
  bool reused = false;                   // the weights came from an earlier run (reuse_models)
};

// One exact-score model of the pair run by the engine against the ring (forward paths, seed `seed`).
struct ExactPairModel {
  TaepSummary taep;            // S
  ReferenceSummary reference;  // R, the closed form (docs/physics.md section 5)
  double mean_theory = 0;      // <R> by quadrature: KL at t_min minus KL at t_max (exact_mean_taep)
  double variance_theory = 0;  // Var of log(p/q) at t_min (eq. 40 at t_min, the t_max term dropped)
  HistogramResult histogram;   // of S
};

// Fig. 2c: the one-mode collapse and the widened ring of the same exact mean TAEP, as exact-score
// models and as networks trained like the others.
struct SameMeanPairResult {
  CollapseSpec collapse;
  std::string collapse_model;  // its row in `models` (the collapsed network)
  double width_factor = 0;     // c: the mediocre model is the ring with sigma -> c sigma
  int bisection_steps = 0;
  ExactPairModel exact_collapse, exact_mediocre;
  // The mediocre network ("mediocre"), trained and run as a row of `models` would be; its forward
  // TAEP comes from run() (not detailed_ft), the collapsed network's from its row.
  std::vector<double> training_sigmas;
  double train_seconds = 0, train_steps_per_second = 0, final_loss = 0;
  std::optional<double> loss_floor;
  bool reused = false;
  ModeOccupancy occupancy;
  TaepSummary network_taep;
  IftSummary network_ift;
  HistogramResult network_histogram;
  double seconds = 0;
};

struct ModeCollapseResult {
  ModeCollapseConfig config;
  std::vector<CollapseModelResult> models;
  std::optional<SameMeanPairResult> same_mean_pair;  // config.same_mean_pair, when run
  double wall_seconds = 0;
  std::string backend, device;
  Provenance provenance;  // taep/result.hpp
};

struct ExperimentProgress {
  std::string stage;      // "train", "sample", "dft"; "taep" for the pair's network
  std::string model;
  int model_index = 0, models = 0;  // models: the models, and the Fig. 2c pair's network when it runs
  double fraction = 0;    // of this stage
  std::string detail;     // e.g. "loss 0.8123"
};
struct ExperimentOptions {
  std::function<void(const ExperimentProgress&)> on_progress;
  // Called when a model's stages are all done, with its row.
  std::function<void(const CollapseModelResult&)> on_model;
  // Where trained weights go: <dir>/models/<name>.safetensors, with the training summary beside
  // them as <name>.train.json. The TAEP stages take a model trained here from memory (the file is
  // not read back); a reused model's file is read once.
  std::string out_dir;
  // Skip training for a model whose weights and training summary are already in <dir>/models (from an
  // earlier run with the same training settings): redoes sampling and TAEP only.
  bool reuse_models = false;
  // The result's provenance.command (the CLI passes its command line).
  std::string command;
};

ModeCollapseResult run_mode_collapse(const ModeCollapseConfig& config, const ExperimentOptions& options);

// eq. 53: target weights p, model weights q (both normalized, same length), and its standard error
// when q is a multinomial estimate from n samples.
double relative_entropy_variance(const std::vector<double>& p, const std::vector<double>& q);
double relative_entropy_variance_stderr(const std::vector<double>& p, const std::vector<double>& q,
                                        std::uint64_t n);

// Fig. 2c's pieces (docs/physics.md section 5). The mean and variance of log(p/q)(x, t) over
// x ~ p(x, t), for mixtures p and q carried by the transition m from 0 to t
// (physics::Schedule::marginal): Gauss-Hermite quadrature, `nodes` per dimension, per component of
// p (d <= 3).
struct LogRatioMoments {
  double mean = 0, variance = 0;
};
LogRatioMoments log_ratio_moments(const MixtureSpec& p, const MixtureSpec& q,
                                  const physics::Marginal& m, int nodes = 40);
// <S> of the exact-score model q against the target p in continuous time: <R> = KL(p||q) at t_min
// minus KL(p||q) at t_max (the mean of section 5's closed form over forward paths).
double exact_mean_taep(const MixtureSpec& p, const MixtureSpec& q, const ScheduleConfig& schedule);
// `m` with every width times c.
MixtureSpec widened(const MixtureSpec& m, double c);
// The c > 1 at which exact_mean_taep(p, widened(p, c)) = mean, by bisection (it rises with c).
struct WidthMatch {
  double c = 0;
  int steps = 0;
};
WidthMatch match_mean_by_width(const MixtureSpec& p, double mean, const ScheduleConfig& schedule);

// The outputs: the whole result (JSON), one row per model (CSV), and a Markdown summary table.
std::string mode_collapse_to_json(const ModeCollapseResult& result, int indent = 2);
std::string mode_collapse_to_csv(const ModeCollapseResult& result);
std::string mode_collapse_to_markdown(const ModeCollapseResult& result);

}  // namespace taep

#pragma once
// The paper's mode-collapse study (its Fig. 2) end to end: `taep experiment mode-collapse`.
//
// For each model: train an MLP score network (train.hpp) on the ring8 target with m modes collapsed
// to weight eps (or on the ring itself), draw samples from it with the reverse process (sample.hpp)
// and count the samples nearest each mode, run forward and reverse TAEP paths against the uniform
// ring (detailed_ft), and compare Var(S) with eq. 55 (the nominal collapse) and with eq. 53 evaluated
// at the measured mode weights. README.md ("taep experiment mode-collapse") documents every output.
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

struct ModeCollapseResult {
  ModeCollapseConfig config;
  std::vector<CollapseModelResult> models;
  double wall_seconds = 0;
  std::string backend, device;
  Provenance provenance;  // taep/result.hpp
};

struct ExperimentProgress {
  std::string stage;      // "train", "sample", "dft"
  std::string model;
  int model_index = 0, models = 0;
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

// The outputs: the whole result (JSON), one row per model (CSV), and a Markdown summary table.
std::string mode_collapse_to_json(const ModeCollapseResult& result, int indent = 2);
std::string mode_collapse_to_csv(const ModeCollapseResult& result);
std::string mode_collapse_to_markdown(const ModeCollapseResult& result);

}  // namespace taep

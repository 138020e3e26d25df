#pragma once
// The paper's real-data study (its Fig. 3) on the digits data set: `taep experiment digits`
// (README.md, "taep experiment digits"; docs/real-data.md). A score network is trained on the
// training rows with snapshots along the way (docs/snapshots.md); every snapshot is then tracked
// (taep/track.hpp) twice -- TAEP with Hutchinson divergence against the final model (the paper's
// choice) and against the empirical score of the training rows -- and its reverse-process samples
// are scored by coverage against the held-out rows.
#include <cstdint>
#include <functional>
#include <string>

#include "taep/track.hpp"
#include "taep/train.hpp"

namespace taep {

struct DigitsConfig {
  std::string train_samples;    // .npy or CSV: the training rows (tools/export_digits.py)
  std::string holdout_samples;  // the held-out rows, for coverage
  TrainConfig train;            // data.samples is set to train_samples
  std::uint64_t snapshot_every = 2000;
  std::uint64_t paths = 10000;            // TAEP paths per snapshot against the final model
  std::uint64_t empirical_paths = 500;    // against the empirical score (O(N d) per path-step)
  std::uint64_t samples = 2000;           // reverse-process samples per snapshot for coverage
  int steps = 500;                        // TAEP and sampling grid
  int probes = 2;                         // Hutchinson probes (>= 2: probe noise is reported)
  int k = 5;
  bool quick = false;
};

// The full study, or the quick one (CI: fewer steps and paths; it checks trends, not precision).
DigitsConfig digits_config(bool quick);

struct DigitsChecks {
  bool coverage_rises = false;     // last snapshot's coverage > first's
  bool variance_falls = false;     // Var(S) against the final model: last tracked < first
  bool ift_within_4se = false;     // against the empirical score: every row with ESS >= 10%
  int ift_rows_checked = 0;
  bool all() const { return coverage_rises && variance_falls && ift_within_4se; }
};

struct DigitsResult {
  DigitsConfig config;
  TrainResult training;
  TrackResult against_final, against_empirical;
  DigitsChecks checks;
  double wall_seconds = 0;
};

struct DigitsProgress {
  std::string stage;  // "train", "track final", "track empirical"
  double fraction = 0;
  std::string detail;
};

// out_dir gets models/digits.safetensors, snapshots/ (the training's), against_final/ and
// against_empirical/ (each track's track.json, .csv, .md), digits.json and digits.md.
DigitsResult run_digits(const DigitsConfig& config, const std::string& out_dir,
                        const std::string& command,
                        const std::function<void(const DigitsProgress&)>& on_progress = {});

std::string digits_to_json(const DigitsResult& result, int indent = 2);
std::string digits_to_markdown(const DigitsResult& result);

}  // namespace taep

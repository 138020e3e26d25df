#pragma once
// TAEP and sample quality along a training run: `taep track DIR` (README.md, "taep track";
// docs/real-data.md). For every weight snapshot of a training (docs/snapshots.md) it runs forward
// TAEP paths of that network against a reference -- by default the last snapshot, the paper's choice
// for real data, or the run config's own reference (the analytic target, the empirical score of a
// data-file target, a reference network) -- and draws samples with the reverse process, scored by
// precision, recall, density and coverage against held-out real samples (taep/coverage.hpp). The
// rows give the paper's Fig. 3: the TAEP densities along training, coverage against Var(S), and
// Var(S) against <S>.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "taep/config.hpp"
#include "taep/coverage.hpp"
#include "taep/result.hpp"

namespace taep {

enum class TrackReference {
  last,    // the last snapshot of the directory (a reference network); its own row has no TAEP
  config,  // run.reference: analytic (mixture target), empirical (data-file target) or mlp
};

struct TrackConfig {
  std::string snapshots;  // the directory with manifest.json
  // Target, schedule, paths, seed, backend, histogram and the model's divergence settings
  // (model.divergence, probes, probe_distribution; model.type and weights are set per snapshot).
  // Unset: from the manifest's training config (its data file or mixture target, its schedule)
  // with run.paths = 10000, Hutchinson divergence with 2 probes for d > 8, the exact one otherwise.
  std::optional<Config> run;
  // Set fields override those of `run` (given or derived): the CLI's flags.
  struct Overrides {
    std::optional<std::uint64_t> paths, seed;
    std::optional<Backend> backend;
    std::optional<int> threads, steps;
  } overrides;
  TrackReference reference = TrackReference::last;
  std::string holdout;            // real samples (.npy or CSV) for coverage; empty: no coverage
  std::uint64_t samples = 2000;   // reverse-process samples per snapshot for coverage
  int k = 5;                      // coverage's nearest neighbours
  std::string command;            // the result's provenance.command
};

struct TrackRow {
  std::uint64_t step = 0;
  std::string file;        // the snapshot, as the manifest names it
  double loss = 0;         // the training loss the manifest records for it
  bool is_reference = false;  // the snapshot that is the reference (no TAEP row of its own)
  std::optional<RunResult> taep;
  std::optional<CoverageResult> coverage;
  std::uint64_t samples_nonfinite = 0;  // generated samples left out of the coverage
  double seconds = 0;
};

struct TrackResult {
  TrackConfig config;      // with run resolved
  std::string reference;   // what s* was: "snapshot step_...", "analytic", "empirical", "mlp FILE"
  std::vector<TrackRow> rows;
  double wall_seconds = 0;
  std::string backend, device;
  Provenance provenance;
};

struct TrackProgress {
  int snapshot = 0, snapshots = 0;
  std::uint64_t step = 0;
  std::string stage;  // "taep", "sample", "coverage"
};

// Reads the manifest (ConfigError naming "snapshots" when it is missing or not a taep-snapshots
// manifest, "holdout" for a bad real-samples file), then every snapshot in step order.
TrackResult track(const TrackConfig& config,
                  const std::function<void(const TrackProgress&)>& on_progress = {});

std::string track_to_json(const TrackResult& result, int indent = 2);
std::string track_to_csv(const TrackResult& result);
std::string track_to_markdown(const TrackResult& result);

}  // namespace taep

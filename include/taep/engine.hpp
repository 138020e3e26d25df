#pragma once
// The engine's entry points.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "taep/config.hpp"
#include "taep/distributed.hpp"
#include "taep/problem.hpp"
#include "taep/result.hpp"

namespace taep {

struct Progress {
  std::uint64_t paths_done = 0;
  std::uint64_t paths_total = 0;
  double seconds = 0;
  double path_steps_per_second = 0;
};

// Per-path values: S (`taep`) and, for exact-score models, the closed form R (`reference`), in
// path order; and each path's start and end points.
struct PathValues {
  std::vector<double> taep;
  std::vector<double> reference;  // empty unless the model is an exact score
  // x0: path i's start x(t_min) at row i, (n, d) row-major, float as the engine holds the state;
  // xN: its end point x(t_max). Reverse paths (detailed_ft's per_path_reverse): x0 is the prior
  // draw x(t_max) ~ N(0, I), xN the sample x(t_min). Empty where they were not asked for.
  std::vector<float> x0, xN;

  // Appends the next paths' values (`r` empty for models without a closed form; the points
  // empty when they are not kept).
  void append(const std::vector<double>& s, const std::vector<double>& r,
              const std::vector<float>& start = {}, const std::vector<float>& end = {}) {
    taep.insert(taep.end(), s.begin(), s.end());
    reference.insert(reference.end(), r.begin(), r.end());
    x0.insert(x0.end(), start.begin(), start.end());
    xN.insert(xN.end(), end.begin(), end.end());
  }
  // The points' dimension d (0 when they are not kept).
  std::size_t dim() const { return taep.empty() ? 0 : x0.size() / taep.size(); }
  // S - R per path, the integration error (empty without a closed form).
  std::vector<double> errors() const {
    std::vector<double> e(reference.size());
    for (std::size_t i = 0; i < e.size(); ++i) e[i] = taep[i] - reference[i];
    return e;
  }
};

// With the checkpoint and resume settings of CheckpointOptions (taep/distributed.hpp).
struct RunOptions : CheckpointOptions {
  // Called after every chunk (from the calling thread).
  std::function<void(const Progress&)> on_progress;
  // The result's provenance.command (the CLI passes its command line).
  std::string command;
  // run() and detailed_ft(): when set, filled with every (forward) path's values in path order
  // (`--per-path`), its start and end points included. The statistics are the same bitwise; the
  // chunks then bring every path's S back to the host.
  PathValues* per_path = nullptr;
  // detailed_ft(): the same for its reverse paths (S read on the forward clock, and R; x0 the
  // prior draw at t_max, xN the sample at t_min).
  PathValues* per_path_reverse = nullptr;
};

// Runs a built problem end to end. Throws BackendUnavailable, CudaError.
RunResult run(const Problem& problem, const RunOptions& options = {});
// run(build_problem(config), options): validates and loads, then runs. Throws ConfigError too.
RunResult run(const Config& config, const RunOptions& options = {});

// Per-path values for paths [first, first + count) on one backend (for tests and tools), with
// every path's start and end points (x0, xN).
PathValues simulate_paths(const Problem& problem, Backend backend, std::uint64_t first,
                          std::uint64_t count);
PathValues simulate_paths(const Config& config, Backend backend, std::uint64_t first,
                          std::uint64_t count);

// Whether the CUDA backend can run here; `why` says why not.
bool cuda_available(std::string* why = nullptr);
// Whether this build contains the CUDA backend at all.
bool built_with_cuda();

// Backend::automatic resolved: cuda when available, else cpu.
Backend resolve_backend(Backend requested);

}  // namespace taep

// `taep track DIR --out-dir OUT`: TAEP and sample quality for every snapshot of a training
// (taep/track.hpp; README.md, "taep track"). Tables go to OUT atomically at the end; the figures
// (the paper's Fig. 3) are drawn by tools/plot_track.py when a Python with matplotlib is found.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "cli.hpp"
#include "taep/error.hpp"
#include "taep/track.hpp"

namespace taep {
namespace cli {
namespace {

class TrackCommand final : public Command {
 public:
  CLI::App* add_to(CLI::App& app) override {
    CLI::App* cmd = app.add_subcommand(
        "track",
        "TAEP against a reference (by default the last snapshot) and the samples' precision, "
        "recall, density and coverage for every weight snapshot of a training");
    cmd->add_option("DIR", dir_, "The snapshot directory of `taep train --snapshot-every` "
                                 "(holds manifest.json)")
        ->required();
    cmd->add_option("--out-dir", out_dir_, "Directory for track.json, track.csv, track.md and figures/")
        ->required()
        ->check(nonempty_path());
    cmd->add_option("--config", config_path_,
                    "Run config for the TAEP paths (target, schedule, run, histogram, model "
                    "divergence); default: the training's data and schedule from the manifest")
        ->check(nonempty_path());
    cmd->add_option("--set", sets_, "KEY=VALUE: set a field of the run config (repeatable)");
    cmd->add_option("--against", against_,
                    "last: the last snapshot is s* (the paper's choice); config: the run config's "
                    "reference (analytic, empirical or mlp)")
        ->check(CLI::IsMember({"last", "config"}));
    cmd->add_option("--holdout", holdout_,
                    "Held-out real samples (.npy or CSV) to score each snapshot's samples against; "
                    "without it no coverage is computed")
        ->check(nonempty_path());
    opts_ = {cmd->add_option("--paths", paths_, "TAEP paths per snapshot")
                 ->check(CLI::Range(std::uint64_t(1), std::uint64_t(1) << 40)),
             cmd->add_option("--samples", samples_, "Reverse-process samples per snapshot for coverage")
                 ->check(CLI::Range(std::uint64_t(2), std::uint64_t(1) << 30)),
             cmd->add_option("--k", k_, "Nearest neighbours of the coverage balls")
                 ->check(CLI::Range(1, 1000)),
             cmd->add_option("--backend", backend_, "automatic, cpu or cuda")
                 ->check(CLI::IsMember(backend_names())),
             cmd->add_option("--threads", threads_, "CPU threads (0: all)")->check(CLI::Range(0, 1024)),
             cmd->add_option("--seed", seed_, "Seed of the TAEP paths and samples")
                 ->check(CLI::NonNegativeNumber),
             cmd->add_option("--steps", steps_, "Time steps of the TAEP and sampling grid")
                 ->check(CLI::Range(1, 10000000))};
    for (CLI::Option* o : opts_) guard_number(o);
    cmd->add_flag("--no-plots", no_plots_, "Do not draw the figures");
    cmd->add_option("--plot-script", plot_script_, "The plotting script (default: tools/plot_track.py)");
    cmd->add_flag("--quiet,-q", quiet_, "No progress or summary on stderr");
    return cmd;
  }

  int execute() override {
    TrackConfig cfg;
    cfg.snapshots = dir_;
    cfg.command = command_line();
    cfg.holdout = holdout_;
    cfg.reference = against_ == "config" ? TrackReference::config : TrackReference::last;
    if (!config_path_.empty() || !sets_.empty()) {
      const std::string text = config_path_.empty() ? std::string("{}") : read_config_text(config_path_);
      cfg.run = parse_config(apply_sets(text, sets_));
    } else if (against_ == "config") {
      throw ConfigError("--against", "\"config\" needs --config (the run config whose reference is s*)");
    }
    if (opts_[1]->count()) cfg.samples = samples_;
    if (opts_[2]->count()) cfg.k = k_;
    TrackConfig::Overrides& o = cfg.overrides;
    if (opts_[0]->count()) o.paths = paths_;
    if (opts_[3]->count()) o.backend = parse_backend(backend_);
    if (opts_[4]->count()) o.threads = threads_;
    if (opts_[5]->count()) o.seed = seed_;
    if (opts_[6]->count()) o.steps = steps_;
    if (!is_root()) quiet_ = true;
    make_output_dir(out_dir_, "--out-dir");
    const auto json = optional_output(out_dir_ + "/track.json", "--out-dir");
    const auto csv = optional_output(out_dir_ + "/track.csv", "--out-dir");
    const auto md = optional_output(out_dir_ + "/track.md", "--out-dir");

    ProgressLine progress(!quiet_);
    const auto t0 = std::chrono::steady_clock::now();
    const TrackResult result = track(cfg, [&](const TrackProgress& p) {
      const double stage = p.stage == "taep" ? 0.0 : p.stage == "sample" ? 0.6 : 0.9;
      progress.update(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(),
                      (p.snapshot + stage) / double(p.snapshots),
                      "snapshot " + std::to_string(p.snapshot + 1) + "/" +
                          std::to_string(p.snapshots) + " (step " + std::to_string(p.step) +
                          "): " + p.stage);
    });
    progress.finish();
    if (!json) return 0;  // not rank 0
    json->commit(track_to_json(result));
    csv->commit(track_to_csv(result));
    md->commit(track_to_markdown(result));
    if (!quiet_) std::fprintf(stderr, "%s", track_to_markdown(result).c_str());
    if (!no_plots_) draw_figures("plot_track.py", plot_script_, out_dir_, quiet_);
    return 0;
  }

 private:
  std::string dir_, out_dir_, config_path_, against_ = "last", holdout_, backend_, plot_script_;
  std::vector<std::string> sets_;
  std::uint64_t paths_ = 0, samples_ = 0, seed_ = 0;
  int k_ = 5, threads_ = 0, steps_ = 0;
  bool no_plots_ = false, quiet_ = false;
  std::vector<CLI::Option*> opts_;
};

}  // namespace

std::unique_ptr<Command> make_track_command() { return std::make_unique<TrackCommand>(); }

}  // namespace cli
}  // namespace taep

// `taep experiment mode-collapse`: the paper's Fig. 2 study end to end (README, "taep experiment
// mode-collapse"). Tables go to --out-dir atomically at the end; the figures are drawn by
// tools/plot_mode_collapse.py when a Python with matplotlib is found (the data files stand alone).
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <cstdlib>
#include <string>
#include <vector>

#include "cli.hpp"
#include "taep/error.hpp"
#include "taep/digits.hpp"
#include "taep/experiment.hpp"

namespace taep {
namespace cli {
namespace {

class ExperimentCommand final : public Command {
 public:
  CLI::App* add_to(CLI::App& app) override {
    CLI::App* exp = app.add_subcommand("experiment", "Run one of the paper's experiments end to end");
    exp->require_subcommand(1);
    CLI::App* mc = exp->add_subcommand(
        "mode-collapse",
        "Train score networks on the ring with collapsed modes, sample them, and compare Var(S) with "
        "eqs. 53 and 55; IFT and detailed FT per model; Fig. 2c's pair of equal mean TAEP (the collapse at "
        "eps 0.01 and a widened ring)");
    mc->add_flag("--quick", quick_, "Few training steps and paths (minutes on a CPU; checks trends)");
    mc->add_option("--out-dir", out_dir_, "Directory for tables, samples, models and figures")->required();
    opts_ = {
        mc->add_option("--backend", backend_, "automatic, cpu or cuda")->check(CLI::IsMember(backend_names())),
        mc->add_option("--threads", threads_, "CPU threads (0: all)")->check(CLI::Range(0, 1024)),
        mc->add_option("--seed", seed_, "Seed (model i trains with seed + i)")->check(CLI::NonNegativeNumber),
        mc->add_option("--train-steps", train_steps_, "Training steps per model")->check(CLI::Range(std::uint64_t(1), std::uint64_t(1) << 40)),
        mc->add_option("--batch", batch_, "Training batch size")->check(CLI::Range(1, 1 << 20)),
        mc->add_option("--paths", paths_, "Forward and reverse TAEP paths per model")->check(CLI::Range(std::uint64_t(1), std::uint64_t(1) << 40)),
        mc->add_option("--samples", samples_, "Reverse-process samples per model")->check(CLI::Range(std::uint64_t(1), std::uint64_t(1) << 40)),
        mc->add_option("--steps", steps_, "Time steps of the TAEP and sampling grid")->check(CLI::Range(1, 10000000)),
        mc->add_option("--scheme", scheme_, "euler (milstein needs an exact-score model)")
            ->check(CLI::IsMember({"euler", "milstein"})),
        mc->add_option("--models", models_,
                       "Only these models (names as in the table: uncollapsed, m1_eps0.09, ..., m5_eps0.01); "
                       "the Fig. 2c pair is run when m1_eps0.01 is among them"),
    };
    for (std::size_t i = 1; i <= 7; ++i) guard_number(opts_[i]);  // no silent saturation
    mc->add_flag("--no-plots", no_plots_, "Do not draw the figures");
    mc->add_flag("--reuse-models", reuse_, "Skip training where DIR/models holds a model's weights and "
                                           "training summary from an earlier run");
    mc->add_option("--plot-script", plot_script_, "The plotting script (default: tools/plot_mode_collapse.py)");
    mc->add_flag("--quiet,-q", quiet_, "No progress or summary on stderr");
    add_digits(exp);
    return exp;
  }

  int execute() override {
    if (digits_->parsed()) return run_digits_command();
    ModeCollapseConfig cfg = mode_collapse_config(quick_);
    if (opts_[0]->count()) cfg.backend = parse_backend(backend_);
    if (opts_[1]->count()) cfg.threads = threads_;
    if (opts_[2]->count()) cfg.seed = seed_;
    if (opts_[3]->count()) cfg.train.optimizer.steps = train_steps_;
    if (opts_[4]->count()) cfg.train.optimizer.batch = batch_;
    if (opts_[5]->count()) cfg.paths = paths_;
    if (opts_[6]->count()) cfg.samples = samples_;
    if (opts_[7]->count()) cfg.schedule.steps = steps_;
    if (opts_[8]->count()) cfg.schedule.scheme = scheme_ == "milstein" ? Scheme::milstein : Scheme::euler;
    if (opts_[9]->count()) {
      std::vector<CollapseModelSpec> chosen;
      for (const auto& name : models_) {
        bool found = false;
        for (const auto& m : cfg.models)
          if (m.name == name) {
            chosen.push_back(m);
            found = true;
          }
        if (!found) {
          std::string all;
          for (const auto& m : cfg.models) all += (all.empty() ? "" : ", ") + m.name;
          throw ConfigError("--models", "unknown model \"" + name + "\" (allowed: " + all + ")");
        }
      }
      cfg.models = chosen;
    }

    ExperimentOptions options;
    options.command = command_line();
    options.out_dir = out_dir_;
    options.reuse_models = reuse_;
    // The tables are created before the long run so an unwritable directory fails at once. A
    // directory this command created is removed again if the run fails before writing into it.
    // Under MPI every rank runs the experiment (docs/distributed.md); rank 0 writes and reports.
    const bool root = is_root();
    if (!root) quiet_ = true;
    const bool created = make_output_dir(out_dir_, "--out-dir");
    struct RemoveIfEmpty {
      std::string dir;
      bool active;
      ~RemoveIfEmpty() {
        if (active) ::rmdir(dir.c_str());  // fails, harmlessly, unless empty
      }
    } cleanup{out_dir_, created};
    const auto json = optional_output(out_dir_ + "/mode_collapse.json", "--out-dir");
    const auto csv = optional_output(out_dir_ + "/mode_collapse.csv", "--out-dir");
    const auto md = optional_output(out_dir_ + "/mode_collapse.md", "--out-dir");

    ProgressLine progress(!quiet_);
    // Rough shares of a model's time per stage, for the overall fraction.
    auto share = [](const std::string& stage) { return stage == "train" ? 0.0 : stage == "sample" ? 0.6 : 0.7; };
    auto width = [](const std::string& stage) { return stage == "train" ? 0.6 : stage == "sample" ? 0.1 : 0.3; };
    Clock::time_point t0 = Clock::now();
    options.on_progress = [&](const ExperimentProgress& p) {
      const double overall =
          (p.model_index + share(p.stage) + width(p.stage) * p.fraction) / double(std::max(1, p.models));
      const std::string text = "model " + std::to_string(p.model_index + 1) + "/" +
                               std::to_string(p.models) + " " + p.model + ": " + p.stage +
                               (p.detail.empty() ? "" : " " + p.detail);
      progress.update(std::chrono::duration<double>(Clock::now() - t0).count(), overall, text);
    };
    options.on_model = [&](const CollapseModelResult& r) {
      if (!root) return;
      char line[320];
      std::snprintf(line, sizeof line,
                    "%s: Var(S) %.4f (eq. 55 %.4f, eq. 53 at measured weights %.4f), <exp(-S)> %.4f "
                    "+/- %.4f, DFT slope %.3f +/- %.3f, %.0f s",
                    r.spec.name.c_str(), r.dft.forward.variance, r.variance_eq55, r.variance_eq53,
                    r.dft.forward_ift.estimate, r.dft.forward_ift.stderr_, r.dft.fit.slope,
                    r.dft.fit.slope_stderr, r.seconds);
      progress.message(line);
    };
    const ModeCollapseResult result = run_mode_collapse(cfg, options);
    progress.finish();
    if (!root) return 0;
    json->commit(mode_collapse_to_json(result));
    csv->commit(mode_collapse_to_csv(result));
    md->commit(mode_collapse_to_markdown(result));
    if (!quiet_) std::fprintf(stderr, "%s", mode_collapse_to_markdown(result).c_str());

    if (!no_plots_) draw_figures("plot_mode_collapse.py", plot_script_, out_dir_, quiet_);
    return 0;
  }

 private:
  using Clock = std::chrono::steady_clock;

  void add_digits(CLI::App* exp) {
    digits_ = exp->add_subcommand(
        "digits",
        "Train a score network on the digits data (d = 64) with snapshots; TAEP (Hutchinson) "
        "against the final model and the empirical score, and coverage, along training (Fig. 3)");
    digits_->add_option("--data", digits_data_,
                        "Directory with digits_train.npy and digits_holdout.npy "
                        "(tools/export_digits.py --out DIR)")
        ->required();
    digits_->add_option("--out-dir", digits_out_, "Directory for tables, snapshots, models and figures")
        ->required()
        ->check(nonempty_path());
    digits_->add_flag("--quick", digits_quick_, "Few training steps and paths (CI: checks the trends)");
    digits_->add_option("--backend", digits_backend_, "automatic, cpu or cuda")
        ->check(CLI::IsMember(backend_names()));
    digits_->add_option("--threads", digits_threads_, "CPU threads (0: all)")->check(CLI::Range(0, 1024));
    digits_->add_flag("--no-plots", digits_no_plots_, "Do not draw the figures");
    digits_->add_flag("--quiet,-q", digits_quiet_, "No progress or summary on stderr");
  }

  // Exit status 0 when the study ran; its trend checks are in digits.json (checks.all) and
  // digits.md, and --quick exits 1 when they fail (CI runs it).
  int run_digits_command() {
    DigitsConfig cfg = digits_config(digits_quick_);
    cfg.train_samples = digits_data_ + "/digits_train.npy";
    cfg.holdout_samples = digits_data_ + "/digits_holdout.npy";
    if (!digits_backend_.empty()) cfg.train.backend = parse_backend(digits_backend_);
    cfg.train.threads = digits_threads_;
    make_output_dir(digits_out_, "--out-dir");
    const auto json = optional_output(digits_out_ + "/digits.json", "--out-dir");
    const auto md = optional_output(digits_out_ + "/digits.md", "--out-dir");
    ProgressLine progress(!digits_quiet_ && is_root());
    const Clock::time_point t0 = Clock::now();
    const DigitsResult result = run_digits(cfg, digits_out_, command_line(), [&](const DigitsProgress& p) {
      const double base = p.stage == "train" ? 0.0 : p.stage == "track final" ? 0.5 : 0.8;
      const double width = p.stage == "train" ? 0.5 : p.stage == "track final" ? 0.3 : 0.2;
      progress.update(std::chrono::duration<double>(Clock::now() - t0).count(),
                      base + width * p.fraction, p.stage + ": " + p.detail);
    });
    progress.finish();
    if (!json) return 0;
    json->commit(digits_to_json(result));
    md->commit(digits_to_markdown(result));
    if (!digits_quiet_) std::fprintf(stderr, "%s", digits_to_markdown(result).c_str());
    if (!digits_no_plots_) {
      draw_figures("plot_track.py", "", digits_out_ + "/against_final", digits_quiet_);
      draw_figures("plot_track.py", "", digits_out_ + "/against_empirical", digits_quiet_);
    }
    return digits_quick_ && !result.checks.all() ? 1 : 0;
  }

  CLI::App* digits_ = nullptr;
  std::string digits_data_, digits_out_, digits_backend_;
  int digits_threads_ = 0;
  bool digits_quick_ = false, digits_no_plots_ = false, digits_quiet_ = false;

  bool quick_ = false, no_plots_ = false, quiet_ = false, reuse_ = false;
  std::string out_dir_, backend_, scheme_, plot_script_;
  std::vector<std::string> models_;
  int threads_ = 0, batch_ = 0, steps_ = 0;
  std::uint64_t seed_ = 0, train_steps_ = 0, paths_ = 0, samples_ = 0;
  std::vector<CLI::Option*> opts_;
};

}  // namespace

std::unique_ptr<Command> make_experiment_command() { return std::make_unique<ExperimentCommand>(); }

}  // namespace cli
}  // namespace taep

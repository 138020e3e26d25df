// `taep train [CONFIG] --out MODEL.safetensors`: denoising score matching of an MLP score model
// (README "taep train"); the EMA weights to --out, the result JSON (config, loss log, timing) to
// --result, and with --snapshot-every the EMA weights along training (docs/snapshots.md).
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "cli.hpp"
#include "host/io/input_file.hpp"
#include "host/io/safetensors.hpp"
#include "taep/error.hpp"
#include "taep/mlp.hpp"
#include "taep/train.hpp"

namespace taep {
namespace cli {
namespace {

void print_summary(const TrainResult& r) {
  std::fprintf(stderr, "taep: trained %llu steps of batch %d: final loss %.6g",
               static_cast<unsigned long long>(r.config.optimizer.steps), r.config.optimizer.batch,
               r.final_loss);
  if (r.loss_floor)
    std::fprintf(stderr, " (floor %.6g +/- %.2g, the exact score's loss)", *r.loss_floor,
                 r.loss_floor_stderr.value_or(0.0));
  std::fprintf(stderr, "\n");
  const std::string where = r.device.empty() ? r.backend : r.backend + " (" + r.device + ")";
  std::fprintf(stderr, "taep: %.3g s on %s, %.4g steps/s, %.3g GFLOP/s\n", r.wall_seconds,
               where.c_str(), r.steps_per_second, r.gflops);
}

// A count of training steps: digits only, at least 1 (CLI::PositiveNumber would take 2.5 and
// report 0 as "must be a number >= 0").
CLI::Validator step_count() {
  return CLI::Validator(
      [](std::string& text) {
        const bool digits = !text.empty() && std::all_of(text.begin(), text.end(), [](char c) {
          return c >= '0' && c <= '9';
        });
        if (digits && text.find_first_not_of('0') != std::string::npos) return std::string();
        return "must be an integer >= 1 (got '" + text.substr(0, 40) + "')";
      },
      "K >= 1", "step count");
}

class TrainCommand final : public Command {
 public:
  CLI::App* add_to(CLI::App& app) override {
    CLI::App* cmd = app.add_subcommand(
        "train", "Train an MLP score model by denoising score matching and write its weights");
    cmd->add_option("CONFIG", config_path_, "Train config JSON file (default: the built-in config)");
    cmd->add_option("--out", out_path_,
                    "Write the trained (EMA) weights here, as safetensors (required)")
        ->check(nonempty_path());
    cmd->add_option("--result", result_path_, "Write the result JSON (loss log, timing) here")
        ->check(nonempty_path());
    overrides_ = {
        {cmd->add_option("--steps", steps_, "Optimizer steps (optimizer.steps)"), "optimizer.steps",
         [this] { config_.optimizer.steps = steps_; }},
        {cmd->add_option("--batch", batch_, "Batch size (optimizer.batch)"), "optimizer.batch",
         [this] { config_.optimizer.batch = int(batch_); }},
        {cmd->add_option("--seed", seed_, "Random seed (run.seed)"), "run.seed",
         [this] { config_.seed = seed_; }},
        {cmd->add_option("--backend", backend_, "Backend (run.backend)"), "run.backend",
         [this] { config_.backend = parse_backend(backend_); }},
        {cmd->add_option("--threads", threads_, "CPU threads, 0 = all (run.threads)"), "run.threads",
         [this] { config_.threads = int(threads_); }},
        {cmd->add_option("--collapse-modes", collapse_modes_,
                         "Train on the m-mode collapse of the target (data.collapse.modes)"),
         "data.collapse.modes",
         [this] {
           if (!config_.data.collapse) config_.data.collapse = CollapseSpec{};
           config_.data.collapse->modes = int(collapse_modes_);
         }},
        {cmd->add_option("--collapse-eps", collapse_eps_,
                         "Weight of each collapsed mode (data.collapse.eps)"),
         "data.collapse.eps",
         [this] {
           if (!config_.data.collapse) config_.data.collapse = CollapseSpec{};
           config_.data.collapse->eps = collapse_eps_;
         }},
        {cmd->add_option("--samples", samples_, "Train on a CSV file of samples (data.samples)"),
         "data.samples",
         [this] {
           // An empty path would read as "no samples file": training on the default target.
           if (samples_.empty())
             throw ConfigError("--samples (data.samples)",
                               "must name a CSV file of samples (got \"\")");
           config_.data.samples = samples_;
         }},
        {cmd->add_option("--log-every", log_every_, "Steps per loss-log entry (run.log_every)"),
         "run.log_every", [this] { config_.log_every = log_every_; }},
    };
    // CLI11 reads "-5" into an unsigned as 2^64 - 5; bound the narrower ones to their type here and
    // let validate() give the field's range.
    for (int i : {0, 1, 2, 4, 5, 8}) overrides_[std::size_t(i)].option->check(CLI::NonNegativeNumber);
    overrides_[3].option->check(CLI::IsMember(backend_names()));
    guard_numbers(overrides_);
    cmd->add_option("--set", sets_, "KEY=VALUE: set any config field (repeatable; VALUE is JSON or text)");
    cmd->add_flag("--print-config", print_config_, "Print the validated config (JSON) and exit");
    cmd->add_flag("--quiet,-q", quiet_, "No progress or summary on stderr");
    checkpoints_.add_to(*cmd);
    guard_number(cmd->add_option("--snapshot-every", snapshot_every_,
                                 "Also write the EMA weights every K steps and after the last one, "
                                 "with a manifest.json listing them, to --snapshot-dir "
                                 "(docs/snapshots.md)")
                     ->check(step_count()));
    cmd->add_option("--snapshot-dir", snapshot_dir_,
                    "Directory of the snapshots (default: <--out>.snapshots); made if missing, "
                    "it must be empty unless --resume continues the training it holds")
        ->check(nonempty_path());
    return cmd;
  }

  int execute() override {
    if (config_path_.empty() && sets_.empty())
      config_ = default_train_config();
    else
      config_ = parse_train_config(apply_sets(
          config_path_.empty() ? train_config_to_json(default_train_config())
                               : read_config_text(config_path_),
          sets_));
    narrow("--batch", "optimizer.batch", batch_);
    narrow("--threads", "run.threads", threads_);
    narrow("--collapse-modes", "data.collapse.modes", collapse_modes_);
    apply_overrides(overrides_);
    // Validated and its samples file read once; errors named after the flags that set the field.
    std::optional<TrainProblem> problem;
    validate_with_flags(overrides_, [&] { problem = build_train_problem(config_); });
    if (print_config_) {
      if (is_root()) write_stdout(train_config_to_json(problem->config()) + "\n");
      return 0;
    }
    if (out_path_.empty()) throw ConfigError("--out", "is required");
    // Training is not spread over ranks (docs/distributed.md): rank 0 trains, the others are done.
    if (!is_root()) return 0;
    AtomicFile out(out_path_, "--out");
    std::unique_ptr<AtomicFile> result_file;
    if (!result_path_.empty()) result_file = std::make_unique<AtomicFile>(result_path_, "--result");

    ProgressLine progress(!quiet_);
    TrainOptions options;
    options.command = command_line();
    checkpoints_.apply(options);
    options.snapshot_every = snapshot_every_;
    options.snapshot_dir =
        snapshot_every_ > 0 && snapshot_dir_.empty() ? out_path_ + ".snapshots" : snapshot_dir_;
    options.on_log = [&progress](const TrainLogEntry& e, std::uint64_t total) {
      char text[200];
      std::snprintf(text, sizeof text, "step %llu/%llu  loss %.5f  grad norm %.3g  %.4g steps/s",
                    static_cast<unsigned long long>(e.step), static_cast<unsigned long long>(total),
                    e.loss, e.grad_norm, e.seconds > 0 ? double(e.step) / e.seconds : 0.0);
      progress.update(e.seconds, double(e.step) / double(total), text);
    };
    const TrainResult result = train(*problem, options);
    progress.finish();

    out.commit(detail::mlp_file_bytes(result.model, out_path_));
    if (result_file) result_file->commit(train_result_to_json(result));
    if (!quiet_) print_summary(result);
    return 0;
  }

 private:
  // A flag value too large for its int field is reported as out of range, not wrapped.
  void narrow(const char* flag, const char* field, std::uint64_t v) {
    if (v > std::uint64_t(1) << 30)
      throw ConfigError(std::string(flag) + " (" + field + ")",
                        "out of range (got " + std::to_string(v) + ")");
  }

  std::string config_path_, out_path_, result_path_, backend_, samples_, snapshot_dir_;
  std::uint64_t steps_ = 0, batch_ = 0, seed_ = 0, threads_ = 0, collapse_modes_ = 0,
                log_every_ = 0, snapshot_every_ = 0;
  double collapse_eps_ = 0;
  bool quiet_ = false, print_config_ = false;
  std::vector<std::string> sets_;
  CheckpointFlags checkpoints_;
  TrainConfig config_;
  std::vector<Override> overrides_;
};

}  // namespace

std::unique_ptr<Command> make_train_command() { return std::make_unique<TrainCommand>(); }

}  // namespace cli
}  // namespace taep

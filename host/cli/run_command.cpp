// `taep run [CONFIG]`: one TAEP run of a config, result JSON to --out or stdout (README "taep run").
#include <cstdint>
#include <string>
#include <vector>

#include "cli.hpp"
#include "taep/taep.hpp"

namespace taep {
namespace cli {
namespace {

void print_summary(const RunResult& r) {
  const auto& s = r.taep;
  const auto& p = r.performance;
  std::fprintf(stderr, "taep: S: mean %.6g +/- %.2g, variance %.6g (%llu paths, %llu non-finite)\n",
               s.mean, s.stderr_mean, s.variance, static_cast<unsigned long long>(s.count),
               static_cast<unsigned long long>(s.nonfinite));
  std::fprintf(stderr, "taep: IFT: <exp(-S)> = %.6g +/- %.2g, ESS %.4g\n", r.ift.estimate,
               r.ift.stderr_, r.ift.ess);
  if (r.reference)
    std::fprintf(stderr, "taep: reference: rms path error %.3g (closed-form variance %.6g)\n",
                 r.reference->rms_path_error, r.reference->variance);
  if (r.theory)
    std::fprintf(stderr, "taep: theory (eq. 53): variance %.6g, mean %.6g\n",
                 r.theory->variance_eq53, r.theory->mean_eq53);
  const std::string where = p.device.empty() ? p.backend : p.backend + " (" + p.device + ")";
  std::fprintf(stderr, "taep: %.3g s on %s, %.3g path-steps/s\n", p.wall_seconds, where.c_str(),
               p.path_steps_per_second);
}

class RunCommand final : public Command {
 public:
  CLI::App* add_to(CLI::App& app) override {
    CLI::App* run = app.add_subcommand("run", "Run a config and write the result JSON");
    run->add_option("CONFIG", config_path_, "Config JSON file (default: the built-in ring8 config)");
    overrides_ = {
        {run->add_option("--paths", paths_, "Number of paths (run.paths)"), "run.paths",
         [this] { config_.run.paths = paths_; }},
        {run->add_option("--steps", steps_, "Time steps (schedule.steps)"), "schedule.steps",
         [this] { config_.schedule.steps = steps_; }},
        {run->add_option("--seed", seed_, "Random seed (run.seed)"), "run.seed",
         [this] { config_.run.seed = seed_; }},
        {run->add_option("--backend", backend_, "Backend (run.backend)"), "run.backend",
         [this] { config_.run.backend = parse_backend(backend_); }},
    };
    // CLI11 reads "-5" into an unsigned as 2^64 - 5.
    for (int i : {0, 2}) overrides_[std::size_t(i)].option->check(CLI::NonNegativeNumber);
    overrides_[3].option->check(CLI::IsMember(backend_names()));
    run->add_option("--out", out_path_, "Write the result JSON to this file (default: stdout)");
    run->add_flag("--quiet,-q", quiet_, "No progress or summary on stderr");
    return run;
  }

  int execute() override {
    const Problem problem = load_run_config(config_path_, overrides_, config_);
    std::unique_ptr<AtomicFile> out;
    if (!out_path_.empty()) out = std::make_unique<AtomicFile>(out_path_, "--out");

    ProgressLine progress(!quiet_);
    RunOptions options;
    options.on_progress = path_progress(progress, "paths");
    const RunResult result = run(problem, options);
    progress.finish();

    std::string json = result_to_json(result);
    if (json.empty() || json.back() != '\n') json += '\n';
    if (out)
      out->commit(json);
    else
      write_stdout(json);
    if (!quiet_) print_summary(result);
    return 0;
  }

 private:
  std::string config_path_, out_path_, backend_;
  std::uint64_t paths_ = 0, seed_ = 0;
  int steps_ = 0;
  bool quiet_ = false;
  Config config_;
  std::vector<Override> overrides_;
};

}  // namespace

std::unique_ptr<Command> make_run_command() { return std::make_unique<RunCommand>(); }

}  // namespace cli
}  // namespace taep

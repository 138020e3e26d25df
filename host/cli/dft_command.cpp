// `taep dft [CONFIG]`: the detailed fluctuation theorem check of docs/physics.md section 9 — S on
// forward and on reverse paths, their histograms on common bins and the fit of eq. 31 — result JSON
// to --out or stdout (README "taep dft").
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "cli.hpp"
#include "taep/sample.hpp"
#include "taep/taep.hpp"

namespace taep {
namespace cli {
namespace {

void print_fit(const char* what, const DetailedFtFit& f) {
  std::fprintf(stderr,
               "taep: %s: slope %.4f +/- %.2g, intercept %.4f +/- %.2g over %d bins in [%.3g, %.3g], "
               "chi2/dof %.3g\n",
               what, f.slope, f.slope_stderr, f.intercept, f.intercept_stderr, f.bins_used, f.lo,
               f.hi, f.chi2_per_dof);
}

void print_summary(const DetailedFtResult& r) {
  auto side = [](const char* what, const TaepSummary& s, const IftSummary& i, const char* ift,
                 const std::optional<double>& rms) {
    std::fprintf(stderr, "taep: %s: S mean %.6g +/- %.2g, variance %.6g (%llu paths, %llu non-finite); "
                 "%s = %.6g +/- %.2g",
                 what, s.mean, s.stderr_mean, s.variance, static_cast<unsigned long long>(s.count),
                 static_cast<unsigned long long>(s.nonfinite), ift, i.estimate, i.stderr_);
    if (rms) std::fprintf(stderr, "; rms path error %.3g", *rms);
    std::fprintf(stderr, "\n");
  };
  side("forward", r.forward, r.forward_ift, "<exp(-S)>", r.forward_rms_path_error);
  side("reverse", r.reverse, r.reverse_ift, "<exp(+S)>", r.reverse_rms_path_error);
  print_fit("eq. 31 fit on S", r.fit);
  if (r.reference_fit) print_fit("eq. 31 fit on the closed form", *r.reference_fit);
  const auto& p = r.performance;
  const std::string where = p.device.empty() ? p.backend : p.backend + " (" + p.device + ")";
  std::fprintf(stderr, "taep: %.3g s on %s, %.3g path-steps/s\n", p.wall_seconds, where.c_str(),
               p.path_steps_per_second);
}

class DftCommand final : public Command {
 public:
  CLI::App* add_to(CLI::App& app) override {
    CLI::App* cmd = app.add_subcommand(
        "dft", "Check the detailed fluctuation theorem: S on forward and reverse paths");
    cmd->add_option("CONFIG", config_path_, "Config JSON file (default: the built-in ring8 config)");
    overrides_ = {
        {cmd->add_option("--paths", paths_, "Paths of each side (run.paths)"), "run.paths",
         [this] { config_.run.paths = paths_; }},
        {cmd->add_option("--steps", steps_, "Time steps (schedule.steps)"), "schedule.steps",
         [this] { config_.schedule.steps = steps_; }},
        {cmd->add_option("--seed", seed_, "Random seed (run.seed)"), "run.seed",
         [this] { config_.run.seed = seed_; }},
        {cmd->add_option("--backend", backend_, "Backend (run.backend)"), "run.backend",
         [this] { config_.run.backend = parse_backend(backend_); }},
    };
    for (int i : {0, 2}) overrides_[std::size_t(i)].option->check(CLI::NonNegativeNumber);
    overrides_[3].option->check(CLI::IsMember(backend_names()));
    cmd->add_option("--min-count", min_count_,
                    "Bins enter the fit when both histograms have at least this many counts")
        ->check(CLI::NonNegativeNumber);
    cmd->add_option("--out", out_path_, "Write the result JSON to this file (default: stdout)");
    cmd->add_flag("--quiet,-q", quiet_, "No progress or summary on stderr");
    return cmd;
  }

  int execute() override {
    if (min_count_ < 1)
      throw ConfigError("--min-count", "must be at least 1 (got " + std::to_string(min_count_) + ")");
    const Problem problem = load_run_config(config_path_, overrides_, config_);
    std::unique_ptr<AtomicFile> out;
    if (!out_path_.empty()) out = std::make_unique<AtomicFile>(out_path_, "--out");

    ProgressLine progress(!quiet_);
    RunOptions options;
    options.on_progress = path_progress(progress, "forward + reverse paths");
    const DetailedFtResult result = detailed_ft(problem, options, min_count_);
    progress.finish();

    const std::string json = detailed_ft_to_json(result);
    if (out)
      out->commit(json);
    else
      write_stdout(json);
    if (!quiet_) print_summary(result);
    return 0;
  }

 private:
  std::string config_path_, out_path_, backend_;
  std::uint64_t paths_ = 0, seed_ = 0, min_count_ = kDetailedFtMinCount;
  int steps_ = 0;
  bool quiet_ = false;
  Config config_;
  std::vector<Override> overrides_;
};

}  // namespace

std::unique_ptr<Command> make_dft_command() { return std::make_unique<DftCommand>(); }

}  // namespace cli
}  // namespace taep

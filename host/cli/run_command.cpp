// `taep run [CONFIG]`: one TAEP run of a config, result JSON to --out or stdout (README "taep run").
#include <string>

#include "cli.hpp"
#include "taep/taep.hpp"

namespace taep {
namespace cli {
namespace {

void print_summary(const RunResult& r) {
  const auto& s = r.taep;
  std::fprintf(stderr,
               "taep: S: mean %.6g +/- %.2g, variance %.6g +/- %.2g (%llu paths, %llu non-finite)\n",
               s.mean, s.stderr_mean, s.variance, s.stderr_variance,
               static_cast<unsigned long long>(s.count), static_cast<unsigned long long>(s.nonfinite));
  std::fprintf(stderr, "taep: IFT: <exp(-S)> = %.6g +/- %.2g, ESS %.4g (%.3g%% of the paths)\n",
               r.ift.estimate, r.ift.stderr_, r.ift.ess, 100.0 * r.ift.ess_fraction);
  if (r.reference)
    std::fprintf(stderr, "taep: reference: rms path error %.3g (closed-form variance %.6g)\n",
                 r.reference->rms_path_error, r.reference->variance);
  if (r.theory)
    std::fprintf(stderr, "taep: theory (eq. 53): variance %.6g, mean %.6g\n",
                 r.theory->variance_eq53, r.theory->mean_eq53);
  print_performance(r.performance);
}

class RunCommand final : public RunConfigCommand {
 public:
  RunCommand()
      : RunConfigCommand("run", "Run a config and write the result JSON",
                         "Number of paths (run.paths)") {}

  void add_options(CLI::App& cmd) override {
    add_result_options(cmd,
                       "Write every path's S (and R, S_minus_R for exact models), x0 and xN to this .npz file");
  }

  int run_loaded(const Problem& problem) override {
    const auto out = optional_output(out_path_, "--out");
    const auto per_path = optional_output(per_path_path_, "--per-path");
    PathValues values;
    const RunResult result = with_progress("paths", [&](RunOptions options) {
      if (!per_path_path_.empty()) options.per_path = &values;  // on every rank
      return run(problem, options);
    });
    if (per_path) per_path->commit(per_path_npz({{"", &values}}));
    write_result(out.get(), result_to_json(result));
    print_warnings(result.warnings);
    if (!quiet_) print_summary(result);
    return 0;
  }
};

}  // namespace

std::unique_ptr<Command> make_run_command() { return std::make_unique<RunCommand>(); }

}  // namespace cli
}  // namespace taep

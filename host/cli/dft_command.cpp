// `taep dft [CONFIG]`: the detailed fluctuation theorem check of docs/physics.md section 9 — S on
// forward and on reverse paths, their histograms on common bins and the fit of eq. 31 — result JSON
// to --out or stdout (README "taep dft").
#include <cstdint>
#include <optional>
#include <string>

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
  print_performance(r.performance);
}

class DftCommand final : public RunConfigCommand {
 public:
  DftCommand()
      : RunConfigCommand("dft",
                         "Check the detailed fluctuation theorem: S on forward and reverse paths",
                         "Paths of each side (run.paths)") {}

  void add_options(CLI::App& cmd) override {
    cmd.add_option("--min-count", min_count_,
                   "Bins enter the fit when both histograms have at least this many counts")
        ->check(CLI::NonNegativeNumber);
    guard_number(cmd.get_option("--min-count"));
    add_result_options(cmd,
                       "Write every forward and reverse path's S (and R, S_minus_R), x0 and xN to this .npz file");
  }

  int run_loaded(const Problem& problem) override {
    if (min_count_ < 1)
      throw ConfigError("--min-count", "must be at least 1 (got " + std::to_string(min_count_) + ")");
    const auto out = optional_output(out_path_, "--out");
    const auto per_path = optional_output(per_path_path_, "--per-path");
    PathValues forward, reverse;
    const DetailedFtResult result =
        with_progress("forward + reverse paths", [&](RunOptions options) {
          if (!per_path_path_.empty()) {  // on every rank
            options.per_path = &forward;
            options.per_path_reverse = &reverse;
          }
          return detailed_ft(problem, options, min_count_);
        });
    if (per_path) per_path->commit(per_path_npz({{"", &forward}, {"reverse_", &reverse}}));
    write_result(out.get(), detailed_ft_to_json(result));
    print_warnings(result.warnings);
    if (!quiet_) print_summary(result);
    return 0;
  }

 private:
  std::uint64_t min_count_ = kDetailedFtMinCount;
};

}  // namespace

std::unique_ptr<Command> make_dft_command() { return std::make_unique<DftCommand>(); }

}  // namespace cli
}  // namespace taep

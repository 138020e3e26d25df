// `taep sample [CONFIG] --count N --out SAMPLES.csv`: draws samples with the reverse process of the
// config's model (docs/physics.md section 8), writes them as CSV and, with --result, the nearest-mode
// occupancy as JSON (README "taep sample").
#include <cstdint>
#include <string>
#include <vector>

#include "cli.hpp"
#include "taep/physics/rng_streams.hpp"
#include "taep/sample.hpp"
#include "taep/taep.hpp"

namespace taep {
namespace cli {
namespace {

// Header x0,x1,...,x{d-1}, then one row per sample, each value %.9g (float round-trips).
std::string samples_csv(const SampleResult& r) {
  std::string out;
  out.reserve(std::size_t(r.count) * std::size_t(r.d) * 14 + 64);
  for (int i = 0; i < r.d; ++i) out += (i ? ",x" : "x") + std::to_string(i);
  out += '\n';
  char buf[32];
  for (std::uint64_t p = 0; p < r.count; ++p) {
    for (int i = 0; i < r.d; ++i) {
      if (i) out += ',';
      const int n = std::snprintf(buf, sizeof buf, "%.9g", double(r.samples[p * r.d + i]));
      out.append(buf, std::size_t(n));
    }
    out += '\n';
  }
  return out;
}

void print_summary(const SampleResult& r) {
  const ModeOccupancy& o = r.occupancy;
  std::fprintf(stderr, "taep: %llu samples in %d dimension%s (%llu non-finite)\n",
               static_cast<unsigned long long>(r.count), r.d, r.d == 1 ? "" : "s",
               static_cast<unsigned long long>(r.nonfinite));
  for (std::size_t k = 0; k < o.counts.size(); ++k) {
    std::fprintf(stderr, "taep: mode %zu: fraction %.5f +/- %.2g (target %.5f", k, o.fractions[k],
                 o.fraction_stderr[k], o.target_weights[k]);
    if (!o.model_weights.empty()) std::fprintf(stderr, ", model %.5f", o.model_weights[k]);
    std::fprintf(stderr, ")\n");
  }
  const auto& p = r.performance;
  const std::string where = p.device.empty() ? p.backend : p.backend + " (" + p.device + ")";
  std::fprintf(stderr, "taep: %.3g s on %s, %.3g path-steps/s\n", p.wall_seconds, where.c_str(),
               p.path_steps_per_second);
}

class SampleCommand final : public Command {
 public:
  CLI::App* add_to(CLI::App& app) override {
    CLI::App* cmd = app.add_subcommand(
        "sample", "Draw samples with the reverse process of the config's model");
    cmd->add_option("CONFIG", config_path_, "Config JSON file (default: the built-in ring8 config)");
    cmd->add_option("--count", count_, "Number of samples")->required()->check(CLI::NonNegativeNumber);
    cmd->add_option("--out", out_path_, "Write the samples to this CSV file")->required();
    cmd->add_option("--result", result_path_, "Write the result JSON (occupancy) to this file");
    overrides_ = {
        {cmd->add_option("--steps", steps_, "Time steps (schedule.steps)"), "schedule.steps",
         [this] { config_.schedule.steps = steps_; }},
        {cmd->add_option("--seed", seed_, "Random seed (run.seed)"), "run.seed",
         [this] { config_.run.seed = seed_; }},
        {cmd->add_option("--backend", backend_, "Backend (run.backend)"), "run.backend",
         [this] { config_.run.backend = parse_backend(backend_); }},
    };
    overrides_[1].option->check(CLI::NonNegativeNumber);  // CLI11 reads "-5" as 2^64 - 5
    overrides_[2].option->check(CLI::IsMember(backend_names()));
    cmd->add_flag("--quiet,-q", quiet_, "No progress or summary on stderr");
    return cmd;
  }

  int execute() override {
    if (count_ < 1 || count_ >= rng::kMaxPaths)
      throw ConfigError("--count", "must be an integer in [1, 2^40) (got " +
                                       std::to_string(count_) + ")");
    const Problem problem = load_run_config(config_path_, overrides_, config_);
    AtomicFile out(out_path_, "--out");
    std::unique_ptr<AtomicFile> result_file;
    if (!result_path_.empty()) result_file = std::make_unique<AtomicFile>(result_path_, "--result");

    ProgressLine progress(!quiet_);
    RunOptions options;
    options.on_progress = path_progress(progress, "samples");
    const SampleResult result = sample(problem, count_, options);
    progress.finish();

    if (result_file) result_file->commit(sample_result_to_json(result));
    out.commit(samples_csv(result));
    if (!quiet_) print_summary(result);
    return 0;
  }

 private:
  std::string config_path_, out_path_, result_path_, backend_;
  std::uint64_t count_ = 0, seed_ = 0;
  int steps_ = 0;
  bool quiet_ = false;
  Config config_;
  std::vector<Override> overrides_;
};

}  // namespace

std::unique_ptr<Command> make_sample_command() { return std::make_unique<SampleCommand>(); }

}  // namespace cli
}  // namespace taep

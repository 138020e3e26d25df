// `taep rates [CONFIG] [--out FILE.json] [--grid M] [--draws N] [--data-entropy S0] [--nll-points N]`:
// the entropy rates of the diffusion under the config's model and the thermodynamic NLL bound
// (taep/entropy.hpp, docs/entropy-rates.md; README "taep rates").
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "cli.hpp"
#include "taep/entropy.hpp"
#include "taep/error.hpp"

namespace taep {
namespace cli {
namespace {

[[noreturn]] void rethrow_for_flags(const ConfigError& e) {
  const std::string message = std::string(e.what()).substr(e.field().size() + 2);
  for (const auto& [field, flag] :
       {std::pair<const char*, const char*>{"grid_points", "--grid"}, {"draws", "--draws"},
        {"data_entropy", "--data-entropy"}, {"paths", "--paths"}, {"count", "--nll-points"}})
    if (e.field() == field) throw ConfigError(flag, message);
  throw e;
}

class RatesCommand final : public Command {
 public:
  CLI::App* add_to(CLI::App& app) override {
    CLI::App* cmd = app.add_subcommand(
        "rates", "Entropy rates of the diffusion under the config's model (system, intrinsic, "
                 "exchange; plug-in rates F, D, G, H) and the thermodynamic NLL bound");
    cmd->add_option("CONFIG", config_path_, "Config JSON file (default: the built-in ring8 config)");
    cmd->add_option("--out", out_path_, "Write the result JSON to this file (default: stdout)")
        ->check(nonempty_path());
    for (CLI::Option* o :
         {cmd->add_option("--grid", options_.grid_points,
                          "Time-grid points from t_min to t_max, uniform in log SNR (default 65)"),
          cmd->add_option("--draws", options_.draws, "Exact draws of p(x, t) per grid point (default 4096)"),
          cmd->add_option("--nll-points", options_.nll_points,
                          "Also the PF-ODE NLL (dopri5) of this many points drawn at t_min (default 0: none)"),
          cmd->add_option("--paths", options_.paths,
                          "Also the per-path medium, system and total entropy of this many forward "
                          "paths (default 0: none)"),
          cmd->add_option("--data-entropy", data_entropy_,
                          "S0 in nats, replacing the estimate -E log p(x, t_min) (needed when the "
                          "target's density is unknown, e.g. uniform data: d ln(b - a))")})
      guard_number(o);
    CLI::Option* seed = cmd->add_option("--seed", seed_, "Random seed (run.seed)")->check(CLI::NonNegativeNumber);
    CLI::Option* threads =
        cmd->add_option("--threads", threads_, "CPU threads, 0: all (run.threads)")->check(CLI::Range(0, 1024));
    overrides_ = {{seed, "run.seed", [this] { config_.run.seed = seed_; }},
                  {threads, "run.threads", [this] { config_.run.threads = threads_; }}};
    guard_numbers(overrides_);
    data_entropy_option_ = cmd->get_option("--data-entropy");
    cmd->add_option("--set", sets_, "KEY=VALUE: set any config field (repeatable; VALUE is JSON or text)");
    cmd->add_flag("--quiet,-q", quiet_, "No progress or summary on stderr (warnings still show)");
    return cmd;
  }

  int execute() override {
    if (data_entropy_option_->count() > 0) options_.data_entropy = data_entropy_;
    options_.command = command_line();
    const Problem problem = load_run_config(config_path_, sets_, overrides_, config_);
    if (!is_root()) quiet_ = true;
    const auto out = optional_output(out_path_, "--out");
    ProgressLine progress(!quiet_);
    const auto t0 = std::chrono::steady_clock::now();
    options_.on_progress = [&](std::uint64_t done, std::uint64_t total) {
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      progress.update(s, double(done) / double(total),
                      "(" + std::to_string(done) + "/" + std::to_string(total) + " grid points)");
    };
    RatesResult r;
    try {
      r = entropy_rates(problem, options_);
    } catch (const ConfigError& e) {
      rethrow_for_flags(e);
    }
    progress.finish();
    if (!is_root()) return 0;
    write_result(out.get(), rates_result_to_json(r));
    print_warnings(r.warnings);
    if (!quiet_) {
      std::fprintf(stderr, "taep: int Sdot_G %.6g +/- %.2g nats, S1 = H(prior) %.6g", r.int_G.mean,
                   r.int_G.stderr_, r.prior_entropy);
      if (r.data_entropy) std::fprintf(stderr, ", S0 %.6g", r.data_entropy->mean);
      if (r.bound) std::fprintf(stderr, ", bound %.6g", *r.bound);
      std::fprintf(stderr, ", Song upper bound %.6g", r.song_upper_bound);
      if (r.nll) std::fprintf(stderr, ", NLL %.6g +/- %.2g", r.nll->nll_mean, r.nll->nll_stderr);
      std::fprintf(stderr, " (%.3g s on %s)\n", r.performance.wall_seconds, r.performance.device.c_str());
    }
    return 0;
  }

 private:
  std::string config_path_, out_path_;
  std::vector<std::string> sets_;
  std::uint64_t seed_ = 0;
  int threads_ = 0;
  double data_entropy_ = 0;
  bool quiet_ = false;
  CLI::Option* data_entropy_option_ = nullptr;
  RatesOptions options_;
  Config config_;
  std::vector<Override> overrides_;
};

}  // namespace

std::unique_ptr<Command> make_rates_command() {
  return std::make_unique<RatesCommand>();
}

}  // namespace cli
}  // namespace taep

// `taep nll [CONFIG] (--data FILE | --count N) [--per-point FILE.npz] [--out FILE.json]`: the
// negative log-likelihood of data points under the config's model by the probability-flow ODE
// (taep/nll.hpp, docs/likelihood.md; README "taep nll").
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "cli.hpp"
#include "host/io/npy.hpp"
#include "host/io/samples_file.hpp"
#include "taep/error.hpp"
#include "taep/nll.hpp"
#include "taep/physics/rng_streams.hpp"

namespace taep {
namespace cli {
namespace {

// The library names its arguments (taep/nll.hpp); the command line names the flags they came from.
[[noreturn]] void rethrow_for_flags(const ConfigError& e) {
  const std::string message = std::string(e.what()).substr(e.field().size() + 2);
  for (const auto& [field, flag] : {std::pair<const char*, const char*>{"points", "--data"},
                                    {"count", "--count"}, {"prior", "--prior"}, {"solver", "--solver"}})
    if (e.field() == field) throw ConfigError(flag, message);
  throw e;
}

class NllCommand final : public Command {
 public:
  CLI::App* add_to(CLI::App& app) override {
    CLI::App* cmd = app.add_subcommand(
        "nll", "Negative log-likelihood of data points under the config's model by the "
               "probability-flow ODE (nats and bits per dimension)");
    cmd->add_option("CONFIG", config_path_, "Config JSON file (default: the built-in ring8 config)");
    cmd->add_option("--data", data_path_,
                    "The points x(t_min): .npy or CSV, count x d (README \"Sample files\")")
        ->check(nonempty_path());
    count_option_ = cmd->add_option("--count", count_,
                                    "Instead of --data: this many points drawn from the target at "
                                    "t_min (the starts of forward paths 0..N-1)")
                        ->check(CLI::NonNegativeNumber);
    guard_number(count_option_);
    cmd->add_option("--out", out_path_, "Write the result JSON to this file (default: stdout)")
        ->check(nonempty_path());
    cmd->add_option("--per-point", per_point_path_,
                    "Write nll (nats) and latent (the point at t_max) of every point, in order, to "
                    "this .npz")
        ->check(nonempty_path());
    cmd->add_option("--solver", solver_, "dopri5 (adaptive, default) or rk4 (fixed steps)")
        ->check(CLI::IsMember({"dopri5", "rk4"}));
    for (CLI::Option* o :
         {cmd->add_option("--rtol", options_.rtol, "dopri5 relative tolerance (default 1e-5)"),
          cmd->add_option("--atol", options_.atol, "dopri5 absolute tolerance (default 1e-5)"),
          cmd->add_option("--ode-steps", options_.ode_steps, "rk4 steps (default 1000)"),
          cmd->add_option("--max-steps", options_.max_steps,
                          "dopri5: attempted steps per point before it counts as failed (default 1e5)")})
      guard_number(o);
    cmd->add_option("--prior", prior_,
                    "log pi(x(t_max)): standard (N(0, I), default) or model-marginal (the exact-score "
                    "model's q(x, t_max): the closed-form oracle)")
        ->check(CLI::IsMember({"standard", "model-marginal"}));
    CLI::Option* seed = cmd->add_option("--seed", seed_, "Random seed (run.seed): the --count points "
                                                         "and the Hutchinson probes")
                            ->check(CLI::NonNegativeNumber);
    CLI::Option* backend = cmd->add_option("--backend", backend_, "Backend (run.backend; cpu only)")
                               ->check(CLI::IsMember(backend_names()));
    CLI::Option* threads =
        cmd->add_option("--threads", threads_, "CPU threads, 0: all (run.threads)")->check(CLI::Range(0, 1024));
    overrides_ = {{seed, "run.seed", [this] { config_.run.seed = seed_; }},
                  {backend, "run.backend", [this] { config_.run.backend = parse_backend(backend_); }},
                  {threads, "run.threads", [this] { config_.run.threads = threads_; }}};
    guard_numbers(overrides_);
    cmd->add_option("--set", sets_, "KEY=VALUE: set any config field (repeatable; VALUE is JSON or text)");
    cmd->add_flag("--quiet,-q", quiet_, "No progress or summary on stderr (warnings still show)");
    return cmd;
  }

  int execute() override {
    const bool by_count = count_option_->count() > 0;
    if (by_count && !data_path_.empty())
      throw ConfigError("--count", "and --data cannot both be given (the points come from one of them)");
    if (!by_count && data_path_.empty())
      throw ConfigError("--data", "or --count is required (the points to evaluate)");
    if (by_count && (count_ < 1 || count_ >= rng::kMaxPaths))
      throw ConfigError("--count", "must be an integer in [1, 2^40) (got " + std::to_string(count_) + ")");
    options_.solver = solver_ == "rk4" ? OdeSolver::rk4 : OdeSolver::dopri5;
    options_.prior = prior_ == "model-marginal" ? NllPrior::model_marginal : NllPrior::standard;
    options_.command = command_line();
    const Problem problem = load_run_config(config_path_, sets_, overrides_, config_);
    if (!is_root()) quiet_ = true;
    std::vector<double> points;
    const int d = problem.config().target.mixture.dim();
    if (!by_count) {
      detail::SampleTable table = detail::read_sample_file(data_path_, "--data");
      if (table.d != d)
        throw ConfigError("--data", "'" + data_path_ + "' has points of dimension " +
                                        std::to_string(table.d) + ", the config's target " +
                                        std::to_string(d));
      points = std::move(table.values);
    }
    const auto out = optional_output(out_path_, "--out");
    const auto per_point = optional_output(per_point_path_, "--per-point");

    ProgressLine progress(!quiet_);
    const auto t0 = std::chrono::steady_clock::now();
    options_.on_progress = [&](std::uint64_t done, std::uint64_t total) {
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      progress.update(s, double(done) / double(total),
                      "(" + std::to_string(done) + "/" + std::to_string(total) + " points)");
    };
    NllResult result;
    try {
      result = by_count ? nll(problem, count_, options_) : nll(problem, points, d, options_);
    } catch (const ConfigError& e) {
      rethrow_for_flags(e);
    }
    progress.finish();
    if (!is_root()) return 0;
    if (per_point) {
      const std::uint64_t n = result.count, dd = std::uint64_t(result.d);
      per_point->commit(detail::npz_bytes({{"nll", {n}, result.nll.data(), false},
                                           {"latent", {n, dd}, result.latent.data(), false}}));
    }
    write_result(out.get(), nll_result_to_json(result));
    print_warnings(result.warnings);
    if (!quiet_)
      std::fprintf(stderr,
                   "taep: NLL %.6g +/- %.2g nats (%.6g bits/dim) over %llu points (%llu failed), "
                   "%.1f evaluations per point, %.3g s on %s\n",
                   result.nll_mean, result.nll_stderr, result.bits_per_dim,
                   static_cast<unsigned long long>(result.count - result.failures),
                   static_cast<unsigned long long>(result.failures), result.nfe_mean,
                   result.performance.wall_seconds, result.performance.device.c_str());
    return 0;
  }

 private:
  std::string config_path_, data_path_, out_path_, per_point_path_, solver_ = "dopri5",
                                                                     prior_ = "standard", backend_;
  std::vector<std::string> sets_;
  std::uint64_t count_ = 0, seed_ = 0;
  int threads_ = 0;
  bool quiet_ = false;
  CLI::Option* count_option_ = nullptr;
  NllOptions options_;
  Config config_;
  std::vector<Override> overrides_;
};

}  // namespace

std::unique_ptr<Command> make_nll_command() {
  return std::make_unique<NllCommand>();
}

}  // namespace cli
}  // namespace taep

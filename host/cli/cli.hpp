#pragma once
// Shared pieces of the `taep` command-line tool (host/cli/*.cpp): one file per subcommand, each a
// Command registered by main.cpp, and the helpers every subcommand uses for files and progress.
//
// Exit codes (all subcommands): 0 success (and --help), 2 bad input (config, flags, files, an
// unavailable backend), 1 any other failure. Every error is one line "taep: error: <message>" on
// stderr. Output files are written atomically (temp file + rename), so a failed command never leaves
// a partial output file.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "host/io/atomic_file.hpp"
#include "taep/config.hpp"
#include "taep/distributed.hpp"
#include "taep/engine.hpp"
#include "taep/problem.hpp"
#include "taep/result.hpp"

namespace taep {
namespace cli {

class Command {
 public:
  virtual ~Command() = default;
  // Adds the subcommand (its options bound to this object) to the app.
  virtual CLI::App* add_to(CLI::App& app) = 0;
  // Runs after a successful parse; returns the exit code, throws taep errors.
  virtual int execute() = 0;
};

std::unique_ptr<Command> make_run_command();
std::unique_ptr<Command> make_train_command();
std::unique_ptr<Command> make_sample_command();
std::unique_ptr<Command> make_dft_command();
std::unique_ptr<Command> make_experiment_command();
std::unique_ptr<Command> make_track_command();
std::unique_ptr<Command> make_nll_command();
std::unique_ptr<Command> make_rates_command();

// Writes text to stdout or throws.
void write_stdout(const std::string& text);

// The backend names the --backend flags accept, and the parsed value.
std::vector<std::string> backend_names();
Backend parse_backend(const std::string& name);

// Output files (host/io/atomic_file.hpp): checked and created before a long run, put in place
// at once by commit(); `field` names the flag in errors.
using detail::AtomicFile;

// Makes SIGINT, SIGTERM and SIGHUP remove the temp files of uncommitted outputs, then end the
// process by the same signal (so its exit status says which). main() calls it once.
void remove_temps_on_signals();
// Under --checkpoint: the first SIGINT, SIGTERM or SIGHUP only asks the run to stop (it writes its
// checkpoint and throws Interrupted); a second one stops at once as above. stop_signal() is the
// signal that asked (0: none).
void stop_gracefully_on_signals();
int stop_signal();

// One status line on stderr, first after one second of running, then at most once a second;
// rewritten in place on a terminal, one line per update otherwise.
class ProgressLine {
 public:
  explicit ProgressLine(bool enabled);
  ~ProgressLine();
  // `fraction` in [0, 1] of the work done after `seconds`; `text` says what is done.
  void update(double seconds, double fraction, const std::string& text);
  // Prints a line now (after ending a pending terminal line), whatever the time.
  void message(const std::string& text);
  // Ends a pending terminal line so later messages start on a fresh one.
  void finish();

 private:
  bool enabled_, tty_;
  double last_ = 0;
  int width_ = 0;
  bool pending_ = false;
};

// A flag that overrides one config field; a ConfigError for `field` is reported under the flag's
// name (see rethrow_for_flags).
struct Override {
  CLI::Option* option;
  std::string field;
  std::function<void()> apply;
};
// Applies the given overrides (those present on the command line).
void apply_overrides(const std::vector<Override>& overrides);
// CLI11 saturates an unsigned flag (99999999999999999999999 becomes 2^64 - 1) and takes 1e400 as
// inf; this makes each numeric override refuse a value its type cannot hold, with a ConfigError
// naming "--flag (field)". Call once all overrides are added.
void guard_numbers(const std::vector<Override>& overrides);
// The same for a numeric flag that overrides no config field (named by the flag alone).
void guard_number(CLI::Option* option);
// "--out" and friends: an empty path is refused (it would otherwise mean stdout).
CLI::Validator nonempty_path();
// Runs `validate`; a ConfigError for a field that a given flag set is renamed after the flag.
void validate_with_flags(const std::vector<Override>& overrides, const std::function<void()>& validate);

// The text of CONFIG: a file, or standard input for "-" (the same bounds either way).
std::string read_config_text(const std::string& path);
// --set KEY=VALUE (repeatable), applied to a config's JSON text in the order given: the dotted KEY
// (objects made as needed) gets VALUE read as JSON when it parses as JSON (1e6, true, [1, 2],
// "text"), else as a string. ConfigError("--set", ...) for a malformed assignment.
std::string apply_sets(const std::string& text, const std::vector<std::string>& sets);
// The problem of `taep run`, `sample` and `dft`: CONFIG (or the built-in default when `path` is
// empty) with the --set assignments, the given flags applied, validated and its inputs loaded
// once (build_problem) with flag-named errors. The overrides write into `config`, which is why it
// is filled in place.
Problem load_run_config(const std::string& path, const std::vector<std::string>& sets,
                        const std::vector<Override>& overrides, Config& config);

// An on_progress callback that reports "(done/total <what>)  <rate> path-steps/s" on `line`.
std::function<void(const Progress&)> path_progress(ProgressLine& line, const std::string& what);

// The command line the tool was started with, each argument shell-quoted when it needs it: main()
// records it, results carry it in their provenance.
void set_command_line(int argc, const char* const* argv);
const std::string& command_line();

// An output file for `path`, or null when it is empty (the flag not given) or this is not rank 0.
std::unique_ptr<AtomicFile> optional_output(const std::string& path, const std::string& field);
// The result text to `out` when there is one, else to stdout (nothing off rank 0).
void write_result(AtomicFile* out, const std::string& text);
// The --per-path archive: for each (prefix, values), the arrays of `taep.paths` under
// <prefix>S, for exact models <prefix>R and <prefix>S_minus_R, and <prefix>x0, <prefix>xN
// (numpy's .npz).
std::string per_path_npz(const std::vector<std::pair<std::string, const PathValues*>>& sides);
// Each of a result's warnings as "taep: warning: <text>" on stderr (also under --quiet).
void print_warnings(const std::vector<std::string>& warnings);
// "taep: <seconds> s on <backend> (<device>), <rate> path-steps/s" on stderr.
void print_performance(const PerformanceSummary& p);

// Creates an output directory named by `flag`; returns whether it created it (false: it existed).
bool make_output_dir(const std::string& dir, const std::string& flag);
// Draws the figures of a result directory with tools/<script> (`given` overrides where it is
// found: beside the sources, else installed in share/taep) run by a Python that has matplotlib
// ($TAEP_PYTHON, python3, /usr/bin/python3). Without either it says so on stderr (the data files
// stand alone); a failing script is an Error.
void draw_figures(const std::string& script, const std::string& given, const std::string& dir,
                  bool quiet);

// --checkpoint FILE, --checkpoint-every SECONDS and --resume FILE (run, sample, dft, train).
struct CheckpointFlags {
  std::string checkpoint, resume;
  double every = 600;
  void add_to(CLI::App& cmd);
  // Under --checkpoint, signals ask the run to stop (stop_gracefully_on_signals); options get the
  // three values and, then, stop_requested.
  template <class Options>
  void apply(Options& options) const {
    options.checkpoint = checkpoint;
    options.checkpoint_every = every;
    options.resume = resume;
    if (!checkpoint.empty()) {
      stop_gracefully_on_signals();
      options.stop_requested = [] { return stop_signal() != 0; };
    }
  }
};

// What `taep run`, `sample` and `dft` share: CONFIG and the flags that override its fields,
// --quiet, and running the engine with progress on stderr and the command line in the result.
class RunConfigCommand : public Command {
 public:
  // The subcommand with CONFIG, --paths (only when paths_help is given), --steps, --seed,
  // --backend, --threads, --scheme, --set, --allow-nonfinite, --print-config, --quiet,
  // --checkpoint, --checkpoint-every and --resume, then the command's own options (add_options).
  // Under MPI every rank runs the command and rank 0 alone writes files and reports.
  CLI::App* add_to(CLI::App& app) final;
  // Loads the config; with --print-config writes the validated config to stdout, else run_loaded.
  int execute() final;

 protected:
  RunConfigCommand(std::string name, std::string description, const char* paths_help)
      : name_(std::move(name)), description_(std::move(description)), paths_help_(paths_help) {}
  virtual void add_options(CLI::App& cmd) = 0;
  virtual int run_loaded(const Problem& problem) = 0;
  // --out (the result JSON, default stdout) into out_path_ and --per-path FILE.npz into
  // per_path_path_ (run and dft).
  void add_result_options(CLI::App& cmd, const char* per_path_help);
  std::string out_path_, per_path_path_;
  // f(options) with progress reported as "(done/total <what>)"; the progress line ends before the
  // result is returned.
  template <class F>
  auto with_progress(const std::string& what, F&& f) {
    ProgressLine progress(!quiet_);
    auto result = f(run_options(progress, what));
    progress.finish();
    return result;
  }

  Config config_;
  bool quiet_ = false;

 private:
  // Progress on `progress`, the command line, and --checkpoint, --checkpoint-every, --resume.
  RunOptions run_options(ProgressLine& progress, const std::string& what) const;
  CheckpointFlags checkpoints_;
  std::string name_, description_;
  const char* paths_help_;
  std::string config_path_, backend_, scheme_;
  std::vector<std::string> sets_;
  std::uint64_t paths_ = 0, seed_ = 0;
  int steps_ = 0, threads_ = 0;
  bool allow_nonfinite_ = false, print_config_ = false;
  std::vector<Override> overrides_;
};

}  // namespace cli
}  // namespace taep

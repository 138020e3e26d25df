// Files, progress and flag handling shared by the subcommands (cli.hpp).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <csignal>
#include <cstring>
#include <optional>
#include <utility>

#include "cli.hpp"
#include "host/io/input_file.hpp"
#include "host/io/json_fields.hpp"
#include "host/io/npy.hpp"
#include "taep/error.hpp"

namespace taep {
namespace cli {

void write_stdout(const std::string& text) {
  if (std::fwrite(text.data(), 1, text.size(), stdout) != text.size() || std::fflush(stdout) != 0)
    throw Error(std::string("cannot write to stdout: ") + std::strerror(errno));
}

namespace {
constexpr Backend kBackends[] = {Backend::automatic, Backend::cpu, Backend::cuda};
}

std::vector<std::string> backend_names() {
  std::vector<std::string> names;
  for (Backend b : kBackends) names.emplace_back(to_string(b));
  return names;
}

Backend parse_backend(const std::string& name) {
  for (Backend b : kBackends)
    if (name == to_string(b)) return b;
  throw ConfigError("--backend", "must be one of automatic, cpu, cuda (got \"" + name + "\")");
}

// ---- output files -------------------------------------------------------------------------------

namespace {
extern "C" void remove_temps_and_reraise(int sig) {
  detail::remove_pending_temps();
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}
}  // namespace

void remove_temps_on_signals() {
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) std::signal(sig, remove_temps_and_reraise);
}

namespace {
volatile std::sig_atomic_t g_stop_signal = 0;
extern "C" void request_stop(int sig) {
  if (g_stop_signal != 0) {  // a second signal: stop now
    remove_temps_and_reraise(sig);
    return;
  }
  g_stop_signal = sig;
}
}  // namespace

void stop_gracefully_on_signals() {
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) std::signal(sig, request_stop);
}

int stop_signal() { return g_stop_signal; }

// ---- progress -----------------------------------------------------------------------------------

ProgressLine::ProgressLine(bool enabled) : enabled_(enabled), tty_(::isatty(STDERR_FILENO) == 1) {}
ProgressLine::~ProgressLine() { finish(); }

void ProgressLine::update(double seconds, double fraction, const std::string& text) {
  if (!enabled_ || seconds <= 1.0 || seconds - last_ < 1.0) return;
  last_ = seconds;
  const double eta = fraction > 0 ? (1.0 - fraction) * seconds / fraction : 0.0;
  char line[512];
  const int n = std::snprintf(line, sizeof line, "taep: %.1f%% %s  ETA %.0f s", 100.0 * fraction,
                              text.c_str(), eta);
  if (tty_) {
    std::fprintf(stderr, "\r%s%*s", line, width_ > n ? width_ - n : 0, "");
    width_ = n;
    pending_ = true;
  } else {
    std::fprintf(stderr, "%s\n", line);
  }
  std::fflush(stderr);
}

void ProgressLine::message(const std::string& text) {
  if (!enabled_) return;
  finish();
  std::fprintf(stderr, "taep: %s\n", text.c_str());
  std::fflush(stderr);
}

void ProgressLine::finish() {
  if (pending_) std::fputc('\n', stderr);
  pending_ = false;
  width_ = 0;
}

// ---- flags --------------------------------------------------------------------------------------

void apply_overrides(const std::vector<Override>& overrides) {
  for (const Override& o : overrides)
    if (o.option->count() > 0) o.apply();
}

namespace {

// Checks the flag's text before CLI11 converts it; `label` names the flag in the error.
void check_number_text(std::string type, const std::string& text, const std::string& label) {
  type = type.substr(0, type.find(':'));  // "UINT:NONNEGATIVE" after CLI11's own checks
  const auto shown = [&] { return "'" + (text.size() > 40 ? text.substr(0, 37) + "..." : text) + "'"; };
  if (type == "UINT" || type == "INT") {
    const char* b = text.data() + (!text.empty() && text[0] == '+' ? 1 : 0);
    const char* e = text.data() + text.size();
    bool ok;
    if (type == "UINT") {
      std::uint64_t v;
      auto r = std::from_chars(b, e, v);
      ok = r.ec == std::errc() && r.ptr == e;
    } else {
      std::int64_t v;
      auto r = std::from_chars(b, e, v);
      ok = r.ec == std::errc() && r.ptr == e;
    }
    // Any other text (1e6, -5) is left to CLI11's conversion and the flag's own checks; only a
    // run of digits too long for the type is refused here.
    const bool digits = b != e && std::all_of(b, e, [](char c) {
      return (c >= '0' && c <= '9') || c == '-';
    });
    if (digits && !ok)
      throw ConfigError(label, std::string(type == "UINT" ? "must be an integer of at most 1.8e19"
                                                          : "is out of range for an integer") +
                                   " (got " + shown() + ")");
  } else if (type == "FLOAT") {
    errno = 0;
    char* end = nullptr;
    const double x = std::strtod(text.c_str(), &end);
    if (end && *end == '\0' && end != text.c_str() && (errno == ERANGE && std::isinf(x)))
      throw ConfigError(label, "must be a finite number of magnitude below 1.8e308 (got " + shown() +
                                   ")");
  }
}

void guard(CLI::Option* option, const std::string& label) {
  const std::string type = option->get_type_name();
  option->check(CLI::Validator(
      [type, label](std::string& text) {
        check_number_text(type, text, label);
        return std::string();
      },
      "", "number that fits"));
}

}  // namespace

void guard_numbers(const std::vector<Override>& overrides) {
  for (const Override& o : overrides) guard(o.option, o.option->get_name() + " (" + o.field + ")");
}

void guard_number(CLI::Option* option) { guard(option, option->get_name()); }

CLI::Validator nonempty_path() {
  return CLI::Validator(
      [](std::string& text) {
        return text.empty() ? std::string("must name a file (got an empty path)") : std::string();
      },
      "", "non-empty path");
}

void validate_with_flags(const std::vector<Override>& overrides, const std::function<void()>& validate) {
  try {
    validate();
  } catch (const ConfigError& e) {
    for (const Override& o : overrides)
      if (o.option->count() > 0 && e.field() == o.field) {
        const std::string message = std::string(e.what()).substr(e.field().size() + 2);
        throw ConfigError(o.option->get_name() + " (" + o.field + ")", message);
      }
    throw;
  }
}

std::string read_config_text(const std::string& path) {
  return detail::read_input_file(path == "-" ? "/dev/stdin" : path, "CONFIG");
}

std::string apply_sets(const std::string& text, const std::vector<std::string>& sets) {
  if (sets.empty()) return text;
  fields::json root = fields::parse_object(text);  // the config reader's own checks
  for (const std::string& set : sets) {
    const std::size_t eq = set.find('=');
    const std::string key = set.substr(0, eq);
    if (eq == std::string::npos || key.empty() || key.front() == '.' || key.back() == '.' ||
        key.find("..") != std::string::npos)
      throw ConfigError("--set", "must be KEY=VALUE with a dotted KEY such as run.paths (got '" +
                                     fields::shorten(set, 60) + "')");
    const std::string value = set.substr(eq + 1);
    fields::json* at = &root;
    std::string path;
    for (std::size_t begin = 0;;) {
      const std::size_t dot = key.find('.', begin);
      const std::string part = key.substr(begin, dot - begin);
      if (!at->is_object())
        throw ConfigError("--set", "'" + path + "' is not an object, so '" + key + "' cannot be set");
      const bool absent = !at->contains(part);
      at = &(*at)[part];
      path += (path.empty() ? "" : ".") + part;
      if (dot == std::string::npos) break;
      if (absent) *at = fields::json::object();  // a section the config leaves out
      begin = dot + 1;
    }
    // JSON when it is JSON (numbers, booleans, null, arrays, objects, quoted strings), else text.
    fields::json parsed = fields::json::parse(value, nullptr, false);
    *at = parsed.is_discarded() ? fields::json(value) : parsed;
  }
  return root.dump();
}

Problem load_run_config(const std::string& path, const std::vector<std::string>& sets,
                        const std::vector<Override>& overrides, Config& config) {
  if (path.empty() && sets.empty())
    config = default_config();
  else
    config = parse_config(apply_sets(path.empty() ? config_to_json(default_config())
                                                  : read_config_text(path),
                                     sets));
  apply_overrides(overrides);
  std::optional<Problem> problem;
  validate_with_flags(overrides, [&] { problem = build_problem(config); });
  return std::move(*problem);
}

std::function<void(const Progress&)> path_progress(ProgressLine& line, const std::string& what) {
  return [&line, what](const Progress& p) {
    if (p.paths_total == 0) return;
    char text[200];
    std::snprintf(text, sizeof text, "(%llu/%llu %s)  %.1e path-steps/s",
                  static_cast<unsigned long long>(p.paths_done),
                  static_cast<unsigned long long>(p.paths_total), what.c_str(), p.path_steps_per_second);
    line.update(p.seconds, double(p.paths_done) / double(p.paths_total), text);
  };
}

// ---- commands that run a config ------------------------------------------------------------------

namespace {
std::string g_command_line;

// The argument as a POSIX shell reads it back: as is when it holds only safe characters, else in
// single quotes (a single quote itself as '\'').
std::string shell_quoted(const std::string& arg) {
  const bool plain = !arg.empty() && arg.find_first_not_of(
                                         "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                         "0123456789-_./=:,+@%") == std::string::npos;
  if (plain) return arg;
  std::string out = "'";
  for (char c : arg) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}
}  // namespace

void set_command_line(int argc, const char* const* argv) {
  g_command_line.clear();
  for (int i = 0; i < argc; ++i) g_command_line += (i ? " " : "") + shell_quoted(argv[i]);
}

const std::string& command_line() { return g_command_line; }

std::unique_ptr<AtomicFile> optional_output(const std::string& path, const std::string& field) {
  return path.empty() || !is_root() ? nullptr : std::make_unique<AtomicFile>(path, field);
}

void write_result(AtomicFile* out, const std::string& text) {
  if (!is_root()) return;
  if (out)
    out->commit(text);
  else
    write_stdout(text);
}

std::string per_path_npz(const std::vector<std::pair<std::string, const PathValues*>>& sides) {
  std::vector<detail::NpyArray> arrays;
  std::vector<std::vector<double>> errors;  // S - R per side, alive until the archive is made
  errors.reserve(sides.size());
  for (const auto& [prefix, v] : sides) {
    const std::uint64_t n = v->taep.size(), d = v->dim();
    arrays.push_back({prefix + "S", {n}, v->taep.data(), false});
    if (d > 0) {
      arrays.push_back({prefix + "x0", {n, d}, v->x0.data(), true});
      arrays.push_back({prefix + "xN", {n, d}, v->xN.data(), true});
    }
    if (v->reference.empty()) continue;
    const std::vector<double>& error = errors.emplace_back(v->errors());
    arrays.push_back({prefix + "R", {n}, v->reference.data(), false});
    arrays.push_back({prefix + "S_minus_R", {n}, error.data(), false});
  }
  return detail::npz_bytes(arrays);
}

void print_warnings(const std::vector<std::string>& warnings) {
  for (const std::string& w : warnings) std::fprintf(stderr, "taep: warning: %s\n", w.c_str());
}

void print_performance(const PerformanceSummary& p) {
  const std::string where = p.device.empty() ? p.backend : p.backend + " (" + p.device + ")";
  std::fprintf(stderr, "taep: %.3g s on %s, %.3g path-steps/s\n", p.wall_seconds, where.c_str(),
               p.path_steps_per_second);
}

CLI::App* RunConfigCommand::add_to(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand(name_, description_);
  cmd->add_option("CONFIG", config_path_, "Config JSON file (default: the built-in ring8 config)");
  // CLI11 reads "-5" into an unsigned as 2^64 - 5.
  if (paths_help_)
    overrides_.push_back({cmd->add_option("--paths", paths_, paths_help_)->check(CLI::NonNegativeNumber),
                          "run.paths", [this] { config_.run.paths = paths_; }});
  overrides_.push_back({cmd->add_option("--steps", steps_, "Time steps (schedule.steps)"),
                        "schedule.steps", [this] { config_.schedule.steps = steps_; }});
  overrides_.push_back({cmd->add_option("--seed", seed_, "Random seed (run.seed)")
                            ->check(CLI::NonNegativeNumber),
                        "run.seed", [this] { config_.run.seed = seed_; }});
  overrides_.push_back({cmd->add_option("--backend", backend_, "Backend (run.backend)")
                            ->check(CLI::IsMember(backend_names())),
                        "run.backend", [this] { config_.run.backend = parse_backend(backend_); }});
  overrides_.push_back({cmd->add_option("--threads", threads_, "CPU threads, 0: all (run.threads)")
                            ->check(CLI::Range(0, 1024)),
                        "run.threads", [this] { config_.run.threads = threads_; }});
  overrides_.push_back({cmd->add_option("--scheme", scheme_, "euler or milstein (schedule.scheme)")
                            ->check(CLI::IsMember({"euler", "milstein"})),
                        "schedule.scheme", [this] {
                          config_.schedule.scheme = scheme_ == "milstein" ? Scheme::milstein
                                                                          : Scheme::euler;
                        }});
  overrides_.push_back({cmd->add_flag("--allow-nonfinite", allow_nonfinite_,
                                      "Write the result even when every path is non-finite "
                                      "(run.allow_nonfinite)"),
                        "run.allow_nonfinite", [this] { config_.run.allow_nonfinite = true; }});
  cmd->add_option("--set", sets_, "KEY=VALUE: set any config field (repeatable; VALUE is JSON or text)");
  cmd->add_flag("--print-config", print_config_, "Print the validated config (JSON) and exit");
  cmd->add_flag("--quiet,-q", quiet_, "No progress or summary on stderr (warnings still show)");
  checkpoints_.add_to(*cmd);
  add_options(*cmd);
  guard_numbers(overrides_);
  return cmd;
}

void RunConfigCommand::add_result_options(CLI::App& cmd, const char* per_path_help) {
  cmd.add_option("--out", out_path_, "Write the result JSON to this file (default: stdout)")
      ->check(nonempty_path());
  cmd.add_option("--per-path", per_path_path_, per_path_help)->check(nonempty_path());
}

int RunConfigCommand::execute() {
  const Problem problem = load_run_config(config_path_, sets_, overrides_, config_);
  if (!is_root()) quiet_ = true;  // rank 0 reports for the job
  if (print_config_) {
    if (is_root()) write_stdout(config_to_json(problem.config()) + "\n");
    return 0;
  }
  return run_loaded(problem);
}

RunOptions RunConfigCommand::run_options(ProgressLine& progress, const std::string& what) const {
  RunOptions options;
  options.on_progress = path_progress(progress, what);
  options.command = command_line();
  checkpoints_.apply(options);
  return options;
}

void CheckpointFlags::add_to(CLI::App& cmd) {
  cmd.add_option("--checkpoint", checkpoint,
                 "Keep the run's state in this file (every --checkpoint-every seconds, and on "
                 "SIGINT/SIGTERM, which then stop the run)")
      ->check(nonempty_path());
  guard_number(cmd.add_option("--checkpoint-every", every, "Seconds between checkpoints (default 600)")
                   ->check(CLI::PositiveNumber));
  cmd.add_option("--resume", resume, "Continue the run a --checkpoint file holds")
      ->check(nonempty_path());
}

}  // namespace cli
}  // namespace taep

// ---- result directories and their figures -------------------------------------------------------

namespace taep {
namespace cli {
namespace {

bool readable(const std::string& path) { return ::access(path.c_str(), R_OK) == 0; }

std::string find_script(const std::string& script, const std::string& given) {
  if (!given.empty()) return given;
#ifdef TAEP_SOURCE_DIR
  const std::string source = std::string(TAEP_SOURCE_DIR) + "/tools/" + script;
  if (readable(source)) return source;
#endif
  char exe[4096];
  const ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n > 0) {
    std::string dir(exe, std::size_t(n));
    dir = dir.substr(0, dir.find_last_of('/'));
    const std::string installed = dir + "/../share/taep/" + script;
    if (readable(installed)) return installed;
  }
  return "";
}

std::string find_python() {
  std::vector<std::string> candidates;
  if (const char* env = std::getenv("TAEP_PYTHON")) candidates.emplace_back(env);
  candidates.emplace_back("python3");
  candidates.emplace_back("/usr/bin/python3");
  for (const auto& py : candidates) {
    const std::string probe = shell_quoted(py) + " -c 'import matplotlib, numpy' >/dev/null 2>&1";
    if (std::system(probe.c_str()) == 0) return py;
  }
  return "";
}

}  // namespace

bool make_output_dir(const std::string& dir, const std::string& flag) {
  if (::mkdir(dir.c_str(), 0777) == 0) return true;
  if (errno != EEXIST) throw ConfigError(flag, "cannot create '" + dir + "': " + std::strerror(errno));
  return false;
}

void draw_figures(const std::string& script, const std::string& given, const std::string& dir,
                  bool quiet) {
  const std::string path = find_script(script, given);
  const std::string python = path.empty() ? "" : find_python();
  if (path.empty() || python.empty()) {
    if (!quiet)
      std::fprintf(stderr, "taep: figures skipped: %s (the data files are complete)\n",
                   path.empty() ? ("tools/" + script + " not found").c_str()
                                : "no Python with matplotlib and numpy (set TAEP_PYTHON)");
    return;
  }
  const std::string cmd = shell_quoted(python) + " " + shell_quoted(path) + " " + shell_quoted(dir);
  if (std::system(cmd.c_str()) != 0) throw Error("the plotting script failed (" + cmd + ")");
  if (!quiet) std::fprintf(stderr, "taep: figures in %s/figures\n", dir.c_str());
}

}  // namespace cli
}  // namespace taep

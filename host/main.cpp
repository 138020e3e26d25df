// The `taep` command-line tool: a thin shell over taep::run (architecture.md, "one thin executable").
//
// Exit codes: 0 success (and --help), 2 bad input (config, flags, files, an unavailable backend),
// 1 any other failure. Every error is one line "taep: error: <message>" on stderr. The result file
// is written atomically (temp file + rename), so a failed run never leaves a partial --out file.
#include <fcntl.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "taep/taep.hpp"

namespace {

constexpr taep::Backend kBackends[] = {taep::Backend::automatic, taep::Backend::cpu,
                                       taep::Backend::cuda};

std::string one_line(std::string s) {
  for (char& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  return s;
}

int report_error(const std::string& message, int code) {
  std::fprintf(stderr, "taep: error: %s\n", one_line(message).c_str());
  return code;
}

std::string read_config_file(const std::string& path) {
  auto fail = [&] {
    throw taep::ConfigError("CONFIG", "cannot read '" + path + "': " + std::strerror(errno));
  };
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) fail();
  std::string text;
  char buf[1 << 16];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
  const bool bad = std::ferror(f);  // e.g. EISDIR for a directory
  std::fclose(f);
  if (bad) fail();
  return text;
}

// ---- atomic output ------------------------------------------------------------------------------

// The temp file a signal handler must remove (a fixed buffer: handlers may not allocate).
char g_temp_path[4096];

extern "C" void remove_temp_and_reraise(int sig) {
  if (g_temp_path[0]) ::unlink(g_temp_path);
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

// Creates FILE.tmp.<pid> beside FILE up front (so an unwritable --out fails before a long run);
// commit() fills it and renames it over FILE. Until then the destructor removes it.
class AtomicFile {
 public:
  explicit AtomicFile(std::string path)
      : path_(std::move(path)), temp_(path_ + ".tmp." + std::to_string(::getpid())) {
    if (temp_.size() >= sizeof g_temp_path)
      throw taep::ConfigError("--out", "path too long: '" + path_ + "'");
    file_ = std::fopen(temp_.c_str(), "wb");
    if (!file_)
      throw taep::ConfigError("--out", "cannot create '" + temp_ + "': " + std::strerror(errno));
    std::memcpy(g_temp_path, temp_.c_str(), temp_.size() + 1);
    for (int sig : {SIGINT, SIGTERM, SIGHUP}) std::signal(sig, remove_temp_and_reraise);
  }
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  ~AtomicFile() {
    if (file_) std::fclose(file_);
    if (!committed_) std::remove(temp_.c_str());
    g_temp_path[0] = '\0';
  }

  void commit(const std::string& text) {
    const bool written = std::fwrite(text.data(), 1, text.size(), file_) == text.size() &&
                         std::fflush(file_) == 0 && ::fsync(::fileno(file_)) == 0;
    const int closed = std::fclose(file_);
    file_ = nullptr;
    if (!written || closed != 0)
      throw taep::Error("--out: cannot write '" + temp_ + "': " + std::strerror(errno));
    if (std::rename(temp_.c_str(), path_.c_str()) != 0)
      throw taep::Error("--out: cannot rename '" + temp_ + "' to '" + path_ +
                        "': " + std::strerror(errno));
    committed_ = true;
  }

 private:
  std::string path_, temp_;
  std::FILE* file_ = nullptr;
  bool committed_ = false;
};

// ---- progress and summary -----------------------------------------------------------------------

// One status line on stderr, first after one second of running, then at most once a second;
// rewritten in place on a terminal.
class ProgressLine {
 public:
  explicit ProgressLine(bool enabled) : enabled_(enabled), tty_(::isatty(STDERR_FILENO) == 1) {}
  ~ProgressLine() { finish(); }

  void update(const taep::Progress& p) {
    if (!enabled_ || p.seconds <= 1.0 || p.seconds - last_ < 1.0 || p.paths_total == 0) return;
    last_ = p.seconds;
    const double done = double(p.paths_done), total = double(p.paths_total);
    const double eta = done > 0 ? (total - done) * p.seconds / done : 0.0;
    char line[256];
    const int n = std::snprintf(
        line, sizeof line, "taep: %.1f%% (%llu/%llu paths)  %.1e path-steps/s  ETA %.0f s",
        100.0 * done / total, static_cast<unsigned long long>(p.paths_done),
        static_cast<unsigned long long>(p.paths_total), p.path_steps_per_second, eta);
    if (tty_) {
      std::fprintf(stderr, "\r%s%*s", line, width_ > n ? width_ - n : 0, "");
      width_ = n;
      pending_ = true;
    } else {
      std::fprintf(stderr, "%s\n", line);
    }
    std::fflush(stderr);
  }

  // Ends a pending terminal line so later messages start on a fresh one.
  void finish() {
    if (pending_) std::fputc('\n', stderr);
    pending_ = false;
  }

 private:
  bool enabled_, tty_;
  double last_ = 0;
  int width_ = 0;
  bool pending_ = false;
};

void print_summary(const taep::RunResult& r) {
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

// ---- `taep run` ---------------------------------------------------------------------------------

struct RunCommand {
  std::string config_path, out_path, backend;
  std::uint64_t paths = 0, seed = 0;
  int steps = 0;
  bool quiet = false;

  // A flag that overrides one config field; its errors are reported under the flag's name.
  struct Override {
    CLI::Option* option;
    const char* field;
    std::function<void(taep::Config&)> apply;
  };
  std::vector<Override> overrides;

  void add_to(CLI::App& app) {
    CLI::App* run = app.add_subcommand("run", "Run a config and write the result JSON");
    run->add_option("CONFIG", config_path, "Config JSON file (default: the built-in ring8 config)");
    overrides = {
        {run->add_option("--paths", paths, "Number of paths (run.paths)"), "run.paths",
         [this](taep::Config& c) { c.run.paths = paths; }},
        {run->add_option("--steps", steps, "Time steps (schedule.steps)"), "schedule.steps",
         [this](taep::Config& c) { c.schedule.steps = steps; }},
        {run->add_option("--seed", seed, "Random seed (run.seed)"), "run.seed",
         [this](taep::Config& c) { c.run.seed = seed; }},
        {run->add_option("--backend", backend, "Backend (run.backend)"), "run.backend",
         [this](taep::Config& c) {
           for (taep::Backend b : kBackends)
             if (backend == taep::to_string(b)) c.run.backend = b;
         }},
    };
    std::vector<std::string> names;
    for (taep::Backend b : kBackends) names.emplace_back(taep::to_string(b));
    // CLI11 reads "-5" into an unsigned as 2^64 - 5.
    for (int i : {0, 2}) overrides[i].option->check(CLI::NonNegativeNumber);
    overrides[3].option->check(CLI::IsMember(names));
    run->add_option("--out", out_path, "Write the result JSON to this file (default: stdout)");
    run->add_flag("--quiet,-q", quiet, "No progress or summary on stderr");
  }

  taep::Config load_config() const {
    taep::Config config =
        config_path.empty() ? taep::default_config() : taep::parse_config(read_config_file(config_path));
    for (const Override& o : overrides)
      if (o.option->count() > 0) o.apply(config);
    try {
      taep::validate(config);
    } catch (const taep::ConfigError& e) {
      for (const Override& o : overrides)
        if (o.option->count() > 0 && e.field() == o.field) {
          const std::string message = std::string(e.what()).substr(e.field().size() + 2);
          throw taep::ConfigError(o.option->get_name() + " (" + o.field + ")", message);
        }
      throw;
    }
    return config;
  }

  int execute() const {
    const taep::Config config = load_config();
    std::unique_ptr<AtomicFile> out;
    if (!out_path.empty()) out = std::make_unique<AtomicFile>(out_path);

    ProgressLine progress(!quiet);
    taep::RunOptions options;
    options.on_progress = [&progress](const taep::Progress& p) { progress.update(p); };
    const taep::RunResult result = taep::run(config, options);
    progress.finish();

    std::string json = taep::result_to_json(result);
    if (json.empty() || json.back() != '\n') json += '\n';
    if (out) {
      out->commit(json);
    } else if (std::fwrite(json.data(), 1, json.size(), stdout) != json.size() ||
               std::fflush(stdout) != 0) {
      throw taep::Error(std::string("cannot write the result to stdout: ") + std::strerror(errno));
    }
    if (!quiet) print_summary(result);
    return 0;
  }
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"taep: Monte Carlo time-asymmetry entropy production of diffusion models"};
  app.require_subcommand(1);
  RunCommand run;
  run.add_to(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {  // --help
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return report_error(std::string(e.what()) + " (see 'taep --help')", 2);
  }

  try {
    return run.execute();
  } catch (const taep::ConfigError& e) {
    return report_error(e.what(), 2);
  } catch (const taep::BackendUnavailable& e) {
    return report_error(e.what(), 2);
  } catch (const std::exception& e) {  // taep::Error, CudaError, std::bad_alloc, ...
    return report_error(e.what(), 1);
  }
}

// The `taep` command-line tool: a thin shell over the library (docs/architecture.md, "one thin
// executable"). Each subcommand lives in host/cli/<name>_command.cpp; exit codes and error format
// are in host/cli/cli.hpp.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <thread>
#include <cstdio>
#include <new>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "cli.hpp"
#include "host/io/json_fields.hpp"
#include "taep/distributed.hpp"
#include "taep/error.hpp"
#include "taep/version.hpp"

namespace {

std::string one_line(std::string s) {
  for (char& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  return s;
}

// Messages carry input text (file names, flag values, system messages about them): the line is
// kept valid UTF-8 whatever bytes they hold.
int report_error(const std::string& message, int code) {
  std::fprintf(stderr, "taep: error: %s\n", one_line(taep::fields::escape_bytes(message)).c_str());
  return code;
}

// Levenshtein distance, for suggesting the flag a mistyped one meant.
std::size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diag = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

// " (did you mean --paths?)" for an unexpected argument close to a flag of the command it was
// given to (or of the top level), else "".
std::string suggestion(const CLI::App& app, const std::string& what) {
  std::string arg;
  for (const std::string prefix : {"The following argument was not expected: ",
                                   "The following arguments were not expected: "})
    if (what.rfind(prefix, 0) == 0) arg = what.substr(prefix.size());
  arg = arg.substr(0, std::min(arg.find('='), arg.find(' ')));
  if (arg.rfind("-", 0) != 0) return "";
  const CLI::App* where = &app;
  for (const CLI::App* sub = &app; sub;) {
    where = sub;
    const auto parsed = sub->get_subcommands();
    sub = parsed.empty() ? nullptr : parsed.front();
  }
  std::string best;
  std::size_t best_d = 3;  // at most two edits
  for (const CLI::Option* o : where->get_options())
    for (const std::string& name : o->get_lnames()) {
      const std::string flag = "--" + name;
      const std::size_t d = edit_distance(arg, flag);
      if (d < best_d) {
        best_d = d;
        best = flag;
      }
    }
  return best.empty() ? "" : " (did you mean " + best + "?)";
}

// CLI11's messages in the `<flag>: <message>` form of every other error line; "command line" names
// the errors that belong to no one flag.
std::string cli_message(const CLI::ParseError& e) {
  const std::string what = e.what();
  const std::string name = e.get_name();
  static const std::string kRequired = " is required", kConvert = "Could not convert: ";
  if (name == "RequiredError" && what.size() > kRequired.size() &&
      what.compare(what.size() - kRequired.size(), kRequired.size(), kRequired) == 0 &&
      what.find(' ') == what.size() - kRequired.size())
    return what.substr(0, what.size() - kRequired.size()) + ": is required";
  if (name == "ConversionError" && what.rfind(kConvert, 0) == 0) {
    const std::string rest = what.substr(kConvert.size());  // "--steps = 99999999999999999999"
    const std::size_t eq = rest.find(" = ");
    if (eq != std::string::npos)
      return rest.substr(0, eq) + ": not a valid value for its type (got '" +
             taep::fields::shorten(rest.substr(eq + 3), 40) + "')";
  }
  // CLI::NonNegativeNumber: "--paths: Value -5 not in range 0.000000 to 1797...(309 digits).000000"
  const std::string kHuge = " not in range 0.000000 to 17976931348623157";
  const std::size_t huge = what.find(kHuge), value = what.find(": Value ");
  if (huge != std::string::npos && value != std::string::npos && value < huge)
    return what.substr(0, value) + ": must be a number >= 0 (got " +
           taep::fields::shorten(what.substr(value + 8, huge - value - 8), 40) + ")";
  if (what.rfind("-", 0) == 0 && what.find(": ") != std::string::npos &&
      what.find(": ") < what.find(' '))
    return what;  // ValidationError: "--backend: ..."
  return "command line: " + what;
}

// Ends the process for an error `message` with exit `code`. In a job of several ranks, rank 0
// reports; another rank reports what only it can know (not a bad input, which every rank reads
// alike and rank 0 reports too) and ends the whole job, since the others would wait for it.
// A bad input seen by another rank waits a moment first: rank 0, reading the same input, has
// then reported it and ended the job; only an input that rank alone cannot read gets that far.
int fail(const std::string& message, int code, bool bad_input) {
  if (taep::job_size() == 1) return report_error(message, code);
  const int rank = taep::job_rank();
  if (rank != 0 && bad_input) std::this_thread::sleep_for(std::chrono::seconds(3));
  report_error(rank == 0 ? message : "rank " + std::to_string(rank) + ": " + message, code);
  taep::abort_job(code);
}

}  // namespace

int main(int argc, char** argv) {
  taep::MpiSession mpi(&argc, &argv);
  taep::cli::set_command_line(argc, argv);
  taep::cli::remove_temps_on_signals();
  CLI::App app{"taep: Monte Carlo time-asymmetry entropy production of diffusion models"};
  app.set_version_flag("--version", std::string("taep ") + taep::kVersion + " (commit " +
                                        taep::git_commit() + ")");
  app.require_subcommand(1);
  std::vector<std::pair<CLI::App*, std::unique_ptr<taep::cli::Command>>> commands;
  for (auto make : {taep::cli::make_run_command, taep::cli::make_train_command,
                    taep::cli::make_sample_command, taep::cli::make_dft_command,
                    taep::cli::make_experiment_command, taep::cli::make_track_command,
                    taep::cli::make_nll_command, taep::cli::make_rates_command}) {
    auto command = make();
    CLI::App* sub = command->add_to(app);
    commands.emplace_back(sub, std::move(command));
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {  // --help, --version
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    const std::string hint = suggestion(app, e.what());
    return fail(cli_message(e) + (hint.empty() ? " (see 'taep --help')" : hint), 2, true);
  } catch (const taep::ConfigError& e) {  // a flag's value refused while parsing (cli.hpp)
    return fail(e.what(), 2, true);
  }

  try {
    for (auto& c : commands)
      if (c.first->parsed()) return c.second->execute();
    return report_error("no subcommand", 2);
  } catch (const taep::ConfigError& e) {
    return fail(e.what(), 2, true);
  } catch (const taep::BackendUnavailable& e) {
    return fail(e.what(), 2, true);
  } catch (const taep::Interrupted& e) {  // --checkpoint and a signal: the state is saved
    const int sig = taep::cli::stop_signal();
    if (taep::is_root()) report_error(e.what(), 128 + sig);
    return 128 + sig;
  } catch (const std::bad_alloc&) {  // what check_fits_in_memory could not foresee
    return fail("out of memory (a smaller run.chunk_paths, sample --count or network may fit)", 1,
                false);
  } catch (const std::exception& e) {  // taep::Error, CudaError, NonFiniteResult, TrainingDiverged, ...
    return fail(e.what(), 1, false);
  }
}

// The `taep` command-line tool: a thin shell over the library (docs/architecture.md, "one thin
// executable"). Each subcommand lives in host/cli/<name>_command.cpp; exit codes and error format
// are in host/cli/cli.hpp.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "cli.hpp"
#include "host/io/json_fields.hpp"
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

}  // namespace

int main(int argc, char** argv) {
  taep::cli::set_command_line(argc, argv);
  CLI::App app{"taep: Monte Carlo time-asymmetry entropy production of diffusion models"};
  app.set_version_flag("--version", std::string("taep ") + taep::kVersion + " (commit " +
                                        taep::git_commit() + ")");
  app.require_subcommand(1);
  std::vector<std::pair<CLI::App*, std::unique_ptr<taep::cli::Command>>> commands;
  for (auto make : {taep::cli::make_run_command, taep::cli::make_train_command,
                    taep::cli::make_sample_command, taep::cli::make_dft_command,
                    taep::cli::make_experiment_command}) {
    auto command = make();
    CLI::App* sub = command->add_to(app);
    commands.emplace_back(sub, std::move(command));
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {  // --help, --version
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return report_error(std::string(e.what()) + " (see 'taep --help')", 2);
  }

  try {
    for (auto& c : commands)
      if (c.first->parsed()) return c.second->execute();
    return report_error("no subcommand", 2);
  } catch (const taep::ConfigError& e) {
    return report_error(e.what(), 2);
  } catch (const taep::BackendUnavailable& e) {
    return report_error(e.what(), 2);
  } catch (const std::exception& e) {  // taep::Error, CudaError, std::bad_alloc, ...
    return report_error(e.what(), 1);
  }
}

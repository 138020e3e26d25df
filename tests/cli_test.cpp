// End-to-end tests of the `taep` executable: exit codes, the result file, and that bad input never
// leaves an output or temp file behind.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>
#include <regex>
#include <string>
#include <vector>

#include "support/cli_support.hpp"
#include "taep/engine.hpp"
#include "taep/version.hpp"

namespace {

using taep_test::read_text;

constexpr const char* kSmallRun =
    R"({"schedule": {"steps": 20}, "run": {"paths": 4096, "backend": "cpu"}})";

class Cli : public taep_test::CliSandbox {};

TEST_F(Cli, HelpExitsZeroAndListsRun) {
  const Outcome o = run("--help");
  EXPECT_EQ(o.exit_code, 0) << o.err;
  EXPECT_NE(o.out.find("run"), std::string::npos) << o.out;

  const Outcome r = run("run --help");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  for (const char* flag : {"--paths", "--steps", "--seed", "--backend", "--out", "--quiet"})
    EXPECT_NE(r.out.find(flag), std::string::npos) << flag << " in " << r.out;
}

TEST_F(Cli, NoCommandIsBadInput) {
  const Outcome o = run("");
  EXPECT_EQ(o.exit_code, 2);
  EXPECT_EQ(o.err.rfind("taep: error: ", 0), 0u) << o.err;
}

TEST_F(Cli, SmallRunWritesTheResultFile) {
  write("small.json", kSmallRun);
  const Outcome o = run("run small.json --out result.json");
  ASSERT_EQ(o.exit_code, 0) << o.err;
  EXPECT_TRUE(o.out.empty()) << "the result goes to --out, not stdout";
  EXPECT_NE(o.err.find("IFT"), std::string::npos) << "summary on stderr: " << o.err;
  EXPECT_EQ(listing(), (std::vector<std::string>{"result.json", "small.json"}));

  const auto j = nlohmann::json::parse(read_text(work_ / "result.json"));
  for (const char* key :
       {"taep", "ift", "histogram", "reference", "theory", "performance", "config"})
    EXPECT_TRUE(j.contains(key)) << key;
  EXPECT_EQ(j["config"]["run"]["paths"], 4096);
  EXPECT_EQ(j["config"]["schedule"]["steps"], 20);
  EXPECT_EQ(j["taep"]["count"].get<std::uint64_t>() + j["taep"]["nonfinite"].get<std::uint64_t>(),
            4096u);
}

TEST_F(Cli, VersionPrintsTheVersionAndTheCommit) {
  const Outcome o = run("--version");
  ASSERT_EQ(o.exit_code, 0) << o.err;
  EXPECT_EQ(o.out, std::string("taep ") + taep::kVersion + " (commit " + taep::git_commit() + ")\n");
  EXPECT_TRUE(std::regex_match(o.out, std::regex(R"(taep \d+\.\d+\.\d+ \(commit ([0-9a-f]{12}(-dirty)?|unknown)\)\n)")))
      << o.out;
}

// Every result JSON of run, sample --result and dft carries where and how it was made; the statistics
// above it are unchanged.
TEST_F(Cli, ResultsCarryTheirProvenance) {
  write("small.json", kSmallRun);
  ASSERT_EQ(run("run small.json -q --out run.json").exit_code, 0);
  ASSERT_EQ(run("sample small.json --count 100 -q --out s.csv --result sample.json").exit_code, 0);
  ASSERT_EQ(run("dft small.json --paths 4096 -q --out dft.json").exit_code, 0);
  for (const char* file : {"run.json", "sample.json", "dft.json"}) {
    const auto j = nlohmann::json::parse(read_text(work_ / file));
    ASSERT_TRUE(j.contains("provenance")) << file;
    const auto& p = j["provenance"];
    for (const char* key :
         {"version", "commit", "build_type", "backend", "device", "host", "time", "command"})
      EXPECT_TRUE(p.contains(key) && p[key].is_string()) << file << ": " << key;
    EXPECT_EQ(p["version"], taep::kVersion) << file;
    EXPECT_FALSE(p["commit"].get<std::string>().empty()) << file;
    EXPECT_EQ(p["commit"], taep::git_commit()) << file;
    EXPECT_EQ(p["backend"], j["performance"]["backend"]) << file;
    EXPECT_EQ(p["device"], j["performance"]["device"]) << file;
    EXPECT_TRUE(std::regex_match(p["time"].get<std::string>(),
                                 std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)")))
        << file << ": " << p["time"];
    const std::string command = p["command"];
    EXPECT_NE(command.find(" small.json "), std::string::npos) << file << ": " << command;
    EXPECT_NE(command.find(std::string(" ") + file), std::string::npos) << file << ": " << command;
  }
}

// --quiet leaves only the result's warnings on stderr (10 Euler steps: the per-path error warning).
TEST_F(Cli, FlagsOverrideTheConfigAndQuietPrintsNothing) {
  write("small.json", kSmallRun);
  const Outcome o = run("run small.json --paths 5000 --steps 10 --seed 9 --backend cpu --quiet");
  ASSERT_EQ(o.exit_code, 0) << o.err;
  EXPECT_EQ(o.err.rfind("taep: warning: rms_path_error^2 = ", 0), 0u) << o.err;
  EXPECT_EQ(std::count(o.err.begin(), o.err.end(), '\n'), 1) << o.err;
  const auto j = nlohmann::json::parse(o.out);  // no --out: the result goes to stdout
  EXPECT_EQ(j["config"]["run"]["paths"], 5000);
  EXPECT_EQ(j["config"]["run"]["seed"], 9);
  EXPECT_EQ(j["config"]["schedule"]["steps"], 10);
  EXPECT_EQ(j["config"]["run"]["backend"], "cpu");
}

TEST_F(Cli, FailedRunKeepsAnExistingOutputFile) {
  write("result.json", "previous");
  const Outcome o = run("run --steps 0 --out result.json");
  EXPECT_EQ(o.exit_code, 2);
  EXPECT_EQ(read_text(work_ / "result.json"), "previous");
  EXPECT_EQ(listing(), std::vector<std::string>{"result.json"});
}

// ---- bad input: exit 2, one error line naming the field, nothing left behind --------------------

struct BadCli {
  const char* name;
  std::optional<std::string> config;  // written to cfg.json when set
  const char* args;                   // after "run"
  const char* field;                  // must appear in the error line
};

std::ostream& operator<<(std::ostream& os, const BadCli& b) { return os << b.name; }

const BadCli kBadCli[] = {
    {"MalformedJson", R"({"run": {"paths": 10,,}})", "cfg.json", "config"},
    {"UnknownKey", R"({"run": {"pathz": 10}})", "cfg.json", "run.pathz"},
    {"StepsZero", R"({"schedule": {"steps": 0}})", "cfg.json", "schedule.steps"},
    {"TMinNotBelowTMax", R"({"schedule": {"t_min": 1, "t_max": 1}})", "cfg.json", "schedule.t_max"},
    {"NegativeSigma",
     R"({"target": {"weights": [1, 1], "means": [[0], [3]], "sigmas": [1, -1]}})", "cfg.json",
     "target.sigmas[1]"},
    {"CollapseModesNotBelowK", R"({"model": {"collapse": {"modes": 8}}})", "cfg.json",
     "model.collapse.modes"},
    {"MissingConfigFile", std::nullopt, "missing.json", "CONFIG"},
    {"ConfigIsADirectory", std::nullopt, ".", "CONFIG"},
    {"PathsNotANumber", std::nullopt, "--paths abc", "--paths"},
    {"PathsNegative", std::nullopt, "--paths -5", "--paths"},
    {"StepsFlagZero", std::nullopt, "--steps 0", "--steps"},
    {"UnknownBackendFlag", std::nullopt, "--backend gpu", "--backend"},
    {"UnknownFlag", std::nullopt, "--pathz 10", "--pathz"},
    {"CudaUnavailable", R"({"run": {"paths": 4096}})", "cfg.json --backend cuda", "cuda"},
};

class CliBadInput : public Cli, public ::testing::WithParamInterface<BadCli> {};

TEST_P(CliBadInput, ExitsTwoNamingTheFieldAndLeavesNoFile) {
  const BadCli& b = GetParam();
  if (std::string(b.name) == "CudaUnavailable" && taep::cuda_available())
    GTEST_SKIP() << "CUDA is available here";
  std::vector<std::string> before;
  if (b.config) {
    write("cfg.json", *b.config);
    before.push_back("cfg.json");
  }
  const Outcome o = run(std::string("run ") + b.args + " --out out.json");
  EXPECT_EQ(o.exit_code, 2) << o.err;
  EXPECT_EQ(o.err.rfind("taep: error: ", 0), 0u) << o.err;
  EXPECT_NE(o.err.find(b.field), std::string::npos) << o.err;
  EXPECT_EQ(std::count(o.err.begin(), o.err.end(), '\n'), 1) << "one line: " << o.err;
  EXPECT_TRUE(o.out.empty()) << o.out;
  EXPECT_EQ(listing(), before) << "no out.json, no temp file";
}

INSTANTIATE_TEST_SUITE_P(Cli, CliBadInput, ::testing::ValuesIn(kBadCli),
                         [](const auto& info) { return std::string(info.param.name); });

// --set KEY=VALUE (JSON or text, in order) and --print-config, which prints the validated config
// and runs nothing; a malformed assignment is an error naming --set.
TEST_F(Cli, SetAndPrintConfig) {
  const Outcome o = run("run --set run.paths=5000 --set 'model.collapse={\"modes\": 2, \"eps\": 0.02}' "
                        "--set run.backend=cpu --set run.paths=6000 --steps 40 --print-config");
  ASSERT_EQ(o.exit_code, 0) << o.err;
  const auto j = nlohmann::json::parse(o.out);
  EXPECT_EQ(j["run"]["paths"], 6000) << "applied in order";
  EXPECT_EQ(j["run"]["backend"], "cpu") << "text when not JSON";
  EXPECT_EQ(j["model"]["collapse"]["modes"], 2);
  EXPECT_EQ(j["schedule"]["steps"], 40) << "flags apply after --set";
  EXPECT_TRUE(listing().empty()) << "nothing written";
  for (const char* bad : {"--set run.paths", "--set run.paths.x=3", "--set .run=1"}) {
    const Outcome e = run(std::string("run ") + bad + " --print-config");
    EXPECT_EQ(e.exit_code, 2) << bad;
    EXPECT_EQ(e.err.rfind("taep: error: --set: ", 0), 0u) << e.err;
  }
  write("in.json", R"({"run": {"paths": 3000}})");
  const Outcome stdin_config = run("run - --print-config < in.json");
  ASSERT_EQ(stdin_config.exit_code, 0) << stdin_config.err;
  EXPECT_EQ(nlohmann::json::parse(stdin_config.out)["run"]["paths"], 3000) << "- reads stdin";
  const Outcome typo = run("run --pahts 5");
  EXPECT_EQ(typo.exit_code, 2);
  EXPECT_NE(typo.err.find("(did you mean --paths?)"), std::string::npos) << typo.err;
  const Outcome unknown = run("run --set run.pathz=3 --print-config");
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_NE(unknown.err.find("run.pathz"), std::string::npos) << unknown.err;
}

}  // namespace

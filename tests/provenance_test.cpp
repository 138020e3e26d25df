// The provenance every result carries (taep/result.hpp, taep/version.hpp): the build's version and
// commit, and the same "provenance" section in the JSON of the training and experiment results.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <regex>
#include <string>

#include "taep/experiment.hpp"
#include "taep/taep.hpp"
#include "taep/train.hpp"
#include "taep/version.hpp"

namespace {

TEST(Provenance, VersionAndCommitOfTheBuild) {
  EXPECT_EQ(std::string(taep::kVersion), std::to_string(taep::kVersionMajor) + "." +
                                             std::to_string(taep::kVersionMinor) + "." +
                                             std::to_string(taep::kVersionPatch));
  const std::string commit = taep::git_commit();
  EXPECT_FALSE(commit.empty());
  EXPECT_TRUE(std::regex_match(commit, std::regex("[0-9a-f]{12}(-dirty)?|unknown"))) << commit;
}

TEST(Provenance, MadeNowOnThisHost) {
  const taep::Provenance p = taep::make_provenance("cpu", "CPU, 2 threads", "taep run x.json");
  EXPECT_EQ(p.version, taep::kVersion);
  EXPECT_EQ(p.commit, taep::git_commit());
  EXPECT_EQ(p.build_type, taep::build_type());
  EXPECT_EQ(p.backend, "cpu");
  EXPECT_EQ(p.device, "CPU, 2 threads");
  EXPECT_EQ(p.command, "taep run x.json");
  EXPECT_FALSE(p.host.empty());
  EXPECT_TRUE(std::regex_match(p.time, std::regex(R"(20\d\d-[01]\d-[0-3]\dT[0-2]\d:[0-5]\d:[0-6]\dZ)")))
      << p.time;
}

// The library fills it for run() from RunOptions::command.
TEST(Provenance, RunResultCarriesTheBackendAndTheCommand) {
  taep::Config c = taep::default_config();
  c.run.paths = 100;
  c.run.backend = taep::Backend::cpu;
  c.schedule.steps = 5;
  taep::RunOptions options;
  options.command = "my tool";
  const taep::RunResult r = taep::run(c, options);
  EXPECT_EQ(r.provenance.backend, r.performance.backend);
  EXPECT_EQ(r.provenance.device, r.performance.device);
  EXPECT_EQ(r.provenance.command, "my tool");
  const auto j = nlohmann::json::parse(taep::result_to_json(r));
  EXPECT_EQ(j["provenance"]["command"], "my tool");
  EXPECT_EQ(j["provenance"]["commit"], taep::git_commit());
}

void expect_provenance(const std::string& text, const std::string& backend, const char* what) {
  const auto j = nlohmann::json::parse(text);
  ASSERT_TRUE(j.contains("provenance")) << what;
  for (const char* key :
       {"version", "commit", "build_type", "backend", "device", "host", "time", "command"})
    EXPECT_TRUE(j["provenance"].contains(key)) << what << ": " << key;
  EXPECT_EQ(j["provenance"]["backend"], backend) << what;
  EXPECT_EQ(j["provenance"]["commit"], taep::git_commit()) << what;
}

// A training run records its provenance (with the caller's command) when it is made; the
// experiment's result carries the one its runs were made with.
TEST(Provenance, TrainingAndExperimentResultsCarryIt) {
  taep::TrainConfig tc = taep::default_train_config();
  tc.network.hidden = {8};
  tc.optimizer.steps = 3;
  tc.optimizer.batch = 64;
  tc.log_every = 1;
  tc.backend = taep::Backend::cpu;
  tc.threads = 1;
  taep::TrainOptions options;
  options.command = "taep train x.json";
  const taep::TrainResult t = taep::train(tc, options);
  EXPECT_EQ(t.provenance.command, "taep train x.json");
  expect_provenance(taep::train_result_to_json(t), t.backend, "train");
  EXPECT_EQ(nlohmann::json::parse(taep::train_result_to_json(t))["provenance"]["command"],
            "taep train x.json");

  taep::ModeCollapseResult e;
  e.backend = "cuda";
  e.device = "GPU";
  e.provenance = taep::make_provenance(e.backend, e.device, "taep experiment mode-collapse");
  expect_provenance(taep::mode_collapse_to_json(e), "cuda", "experiment");
}

}  // namespace

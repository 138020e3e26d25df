// "Validate once, load once": validate() opens nothing and changes nothing; build_problem and
// build_train_problem read each input file once, and nothing downstream reads it again, through the
// API, the CLI binary (its opens reported by TAEP_INPUT_LOG, and by strace where installed) and the
// mode-collapse experiment.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "host/io/input_file.hpp"
#include "support/safetensors_support.hpp"
#include "taep/engine.hpp"
#include "taep/error.hpp"
#include "taep/experiment.hpp"
#include "taep/mlp.hpp"
#include "taep/problem.hpp"
#include "taep/sample.hpp"
#include "taep/train.hpp"

namespace {

namespace fs = std::filesystem;
using taep::detail::input_file_opens;
using taep::detail::reset_input_file_opens;

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// A scratch directory with a copy of the d = 2 score fixture under a name no other test uses.
class LoadOnce : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* test = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           ("taep_load_once_" + std::to_string(::getpid()) + "_" + test->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    weights_ = (dir_ / "model.safetensors").string();
    fs::copy_file(fs::path(TAEP_FIXTURE_DIR) / "mlp_d2_score.safetensors", weights_);
    reset_input_file_opens();
  }
  void TearDown() override { fs::remove_all(dir_); }

  taep::Config mlp_config() const {
    taep::Config c = taep::default_config();
    c.model = taep::ModelConfig{};
    c.model.type = "mlp";
    c.model.weights = weights_;
    c.schedule.steps = 20;
    c.run.paths = 4096;
    c.run.backend = taep::Backend::cpu;
    c.run.threads = 2;
    return c;
  }

  void write(const std::string& name, const std::string& text) const {
    std::ofstream(dir_ / name, std::ios::binary) << text;
  }

  // Runs the CLI in the scratch directory with TAEP_INPUT_LOG set; the paths it opened, counted.
  std::map<std::string, int> cli_opens(const std::string& args, int* exit_code) const {
    const fs::path log = dir_ / "inputs.log";
    fs::remove(log);
    const std::string command = "cd '" + dir_.string() + "' && TAEP_INPUT_LOG='" + log.string() +
                                "' '" TAEP_CLI_PATH "' " + args + " >/dev/null 2>'" +
                                (dir_ / "stderr").string() + "'";
    const int status = std::system(command.c_str());
    *exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    std::map<std::string, int> opens;
    std::istringstream lines(read_text(log));
    for (std::string line; std::getline(lines, line);) ++opens[line];
    return opens;
  }

  fs::path dir_;
  std::string weights_;
};

TEST_F(LoadOnce, ValidateIsPureAndBuildProblemReadsTheWeightFile) {
  taep::Config c = mlp_config();
  c.model.weights = (dir_ / "missing.safetensors").string();
  c.target.mixture = {};  // a preset left unresolved in code: validate must not fill it
  const std::string before = taep::config_to_json(c);
  EXPECT_NO_THROW(taep::validate(c));
  EXPECT_EQ(taep::config_to_json(c), before);
  EXPECT_TRUE(c.target.mixture.weights.empty());
  EXPECT_EQ(input_file_opens(c.model.weights), 0u);
  taep_test::expect_config_error([&] { taep::build_problem(c); }, "model.weights",
                                 "missing.safetensors");
  EXPECT_EQ(input_file_opens(c.model.weights), 1u);

  // parse_config opens nothing either; the preset is resolved by the reader and by build_problem.
  const std::string json = R"({"model": {"type": "mlp", "weights": )" +
                           nlohmann::json(c.model.weights).dump() + "}}";
  reset_input_file_opens();
  EXPECT_EQ(taep::parse_config(json).target.mixture.components(), 8);
  EXPECT_EQ(input_file_opens(c.model.weights), 0u);
  c.model.weights = weights_;
  const taep::Problem p = taep::build_problem(c);
  EXPECT_EQ(p.config().target.mixture.components(), 8);
  ASSERT_NE(p.mlp(), nullptr);
  EXPECT_EQ(p.mlp()->dim, 2);
}

TEST_F(LoadOnce, RunSampleAndDftOpenTheWeightFileOnce) {
  const taep::Config c = mlp_config();
  taep::run(c);
  EXPECT_EQ(input_file_opens(weights_), 1u) << "run";
  reset_input_file_opens();
  taep::sample(c, 512);
  EXPECT_EQ(input_file_opens(weights_), 1u) << "sample";
  reset_input_file_opens();
  taep::detailed_ft(c);
  EXPECT_EQ(input_file_opens(weights_), 1u) << "detailed_ft";

  // One Problem serves every entry point: one open in all.
  reset_input_file_opens();
  const taep::Problem p = taep::build_problem(c);
  const taep::RunResult a = taep::run(p), b = taep::run(c);
  taep::sample(p, 512);
  taep::detailed_ft(p);
  taep::simulate_paths(p, taep::Backend::cpu, 0, 16);
  taep::simulate_reverse_paths(p, taep::Backend::cpu, 0, 16);
  EXPECT_EQ(input_file_opens(weights_), 2u);  // p, and run(c)'s own build
  EXPECT_EQ(a.taep.mean, b.taep.mean);
  EXPECT_EQ(a.histogram.counts, b.histogram.counts);
  EXPECT_EQ(taep::config_to_json(a.config), taep::config_to_json(b.config));
}

TEST_F(LoadOnce, ModelInMemoryOpensNoFileAndGivesTheSameNumbers) {
  const taep::Config c = mlp_config();
  const taep::MlpModel model = taep::load_mlp(weights_);
  reset_input_file_opens();
  const taep::Problem in_memory = taep::build_problem(c, model);
  EXPECT_EQ(input_file_opens(weights_), 0u);
  const taep::RunResult a = taep::run(in_memory), b = taep::run(c);
  EXPECT_EQ(a.taep.mean, b.taep.mean);
  EXPECT_EQ(a.taep.variance, b.taep.variance);
  EXPECT_EQ(a.histogram.counts, b.histogram.counts);

  taep::MlpModel wrong = model;
  wrong.dim = 3;
  wrong.layers.back().out = 3;
  wrong.layers.back().weight.resize(std::size_t(3) * wrong.layers.back().in);
  wrong.layers.back().bias.resize(3);
  wrong.layers.front().in += 1;  // dim + embedding_dim
  wrong.layers.front().weight.resize(std::size_t(wrong.layers.front().out) * wrong.layers.front().in);
  taep_test::expect_config_error([&] { taep::build_problem(c, wrong); }, "model.weights", "d = 3");
  taep::MlpModel broken = model;
  broken.layers.back().bias.pop_back();  // the output layer no longer returns d values
  taep_test::expect_config_error([&] { taep::build_problem(c, broken); }, "model.weights",
                                 "layers.");
  taep_test::expect_config_error([&] { taep::build_problem(taep::default_config(), model); },
                                 "model.type", "mlp");
}

TEST_F(LoadOnce, TrainReadsItsSamplesFileOnce) {
  write("s.csv", "x,y\n1, 2\n3 4\n-1,0.5\n");
  const std::string csv = (dir_ / "s.csv").string();
  taep::TrainConfig c = taep::default_train_config();
  c.data = taep::TrainDataConfig{};
  c.data.samples = csv;
  c.network.hidden = {8};
  c.network.embedding_dim = 4;
  c.optimizer.steps = 4;
  c.optimizer.batch = 16;
  c.log_every = 2;
  c.backend = taep::Backend::cpu;
  c.threads = 2;
  EXPECT_NO_THROW(taep::validate(c));
  EXPECT_EQ(input_file_opens(csv), 0u);
  const taep::TrainResult r = taep::train(c);
  EXPECT_EQ(input_file_opens(csv), 1u);
  reset_input_file_opens();
  const taep::TrainProblem p = taep::build_train_problem(c);
  taep::train(p);
  taep::dsm_loss_estimate(r.model, p, 64, 1);
  EXPECT_EQ(input_file_opens(csv), 1u);

  write("train.json", R"({"data": {"samples": "s.csv"}, "network": {"hidden": [8], "embedding_dim": 4},
                          "optimizer": {"steps": 4, "batch": 16}, "run": {"backend": "cpu", "log_every": 2}})");
  int code = -1;
  const auto opens = cli_opens("train train.json --out m.safetensors --quiet", &code);
  ASSERT_EQ(code, 0) << read_text(dir_ / "stderr");
  EXPECT_EQ(opens.at("s.csv"), 1);
  EXPECT_EQ(opens.at("train.json"), 1);
}

TEST_F(LoadOnce, CliRunSampleAndDftOpenEachInputOnce) {
  write("run.json", R"({"model": {"type": "mlp", "weights": "model.safetensors"},
                        "schedule": {"steps": 20}, "run": {"paths": 4096, "backend": "cpu"}})");
  for (const char* args : {"run run.json --quiet", "sample run.json --count 256 --out s.csv --quiet",
                           "dft run.json --quiet"}) {
    int code = -1;
    const auto opens = cli_opens(args, &code);
    ASSERT_EQ(code, 0) << args << ": " << read_text(dir_ / "stderr");
    EXPECT_EQ(opens.size(), 2u) << args;
    EXPECT_EQ(opens.count("model.safetensors") ? opens.at("model.safetensors") : 0, 1) << args;
    EXPECT_EQ(opens.count("run.json") ? opens.at("run.json") : 0, 1) << args;
  }
  // A flag-named error still comes before any output, and the weights are read once for it.
  int code = -1;
  const auto opens = cli_opens("run run.json --steps 0 --quiet", &code);
  EXPECT_EQ(code, 2);
  EXPECT_LE(opens.count("model.safetensors") ? opens.at("model.safetensors") : 0, 1);

  // The system's view: strace counts the openat calls on the weight file (skipped without it).
  if (std::system("command -v strace >/dev/null 2>&1") != 0) {
    std::printf("strace not installed: the openat check was skipped\n");
    return;
  }
  for (const char* sub : {"run run.json", "sample run.json --count 256 --out s.csv", "dft run.json"}) {
    const fs::path trace = dir_ / "trace.txt";
    const std::string command = "cd '" + dir_.string() + "' && strace -f -e trace=openat -o '" +
                                trace.string() + "' '" TAEP_CLI_PATH "' " + sub +
                                " --quiet >/dev/null 2>&1";
    ASSERT_EQ(std::system(command.c_str()), 0) << sub;
    std::istringstream lines(read_text(trace));
    int weight_opens = 0;
    for (std::string line; std::getline(lines, line);)
      if (line.find("openat(") != std::string::npos &&
          line.find("\"model.safetensors\"") != std::string::npos)
        ++weight_opens;
    EXPECT_EQ(weight_opens, 1) << sub;
    std::printf("strace %s: %d openat of model.safetensors\n", sub, weight_opens);
  }
}

TEST_F(LoadOnce, ExperimentOpensEachModelAtMostOnce) {
  // Two small models, a few steps of everything: what is counted is the opens, not the physics.
  taep::ModeCollapseConfig cfg = taep::mode_collapse_config(true);
  cfg.models = {{"uncollapsed", 0, 0.0}, {"m1_eps0.09", 1, 0.09}};
  cfg.train.network.hidden = {16};
  cfg.train.optimizer = {20, 64};
  cfg.paths = cfg.samples = 4096;
  cfg.schedule.steps = 20;
  cfg.backend = taep::Backend::cpu;
  cfg.threads = 2;
  taep::ExperimentOptions options;
  options.out_dir = (dir_ / "experiment").string();
  auto model_file = [&](const char* name) {
    return options.out_dir + "/models/" + name + ".safetensors";
  };

  // Trained in memory: the TAEP stages never read the file that training wrote.
  const taep::ModeCollapseResult first = taep::run_mode_collapse(cfg, options);
  ASSERT_EQ(first.models.size(), 2u);
  for (const char* name : {"uncollapsed", "m1_eps0.09"}) {
    ASSERT_TRUE(fs::exists(model_file(name))) << name;
    EXPECT_EQ(input_file_opens(model_file(name)), 0u) << name;
  }

  // Reused: each file read once, and the same numbers as from memory.
  reset_input_file_opens();
  options.reuse_models = true;
  const taep::ModeCollapseResult again = taep::run_mode_collapse(cfg, options);
  for (std::size_t i = 0; i < 2; ++i) {
    const std::string& name = cfg.models[i].name;
    EXPECT_TRUE(again.models[i].reused) << name;
    EXPECT_EQ(input_file_opens(model_file(name.c_str())), 1u) << name;
    EXPECT_EQ(again.models[i].dft.forward.mean, first.models[i].dft.forward.mean) << name;
    EXPECT_EQ(again.models[i].occupancy.counts, first.models[i].occupancy.counts) << name;
  }
}

}  // namespace

#pragma once
// A fresh scratch directory per test for running the `taep` executable (TAEP_CLI_PATH): `work/`
// is the CLI's working directory (configs and outputs); stdout and stderr are captured beside it,
// so a listing of work/ shows exactly the files the CLI left.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#ifndef TAEP_CLI_PATH
#error "TAEP_CLI_PATH must name the taep executable"
#endif

namespace taep_test {

inline std::string read_text(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

class CliDir : public ::testing::Test {
 protected:
  struct Outcome {
    int exit_code = -1;
    std::string out, err;
  };

  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "taep_cli.XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    root_ = tmpl;
    work_ = root_ / "work";
    std::filesystem::create_directory(work_);
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(root_, ec);
  }

  void write(const std::string& name, const std::string& text) {
    std::ofstream(work_ / name, std::ios::binary) << text;
  }

  // `taep ARGS` in work/ (ARGS as a shell reads them).
  Outcome run(const std::string& args) {
    const std::string command = "cd '" + work_.string() + "' && '" TAEP_CLI_PATH "' " + args +
                                " >'" + (root_ / "stdout").string() + "' 2>'" +
                                (root_ / "stderr").string() + "'";
    const int status = std::system(command.c_str());
    Outcome o;
    o.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    o.out = read_text(root_ / "stdout");
    o.err = read_text(root_ / "stderr");
    return o;
  }

  // The names in work/, sorted.
  std::vector<std::string> listing() const {
    std::vector<std::string> names;
    for (const auto& e : std::filesystem::directory_iterator(work_))
      names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }

  std::filesystem::path root_, work_;
};

}  // namespace taep_test

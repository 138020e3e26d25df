#pragma once
// Running the `taep` executable from a test: each test gets a fresh directory whose `work/` is the
// CLI's working directory (configs and outputs); stdout and stderr are captured beside it, so a
// listing of work/ shows exactly what the CLI left behind.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#ifndef TAEP_CLI_PATH
#error "TAEP_CLI_PATH must name the taep executable"
#endif

namespace taep_test {

namespace fs = std::filesystem;

inline std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// A new, empty directory under the system's temp directory ("" if it cannot be made).
inline fs::path make_temp_dir(const std::string& prefix) {
  std::string name = (fs::temp_directory_path() / (prefix + ".XXXXXX")).string();
  return ::mkdtemp(name.data()) ? fs::path(name) : fs::path();
}

class CliSandbox : public ::testing::Test {
 protected:
  struct Outcome {
    int exit_code = -1;
    std::string out, err;
  };

  void SetUp() override {
    root_ = make_temp_dir("taep_cli_test");
    ASSERT_FALSE(root_.empty()) << "no temp directory";
    work_ = root_ / "work";
    fs::create_directory(work_);
  }
  void TearDown() override {
    std::error_code ignored;
    if (!root_.empty()) fs::remove_all(root_, ignored);
  }

  // Writes work/<name>.
  void write(const std::string& name, const std::string& text) {
    std::ofstream(work_ / name, std::ios::binary) << text;
  }

  // `taep <args>` in work/, through the shell (args are shell words).
  Outcome run(const std::string& args) {
    const fs::path out = root_ / "stdout", err = root_ / "stderr";
    const std::string command = "cd '" + work_.string() + "' && '" TAEP_CLI_PATH "' " + args +
                                " >'" + out.string() + "' 2>'" + err.string() + "'";
    const int status = std::system(command.c_str());
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, read_text(out), read_text(err)};
  }

  // The names in work/, sorted.
  std::vector<std::string> listing() const {
    std::vector<std::string> names;
    for (const fs::directory_entry& e : fs::directory_iterator(work_))
      names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }

  fs::path root_, work_;
};

}  // namespace taep_test

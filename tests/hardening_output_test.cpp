// Output files (host/io/atomic_file.hpp): what each kind of target gets, what is refused, and that
// nothing of taep's own is left behind (Hardening issue, items 6-8 and 13).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <thread>
#include <vector>

#include "host/io/atomic_file.hpp"
#include "support/cli_support.hpp"
#include "support/test_support.hpp"
#include "taep/error.hpp"
#include "taep/mlp.hpp"

namespace {

using taep::detail::AtomicFile;
using taep_test::CliSandbox;
using taep_test::read_text;
namespace fs = std::filesystem;

class OutputFile : public CliSandbox {
 protected:
  std::string at(const std::string& name) const { return (work_ / name).string(); }
};

// The field of the ConfigError `f` throws, or "" when it throws none.
template <class F>
std::string refused_field(F&& f) {
  try {
    f();
  } catch (const taep::ConfigError& e) {
    return e.field();
  }
  return "";
}

TEST_F(OutputFile, ReplacesARegularFileKeepingItsModeAndLeavesOnlyTheFile) {
  write("out.txt", "old");
  ::chmod(at("out.txt").c_str(), 0640);
  {
    AtomicFile f(at("out.txt"), "--out");
    EXPECT_TRUE(f.atomic());
    EXPECT_EQ(read_text(work_ / "out.txt"), "old") << "untouched until commit";
    f.commit("new");
  }
  EXPECT_EQ(read_text(work_ / "out.txt"), "new");
  struct stat st;
  ASSERT_EQ(::stat(at("out.txt").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  EXPECT_EQ(listing(), std::vector<std::string>{"out.txt"});
}

TEST_F(OutputFile, AnUncommittedFileLeavesTheTargetAsItWas) {
  write("out.txt", "old");
  { AtomicFile f(at("out.txt"), "--out"); }
  { AtomicFile f(at("new.txt"), "--out"); }
  EXPECT_EQ(read_text(work_ / "out.txt"), "old");
  EXPECT_EQ(listing(), std::vector<std::string>{"out.txt"});
}

TEST_F(OutputFile, ASymlinkKeepsPointingAtTheReplacedFile) {
  write("real.txt", "old");
  fs::create_directory(work_ / "sub");
  fs::create_symlink("../real.txt", work_ / "sub" / "link.txt");
  fs::create_symlink("sub/link.txt", work_ / "link2.txt");  // a chain of two
  AtomicFile f(at("link2.txt"), "--out");
  EXPECT_EQ(f.target(), at("sub/../real.txt"));
  f.commit("new");
  EXPECT_TRUE(fs::is_symlink(work_ / "link2.txt"));
  EXPECT_TRUE(fs::is_symlink(work_ / "sub" / "link.txt"));
  EXPECT_EQ(read_text(work_ / "real.txt"), "new");
}

TEST_F(OutputFile, ADanglingSymlinkCreatesItsTarget) {
  fs::create_symlink("made.txt", work_ / "link.txt");
  AtomicFile(at("link.txt"), "--out").commit("x");
  EXPECT_TRUE(fs::is_symlink(work_ / "link.txt"));
  EXPECT_EQ(read_text(work_ / "made.txt"), "x");
}

TEST_F(OutputFile, DevNullIsWrittenThroughAndStaysADevice) {
  AtomicFile f("/dev/null", "--out");
  EXPECT_FALSE(f.atomic());
  f.commit("discarded");
  struct stat st;
  ASSERT_EQ(::stat("/dev/null", &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));
}

TEST_F(OutputFile, AFifoGetsTheWholeText) {
  const std::string fifo = at("pipe");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  std::string got;
  std::thread reader([&] { got = read_text(fifo); });
  const std::string text(200000, 'z');  // more than a pipe buffer
  AtomicFile f(fifo, "--out");
  EXPECT_FALSE(f.atomic());
  f.commit(text);
  reader.join();
  EXPECT_EQ(got, text);
  EXPECT_TRUE(fs::is_fifo(work_ / "pipe"));
}

TEST_F(OutputFile, RefusesTargetsItCannotWriteNamingTheField) {
  fs::create_directory(work_ / "dir");
  EXPECT_EQ(refused_field([&] { AtomicFile(at("dir"), "--out"); }), "--out");
  EXPECT_EQ(refused_field([&] { AtomicFile(at("missing/x.json"), "--result"); }), "--result");
  EXPECT_EQ(refused_field([&] { AtomicFile("", "--out"); }), "--out");
  EXPECT_EQ(refused_field([&] { AtomicFile(at(std::string(256, 'n')), "--out"); }), "--out");
  fs::create_symlink("loop", work_ / "loop");
  EXPECT_EQ(refused_field([&] { AtomicFile(at("loop"), "--out"); }), "--out");
  EXPECT_EQ(listing(), (std::vector<std::string>{"dir", "loop"}));
  // Library callers (no field) get a plain Error starting with the path.
  try {
    AtomicFile(at("dir"), "");
    ADD_FAILURE() << "a directory was accepted";
  } catch (const taep::ConfigError&) {
    ADD_FAILURE() << "no field to name";
  } catch (const taep::Error& e) {
    EXPECT_EQ(std::string(e.what()).rfind(at("dir") + ": ", 0), 0u) << e.what();
  }
}

TEST_F(OutputFile, ANameAsLongAsTheFileSystemAllowsWorks) {
  const std::string name(255, 'l');  // the temp name does not grow with it
  AtomicFile(at(name), "--out").commit("ok");
  EXPECT_EQ(read_text(work_ / name), "ok");
}

TEST_F(OutputFile, TwoOpenOutputsOntoOneFileAreRefused) {
  write("real.txt", "old");
  fs::create_symlink("real.txt", work_ / "link.txt");
  AtomicFile first(at("real.txt"), "--out");
  EXPECT_EQ(refused_field([&] { AtomicFile(at("real.txt"), "--result"); }), "--result");
  EXPECT_EQ(refused_field([&] { AtomicFile(at("link.txt"), "--result"); }), "--result");
  EXPECT_EQ(refused_field([&] { AtomicFile(at("./real.txt"), "--result"); }), "--result");
  first.commit("new");
  EXPECT_EQ(read_text(work_ / "real.txt"), "new");
}

TEST_F(OutputFile, StaleTempFilesOfDeadProcessesAreRemoved) {
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  ASSERT_GT(child, 0);
  ::waitpid(child, nullptr, 0);  // now a pid no process has
  const std::string dead = ".taep-" + std::to_string(child) + "-0.tmp";
  const std::string alive = ".taep-" + std::to_string(::getppid()) + "-0.tmp";
  write(dead, "left by SIGKILL");
  write(alive, "another taep still writing");
  write(".taep-notmine.tmp", "not of taep's pattern");
  AtomicFile(at("out.txt"), "--out").commit("x");
  std::vector<std::string> left{".taep-notmine.tmp", alive, "out.txt"};
  std::sort(left.begin(), left.end());
  EXPECT_EQ(listing(), left);
}

TEST_F(OutputFile, TheCliRefusesOneFileForOutAndResult) {
  write("s.csv", "old");
  fs::create_symlink("s.csv", work_ / "link.csv");
  for (const char* result : {"s.csv", "link.csv"}) {
    const Outcome o =
        run(std::string("sample --count 10 --steps 5 -q --out s.csv --result ") + result);
    EXPECT_EQ(o.exit_code, 2) << o.err;
    EXPECT_NE(o.err.find("--result"), std::string::npos) << o.err;
    EXPECT_NE(o.err.find("--out"), std::string::npos) << o.err;
    EXPECT_EQ(read_text(work_ / "s.csv"), "old");
  }
  EXPECT_EQ(listing(), (std::vector<std::string>{"link.csv", "s.csv"}));
}

TEST_F(OutputFile, TheCliWritesThroughDevNull) {
  const Outcome o = run("run --paths 100 --steps 5 -q --out /dev/null");
  EXPECT_EQ(o.exit_code, 0) << o.err;
  struct stat st;
  ASSERT_EQ(::stat("/dev/null", &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));
}

// A run whose paths are all non-finite (weights that overflow float) fails with exit 1 and writes
// nothing; with --allow-nonfinite it writes the result with null statistics and warns on stderr.
TEST_F(OutputFile, TheCliRefusesAResultWithoutFinitePathsUnlessAllowed) {
  taep::MlpModel m = taep::load_mlp(taep_test::fixture("ring8_trained.safetensors"));
  for (auto& layer : m.layers)
    for (float& w : layer.weight) w *= 1e30f;
  taep::save_mlp(m, at("huge.safetensors"));
  write("cfg.json", R"({"model": {"type": "mlp", "weights": "huge.safetensors"}, "run": {"paths": 200}, "schedule": {"steps": 10}})");
  Outcome o = run("run cfg.json -q --out out.json");
  EXPECT_EQ(o.exit_code, 1) << o.err;
  EXPECT_NE(o.err.find("all 200 of 200 paths are non-finite"), std::string::npos) << o.err;
  EXPECT_FALSE(fs::exists(work_ / "out.json"));
  o = run("run cfg.json -q --allow-nonfinite --out out.json");
  EXPECT_EQ(o.exit_code, 0) << o.err;
  EXPECT_EQ(o.err.rfind("taep: warning: all 200 of 200 paths are non-finite", 0), 0u) << o.err;
  const std::string json = read_text(work_ / "out.json");
  EXPECT_NE(json.find("\"mean\": null"), std::string::npos) << json.substr(0, 300);
  EXPECT_NE(json.find("\"allow_nonfinite\": true"), std::string::npos);
}

}  // namespace

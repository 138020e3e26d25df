// Hardening of the input readers (host/io/input_file, host/io/safetensors, the samples CSV): every
// read is bounded and fails with a ConfigError naming the field and the limit; a safetensors header
// parses in linear time; a weight file is read only as far as its header declares; each bad
// samples CSV is named with its line and the rule it breaks.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "host/io/input_file.hpp"
#include "support/cli_support.hpp"
#include "support/safetensors_support.hpp"
#include "taep/error.hpp"
#include "taep/mlp.hpp"
#include "taep/problem.hpp"
#include "taep/train.hpp"

extern char** environ;

namespace {

namespace fs = std::filesystem;
using taep_test::expect_config_error;
using taep_test::safetensors_bytes;

class ReadHardening : public taep_test::CliSandbox {
 protected:
  void TearDown() override {
    finish_pipe();
    CliSandbox::TearDown();
  }

  std::string path(const std::string& name) const { return (work_ / name).string(); }
  std::string put(const std::string& name, const std::string& bytes) {
    write(name, bytes);
    return path(name);
  }
  // A regular file of `size` bytes that holds `head` and then zeros, without writing them (sparse).
  std::string sparse(const std::string& name, const std::string& head, std::uint64_t size) {
    const std::string p = put(name, head);
    EXPECT_EQ(::truncate(p.c_str(), off_t(size)), 0);
    return p;
  }
  // A FIFO whose writer (a child process) writes `bytes`, then, when `endless`, zeros until the
  // reader closes it (the child then dies of SIGPIPE). Call finish() after reading.
  std::string pipe_of(const std::string& bytes, bool endless) {
    const std::string p = path("fifo");
    EXPECT_EQ(::mkfifo(p.c_str(), 0600), 0);
    writer_ = ::fork();
    if (writer_ == 0) {  // only async-signal-safe calls here
      const int fd = ::open(p.c_str(), O_WRONLY);
      std::size_t done = 0;
      while (fd >= 0 && done < bytes.size()) {
        const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
        if (n <= 0) ::_exit(0);
        done += std::size_t(n);
      }
      static const char zeros[1 << 16] = {};
      while (endless && ::write(fd, zeros, sizeof zeros) > 0) {
      }
      ::_exit(0);
    }
    return p;
  }
  void finish_pipe() {
    int status = 0;
    if (writer_ > 0) ::waitpid(writer_, &status, 0);
    writer_ = -1;
  }

  pid_t writer_ = -1;
};

// `f`'s wall time in seconds, the best of `tries`.
double best_seconds(const std::function<void()>& f, int tries) {
  double best = 1e300;
  for (int i = 0; i < tries; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    best = std::min(best,
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

// Runs the CLI with `args` (no shell), its stdout and stderr discarded; its exit status and peak
// resident memory in kB.
struct ChildRun {
  int exit_code = -1;
  long max_rss_kb = 0;
};
ChildRun run_cli(const std::vector<std::string>& args) {
  std::vector<std::string> all{TAEP_CLI_PATH};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  pid_t pid = -1;
  ChildRun r;
  const int spawned = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (spawned != 0) return r;
  int status = 0;
  struct rusage usage {};
  if (::wait4(pid, &status, 0, &usage) == pid && WIFEXITED(status))
    r.exit_code = WEXITSTATUS(status);
  r.max_rss_kb = usage.ru_maxrss;
  return r;
}

// ---- safetensors: linear-time header, reads bounded by the declared sizes -----------------------

// n F32 tensors of one value each: an 80k-entry header is ~5.6 MB of JSON.
std::string many_tensors(int n) {
  std::string header = "{", data;
  char name[32];
  for (int i = 0; i < n; ++i) {
    std::snprintf(name, sizeof name, "t%06d", i);
    header += std::string(i ? "," : "") + "\"" + name +
              "\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[" + std::to_string(4 * i) +
              "," + std::to_string(4 * i + 4) + "]}";
  }
  data.assign(std::size_t(4) * n, '\0');
  return safetensors_bytes(header + "}", data);
}

TEST(HardeningSafetensors, HeaderOfManyTensorsParsesInLinearTime) {
  const std::string small = many_tensors(40000), large = many_tensors(80000);
  std::size_t count = 0;
  const auto parse = [&count](const std::string& bytes) {
    count = taep_test::parse_bytes(bytes).tensors.size();
  };
  const double t_small = best_seconds([&] { parse(small); }, 2);
  EXPECT_EQ(count, 40000u);
  const double t_large = best_seconds([&] { parse(large); }, 2);
  EXPECT_EQ(count, 80000u);
  // Quadratic parsing took 13-29 s for 40k entries and over 200 s for 80k; linear takes well under
  // a second. Twice the entries must take well under four times as long (the 20 ms absorbs timer
  // noise on a loaded machine).
  EXPECT_LT(t_large, 10.0);
  EXPECT_LT(t_large, 3 * t_small + 0.02) << "40k: " << t_small << " s, 80k: " << t_large << " s";
}

TEST_F(ReadHardening, WeightsFromDevZeroFailWithoutReadingOn) {
  taep::Config c = taep::default_config();
  c.model = taep::ModelConfig{};
  c.model.type = "mlp";
  c.model.weights = "/dev/zero";
  expect_config_error([&] { taep::build_problem(c); }, "model.weights",
                      "header must be valid JSON");
}

TEST_F(ReadHardening, HugeWeightFileIsReadOnlyAsFarAsItsHeaderDeclares) {
  // 4 GiB (sparse) after one 2-value tensor: reading it whole would take 4 GiB of memory.
  const std::string header = R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})";
  const std::string p =
      sparse("huge.safetensors", safetensors_bytes(header, taep_test::f32_bytes({1.5f, -2})),
             std::uint64_t(4) << 30);
  const taep::SafetensorsFile f = taep::read_safetensors(p);
  EXPECT_EQ(f.tensors.at("a").data, (std::vector<float>{1.5f, -2}));
  // The header length and the offsets are checked against the file's size before reading on.
  const std::string claims =
      sparse("claims.safetensors", safetensors_bytes("", "", 50'000'000), 100);
  expect_config_error([&] { taep::read_safetensors(claims); }, claims,
                      "header length must be at most 92, the number of bytes after it");
  const std::string past =
      put("past.safetensors",
          safetensors_bytes(R"({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})",
                            std::string(8, '\0')));
  expect_config_error([&] { taep::read_safetensors(past); }, past,
                      "tensor \"a\" data_offsets must be [begin, end] with 0 <= begin <= end <= 8");
}

TEST_F(ReadHardening, EndlessPipeOfWeightsIsReadOnlyAsFarAsItsHeaderDeclares) {
  const std::string header = R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})";
  const std::string p = pipe_of(safetensors_bytes(header, taep_test::f32_bytes({3, 4})), true);
  std::vector<float> a;
  EXPECT_NO_THROW(a = taep::read_safetensors(p).tensors.at("a").data);
  finish_pipe();
  EXPECT_EQ(a, (std::vector<float>{3, 4}));
}

TEST_F(ReadHardening, PipeOfWeightsThatEndsEarlyNamesWhatIsMissing) {
  const std::string p = pipe_of(safetensors_bytes("{}", "", 1000), false);
  expect_config_error([&] { taep::read_safetensors(p); }, p,
                      "header length must be at most 2, the number of bytes after it (got 1000)");
  finish_pipe();
  fs::remove(p);
  const std::string q =
      pipe_of(safetensors_bytes(R"({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})",
                                std::string(8, '\0')),
              false);
  expect_config_error([&] { taep::read_safetensors(q); }, q,
                      "tensor \"a\" data_offsets must be [begin, end] with 0 <= begin <= end <= 8");
  finish_pipe();
}

// ---- config text --------------------------------------------------------------------------------

TEST_F(ReadHardening, ConfigTextIsBounded) {
  expect_config_error(
      [] { taep::detail::read_input_file("/dev/zero", "CONFIG"); }, "CONFIG",
      "cannot read '/dev/zero': it holds more than 64 MiB, the limit for a config file");
  const std::string big = sparse("big.json", "{}", taep::detail::kMaxConfigBytes + 1);
  expect_config_error([&] { taep::detail::read_input_file(big, "CONFIG"); }, "CONFIG",
                      "it holds more than 64 MiB");
  expect_config_error([&] { taep::detail::read_input_file(work_.string(), "CONFIG"); }, "CONFIG",
                      "Is a directory");
  EXPECT_EQ(taep::detail::read_input_file(put("ok.json", "{\"a\": 1}"), "CONFIG"), "{\"a\": 1}");
  const std::string limit = sparse("limit.json", "", taep::detail::kMaxConfigBytes);
  EXPECT_EQ(taep::detail::read_input_file(limit, "CONFIG").size(), taep::detail::kMaxConfigBytes);

  const ChildRun run = run_cli({"run", "/dev/zero", "--quiet"});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_LT(run.max_rss_kb, 1 << 20) << "kB";  // bounded by 64 MiB, not by the machine's memory
}

TEST_F(ReadHardening, ReadsNeverAllocatePastTheirBound) {
  taep::detail::InputFile f("/dev/zero");
  std::string out;
  EXPECT_EQ(f.append(out, 1'000'000), 1'000'000u);
  EXPECT_EQ(out.size(), 1'000'000u);
  EXPECT_LE(out.capacity(), 1'000'000u);
  taep::detail::reset_input_file_opens();
  const std::string p = put("w.safetensors", safetensors_bytes("{}"));
  taep::read_safetensors(p);
  taep::detail::read_input(p, 100);
  EXPECT_EQ(taep::detail::input_file_opens(p), 2u);
  const taep::detail::InputRead over = taep::detail::read_input(p, 5);
  EXPECT_FALSE(over.ok);
  EXPECT_TRUE(over.too_large);
  EXPECT_TRUE(over.bytes.empty());
}

// ---- the samples CSV ----------------------------------------------------------------------------

taep::TrainProblem samples_problem(const std::string& path) {
  taep::TrainConfig c = taep::default_train_config();
  c.data = taep::TrainDataConfig{};
  c.data.samples = path;
  c.network.hidden = {8};
  c.network.embedding_dim = 4;
  return taep::build_train_problem(c);
}

std::vector<double> samples_of(const std::string& path) { return samples_problem(path).samples(); }

TEST_F(ReadHardening, CsvLinesEndAtLfCrOrCrlf) {
  const std::vector<double> expected{1, 2, 3, 4, 5, 6};
  EXPECT_EQ(samples_of(put("lf.csv", "x,y\n1,2\n3,4\n5,6\n")), expected);
  EXPECT_EQ(samples_of(put("cr.csv", "x,y\r1,2\r3,4\r5,6\r")), expected);
  EXPECT_EQ(samples_of(put("crlf.csv", "x,y\r\n1,2\r\n3,4\r\n5,6")), expected);
  EXPECT_EQ(samples_of(put("mixed.csv", "1,2\r3,4 # c\r\n\r\n5,6\n")), expected);
  EXPECT_EQ(samples_problem(put("cr1.csv", "1\r2\r3")).sample_count(), 3u);
}

TEST_F(ReadHardening, CsvHeaderIsOnlyAFirstLineWithoutNumbers) {
  const std::string bom = "\xEF\xBB\xBF";
  EXPECT_EQ(samples_of(put("bom.csv", bom + "1,2\n3,4\n")), (std::vector<double>{1, 2, 3, 4}));
  EXPECT_EQ(samples_of(put("bomh.csv", bom + "x,y\n3,4\n")), (std::vector<double>{3, 4}));
  EXPECT_EQ(samples_of(put("ch.csv", "# made by hand\n\nx y\n3 4\n")), (std::vector<double>{3, 4}));
  const std::string first = put("first.csv", "1,x\n3,4\n");
  expect_config_error([&] { samples_of(first); }, "data.samples",
                      "\"" + first + "\" line 1: field 2 (\"x\") is not a number");
  const std::string second = put("second.csv", "x,y\nx,y\n3,4\n");
  expect_config_error([&] { samples_of(second); }, "data.samples",
                      "\"" + second + "\" line 2: field 1 (\"x\") is not a number");
}

TEST_F(ReadHardening, CsvErrorsNameTheFileTheLineAndTheRule) {
  EXPECT_EQ(samples_of(put("edge.csv", "1e30\n-1e30\n")), (std::vector<double>{1e30, -1e30}));
  const std::string big = put("big.csv", "1\n1e31\n");
  expect_config_error([&] { samples_of(big); }, "data.samples",
                      "\"" + big + "\" line 2: values must be finite with |x| <= 1e30 (got 1e+31)");
  const std::string nan = put("nan.csv", "1\r\nnan\n");
  expect_config_error([&] { samples_of(nan); }, "data.samples",
                      "line 2: values must be finite with |x| <= 1e30 (got nan)");
  const std::string ragged = put("ragged.csv", "1 2\r3\r");
  expect_config_error([&] { samples_of(ragged); }, "data.samples",
                      "\"" + ragged + "\" line 2: has 1 values, the first sample 2");
  expect_config_error([&] { samples_of(work_.string()); }, "data.samples",
                      "the samples file \"" + work_.string() + "\" is a directory");
  const std::string empty = put("empty.csv", "x\n# nothing\n");
  expect_config_error([&] { samples_of(empty); }, "data.samples", "holds no samples");
  expect_config_error([] { samples_of("/dev/zero"); }, "data.samples",
                      "\"/dev/zero\" line 1: field 1 is longer than 1024 bytes");
  const std::string huge =
      sparse("huge.csv", "1\n", taep::detail::kMaxSamplesBytes + 1);  // refused before reading
  expect_config_error([&] { samples_of(huge); }, "data.samples",
                      "it holds more than 1 GiB, the limit for a samples file");
}

TEST_F(ReadHardening, EmptySamplesPathIsAnError) {
  expect_config_error([] { taep::parse_train_config(R"({"data": {"samples": ""}})"); },
                      "data.samples", "must name a CSV file");
  const ChildRun run = run_cli({"train", "--samples", "", "--steps", "1", "--out", path("m.st")});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_FALSE(fs::exists(path("m.st")));
}

}  // namespace

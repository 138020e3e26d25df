// The .npy/.npz writer (host/io/npy.hpp) and the per-path output of `taep run --per-path`: the
// header as the NumPy format specification fixes it, numpy reading both back (the system python3
// with numpy, as CI has it), and the per-path values equal to simulate_paths with the run's
// statistics unchanged bitwise.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "host/io/npy.hpp"
#include "support/cli_support.hpp"
#include "support/test_support.hpp"
#include "taep/taep.hpp"

namespace {

using taep::detail::NpyArray;
using taep_test::read_text;

TEST(Npy, HeaderFollowsTheFormatSpecification) {
  const std::vector<double> v{1.5, -2.0, 3.25};
  const std::string b = taep::detail::npy_bytes({"v", {3}, v.data(), false});
  ASSERT_GE(b.size(), 10u);
  EXPECT_EQ(b.substr(0, 8), std::string("\x93NUMPY\x01\x00", 8));
  const std::size_t header = std::size_t(std::uint8_t(b[8])) | std::size_t(std::uint8_t(b[9])) << 8;
  EXPECT_EQ((10 + header) % 64, 0u) << "data aligned to 64 bytes";
  const std::string text = b.substr(10, header);
  EXPECT_EQ(text.rfind("{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }", 0), 0u) << text;
  EXPECT_EQ(text.back(), '\n');
  ASSERT_EQ(b.size(), 10 + header + 24);
  EXPECT_EQ(std::memcmp(b.data() + 10 + header, v.data(), 24), 0);
  const std::vector<float> m(6, 0.5f);
  const std::string two = taep::detail::npy_bytes({"m", {2, 3}, m.data(), true});
  EXPECT_NE(two.find("'descr': '<f4'"), std::string::npos);
  EXPECT_NE(two.find("'shape': (2,3)"), std::string::npos);
}

class PerPath : public taep_test::CliSandbox {
 protected:
  // `<command> <flags>` with and without --per-path pp.npz: the given sections of the two result
  // documents must be bitwise the same.
  void expect_same_sections(const std::string& command, std::initializer_list<const char*> keys) {
    ASSERT_EQ(run(command + " --out plain.json").exit_code, 0);
    const Outcome o = run(command + " --out kept.json --per-path pp.npz");
    ASSERT_EQ(o.exit_code, 0) << o.err;
    const auto plain = nlohmann::json::parse(read_text(work_ / "plain.json"));
    const auto kept = nlohmann::json::parse(read_text(work_ / "kept.json"));
    for (const char* key : keys)
      EXPECT_EQ(plain[key], kept[key]) << key << " must be bitwise the same with --per-path";
  }
};

// numpy reads the archive (zip64 records, CRCs checked by zipfile) and its arrays are the engine's.
TEST_F(PerPath, RunWritesEveryPathAndKeepsTheStatistics) {
  if (std::system("/usr/bin/python3 -c 'import numpy' 2>/dev/null") != 0 &&
      std::system("python3 -c 'import numpy' 2>/dev/null") != 0)
    GTEST_SKIP() << "no python3 with numpy";
  expect_same_sections("run --paths 20000 --steps 50 --seed 4 --backend cpu -q",
                       {"taep", "ift", "histogram", "reference"});

  taep::Config c = taep::default_config();
  c.run.paths = 20000;
  c.run.seed = 4;
  c.schedule.steps = 50;
  const taep::PathValues v = taep::simulate_paths(c, taep::Backend::cpu, 0, 20000);
  std::vector<double> err(v.taep.size());
  for (std::size_t i = 0; i < err.size(); ++i) err[i] = v.taep[i] - v.reference[i];
  write("S.bin", std::string(reinterpret_cast<const char*>(v.taep.data()), v.taep.size() * 8));
  write("R.bin", std::string(reinterpret_cast<const char*>(v.reference.data()), v.reference.size() * 8));
  write("E.bin", std::string(reinterpret_cast<const char*>(err.data()), err.size() * 8));
  write("x0.bin", std::string(reinterpret_cast<const char*>(v.x0.data()), v.x0.size() * 4));
  write("xN.bin", std::string(reinterpret_cast<const char*>(v.xN.data()), v.xN.size() * 4));
  const std::string check =
      "import numpy as np, zipfile; assert zipfile.ZipFile('pp.npz').testzip() is None; "
      "d = np.load('pp.npz'); assert sorted(d.files) == ['R', 'S', 'S_minus_R', 'x0', 'xN'], d.files; "
      "assert all(d[k].dtype == np.float64 and d[k].shape == (20000,) for k in ['R', 'S', 'S_minus_R']); "
      "assert all(d[k].dtype == np.float32 and d[k].shape == (20000, 2) for k in ['x0', 'xN']); "
      "assert np.array_equal(d['S'], np.fromfile('S.bin'), equal_nan=True); "
      "assert np.array_equal(d['R'], np.fromfile('R.bin'), equal_nan=True); "
      "assert np.array_equal(d['S_minus_R'], np.fromfile('E.bin'), equal_nan=True); "
      "assert np.array_equal(d['x0'].ravel(), np.fromfile('x0.bin', dtype=np.float32)); "
      "assert np.array_equal(d['xN'].ravel(), np.fromfile('xN.bin', dtype=np.float32))";
  write("check.py", check);
  const std::string py = std::system("/usr/bin/python3 -c 'import numpy' 2>/dev/null") == 0
                             ? "/usr/bin/python3" : "python3";
  EXPECT_EQ(std::system(("cd '" + work_.string() + "' && " + py + " check.py").c_str()), 0);
}

TEST_F(PerPath, SampleWritesNpyWhenTheNameSaysSo) {
  if (std::system("python3 -c 'import numpy' 2>/dev/null") != 0) GTEST_SKIP() << "no numpy";
  ASSERT_EQ(run("sample --count 300 --steps 20 --backend cpu -q --out s.npy").exit_code, 0);
  ASSERT_EQ(run("sample --count 300 --steps 20 --backend cpu -q --out s.csv").exit_code, 0);
  write("check.py",
        "import numpy as np; a = np.load('s.npy'); b = np.loadtxt('s.csv', delimiter=',', "
        "skiprows=1, dtype=np.float32); assert a.dtype == np.float32 and a.shape == (300, 2); "
        "assert np.array_equal(a, b)");
  EXPECT_EQ(std::system(("cd '" + work_.string() + "' && python3 check.py").c_str()), 0);
}

// taep dft --per-path: both sides' values, the statistics bitwise those of the plain run, the
// forward side equal to simulate_paths, and the reverse side's points the prior draw (N(0, I)) and
// the sample: `taep sample`'s, bitwise (a reverse path's sample does not depend on whether it also
// computes its TAEP).
TEST_F(PerPath, DftWritesBothSides) {
  if (std::system("python3 -c 'import numpy' 2>/dev/null") != 0) GTEST_SKIP() << "no numpy";
  expect_same_sections("dft --paths 5000 --steps 50 --seed 4 --backend cpu -q",
                       {"forward", "reverse", "histogram", "fit", "reference_fit"});
  taep::Config c = taep::default_config();
  c.run.paths = 5000;
  c.run.seed = 4;
  c.schedule.steps = 50;
  const taep::PathValues v = taep::simulate_paths(c, taep::Backend::cpu, 0, 5000);
  write("S.bin", std::string(reinterpret_cast<const char*>(v.taep.data()), v.taep.size() * 8));
  write("x0.bin", std::string(reinterpret_cast<const char*>(v.x0.data()), v.x0.size() * 4));
  ASSERT_EQ(run("sample --count 5000 --steps 50 --seed 4 --backend cpu -q --out samples.npy").exit_code, 0);
  write("check.py",
        "import numpy as np; d = np.load('pp.npz'); assert sorted(d.files) == ['R', 'S', "
        "'S_minus_R', 'reverse_R', 'reverse_S', 'reverse_S_minus_R', 'reverse_x0', 'reverse_xN', "
        "'x0', 'xN'], d.files; "
        "assert all(d[k].shape == (5000,) for k in d.files if 'x' not in k); "
        "assert all(d[k].shape == (5000, 2) and d[k].dtype == np.float32 for k in d.files if 'x' in k); "
        "assert np.array_equal(d['S'], np.fromfile('S.bin'), equal_nan=True); "
        "assert np.array_equal(d['x0'].ravel(), np.fromfile('x0.bin', dtype=np.float32)); "
        "assert np.array_equal(d['reverse_xN'], np.load('samples.npy')); "
        "z = d['reverse_x0']; assert abs(z.mean()) < 0.05 and abs(z.std() - 1) < 0.05, (z.mean(), z.std()); "
        "assert np.array_equal(d['reverse_S_minus_R'], d['reverse_S'] - d['reverse_R'], equal_nan=True)");
  EXPECT_EQ(std::system(("cd '" + work_.string() + "' && python3 check.py").c_str()), 0);
}

}  // namespace

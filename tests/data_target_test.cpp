// Data-file targets and reference scores (config.hpp: target.samples, reference): the sample-file
// reader (.npy and CSV), the empirical reference against the mixture it is (docs/physics.md
// section 2), the reference network against the identities it must satisfy, and the errors.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "host/io/npy.hpp"
#include "host/io/samples_file.hpp"
#include "support/safetensors_support.hpp"
#include "support/test_support.hpp"
#include "taep/sample.hpp"
#include "taep/taep.hpp"

namespace {

using taep_test::expect_config_error;
using taep_test::fixture;

std::string temp_file(const std::string& name, const std::string& bytes) {
  const std::string path =
      ::testing::TempDir() + "taep_data_target_" + std::to_string(::getpid()) + "_" + name;
  std::ofstream(path, std::ios::binary) << bytes;
  return path;
}

// N rows in d = 2 drawn near the ring's modes (mt19937_64 seed 11).
std::vector<double> ring_rows(int N) {
  std::mt19937_64 g(11);
  std::normal_distribution<double> n(0, 0.3);
  const taep::MixtureSpec ring = taep::ring8();
  std::vector<double> v;
  for (int r = 0; r < N; ++r)
    for (int i = 0; i < 2; ++i) v.push_back(ring.means[std::size_t(r % 8)][std::size_t(i)] + n(g));
  return v;
}

std::string npy_file(const std::string& name, const std::vector<double>& v, std::uint64_t rows,
                     std::uint64_t d, bool float32 = false) {
  std::vector<float> f(v.begin(), v.end());
  return temp_file(name, taep::detail::npy_bytes(
                             {"x", {rows, d}, float32 ? static_cast<const void*>(f.data()) : v.data(),
                              float32}));
}

taep::Config samples_config(const std::string& path, std::uint64_t paths, int steps) {
  taep::Config c = taep::default_config();
  c.target = taep::TargetConfig{};
  c.target.samples = path;
  c.model.collapse = taep::CollapseSpec{1, 0.05};
  c.run.paths = paths;
  c.run.backend = taep::Backend::cpu;
  c.schedule.steps = steps;
  return c;
}

TEST(SampleFile, NpyFloat64AndFloat32AndCsvReadTheSameRows) {
  const std::vector<double> v = ring_rows(5);
  const auto a = taep::detail::read_sample_file(npy_file("f8.npy", v, 5, 2), "target.samples");
  EXPECT_EQ(a.d, 2);
  EXPECT_EQ(a.values, v);
  const auto b = taep::detail::read_sample_file(npy_file("f4.npy", v, 5, 2, true), "target.samples");
  ASSERT_EQ(b.values.size(), v.size());
  for (std::size_t i = 0; i < v.size(); ++i) EXPECT_EQ(b.values[i], double(float(v[i])));
  std::string csv = "x,y\n";
  char line[96];
  for (int r = 0; r < 5; ++r) {
    std::snprintf(line, sizeof line, "%.17g, %.17g\n", v[2 * r], v[2 * r + 1]);
    csv += line;
  }
  const auto c = taep::detail::read_sample_file(temp_file("rows.csv", csv), "target.samples");
  EXPECT_EQ(c.values, v);
  // A 1-D array is N samples of d = 1.
  const std::vector<double> one{1.0, 2.0, 3.0};
  const auto d1 = taep::detail::read_sample_file(
      temp_file("one.npy", taep::detail::npy_bytes({"x", {3}, one.data(), false})), "data.samples");
  EXPECT_EQ(d1.d, 1);
  EXPECT_EQ(d1.rows(), 3u);
}

TEST(SampleFile, BadNpyFilesNameTheFieldAndTheProblem) {
  const std::vector<double> v = ring_rows(4);
  const auto read = [](const std::string& path) {
    return [path] { taep::detail::read_sample_file(path, "target.samples"); };
  };
  std::string good = taep::detail::npy_bytes({"x", {4, 2}, v.data(), false});
  expect_config_error(read(temp_file("short.npy", good.substr(0, good.size() - 3))),
                      "target.samples", "its shape (4, 2) needs 8");
  expect_config_error(read(temp_file("long.npy", good + std::string(8, '\0'))), "target.samples",
                      "more data than its shape");
  std::string ints = good;
  ints.replace(ints.find("<f8"), 3, "<i8");
  expect_config_error(read(temp_file("ints.npy", ints)), "target.samples", "dtype \"<i8\"");
  std::string fortran = good;
  fortran.replace(fortran.find("False"), 5, "True ");
  expect_config_error(read(temp_file("fortran.npy", fortran)), "target.samples", "Fortran order");
  const std::vector<double> cube(8, 0.0);
  expect_config_error(
      read(temp_file("cube.npy", taep::detail::npy_bytes({"x", {2, 2, 2}, cube.data(), false}))),
      "target.samples", "shape (N, d) or (N,)");
  std::vector<double> nan = v;
  nan[5] = std::nan("");
  expect_config_error(read(npy_file("nan.npy", nan, 4, 2)), "target.samples",
                      "row 2, column 1: values must be finite");
  expect_config_error(read(npy_file("empty.npy", {}, 0, 2)), "target.samples", "holds no samples");
  expect_config_error(read(temp_file("zero.csv", "")), "target.samples", "is empty");
  expect_config_error(read(::testing::TempDir() + "taep_no_such_file.npy"), "target.samples",
                      "cannot read");
}

// The empirical reference is the mixture of the rows with zero widths: a mixture target with means
// at the rows and tiny widths gives, path by path (the same streams pick the same row and draw the
// same numbers), S and its closed form R within the widths' effect.
TEST(DataTarget, EmpiricalReferenceIsTheMixtureOfTheRows) {
  const int N = 12;
  const std::vector<double> v = ring_rows(N);
  const taep::Config data = samples_config(npy_file("rows.npy", v, N, 2), 2000, 200);
  taep::Config mix = data;
  mix.target = taep::TargetConfig{};
  for (int r = 0; r < N; ++r) {
    mix.target.mixture.weights.push_back(1.0);
    mix.target.mixture.means.push_back({v[2 * r], v[2 * r + 1]});
    mix.target.mixture.sigmas.push_back(1e-7);
  }
  const taep::PathValues a = taep::simulate_paths(data, taep::Backend::cpu, 0, 2000);
  const taep::PathValues b = taep::simulate_paths(mix, taep::Backend::cpu, 0, 2000);
  ASSERT_EQ(a.taep.size(), b.taep.size());
  ASSERT_EQ(a.reference.size(), a.taep.size());  // the closed form stays available
  double worst = 0;
  for (std::size_t i = 0; i < a.taep.size(); ++i) {
    worst = std::max(worst, std::fabs(a.taep[i] - b.taep[i]));
    worst = std::max(worst, std::fabs(a.reference[i] - b.reference[i]));
  }
  EXPECT_LT(worst, 1e-4);
  // And the statistics: <S> within the standard error of the mixture run, and <S> = <R> (the
  // closed form's mean, docs/physics.md section 5) within both standard errors.
  const taep::RunResult ra = taep::run(data);
  const taep::RunResult rb = taep::run(mix);
  EXPECT_NEAR(ra.taep.mean, rb.taep.mean, 1e-3 * ra.taep.stderr_mean);
  EXPECT_TRUE(std::isfinite(ra.ift.log_estimate));
}

// x0 is a row diffused to t_min: every start lies within a few sqrt(1 - abar(t_min)) of a row.
TEST(DataTarget, PathsStartAtTheRowsDiffusedToTMin) {
  const int N = 5;
  const std::vector<double> v = ring_rows(N);
  taep::Config c = samples_config(npy_file("starts.npy", v, N, 2), 1, 10);
  const taep::Problem p = taep::build_problem(c);
  const taep::PathValues pv = taep::simulate_paths(p, taep::Backend::cpu, 0, 3000);
  const double abar = std::exp(-(0.1 * 1e-3 + 0.5 * 19.9 * 1e-6));
  const double sd = std::sqrt(1 - abar);
  std::vector<int> hits(N, 0);
  for (std::size_t i = 0; i < 3000; ++i) {
    int best = 0;
    double best_d2 = 1e300;
    for (int r = 0; r < N; ++r) {
      const double dx = pv.x0[2 * i] - std::sqrt(abar) * v[2 * r];
      const double dy = pv.x0[2 * i + 1] - std::sqrt(abar) * v[2 * r + 1];
      if (dx * dx + dy * dy < best_d2) best_d2 = dx * dx + dy * dy, best = r;
    }
    EXPECT_LT(std::sqrt(best_d2), 6 * sd);
    hits[best]++;
  }
  // Each row is picked with probability 1/N: 600 of 3000 expected, binomial sd ~22.
  for (int r = 0; r < N; ++r) EXPECT_NEAR(hits[r], 600, 5 * 22) << "row " << r;
}

TEST(DataTarget, ConfigNamesTheFieldOfEveryMistake) {
  const std::string path = npy_file("cfg.npy", ring_rows(4), 4, 2);
  taep::Config c = samples_config(path, 10, 10);
  c.reference.type = taep::ReferenceType::analytic;
  expect_config_error([&] { taep::validate(c); }, "reference.type", "needs a mixture target");
  taep::Config m = taep::default_config();
  m.reference.type = taep::ReferenceType::empirical;
  expect_config_error([&] { taep::validate(m); }, "reference.type", "needs target.samples");
  m.reference.type = taep::ReferenceType::mlp;
  expect_config_error([&] { taep::validate(m); }, "reference.weights", "must name");
  m.reference.weights = fixture("ring8_trained.safetensors");
  expect_config_error([&] { taep::validate(m); }, "reference.type", "needs model.type \"mlp\"");
  taep::Config w = taep::default_config();
  w.reference.weights = "x.safetensors";
  expect_config_error([&] { taep::validate(w); }, "reference.weights", "is for reference.type");
  // Checks that need the rows: the collapse's component count, the model's dimension.
  taep::Config k = samples_config(path, 10, 10);
  k.model.collapse = taep::CollapseSpec{4, 0.1};
  expect_config_error([&] { taep::build_problem(k); }, "model.collapse.modes", "K = 4");
  taep::Config dim = samples_config(path, 10, 10);
  dim.model.collapse.reset();
  dim.model.mixture = taep::MixtureSpec{{1.0}, {{0.0, 0.0, 0.0}}, {1.0}};
  expect_config_error([&] { taep::build_problem(dim); }, "model.mixture.means", "dimension 2");
  taep::Config net = taep_test::mlp_config("mlp_d16.safetensors");
  net.target = taep::TargetConfig{};
  net.target.samples = path;
  expect_config_error([&] { taep::build_problem(net); }, "model.weights", "dimension");
  // JSON: samples with a mixture, an unknown reference type.
  expect_config_error(
      [&] { taep::parse_config(R"({"target": {"samples": "a.npy", "preset": "ring8"}})"); },
      "target", "either samples or a preset");
  expect_config_error([&] { taep::parse_config(R"({"reference": {"type": "oracle"}})"); },
                      "reference.type", "must be one of");
  // The canonical JSON names the file and the resolved reference, not the rows.
  const std::string j = taep::config_to_json(taep::parse_config(
      R"({"target": {"samples": ")" + path + R"("}, "model": {"collapse": {"modes": 1, "eps": 0.1}}})"));
  EXPECT_NE(j.find("\"samples\": \"" + path + "\""), std::string::npos) << j;
  EXPECT_NE(j.find("\"empirical\""), std::string::npos) << j;
}

taep::Config reference_network_config(const std::string& model, const std::string& reference,
                                      taep::Divergence div) {
  taep::Config c = taep_test::mlp_config(model, 3000, 60);
  c.model.divergence = div;
  c.model.probes = 3;
  c.reference.type = taep::ReferenceType::mlp;
  c.reference.weights = fixture(reference);
  return c;
}

// A model measured against itself has S = 0 on every path, exactly: each increment is the
// difference of two identical evaluations.
TEST(ReferenceNetwork, ModelAgainstItselfHasZeroTaep) {
  for (taep::Divergence div : {taep::Divergence::exact, taep::Divergence::hutchinson}) {
    const taep::Config c =
        reference_network_config("ring8_trained.safetensors", "ring8_trained.safetensors", div);
    const taep::PathValues pv = taep::simulate_paths(c, taep::Backend::cpu, 0, 500);
    ASSERT_EQ(pv.taep.size(), 500u);
    for (double s : pv.taep) ASSERT_EQ(s, 0.0);
  }
}

// S is linear in the pair (model, reference): S[theta; ref] = S[theta; p] - S[ref; p] path by path
// for the same paths and probes (up to float rounding of the increments), p the analytic target.
TEST(ReferenceNetwork, TaepIsTheDifferenceOfTheTwoAgainstTheTarget) {
  for (taep::Divergence div : {taep::Divergence::exact, taep::Divergence::hutchinson}) {
    const taep::Config both =
        reference_network_config("ring8_trained.safetensors", "mlp_d2_score.safetensors", div);
    taep::Config model = both, ref = both;
    model.reference = ref.reference = taep::ReferenceConfig{};
    ref.model.weights = fixture("mlp_d2_score.safetensors");
    const auto s = taep::simulate_paths(both, taep::Backend::cpu, 0, 200).taep;
    const auto a = taep::simulate_paths(model, taep::Backend::cpu, 0, 200).taep;
    const auto b = taep::simulate_paths(ref, taep::Backend::cpu, 0, 200).taep;
    double worst = 0, scale = 0;
    for (std::size_t i = 0; i < s.size(); ++i) {
      worst = std::max(worst, std::fabs(s[i] - (a[i] - b[i])));
      scale = std::max(scale, std::fabs(s[i]));
    }
    EXPECT_GT(scale, 1.0);  // the two networks differ
    EXPECT_LT(worst, 1e-3 * scale) << taep::to_string(div);
  }
}

// Reverse paths with TAEP (sample's and dft's) take the reference network too: against itself, 0.
TEST(ReferenceNetwork, ReversePathsAgainstItselfHaveZeroTaep) {
  const taep::Config c = reference_network_config(
      "ring8_trained.safetensors", "ring8_trained.safetensors", taep::Divergence::hutchinson);
  const auto r = taep::simulate_reverse_paths(c, taep::Backend::cpu, 0, 300, true);
  ASSERT_EQ(r.taep.size(), 300u);
  for (double s : r.taep) ASSERT_EQ(s, 0.0);
}

TEST(ReferenceNetwork, MilsteinIsRefusedAndTheDimensionChecked) {
  taep::Config c = reference_network_config("ring8_trained.safetensors",
                                            "ring8_trained.safetensors", taep::Divergence::exact);
  c.schedule.scheme = taep::Scheme::milstein;
  expect_config_error([&] { taep::validate(c); }, "schedule.scheme", "reference.type \"mlp\"");
  c.schedule.scheme = taep::Scheme::euler;
  c.reference.weights = fixture("mlp_d16.safetensors");
  expect_config_error([&] { taep::build_problem(c); }, "reference.weights", "dimension");
}

}  // namespace

// The MLP weight file (save/load round trip, one case per schema violation, each naming the tensor
// or metadata key) and the reference evaluation (a hand-computed network; exact divergence against
// central finite differences of the score).
#include "taep/mlp.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "support/safetensors_support.hpp"
#include "taep/error.hpp"
#include "taep/taep.hpp"

namespace {

using taep::MlpModel;
using taep::Parameterization;
using taep::SafetensorsFile;
using taep_test::expect_config_error;

// Weights ~ N(0, 1/in) so that activations stay O(1) whatever the widths.
MlpModel random_mlp(int dim, int embedding_dim, std::vector<int> hidden, Parameterization p,
                    unsigned seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal;
  MlpModel m;
  m.dim = dim;
  m.embedding_dim = embedding_dim;
  m.time_scale = 0.1 * 3;  // 0.30000000000000004: checks the shortest round-trip form
  m.max_period = 1e4;
  m.parameterization = p;
  hidden.push_back(dim);
  int in = dim + embedding_dim;
  for (int out : hidden) {
    taep::MlpLayer l{in, out, std::vector<float>(std::size_t(out) * in), std::vector<float>(out)};
    for (float& w : l.weight) w = normal(rng) / std::sqrt(float(in));
    for (float& b : l.bias) b = 0.3f * normal(rng);
    m.layers.push_back(l);
    in = out;
  }
  return m;
}

// Per process: CTest runs each test in its own process, several at once.
std::string temp_path(const std::string& name) {
  return ::testing::TempDir() + "taep_mlp_test_" + std::to_string(::getpid()) + "_" + name;
}

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// The file save_mlp writes for the reference model (dim 2, E 4, hidden 8 and 8).
SafetensorsFile valid_file() {
  const std::string path = temp_path("valid.safetensors");
  taep::save_mlp(random_mlp(2, 4, {8, 8}, Parameterization::score, 1), path);
  SafetensorsFile f = taep::read_safetensors(path);
  std::remove(path.c_str());
  return f;
}

void expect_same_model(const MlpModel& a, const MlpModel& b) {
  EXPECT_EQ(a.dim, b.dim);
  EXPECT_EQ(a.embedding_dim, b.embedding_dim);
  EXPECT_EQ(a.time_scale, b.time_scale);
  EXPECT_EQ(a.max_period, b.max_period);
  EXPECT_EQ(a.parameterization, b.parameterization);
  EXPECT_EQ(a.activation, b.activation);
  ASSERT_EQ(a.layers.size(), b.layers.size());
  for (std::size_t i = 0; i < a.layers.size(); ++i) {
    EXPECT_EQ(a.layers[i].in, b.layers[i].in) << i;
    EXPECT_EQ(a.layers[i].out, b.layers[i].out) << i;
    EXPECT_EQ(a.layers[i].weight, b.layers[i].weight) << i;
    EXPECT_EQ(a.layers[i].bias, b.layers[i].bias) << i;
  }
}

// ---- the file -----------------------------------------------------------------------------------

TEST(Mlp, SaveThenLoadIsExact) {
  for (Parameterization p : {Parameterization::score, Parameterization::eps}) {
    MlpModel m = random_mlp(3, 6, {5, 7, 4}, p, 2);
    m.max_period = 12345.678;
    const std::string path = temp_path("roundtrip.safetensors");
    taep::save_mlp(m, path);
    expect_same_model(taep::load_mlp(path), m);
    std::remove(path.c_str());
  }
}

// The layout of the reference implementation: aligned header, metadata first, F32 tensors packed
// from offset 0 to the end of the file, metadata numbers in shortest round-trip form.
TEST(Mlp, SavedFileHasTheReferenceLayout) {
  const std::string path = temp_path("layout.safetensors");
  const MlpModel m = random_mlp(2, 4, {8}, Parameterization::eps, 3);
  taep::save_mlp(m, path);
  const std::string bytes = read_all(path);
  std::remove(path.c_str());
  ASSERT_GE(bytes.size(), 8u);
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | std::uint8_t(bytes[i]);
  EXPECT_EQ(n % 8, 0u);
  ASSERT_LE(8 + n, bytes.size());
  const auto header = nlohmann::ordered_json::parse(bytes.substr(8, n));
  EXPECT_EQ(header.begin().key(), "__metadata__");
  EXPECT_EQ(header["__metadata__"],
            (nlohmann::ordered_json{{"activation", "silu"},
                                    {"dim", "2"},
                                    {"embedding_dim", "4"},
                                    {"max_period", "10000"},
                                    {"parameterization", "eps"},
                                    {"taep.format", "mlp-score-v1"},
                                    {"time_scale", "0.30000000000000004"}}));
  std::uint64_t end = 0;
  for (const auto& [name, t] : header.items()) {
    if (name == "__metadata__") continue;
    EXPECT_EQ(t["dtype"], "F32") << name;
    EXPECT_EQ(t["data_offsets"][0], end) << name;
    end = t["data_offsets"][1];
  }
  EXPECT_EQ(8 + n + end, bytes.size());
}

TEST(Mlp, SaveReplacesTheFileAndLeavesNoTempFile) {
  const std::string path = temp_path("replace.safetensors");
  taep::save_mlp(random_mlp(2, 2, {3}, Parameterization::score, 4), path);
  const MlpModel second = random_mlp(2, 2, {5}, Parameterization::score, 5);
  taep::save_mlp(second, path);
  expect_same_model(taep::load_mlp(path), second);
  const std::string mine = ".taep-" + std::to_string(::getpid()) + "-";
  for (const auto& e : std::filesystem::directory_iterator(std::filesystem::path(path).parent_path()))
    EXPECT_NE(e.path().filename().string().rfind(mine, 0), 0u) << "temp file left: " << e.path();
  std::remove(path.c_str());
}

TEST(Mlp, SaveRefusesAnInvalidModelAndWritesNothing) {
  const std::string path = temp_path("invalid.safetensors");
  std::remove(path.c_str());
  MlpModel m = random_mlp(2, 2, {3}, Parameterization::score, 6);
  m.layers[0].weight[4] = std::numeric_limits<float>::quiet_NaN();
  expect_config_error(
      [&] { taep::save_mlp(m, path); }, path,
      "tensor \"layers.0.weight\" must hold finite values (got nan at flat index 4)");
  EXPECT_FALSE(std::ifstream(path).good());
}

TEST(Mlp, LoadErrorsNameThePath) {
  const std::string missing = temp_path("missing.safetensors");
  expect_config_error([&] { taep::load_mlp(missing); }, missing, "cannot open");
}

// Non-finite values decode exactly (Safetensors tests) and are rejected here with their position.
TEST(Mlp, RejectsNonFiniteF16WeightsByFlatIndex) {
  using namespace taep_test;
  std::vector<std::uint16_t> w0(3 * 4, 0x3C00);
  w0[7] = 0x7C00;  // +inf
  const std::string data =
      u16_bytes(w0) + u16_bytes({0, 0, 0}) + u16_bytes({0, 0, 0, 0, 0, 0}) + u16_bytes({0, 0});
  const std::string header =
      R"({"__metadata__": {"taep.format": "mlp-score-v1", "dim": "2", "embedding_dim": "2",
      "time_scale": "1", "max_period": "10000", "parameterization": "score", "activation": "silu"},
    "layers.0.weight": {"dtype": "F16", "shape": [3, 4], "data_offsets": [0, 24]},
    "layers.0.bias": {"dtype": "F16", "shape": [3], "data_offsets": [24, 30]},
    "layers.1.weight": {"dtype": "F16", "shape": [2, 3], "data_offsets": [30, 42]},
    "layers.1.bias": {"dtype": "F16", "shape": [2], "data_offsets": [42, 46]}})";
  const SafetensorsFile f = parse_bytes(safetensors_bytes(header, data));
  EXPECT_EQ(f.tensors.at("layers.0.weight").data[7], std::numeric_limits<float>::infinity());
  expect_config_error(
      [&] { taep::mlp_from_safetensors(f, "model.weights"); }, "model.weights",
      "tensor \"layers.0.weight\" must hold finite values (got inf at flat index 7)");
}

// ---- schema violations --------------------------------------------------------------------------

// Gives tensor `name` the shape `shape`, with data to match.
void reshape(SafetensorsFile& f, const std::string& name, std::vector<std::int64_t> shape) {
  std::int64_t n = 1;
  for (std::int64_t s : shape) n *= s;
  f.tensors[name] = {"F32", shape, std::vector<float>(n, 0.5f)};
}

void rename_tensor(SafetensorsFile& f, const std::string& from, const std::string& to) {
  auto node = f.tensors.extract(from);
  node.key() = to;
  f.tensors.insert(std::move(node));
}

struct BadModel {
  const char* name;
  std::function<void(SafetensorsFile&)> mutate;
  std::string fragment;
};

auto set_meta(const char* key, const char* value) {
  return [=](SafetensorsFile& f) { f.metadata[key] = value; };
}
auto erase_meta(const char* key) {
  return [=](SafetensorsFile& f) { f.metadata.erase(key); };
}

// valid_file(): dim 2, embedding_dim 4, layers.0 [8, 6], layers.1 [8, 8], layers.2 [2, 8].
const BadModel kBadModels[] = {
    // metadata
    {"FormatMissing", erase_meta("taep.format"),
     "metadata \"taep.format\" is missing; an mlp-score-v1 file needs \"taep.format\", \"dim\""},
    {"FormatWrong", set_meta("taep.format", "mlp-score-v2"),
     "metadata \"taep.format\" must be \"mlp-score-v1\" (got \"mlp-score-v2\")"},
    {"DimMissing", erase_meta("dim"), "metadata \"dim\" is missing"},
    {"DimZero", set_meta("dim", "0"),
     "metadata \"dim\" must be an integer in [1, 256] (got \"0\")"},
    {"DimTooLarge", set_meta("dim", "257"),
     "metadata \"dim\" must be an integer in [1, 256] (got \"257\")"},
    {"DimNotInteger", set_meta("dim", "2.0"), "metadata \"dim\" must be an integer"},
    {"DimWithSign", set_meta("dim", "+2"), "metadata \"dim\" must be an integer"},
    {"DimWithSpace", set_meta("dim", " 2"), "metadata \"dim\" must be an integer"},
    {"DimHuge", set_meta("dim", "99999999999999999999999"), "metadata \"dim\" must be an integer"},
    {"EmbeddingOdd", set_meta("embedding_dim", "3"),
     "metadata \"embedding_dim\" must be an even integer in [2, 1048576] (got \"3\")"},
    {"EmbeddingZero", set_meta("embedding_dim", "0"),
     "metadata \"embedding_dim\" must be an even integer"},
    {"EmbeddingMissing", erase_meta("embedding_dim"), "metadata \"embedding_dim\" is missing"},
    {"TimeScaleZero", set_meta("time_scale", "0"),
     "metadata \"time_scale\" must be a finite number > 0 (got \"0\")"},
    {"TimeScaleNegative", set_meta("time_scale", "-1"),
     "metadata \"time_scale\" must be a finite number > 0"},
    {"TimeScaleInf", set_meta("time_scale", "inf"),
     "metadata \"time_scale\" must be a finite number > 0"},
    {"TimeScaleNan", set_meta("time_scale", "nan"),
     "metadata \"time_scale\" must be a finite number > 0"},
    {"TimeScaleOverflow", set_meta("time_scale", "1e400"),
     "metadata \"time_scale\" must be a finite number > 0"},
    {"TimeScaleText", set_meta("time_scale", "fast"),
     "metadata \"time_scale\" must be a finite number > 0"},
    {"TimeScaleMissing", erase_meta("time_scale"), "metadata \"time_scale\" is missing"},
    {"MaxPeriodOne", set_meta("max_period", "1"),
     "metadata \"max_period\" must be a finite number > 1 (got \"1\")"},
    {"MaxPeriodMissing", erase_meta("max_period"), "metadata \"max_period\" is missing"},
    {"ParameterizationUnknown", set_meta("parameterization", "x0"),
     "metadata \"parameterization\" must be one of \"score\", \"eps\" (got \"x0\")"},
    {"ParameterizationMissing", erase_meta("parameterization"),
     "metadata \"parameterization\" is missing"},
    {"ActivationUnknown", set_meta("activation", "relu"),
     "metadata \"activation\" must be one of \"silu\" (got \"relu\")"},
    {"ActivationMissing", erase_meta("activation"), "metadata \"activation\" is missing"},
    // which tensors
    {"UnknownTensor", [](SafetensorsFile& f) { reshape(f, "extra", {1}); },
     "unknown tensor \"extra\"; an mlp-score-v1 file holds only"},
    {"UnknownTensorLeadingZero",
     [](SafetensorsFile& f) { rename_tensor(f, "layers.1.bias", "layers.01.bias"); },
     "unknown tensor \"layers.01.bias\""},
    {"UnknownTensorPart", [](SafetensorsFile& f) { reshape(f, "layers.0.gamma", {8}); },
     "unknown tensor \"layers.0.gamma\""},
    {"UnknownTensorNoIndex", [](SafetensorsFile& f) { reshape(f, "layers.weight", {8}); },
     "unknown tensor \"layers.weight\""},
    {"MissingBias", [](SafetensorsFile& f) { f.tensors.erase("layers.1.bias"); },
     "tensor \"layers.1.bias\" is missing"},
    {"MissingWeight", [](SafetensorsFile& f) { f.tensors.erase("layers.0.weight"); },
     "tensor \"layers.0.weight\" is missing; layers must be numbered 0..L without gaps"},
    {"GapInLayers",
     [](SafetensorsFile& f) {
       rename_tensor(f, "layers.2.weight", "layers.3.weight");
       rename_tensor(f, "layers.2.bias", "layers.3.bias");
     },
     "tensor \"layers.2.weight\" is missing"},
    {"HugeLayerIndex",
     [](SafetensorsFile& f) { rename_tensor(f, "layers.2.bias", "layers.999999999.bias"); },
     "tensor \"layers.2.bias\" is missing"},
    {"SingleLayer",
     [](SafetensorsFile& f) {
       for (const char* n :
            {"layers.1.weight", "layers.1.bias", "layers.2.weight", "layers.2.bias"})
         f.tensors.erase(n);
     },
     "tensor \"layers.1.weight\" is missing; layers must be numbered 0..L without gaps, with L >= "
     "1"},
    {"NoTensors", [](SafetensorsFile& f) { f.tensors.clear(); },
     "tensor \"layers.0.weight\" is missing"},
    // shapes
    {"FirstLayerInput",
     [](SafetensorsFile& f) {
       reshape(f, "layers.0.weight", {8, 7});
     },
     "tensor \"layers.0.weight\" must have shape [out, 6], 6 = dim + embedding_dim (x and the time "
     "embedding) (got [8, 7])"},
    {"ShapesDoNotChain",
     [](SafetensorsFile& f) {
       reshape(f, "layers.1.weight", {8, 9});
     },
     "tensor \"layers.1.weight\" must have shape [out, 8], 8 = the outputs of layers.0.weight (got "
     "[8, 9])"},
    {"WeightNot2D", [](SafetensorsFile& f) { reshape(f, "layers.1.weight", {64}); },
     "tensor \"layers.1.weight\" must have shape [out, 8]"},
    {"WeightScalar", [](SafetensorsFile& f) { reshape(f, "layers.1.weight", {}); },
     "must have shape [out, 8], 8 = the"},
    {"HiddenWidthZero",
     [](SafetensorsFile& f) {
       reshape(f, "layers.0.weight", {0, 6});
       reshape(f, "layers.0.bias", {0});
     },
     "tensor \"layers.0.weight\" must have shape [out, 6] with out in [1, 1048576] (got [0, 6])"},
    {"WrongLastDimension",
     [](SafetensorsFile& f) {
       reshape(f, "layers.2.weight", {3, 8});
       reshape(f, "layers.2.bias", {3});
     },
     "tensor \"layers.2.weight\" must have shape [2, 8]: the output layer returns dim = 2 values "
     "(got [3, 8])"},
    {"DimDisagreesWithTensors", set_meta("dim", "3"),
     "tensor \"layers.0.weight\" must have shape [out, 7]"},
    {"BiasWrongLength", [](SafetensorsFile& f) { reshape(f, "layers.0.bias", {9}); },
     "tensor \"layers.0.bias\" must have shape [8] to match layers.0.weight (got [9])"},
    {"Bias2D",
     [](SafetensorsFile& f) {
       reshape(f, "layers.2.bias", {1, 2});
     },
     "tensor \"layers.2.bias\" must have shape [2] to match layers.2.weight (got [1, 2])"},
    // values
    {"ValueCountDisagreesWithShape",
     [](SafetensorsFile& f) { f.tensors["layers.1.weight"].data.pop_back(); },
     "tensor \"layers.1.weight\" must hold 64 values, as its shape says (got 63)"},
    {"InfiniteWeight",
     [](SafetensorsFile& f) { f.tensors["layers.1.weight"].data[10] = -INFINITY; },
     "tensor \"layers.1.weight\" must hold finite values (got -inf at flat index 10)"},
    {"NanBias", [](SafetensorsFile& f) { f.tensors["layers.2.bias"].data[1] = NAN; },
     "tensor \"layers.2.bias\" must hold finite values (got nan at flat index 1)"},
};

class BadModelTest : public ::testing::TestWithParam<BadModel> {};

TEST_P(BadModelTest, ThrowsConfigErrorNamingTheTensorOrKey) {
  SafetensorsFile f = valid_file();
  ASSERT_NO_THROW(taep::mlp_from_safetensors(f, "model.weights"));
  GetParam().mutate(f);
  expect_config_error([&] { taep::mlp_from_safetensors(f, "model.weights"); }, "model.weights",
                      GetParam().fragment);
}

INSTANTIATE_TEST_SUITE_P(Mlp, BadModelTest, ::testing::ValuesIn(kBadModels),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(Mlp, ExtraMetadataIsAllowed) {
  SafetensorsFile f = valid_file();
  f.metadata["trained_by"] = "tools/taep_mlp.py";
  EXPECT_NO_THROW(taep::mlp_from_safetensors(f, "model.weights"));
}

// ---- reference evaluation -----------------------------------------------------------------------

double sigmoid(double z) { return 1 / (1 + std::exp(-z)); }
double silu(double z) { return z * sigmoid(z); }

// dim 1, embedding_dim 4, time_scale 2, max_period 16: frequencies 1 and 16^-1/2 = 1/4, so the
// input is [x, sin 2t, sin t/2, cos 2t, cos t/2]; one hidden layer of 2, computed by hand.
TEST(Mlp, ReferenceEvaluationMatchesAHandComputedNetwork) {
  MlpModel m;
  m.dim = 1;
  m.embedding_dim = 4;
  m.time_scale = 2;
  m.max_period = 16;
  m.layers = {{5, 2, {1, 0, 0, 0, 0, 0, 1, 0.5f, -1, 2}, {0.125f, -0.25f}},
              {2, 1, {3, -1}, {0.5f}}};
  const double x = 0.7, t = 0.3, abar = 0.36;
  const double z0 = x + 0.125, z1 = std::sin(2 * t) + 0.5 * std::sin(t / 2) - std::cos(2 * t) +
                                    2 * std::cos(t / 2) - 0.25;
  const double out = 3 * silu(z0) - silu(z1) + 0.5;
  const double dout_dx = 3 * (sigmoid(z0) + z0 * sigmoid(z0) * (1 - sigmoid(z0)));

  auto r = taep::mlp_evaluate_reference(m, {x}, t, 1 - abar, true);
  ASSERT_EQ(r.score.size(), 1u);
  EXPECT_NEAR(r.score[0], out, 1e-14);
  EXPECT_NEAR(r.divergence, dout_dx, 1e-14);

  m.parameterization = Parameterization::eps;  // score = -out / sqrt(1 - abar) = -out / 0.8
  r = taep::mlp_evaluate_reference(m, {x}, t, 1 - abar, true);
  EXPECT_NEAR(r.score[0], -out / 0.8, 1e-14);
  EXPECT_NEAR(r.divergence, -dout_dx / 0.8, 1e-14);

  r = taep::mlp_evaluate_reference(m, {x}, t, 1 - abar, false);
  EXPECT_NEAR(r.score[0], -out / 0.8, 1e-14);
  EXPECT_EQ(r.divergence, 0.0);
}

struct DivergenceCase {
  int dim;
  Parameterization parameterization;
};

class DivergenceTest : public ::testing::TestWithParam<DivergenceCase> {};

// The exact divergence against sum_i (s_i(x + h e_i) - s_i(x - h e_i)) / 2h; with h = 1e-5 the
// truncation error is ~1e-10 and the rounding error ~1e-11.
TEST_P(DivergenceTest, EqualsCentralFiniteDifferencesOfTheScore) {
  const auto [dim, p] = GetParam();
  const MlpModel m = random_mlp(dim, 8, {16, 12}, p, 10 + dim);
  std::mt19937_64 rng(7);
  std::normal_distribution<double> normal;
  std::uniform_real_distribution<double> uniform(0.01, 1.0);
  for (int point = 0; point < 20; ++point) {
    std::vector<double> x(dim);
    for (double& xi : x) xi = 2 * normal(rng);
    const double t = uniform(rng), abar = 0.9 * uniform(rng);
    const auto exact = taep::mlp_evaluate_reference(m, x, t, 1 - abar, true);
    double fd = 0;
    for (int i = 0; i < dim; ++i) {
      const double h = 1e-5;
      std::vector<double> plus = x, minus = x;
      plus[i] += h;
      minus[i] -= h;
      fd += (taep::mlp_evaluate_reference(m, plus, t, 1 - abar, false).score[i] -
             taep::mlp_evaluate_reference(m, minus, t, 1 - abar, false).score[i]) /
            (2 * h);
    }
    EXPECT_NEAR(exact.divergence, fd, 1e-7 * (1 + std::abs(fd))) << "point " << point;
    EXPECT_EQ(exact.score, taep::mlp_evaluate_reference(m, x, t, 1 - abar, false).score)
        << "point " << point;
  }
}

INSTANTIATE_TEST_SUITE_P(Mlp, DivergenceTest,
                         ::testing::Values(DivergenceCase{2, Parameterization::score},
                                           DivergenceCase{2, Parameterization::eps},
                                           DivergenceCase{5, Parameterization::score},
                                           DivergenceCase{5, Parameterization::eps}),
                         [](const auto& info) {
                           return "Dim" + std::to_string(info.param.dim) +
                                  (info.param.parameterization == Parameterization::eps ? "Eps"
                                                                                        : "Score");
                         });

// An eps model's file records the schedule it was trained with; a run on another schedule is
// refused naming both (the eps-to-score conversion depends on it). A file without the record (older
// files, hand-made ones) is accepted as before.
TEST(Mlp, EpsModelsRunOnlyOnTheScheduleTheyWereTrainedWith) {
  MlpModel m = random_mlp(2, 4, {8}, Parameterization::eps, 7);
  taep::physics::Schedule trained;
  trained.beta_max = 12.5;
  m.trained_schedule = trained;
  const std::string path = temp_path("eps_schedule.safetensors");
  taep::save_mlp(m, path);
  const MlpModel back = taep::load_mlp(path);
  ASSERT_TRUE(back.trained_schedule.has_value());
  EXPECT_EQ(back.trained_schedule->type, taep::physics::ScheduleType::vp);
  EXPECT_EQ(back.trained_schedule->beta_min, 0.1);
  EXPECT_EQ(back.trained_schedule->beta_max, 12.5);

  taep::Config c = taep::default_config();
  c.model = taep::ModelConfig{};
  c.model.type = "mlp";
  c.model.weights = path;
  c.schedule.sde.beta_max = 12.5;
  EXPECT_NO_THROW(taep::build_problem(c));
  c.schedule.sde.beta_max = 20.0;
  try {
    taep::build_problem(c);
    ADD_FAILURE() << "an eps model ran on another schedule";
  } catch (const taep::ConfigError& e) {
    EXPECT_EQ(e.field(), "model.weights");
    const std::string what = e.what();
    EXPECT_NE(what.find("beta_max = 12.5 cannot"), std::string::npos) << what;
    EXPECT_NE(what.find("beta_max = 20:"), std::string::npos) << what;
  }
  // A VE run of the VP-trained model is refused too, naming the VE schedule.
  c.schedule.sde.type = taep::physics::ScheduleType::ve;
  try {
    taep::build_problem(c);
    ADD_FAILURE() << "a VP eps model ran on a VE schedule";
  } catch (const taep::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("schedule.type \"ve\" with sigma_min = 0.01"), std::string::npos)
        << e.what();
  }
  c.schedule.sde.type = taep::physics::ScheduleType::vp;
  m.trained_schedule.reset();  // not recorded
  taep::save_mlp(m, path);
  EXPECT_NO_THROW(taep::build_problem(c));
  m.parameterization = Parameterization::score;  // a score model carries no conversion
  m.trained_schedule = trained;
  taep::save_mlp(m, path);
  EXPECT_NO_THROW(taep::build_problem(c));
  std::remove(path.c_str());
}

}  // namespace

// Config parsing and validation: defaults, presets, collapse, the canonical round trip, and one case
// per class of bad input, each naming the offending field.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>

#include "taep/config.hpp"
#include "taep/error.hpp"
#include "taep/problem.hpp"

namespace {

using taep::Config;
using taep::ConfigError;
using taep::MixtureSpec;

void expect_same_mixture(const MixtureSpec& a, const MixtureSpec& b) {
  EXPECT_EQ(a.weights, b.weights);
  EXPECT_EQ(a.means, b.means);
  EXPECT_EQ(a.sigmas, b.sigmas);
}

// Field-by-field equality (Config has no operator==).
void expect_same_config(const Config& a, const Config& b) {
  EXPECT_EQ(a.target.preset, b.target.preset);
  expect_same_mixture(a.target.mixture, b.target.mixture);
  EXPECT_EQ(a.model.type, b.model.type);
  ASSERT_EQ(a.model.mixture.has_value(), b.model.mixture.has_value());
  if (a.model.mixture) expect_same_mixture(*a.model.mixture, *b.model.mixture);
  ASSERT_EQ(a.model.collapse.has_value(), b.model.collapse.has_value());
  if (a.model.collapse) {
    EXPECT_EQ(a.model.collapse->modes, b.model.collapse->modes);
    EXPECT_EQ(a.model.collapse->eps, b.model.collapse->eps);
  }
  EXPECT_EQ(a.schedule.sde.beta_min, b.schedule.sde.beta_min);
  EXPECT_EQ(a.schedule.sde.beta_max, b.schedule.sde.beta_max);
  EXPECT_EQ(a.schedule.t_min, b.schedule.t_min);
  EXPECT_EQ(a.schedule.t_max, b.schedule.t_max);
  EXPECT_EQ(a.schedule.steps, b.schedule.steps);
  EXPECT_EQ(a.schedule.scheme, b.schedule.scheme);
  EXPECT_EQ(a.run.paths, b.run.paths);
  EXPECT_EQ(a.run.seed, b.run.seed);
  EXPECT_EQ(a.run.backend, b.run.backend);
  EXPECT_EQ(a.run.chunk_paths, b.run.chunk_paths);
  EXPECT_EQ(a.run.threads, b.run.threads);
  EXPECT_EQ(a.run.allow_nonfinite, b.run.allow_nonfinite);
  EXPECT_EQ(a.histogram.bins, b.histogram.bins);
  EXPECT_EQ(a.histogram.lo, b.histogram.lo);
  EXPECT_EQ(a.histogram.hi, b.histogram.hi);
}

// Runs `f`, expects a ConfigError naming `field` with a one-line message; returns the message.
template <class F>
std::string expect_config_error(F&& f, const std::string& field) {
  try {
    f();
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.field(), field) << e.what();
    const std::string what = e.what();
    EXPECT_EQ(what.rfind(field + ": ", 0), 0u) << what;
    EXPECT_EQ(what.find('\n'), std::string::npos) << what;
    return what;
  }
  ADD_FAILURE() << "no ConfigError; expected one naming " << field;
  return {};
}

// ---- good input ---------------------------------------------------------------------------------

TEST(Config, DefaultsMatchTheHeader) {
  const Config c = taep::default_config();
  EXPECT_EQ(c.target.preset, "ring8");
  expect_same_mixture(c.target.mixture, taep::ring8());
  EXPECT_EQ(c.model.type, "exact");
  EXPECT_FALSE(c.model.mixture.has_value());
  ASSERT_TRUE(c.model.collapse.has_value());
  EXPECT_EQ(c.model.collapse->modes, 1);
  EXPECT_EQ(c.model.collapse->eps, 0.01);
  EXPECT_EQ(c.schedule.sde.beta_min, 0.1);
  EXPECT_EQ(c.schedule.sde.beta_max, 20.0);
  EXPECT_EQ(c.schedule.t_min, 1e-3);
  EXPECT_EQ(c.schedule.t_max, 1.0);
  EXPECT_EQ(c.schedule.steps, 1000);
  EXPECT_EQ(c.schedule.scheme, taep::Scheme::euler);
  EXPECT_EQ(c.run.paths, 1000000u);
  EXPECT_EQ(c.run.seed, 1u);
  EXPECT_EQ(c.run.backend, taep::Backend::automatic);
  EXPECT_EQ(c.run.chunk_paths, 0u);
  EXPECT_EQ(c.run.threads, 0);
  EXPECT_EQ(c.histogram.bins, 200);
  EXPECT_FALSE(c.histogram.lo.has_value());
  EXPECT_FALSE(c.histogram.hi.has_value());

  expect_same_config(taep::parse_config("{}"), c);
  expect_same_config(taep::parse_config(" {\"schedule\": {}, \"run\": {}, \"histogram\": {}} "), c);
  Config v = c;
  EXPECT_NO_THROW(taep::validate(v));
  expect_same_config(v, c);
}

TEST(Config, Ring8Geometry) {
  const MixtureSpec m = taep::ring8();
  ASSERT_EQ(m.components(), 8);
  ASSERT_EQ(m.dim(), 2);
  ASSERT_EQ(m.means.size(), 8u);
  ASSERT_EQ(m.sigmas.size(), 8u);
  const double pi = std::acos(-1.0);
  for (int k = 0; k < 8; ++k) {
    EXPECT_DOUBLE_EQ(m.weights[k], 1.0 / 8);
    EXPECT_DOUBLE_EQ(m.sigmas[k], 0.25);
    EXPECT_NEAR(m.means[k][0], 4 * std::cos(2 * pi * k / 8), 1e-14);
    EXPECT_NEAR(m.means[k][1], 4 * std::sin(2 * pi * k / 8), 1e-14);
    EXPECT_NEAR(std::hypot(m.means[k][0], m.means[k][1]), 4.0, 1e-14);
  }
}

TEST(Config, CollapseWeights) {
  const MixtureSpec target = taep::ring8();
  for (const taep::CollapseSpec c : {taep::CollapseSpec{1, 0.01}, taep::CollapseSpec{3, 0.05},
                                     taep::CollapseSpec{7, 0.1}}) {
    SCOPED_TRACE("modes " + std::to_string(c.modes) + " eps " + std::to_string(c.eps));
    const MixtureSpec q = taep::collapse(target, c);
    ASSERT_EQ(q.components(), 8);
    double sum = 0;
    for (int k = 0; k < 8; ++k) {
      const double expected = k < c.modes ? c.eps : (1 - c.modes * c.eps) / (8 - c.modes);
      EXPECT_DOUBLE_EQ(q.weights[k], expected);
      sum += q.weights[k];
    }
    EXPECT_NEAR(sum, 1.0, 1e-14);
    EXPECT_EQ(q.means, target.means);
    EXPECT_EQ(q.sigmas, target.sigmas);
  }
  EXPECT_THROW(taep::collapse(target, {8, 0.01}), ConfigError);
  EXPECT_THROW(taep::collapse(target, {2, 0.5}), ConfigError);
}

TEST(Config, PartialSectionsKeepOtherDefaults) {
  const Config c = taep::parse_config(R"({"schedule": {"steps": 50, "scheme": "milstein"},
                                          "run": {"paths": 1e6, "backend": "cpu"}})");
  EXPECT_EQ(c.schedule.steps, 50);
  EXPECT_EQ(c.schedule.scheme, taep::Scheme::milstein);
  EXPECT_EQ(c.schedule.sde.beta_max, 20.0);
  EXPECT_EQ(c.run.paths, 1000000u);  // an integral float is an integer
  EXPECT_EQ(c.run.backend, taep::Backend::cpu);
  EXPECT_EQ(c.run.seed, 1u);
  EXPECT_EQ(c.target.preset, "ring8");
  ASSERT_TRUE(c.model.collapse.has_value());
}

TEST(Config, ExplicitMixturesKeepTheirWeights) {
  const Config c = taep::parse_config(R"({
    "target": {"weights": [2, 6], "means": [[-1], [1]], "sigmas": [0.5, 0.5]},
    "model": {"type": "exact", "mixture": {"weights": [1, 1, 0], "means": [[-1], [1], [3]],
                                           "sigmas": [0.5, 0.5, 1]}}})");
  EXPECT_TRUE(c.target.preset.empty());
  EXPECT_EQ(c.target.mixture.weights, (std::vector<double>{2, 6}));
  EXPECT_EQ(c.target.mixture.dim(), 1);
  ASSERT_TRUE(c.model.mixture.has_value());
  EXPECT_FALSE(c.model.collapse.has_value());
  EXPECT_EQ(c.model.mixture->weights, (std::vector<double>{1, 1, 0}));
}

TEST(Config, LimitsAreInclusive) {
  const Config c = taep::parse_config(R"({
    "run": {"seed": 18446744073709551615, "paths": 1099511627775, "threads": 0},
    "schedule": {"steps": 10000000, "beta_min": 5, "beta_max": 5},
    "histogram": {"bins": 1000000, "range": null},
    "model": {"collapse": {"modes": 7, "eps": 0.1}}})");
  EXPECT_EQ(c.run.seed, std::numeric_limits<std::uint64_t>::max());
  EXPECT_EQ(c.run.paths, (std::uint64_t(1) << 40) - 1);
  EXPECT_EQ(c.schedule.steps, 10000000);
  EXPECT_FALSE(c.histogram.lo.has_value());
}

Config nontrivial_config() {
  Config c;
  c.target.mixture.weights = {0.5, 2.0, 1.25};
  c.target.mixture.means = {{0.1, -2.0, 3.0}, {1.0 / 3, 0, 1e-7}, {-4, 4, 1e3}};
  c.target.mixture.sigmas = {0.3, 0.7, 1.0 / 7};
  MixtureSpec q = c.target.mixture;
  q.weights = {1, 1, 1e-3};
  q.sigmas[2] = 0.2;
  c.model.mixture = q;
  c.schedule.sde.beta_min = 0.05;
  c.schedule.sde.beta_max = 12.5;
  c.schedule.t_min = 2e-3;
  c.schedule.t_max = 0.75;
  c.schedule.steps = 321;
  c.schedule.scheme = taep::Scheme::milstein;
  c.run.paths = 123457;
  c.run.seed = (std::uint64_t(1) << 63) + 5;  // not exactly representable as a double
  c.run.backend = taep::Backend::cpu;
  c.run.chunk_paths = 8192;
  c.run.threads = 3;
  c.histogram.bins = 77;
  c.histogram.lo = -2.5;
  c.histogram.hi = 0.1 + 0.2;
  taep::validate(c);
  return c;
}

TEST(Config, RoundTripThroughCanonicalJson) {
  for (const Config& c : {nontrivial_config(), taep::default_config()}) {
    const std::string text = taep::config_to_json(c);
    SCOPED_TRACE(text);
    const Config back = taep::parse_config(text);
    expect_same_config(back, c);
    EXPECT_EQ(taep::config_to_json(back), text);
    EXPECT_EQ(taep::config_to_json(back, -1).find('\n'), std::string::npos);
  }
}

TEST(Config, CanonicalJsonHasEverySection) {
  const std::string text = taep::config_to_json(taep::default_config());
  for (const char* key : {"\"target\"", "\"preset\": \"ring8\"", "\"collapse\"", "\"schedule\"",
                          "\"scheme\": \"euler\"", "\"run\"", "\"backend\": \"auto\"",
                          "\"histogram\"", "\"range\": null"})
    EXPECT_NE(text.find(key), std::string::npos) << key << " in " << text;
  EXPECT_EQ(text.find("\"weights\""), std::string::npos) << "a preset is written as its name";
}

// What the CLI does: overwrite fields of a parsed config, then validate again.
TEST(Config, OverridesAreValidatedAgain) {
  Config c = taep::parse_config(R"({"run": {"paths": 10}})");
  c.run.paths = 4096;
  c.schedule.steps = 20;
  c.run.seed = 7;
  c.run.backend = taep::Backend::cuda;
  ASSERT_NO_THROW(taep::validate(c));
  ASSERT_NO_THROW(taep::validate(c));  // idempotent: the filled preset mixture is accepted again
  EXPECT_EQ(c.run.paths, 4096u);
  EXPECT_EQ(c.schedule.steps, 20);
  EXPECT_EQ(c.target.mixture.components(), 8);

  c.schedule.steps = 0;
  expect_config_error([&] { taep::validate(c); }, "schedule.steps");
  c.schedule.steps = 20;
  c.run.paths = 0;
  expect_config_error([&] { taep::validate(c); }, "run.paths");
}

TEST(Config, EnumNames) {
  EXPECT_STREQ(taep::to_string(taep::Scheme::euler), "euler");
  EXPECT_STREQ(taep::to_string(taep::Scheme::milstein), "milstein");
  EXPECT_STREQ(taep::to_string(taep::Backend::automatic), "auto");
  EXPECT_STREQ(taep::to_string(taep::Backend::cpu), "cpu");
  EXPECT_STREQ(taep::to_string(taep::Backend::cuda), "cuda");
}

TEST(Config, MessagesSayWhatIsAllowedAndWhatWasGot) {
  std::string m = expect_config_error(
      [] { taep::parse_config(R"({"schedule": {"steps": 0}})"); }, "schedule.steps");
  EXPECT_NE(m.find("must be an integer in [1, 10000000] (got 0)"), std::string::npos) << m;

  m = expect_config_error([] { taep::parse_config(R"({"schedule": {"stepz": 5}})"); },
                          "schedule.stepz");
  EXPECT_NE(m.find("unknown key"), std::string::npos) << m;
  EXPECT_NE(m.find("\"steps\""), std::string::npos) << m;

  m = expect_config_error([] { taep::parse_config("{\n  \"run\": {\"paths\": 10,}\n}"); }, "config");
  EXPECT_NE(m.find("line 2, column"), std::string::npos) << m;

  m = expect_config_error([] { taep::parse_config(R"({"run": {"backend": "gpu"}})"); },
                          "run.backend");
  EXPECT_NE(m.find("\"cuda\""), std::string::npos) << m;
  EXPECT_NE(m.find("(got \"gpu\")"), std::string::npos) << m;
}

// ---- bad JSON input: one row per class ----------------------------------------------------------

struct BadJson {
  const char* name;
  std::string json;
  const char* field;
};

std::ostream& operator<<(std::ostream& os, const BadJson& b) { return os << b.name; }

std::string means_of_dim(int d) {
  std::string v = "[";
  for (int i = 0; i < d; ++i) v += i ? ",0" : "0";
  return v + "]";
}

const BadJson kBadJson[] = {
    // shape
    {"Malformed", R"({"schedule": {"steps": 10,}})", "config"},
    {"Empty", "", "config"},
    {"TrailingGarbage", "{} x", "config"},
    {"NumberOverflow", R"({"schedule": {"beta_max": 1e400}})", "config"},
    {"TopLevelArray", "[1, 2]", "config"},
    {"TopLevelString", R"("ring8")", "config"},
    {"UnknownTopKey", R"({"shedule": {}})", "shedule"},
    {"UnknownTargetKey", R"({"target": {"preset": "ring8", "dim": 2}})", "target.dim"},
    {"UnknownModelKey", R"({"model": {"collapse": {}, "score": 1}})", "model.score"},
    {"UnknownCollapseKey", R"({"model": {"collapse": {"mode": 2}}})", "model.collapse.mode"},
    {"UnknownModelMixtureKey",
     R"({"model": {"mixture": {"weights": [1], "means": [[0,0]], "sigmas": [1], "x": 0}}})",
     "model.mixture.x"},
    {"UnknownScheduleKey", R"({"schedule": {"stepz": 5}})", "schedule.stepz"},
    {"UnknownRunKey", R"({"run": {"path": 5}})", "run.path"},
    {"UnknownHistogramKey", R"({"histogram": {"lo": 0}})", "histogram.lo"},
    {"SectionNotObject", R"({"run": 5})", "run"},
    {"SectionNull", R"({"schedule": null})", "schedule"},
    {"CollapseNotObject", R"({"model": {"collapse": 1}})", "model.collapse"},
    // types
    {"StringForNumber", R"({"schedule": {"beta_min": "0.1"}})", "schedule.beta_min"},
    {"BoolForNumber", R"({"schedule": {"t_max": true}})", "schedule.t_max"},
    {"StringForInteger", R"({"run": {"paths": "1000"}})", "run.paths"},
    {"NonIntegralSteps", R"({"schedule": {"steps": 10.5}})", "schedule.steps"},
    {"NonIntegralChunk", R"({"run": {"chunk_paths": 4096.5}})", "run.chunk_paths"},
    {"NegativeSeed", R"({"run": {"seed": -1}})", "run.seed"},
    {"SeedTooLarge", R"({"run": {"seed": 18446744073709551616}})", "run.seed"},
    {"NumberForScheme", R"({"schedule": {"scheme": 1}})", "schedule.scheme"},
    {"NumberForPreset", R"({"target": {"preset": 8}})", "target.preset"},
    {"NumberForModelType", R"({"model": {"type": 1, "collapse": {}}})", "model.type"},
    {"WeightsNotArray", R"({"target": {"weights": 1, "means": [[0]], "sigmas": [1]}})",
     "target.weights"},
    {"WeightNotNumber", R"({"target": {"weights": [1, "a"], "means": [[0], [1]], "sigmas": [1, 1]}})",
     "target.weights[1]"},
    {"MeansNotArray", R"({"target": {"weights": [1], "means": 0, "sigmas": [1]}})", "target.means"},
    {"MeanNotArray", R"({"target": {"weights": [1, 1], "means": [[0], 1], "sigmas": [1, 1]}})",
     "target.means[1]"},
    {"MeanEntryNotNumber", R"({"target": {"weights": [1], "means": [[0, null]], "sigmas": [1]}})",
     "target.means[0][1]"},
    // target
    {"UnknownPreset", R"({"target": {"preset": "ring9"}})", "target.preset"},
    {"PresetWithMixture", R"({"target": {"preset": "ring8", "weights": [1]}})", "target"},
    {"TargetEmpty", R"({"target": {}})", "target"},
    {"TargetMissingSigmas", R"({"target": {"weights": [1], "means": [[0]]}})", "target.sigmas"},
    {"NoComponents", R"({"target": {"weights": [], "means": [], "sigmas": []}})", "target.weights"},
    {"MeansCountMismatch", R"({"target": {"weights": [1, 1], "means": [[0]], "sigmas": [1, 1]}})",
     "target.means"},
    {"SigmasCountMismatch", R"({"target": {"weights": [1, 1], "means": [[0], [1]], "sigmas": [1]}})",
     "target.sigmas"},
    {"MeanDimensionMismatch",
     R"({"target": {"weights": [1, 1], "means": [[0, 0], [1]], "sigmas": [1, 1]}})",
     "target.means[1]"},
    {"MeanDimensionZero", R"({"target": {"weights": [1], "means": [[]], "sigmas": [1]}})",
     "target.means[0]"},
    {"MeanDimensionTooLarge",
     R"({"target": {"weights": [1], "means": [)" + means_of_dim(257) + R"(], "sigmas": [1]}})",
     "target.means[0]"},
    {"NegativeWeight", R"({"target": {"weights": [1, -1], "means": [[0], [1]], "sigmas": [1, 1]}})",
     "target.weights[1]"},
    {"ZeroWeightSum", R"({"target": {"weights": [0, 0], "means": [[0], [1]], "sigmas": [1, 1]}})",
     "target.weights"},
    {"ZeroSigma", R"({"target": {"weights": [1, 1], "means": [[0], [1]], "sigmas": [0, 1]}})",
     "target.sigmas[0]"},
    {"NegativeSigma", R"({"target": {"weights": [1, 1], "means": [[0], [1]], "sigmas": [1, -0.5]}})",
     "target.sigmas[1]"},
    // model
    {"ModelNeither", R"({"model": {"type": "exact"}})", "model"},
    {"ModelBoth",
     R"({"model": {"collapse": {}, "mixture": {"weights": [1], "means": [[0, 0]], "sigmas": [1]}}})",
     "model"},
    {"UnknownModelType", R"({"model": {"type": "gmm", "collapse": {}}})", "model.type"},
    {"MlpWithCollapse", R"({"model": {"type": "mlp", "collapse": {}}})", "model.collapse"},
    {"MlpWithoutWeights", R"({"model": {"type": "mlp"}})", "model.weights"},
    {"MlpMissingFile", R"({"model": {"type": "mlp", "weights": "/nonexistent/w.safetensors"}})",
     "model.weights"},
    {"MlpBadDivergence", R"({"model": {"type": "mlp", "weights": "w", "divergence": "trace"}})",
     "model.divergence"},
    {"MlpProbesZero", R"({"model": {"type": "mlp", "weights": "w", "probes": 0}})", "model.probes"},
    {"MlpBadProbeDistribution",
     R"({"model": {"type": "mlp", "weights": "w", "probe_distribution": "uniform"}})",
     "model.probe_distribution"},
    {"MlpBadMath", R"({"model": {"type": "mlp", "weights": "w", "math": "fp16"}})", "model.math"},
    {"ExactWithMlpKey", R"({"model": {"type": "exact", "collapse": {}, "probes": 2}})", "model.probes"},
    {"CollapseModesZero", R"({"model": {"collapse": {"modes": 0}}})", "model.collapse.modes"},
    {"CollapseModesNotInteger", R"({"model": {"collapse": {"modes": 1.5}}})",
     "model.collapse.modes"},
    {"CollapseModesEqualK", R"({"model": {"collapse": {"modes": 8}}})", "model.collapse.modes"},
    {"CollapseModesOnSingleComponent",
     R"({"target": {"weights": [1], "means": [[0]], "sigmas": [1]}, "model": {"collapse": {}}})",
     "model.collapse.modes"},
    {"CollapseEpsZero", R"({"model": {"collapse": {"eps": 0}}})", "model.collapse.eps"},
    {"CollapseEpsNegative", R"({"model": {"collapse": {"eps": -0.1}}})", "model.collapse.eps"},
    {"CollapseEpsTooLarge", R"({"model": {"collapse": {"modes": 2, "eps": 0.5}}})",
     "model.collapse.eps"},
    {"ModelMixtureMissingMeans", R"({"model": {"mixture": {"weights": [1], "sigmas": [1]}}})",
     "model.mixture.means"},
    {"ModelMixtureDimension",
     R"({"model": {"mixture": {"weights": [1], "means": [[0, 0, 0]], "sigmas": [1]}}})",
     "model.mixture.means"},
    {"ModelMixtureZeroSigma",
     R"({"model": {"mixture": {"weights": [1], "means": [[0, 0]], "sigmas": [0]}}})",
     "model.mixture.sigmas[0]"},
    // schedule
    {"BetaMinZero", R"({"schedule": {"beta_min": 0}})", "schedule.beta_min"},
    {"BetaMaxBelowBetaMin", R"({"schedule": {"beta_min": 1, "beta_max": 0.5}})",
     "schedule.beta_max"},
    {"TMinZero", R"({"schedule": {"t_min": 0}})", "schedule.t_min"},
    {"TMinNegative", R"({"schedule": {"t_min": -0.1}})", "schedule.t_min"},
    {"TMinEqualsTMax", R"({"schedule": {"t_min": 0.5, "t_max": 0.5}})", "schedule.t_max"},
    {"TMinAboveTMax", R"({"schedule": {"t_min": 0.5, "t_max": 0.2}})", "schedule.t_max"},
    {"StepsZero", R"({"schedule": {"steps": 0}})", "schedule.steps"},
    {"StepsNegative", R"({"schedule": {"steps": -3}})", "schedule.steps"},
    {"StepsTooMany", R"({"schedule": {"steps": 10000001}})", "schedule.steps"},
    {"UnknownScheme", R"({"schedule": {"scheme": "rk4"}})", "schedule.scheme"},
    // run
    {"PathsZero", R"({"run": {"paths": 0}})", "run.paths"},
    {"PathsNegative", R"({"run": {"paths": -10}})", "run.paths"},
    {"PathsTooMany", R"({"run": {"paths": 1099511627776}})", "run.paths"},
    {"UnknownBackend", R"({"run": {"backend": "gpu"}})", "run.backend"},
    {"ThreadsNegative", R"({"run": {"threads": -1}})", "run.threads"},
    {"ThreadsTooMany", R"({"run": {"threads": 1025}})", "run.threads"},
    {"ThreadsFarTooMany", R"({"run": {"threads": 65536}})", "run.threads"},
    {"AllowNonfiniteNotABoolean", R"({"run": {"allow_nonfinite": 1}})", "run.allow_nonfinite"},
    // histogram
    {"BinsZero", R"({"histogram": {"bins": 0}})", "histogram.bins"},
    {"BinsTooMany", R"({"histogram": {"bins": 1000001}})", "histogram.bins"},
    {"RangeOneNumber", R"({"histogram": {"range": [1]}})", "histogram.range"},
    {"RangeNotNumbers", R"({"histogram": {"range": ["a", 2]}})", "histogram.range"},
    {"RangeNotArray", R"({"histogram": {"range": 5}})", "histogram.range"},
    {"RangeReversed", R"({"histogram": {"range": [2, 1]}})", "histogram.range"},
    {"RangeEmpty", R"({"histogram": {"range": [1, 1]}})", "histogram.range"},
};

class BadJsonTest : public ::testing::TestWithParam<BadJson> {};

TEST_P(BadJsonTest, ThrowsConfigErrorNamingTheField) {
  const BadJson& b = GetParam();
  // parse_config checks the config itself; build_problem reads the weight file (MlpMissingFile).
  expect_config_error([&] { taep::build_problem(taep::parse_config(b.json)); }, b.field);
}

INSTANTIATE_TEST_SUITE_P(Config, BadJsonTest, ::testing::ValuesIn(kBadJson),
                         [](const auto& info) { return std::string(info.param.name); });

// ---- bad values set in code (JSON cannot hold nan or inf) ---------------------------------------

struct BadValue {
  const char* name;
  void (*mutate)(Config&);
  const char* field;
};

std::ostream& operator<<(std::ostream& os, const BadValue& b) { return os << b.name; }

constexpr double kNan = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

void one_d_target(Config& c) {
  c.target.preset.clear();
  c.target.mixture = MixtureSpec{{1, 1}, {{-1}, {1}}, {0.5, 0.5}};
}

const BadValue kBadValues[] = {
    {"NanBetaMax", [](Config& c) { c.schedule.sde.beta_max = kNan; }, "schedule.beta_max"},
    {"InfBetaMin", [](Config& c) { c.schedule.sde.beta_min = kInf; }, "schedule.beta_min"},
    {"NanTMin", [](Config& c) { c.schedule.t_min = kNan; }, "schedule.t_min"},
    {"InfTMax", [](Config& c) { c.schedule.t_max = kInf; }, "schedule.t_max"},
    {"InfMean", [](Config& c) { one_d_target(c); c.target.mixture.means[1][0] = kInf; },
     "target.means[1][0]"},
    {"NanWeight", [](Config& c) { one_d_target(c); c.target.mixture.weights[0] = kNan; },
     "target.weights[0]"},
    {"InfWeight", [](Config& c) { one_d_target(c); c.target.mixture.weights[0] = kInf; },
     "target.weights[0]"},
    {"NanSigma", [](Config& c) { one_d_target(c); c.target.mixture.sigmas[1] = kNan; },
     "target.sigmas[1]"},
    {"NanEps", [](Config& c) { c.model.collapse->eps = kNan; }, "model.collapse.eps"},
    {"InfHistogramHi", [](Config& c) { c.histogram.lo = 0; c.histogram.hi = kInf; },
     "histogram.range"},
    {"HistogramLoOnly", [](Config& c) { c.histogram.lo = 0; }, "histogram.range"},
    {"HistogramWidthOverflows", [](Config& c) { c.histogram.lo = -1e308; c.histogram.hi = 1e308; },
     "histogram.range"},
    {"PresetConflictsWithMixture", [](Config& c) { c.target.mixture.weights[0] = 0.5; }, "target"},
    {"UnknownPreset", [](Config& c) { c.target.preset = "ring7"; }, "target.preset"},
    {"ModelNeither", [](Config& c) { c.model.collapse.reset(); }, "model"},
    {"ModelBoth", [](Config& c) { c.model.mixture = c.target.mixture; }, "model"},
    {"StepsNegative", [](Config& c) { c.schedule.steps = -1; }, "schedule.steps"},
    {"ThreadsNegative", [](Config& c) { c.run.threads = -2; }, "run.threads"},
    {"PathsTooMany", [](Config& c) { c.run.paths = std::uint64_t(1) << 40; }, "run.paths"},
};

class BadValueTest : public ::testing::TestWithParam<BadValue> {};

TEST_P(BadValueTest, ValidateThrowsConfigErrorNamingTheField) {
  const BadValue& b = GetParam();
  Config c = taep::default_config();
  b.mutate(c);
  expect_config_error([&] { taep::validate(c); }, b.field);
}

INSTANTIATE_TEST_SUITE_P(Config, BadValueTest, ::testing::ValuesIn(kBadValues),
                         [](const auto& info) { return std::string(info.param.name); });

}  // namespace

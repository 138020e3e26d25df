// The variance-exploding schedule (physics/schedule.hpp, docs/physics.md section 1): its closed
// forms, its config section, and every engine that integrates the SDE on it (forward TAEP, the
// reverse process, the PF-ODE NLL, training's weight-file record) against closed forms.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "support/test_support.hpp"
#include "taep/error.hpp"
#include "taep/nll.hpp"
#include "taep/physics/schedule.hpp"
#include "taep/sample.hpp"
#include "taep/taep.hpp"
#include "taep/train.hpp"

namespace {

using taep::physics::Schedule;
using taep::physics::ScheduleType;
constexpr double kPi = 3.14159265358979323846;

Schedule ve(double sigma_min, double sigma_max) {
  Schedule s;
  s.type = ScheduleType::ve;
  s.sigma_min = sigma_min;
  s.sigma_max = sigma_max;
  return s;
}

TEST(VeSchedule, GIsTheRateOfTheAddedVarianceAndThePriorIsItsValueAtOne) {
  const Schedule s = ve(0.01, 50);
  EXPECT_EQ(s.marginal(0).noise, 0.0);
  EXPECT_EQ(s.drift_rate(0.3), 0.0);
  for (double t : {1e-4, 0.01, 0.3, 0.7, 0.99}) {
    const taep::physics::Marginal m = s.marginal(t);
    EXPECT_EQ(m.scale, 1.0);
    EXPECT_EQ(m.scale2, 1.0);
    const double sig = 0.01 * std::pow(5000.0, t);
    EXPECT_NEAR(m.noise, sig * sig - 1e-4, 1e-13 * sig * sig) << t;
    const double h = 1e-6;
    const double fd = (s.marginal(t + h).noise - s.marginal(t - h).noise) / (2 * h);
    EXPECT_NEAR(s.g2(t), fd, 1e-7 * fd) << t;
  }
  EXPECT_NEAR(s.prior_variance(), s.marginal(1).noise, 1e-12 * s.prior_variance());
  EXPECT_EQ(s.prior_variance(), 50.0 * 50.0 - 0.01 * 0.01);
}

TEST(VeSchedule, TutorialShorthandIsGOfTEqualsSigmaToTheT) {
  for (double sig : {10.0, 25.0, 30.0}) {
    const Schedule s = Schedule::ve_tutorial(sig);
    for (double t : {0.0, 0.2, 0.5, 1.0}) {
      EXPECT_NEAR(s.g2(t), std::pow(sig, 2 * t), 1e-12 * std::pow(sig, 2 * t));
      const double n = (std::pow(sig, 2 * t) - 1) / (2 * std::log(sig));
      EXPECT_NEAR(s.marginal(t).noise, n, 1e-12 * (1 + n));
    }
  }
  // The tutorial's sigma_1^2 at sigma = 10: 99 / (2 ln 10) = 21.498.
  EXPECT_NEAR(Schedule::ve_tutorial(10).prior_variance(), 21.498, 5e-4);
}

TEST(VeSchedule, VpMarginalIsTheSignalFactorsTransition) {
  const Schedule s;
  for (double t : {1e-3, 0.5, 1.0}) {
    const taep::physics::Marginal m = s.marginal(t);
    EXPECT_DOUBLE_EQ(m.scale2, s.abar(t));
    EXPECT_NEAR(m.noise, 1 - s.abar(t), 1e-15);
    EXPECT_DOUBLE_EQ(s.g2(t), s.beta(t));
    EXPECT_DOUBLE_EQ(s.drift_rate(t), 0.5 * s.beta(t));
  }
  EXPECT_EQ(s.prior_variance(), 1.0);
}

TEST(VeSchedule, ConfigReadsTheShorthandAndRoundTripsItsCanonicalForm) {
  const taep::Config c =
      taep::parse_config(R"({"schedule": {"type": "ve", "sigma": 25, "steps": 200}})");
  EXPECT_EQ(c.schedule.sde.type, ScheduleType::ve);
  EXPECT_DOUBLE_EQ(c.schedule.sde.sigma_min, 1 / std::sqrt(2 * std::log(25.0)));
  EXPECT_DOUBLE_EQ(c.schedule.sde.sigma_max, 25 * c.schedule.sde.sigma_min);
  const nlohmann::json j = nlohmann::json::parse(taep::config_to_json(c));
  EXPECT_EQ(j["schedule"]["type"], "ve");
  EXPECT_FALSE(j["schedule"].contains("beta_min"));
  EXPECT_FALSE(j["schedule"].contains("sigma"));
  const taep::Config back = taep::parse_config(j.dump());
  EXPECT_EQ(back.schedule.sde.sigma_min, c.schedule.sde.sigma_min);
  EXPECT_EQ(back.schedule.sde.sigma_max, c.schedule.sde.sigma_max);
  EXPECT_EQ(taep::config_to_json(back), taep::config_to_json(c));
  // The default stays VP and says so.
  const nlohmann::json d = nlohmann::json::parse(taep::config_to_json(taep::default_config()));
  EXPECT_EQ(d["schedule"]["type"], "vp");
  EXPECT_EQ(d["schedule"]["beta_max"], 20.0);
}

TEST(VeSchedule, BadScheduleSectionsNameTheField) {
  const std::pair<const char*, const char*> cases[] = {
      {R"({"schedule": {"type": "ve", "beta_min": 0.1}})", "schedule.beta_min"},
      {R"({"schedule": {"sigma_max": 30}})", "schedule.sigma_max"},
      {R"({"schedule": {"sigma": 25}})", "schedule.sigma"},
      {R"({"schedule": {"type": "ve", "sigma": 25, "sigma_max": 3}})", "schedule.sigma"},
      {R"({"schedule": {"type": "ve", "sigma": 1}})", "schedule.sigma"},
      {R"({"schedule": {"type": "ve", "sigma_min": 2, "sigma_max": 1}})", "schedule.sigma_max"},
      {R"({"schedule": {"type": "ve", "sigma_min": 0}})", "schedule.sigma_min"},
      {R"({"schedule": {"type": "vesde"}})", "schedule.type"},
  };
  for (const auto& [text, field] : cases) {
    try {
      taep::parse_config(text);
      ADD_FAILURE() << "accepted " << text;
    } catch (const taep::ConfigError& e) {
      EXPECT_EQ(e.field(), field) << text << ": " << e.what();
    }
  }
  try {
    taep::parse_train_config(R"({"schedule": {"type": "ve", "beta_max": 5}})");
    ADD_FAILURE() << "training accepted beta_max with type ve";
  } catch (const taep::ConfigError& e) {
    EXPECT_EQ(e.field(), "schedule.beta_max");
  }
}

// A 1D two-mode target and an exact model with other weights on the tutorial VE schedule.
taep::Config ve_mixture_config(double sigma, std::uint64_t paths, int steps) {
  taep::Config c = taep::default_config();
  c.target.preset.clear();
  c.target.mixture = taep::MixtureSpec{{0.6, 0.4}, {{-1.0}, {1.5}}, {0.3, 0.5}};
  c.model.collapse.reset();
  c.model.mixture = taep::MixtureSpec{{0.4, 0.6}, {{-1.0}, {1.5}}, {0.3, 0.5}};
  c.schedule.sde = Schedule::ve_tutorial(sigma);
  c.schedule.steps = steps;
  c.run.paths = paths;
  c.run.backend = taep::Backend::cpu;
  c.run.threads = 2;
  return c;
}

// Forward TAEP of an exact-score model on VE: <S> equals <R> (the closed form of the same paths)
// within its standard error and the Euler sum's step bias, path by path S tracks R, and the
// integral fluctuation theorem holds.
TEST(VeSchedule, ForwardTaepOfAnExactModelMatchesItsClosedForm) {
  const taep::RunResult r = taep::run(ve_mixture_config(10, 1 << 15, 2000));
  ASSERT_TRUE(r.reference.has_value());
  EXPECT_EQ(r.taep.nonfinite, 0u);
  EXPECT_GT(r.taep.mean, 0.01);  // the weights differ: KL > 0
  EXPECT_NEAR(r.reference->error_mean, 0.0, 4 * std::sqrt(r.reference->error_variance / r.taep.count) + 2e-3);
  EXPECT_LT(r.reference->rms_path_error, 0.1 * std::sqrt(r.taep.variance));
  EXPECT_NEAR(r.ift.estimate, 1.0, 4 * r.ift.stderr_ + 5e-3);
}

// Data N(mean, sd^2) in 1D, its exact score as the model, the tutorial VE schedule g(t) = sigma^t,
// on the CPU with two threads.
taep::Config ve_gaussian_config(double mean, double sd, double sigma) {
  taep::Config c = taep::default_config();
  c.target.preset.clear();
  c.target.mixture = taep::MixtureSpec{{1.0}, {{mean}}, {sd}};
  c.model.collapse.reset();
  c.model.mixture = c.target.mixture;
  c.schedule.sde = Schedule::ve_tutorial(sigma);
  c.run.backend = taep::Backend::cpu;
  c.run.threads = 2;
  return c;
}

// The reverse process on VE starts from N(0, sigma_max^2 - sigma_min^2) and, driven by the exact
// score of a Gaussian, ends at that Gaussian (up to the prior mismatch, tiny here).
TEST(VeSchedule, ReverseSamplesOfTheExactScoreHaveTheTargetsMoments) {
  taep::Config c = ve_gaussian_config(1.0, 0.5, 25);
  c.schedule.steps = 2000;
  const std::uint64_t n = 20000;
  const taep::SampleResult s = taep::sample(c, n);
  ASSERT_EQ(s.nonfinite, 0u);
  double m = 0, v = 0;
  for (float x : s.samples) m += x / double(n);
  for (float x : s.samples) v += (x - m) * (x - m) / double(n - 1);
  // Standard errors: 0.5/sqrt(n) for the mean, 0.25 sqrt(2/n) for the variance; plus the Euler
  // scheme's step bias.
  EXPECT_NEAR(m, 1.0, 4 * 0.5 / std::sqrt(double(n)) + 0.01);
  EXPECT_NEAR(v, 0.25, 4 * 0.25 * std::sqrt(2.0 / n) + 0.01);
}

// The PF-ODE of the exact score of N(0, 1) on VE is linear, x(t) = x0 sqrt(v(t) / v(t_min)) with
// v = 1 + n(t), so the NLL with the prior N(0, b) is closed form per point:
//   nll = x1^2 / (2 b) + ln(2 pi b) / 2 - ln(v(1) / v(t_min)) / 2.
// Its mean over x0 ~ N(0, v(t_min)) at t_min -> 0 is the paper-side oracle (docs/entropy-rates.md
// section 6): 1.41946, 1.41896, 1.41895 nats at sigma = 10, 25, 30.
double ve_gaussian_mean_nll(double sigma, double t_min) {
  const Schedule s = Schedule::ve_tutorial(sigma);
  const double v0 = 1 + s.marginal(t_min).noise, v1 = 1 + s.marginal(1).noise,
               b = s.prior_variance();
  return 0.5 * v1 / b + 0.5 * std::log(2 * kPi * b) - 0.5 * std::log(v1 / v0);
}

TEST(VeSchedule, PfOdeNllOfTheExactGaussianScoreIsTheClosedForm) {
  EXPECT_NEAR(ve_gaussian_mean_nll(10, 0), 1.41946, 1e-5);
  EXPECT_NEAR(ve_gaussian_mean_nll(25, 0), 1.41896, 1e-5);
  EXPECT_NEAR(ve_gaussian_mean_nll(30, 0), 1.41895, 1e-5);

  taep::Config c = ve_gaussian_config(0.0, 1.0, 10);
  c.schedule.t_min = 1e-5;
  const std::vector<double> x = {-2.5, -1.0, -0.1, 0.0, 0.4, 1.3, 3.0};
  const taep::NllResult r = taep::nll(taep::build_problem(c), x, 1);
  const Schedule& s = c.schedule.sde;
  const double v0 = 1 + s.marginal(c.schedule.t_min).noise, v1 = 1 + s.marginal(1).noise,
               b = s.prior_variance();
  ASSERT_EQ(r.failures, 0u);
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double x1 = x[i] * std::sqrt(v1 / v0);
    EXPECT_NEAR(r.latent[i], x1, 1e-4 * (1 + std::abs(x1))) << x[i];
    const double nll = 0.5 * x1 * x1 / b + 0.5 * std::log(2 * kPi * b) - 0.5 * std::log(v1 / v0);
    EXPECT_NEAR(r.nll[i], nll, 1e-4) << x[i];
  }
}

// Training on VE: the weight file records the schedule, and an eps model is refused on another.
TEST(VeSchedule, TrainedEpsModelRecordsItsVeSchedule) {
  taep::TrainConfig t = taep::parse_train_config(R"({
    "data": {"target": {"weights": [1], "means": [[0.0]], "sigmas": [1.0]}},
    "network": {"hidden": [16], "embedding_dim": 4, "parameterization": "eps"},
    "optimizer": {"steps": 20, "batch": 32},
    "schedule": {"type": "ve", "sigma": 10},
    "run": {"backend": "cpu", "threads": 1}})");
  const taep::TrainResult r = taep::train(t);
  ASSERT_TRUE(r.model.trained_schedule.has_value());
  EXPECT_EQ(r.model.trained_schedule->type, ScheduleType::ve);
  EXPECT_EQ(r.model.trained_schedule->sigma_max, t.sde.sigma_max);
  EXPECT_TRUE(std::isfinite(r.final_loss));
  const std::string path = ::testing::TempDir() + "ve_eps.safetensors";
  taep::save_mlp(r.model, path);
  const taep::MlpModel back = taep::load_mlp(path);
  ASSERT_TRUE(back.trained_schedule.has_value());
  EXPECT_EQ(back.trained_schedule->type, ScheduleType::ve);
  EXPECT_EQ(back.trained_schedule->sigma_min, t.sde.sigma_min);

  taep::Config c = taep::default_config();
  c.target.preset.clear();
  c.target.mixture = taep::MixtureSpec{{1.0}, {{0.0}}, {1.0}};
  c.model = taep::ModelConfig{};
  c.model.type = "mlp";
  c.model.weights = path;
  c.schedule.sde = t.sde;
  EXPECT_NO_THROW(taep::build_problem(c));
  c.schedule.sde = Schedule{};
  try {
    taep::build_problem(c);
    ADD_FAILURE() << "a VE eps model ran on VP";
  } catch (const taep::ConfigError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("schedule.type \"ve\""), std::string::npos) << what;
    EXPECT_NE(what.find("schedule.type \"vp\""), std::string::npos) << what;
  }
  std::remove(path.c_str());
}

}  // namespace

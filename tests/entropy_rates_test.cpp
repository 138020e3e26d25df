// taep rates (taep/entropy.hpp, docs/entropy-rates.md): the entropy rates and the NLL bound against
// the closed forms of Gaussian data on VE (the oracle table of docs/entropy-rates.md section 6), the
// Stein identity and the 2:1 relation, the VP 1D mixture's entropy change, thread independence,
// bad options and the CLI.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "support/cli_support.hpp"
#include "support/test_support.hpp"
#include "taep/entropy.hpp"
#include "taep/error.hpp"
#include "taep/physics/schedule.hpp"
#include "taep/taep.hpp"

namespace {

using taep::physics::Schedule;
constexpr double kPi = 3.14159265358979323846;

taep::Config exact_model_config(const taep::MixtureSpec& target) {
  taep::Config c = taep::default_config();
  c.target.preset.clear();
  c.target.mixture = target;
  c.model.collapse.reset();
  c.model.mixture = target;
  c.run.threads = 2;
  return c;
}

template <class F>
void expect_field(F&& f, const std::string& field) {
  try {
    f();
    ADD_FAILURE() << "no error for " << field;
  } catch (const taep::ConfigError& e) {
    EXPECT_EQ(e.field(), field) << e.what();
  }
}

double gauss_entropy(double v) { return 0.5 * std::log(2 * kPi * std::exp(1.0) * v); }

// Data N(0, 1), its exact score, VE with g(t) = sigma^t. Everything is closed form: p_t = N(0, v(t)),
// v = 1 + n(t); int Sdot_G = H(p_1) - H(p_tmin) = ln(v1/v0)/2; S1 = H(N(0, b)); the bound
// (S0 + S1 - int G)/2; Song's bound CE(p_1, prior) - int G = S0 + KL(p_1 || prior), which is the NLL.
// At t_min -> 0 the bound and the NLL are the oracle numbers of docs/entropy-rates.md.
class VeGaussian : public ::testing::TestWithParam<std::tuple<double, double, double>> {};

TEST_P(VeGaussian, RatesAndBoundMatchTheClosedForms) {
  const auto [sigma, nll_oracle, bound_oracle] = GetParam();
  taep::Config c = exact_model_config(taep::MixtureSpec{{1.0}, {{0.0}}, {1.0}});
  c.schedule.sde = Schedule::ve_tutorial(sigma);
  c.schedule.t_min = 1e-6;
  taep::RatesOptions o;
  o.draws = 100000;
  o.grid_points = 65;
  const taep::RatesResult r = taep::entropy_rates(taep::build_problem(c), o);
  const Schedule& s = c.schedule.sde;
  const double v0 = 1 + s.marginal(c.schedule.t_min).noise, v1 = 1 + s.marginal(1).noise,
               b = s.prior_variance();
  const double int_g = 0.5 * std::log(v1 / v0), s0 = gauss_entropy(v0), s1 = gauss_entropy(b);
  EXPECT_NEAR(r.prior_entropy, s1, 1e-12);
  // The quadrature of the smooth integrand on 65 log-SNR points is good to 1e-4; plus 4 stderr.
  EXPECT_NEAR(r.int_G.mean, int_g, 4 * r.int_G.stderr_ + 1e-4);
  ASSERT_TRUE(r.data_entropy.has_value());
  EXPECT_NEAR(r.data_entropy->mean, s0, 4 * r.data_entropy->stderr_);
  ASSERT_TRUE(r.bound.has_value());
  EXPECT_NEAR(*r.bound, 0.5 * (s0 + s1 - int_g),
              2 * (r.data_entropy->stderr_ + r.int_G.stderr_) + 1e-4);
  const double kl1 = 0.5 * (v1 / b - 1 - std::log(v1 / b));
  EXPECT_NEAR(r.song_upper_bound, s0 + kl1,
              4 * (r.prior_cross_entropy.stderr_ + r.int_G.stderr_) + 1e-4);
  // The oracle table (t_min -> 0), from the closed forms above.
  const double s0_0 = gauss_entropy(1.0), g_0 = 0.5 * std::log(v1);
  EXPECT_NEAR(0.5 * (s0_0 + s1 - g_0), bound_oracle, 1e-5);
  EXPECT_NEAR(s0_0 + kl1, nll_oracle, 1e-5);
  // The exact score: Stein's E div s = -E|s|^2 at every t, the forward exchange rate is 0 (VE),
  // and the generative exchange is minus twice the intrinsic rate.
  for (const taep::RatePoint& p : r.points) {
    EXPECT_NEAR(p.divergence.mean, -p.score_sq.mean,
                5 * (p.divergence.stderr_ + p.score_sq.stderr_)) << p.t;
    EXPECT_EQ(p.forward_exchange.mean, 0.0);
    EXPECT_NEAR(p.exchange_ratio, -2.0, 0.1) << p.t;
    ASSERT_TRUE(p.score_error_sq.has_value());
    EXPECT_EQ(p.score_error_sq->mean, 0.0);  // the model is the target
  }
  EXPECT_NEAR(r.int_generative_exchange.mean, -2 * r.int_generative_intrinsic.mean,
              5 * (r.int_generative_exchange.stderr_ + 2 * r.int_generative_intrinsic.stderr_));
  // Intrinsic rate of the exact score integrates to H(p_1) - H(p_tmin) for VE (de Bruijn).
  EXPECT_NEAR(r.int_generative_intrinsic.mean, int_g, 4 * r.int_generative_intrinsic.stderr_ + 1e-4);
}

INSTANTIATE_TEST_SUITE_P(Oracles, VeGaussian,
                         ::testing::Values(std::make_tuple(10.0, 1.41946, 1.40757),
                                           std::make_tuple(25.0, 1.41896, 1.41637),
                                           std::make_tuple(30.0, 1.41895, 1.41705)));

// VP, 1D mixture P of docs/entropy-rates.md section 6 (w .3/.7, means -2/1.5, widths .4/.6), its
// exact score: int Sdot_G = H(p_1) - H(p_0.001) = 1.418979 - 1.396810, and the generative exchange
// and intrinsic rates satisfy Sdot_e + 2 Sdot_i = beta/2 (E|x_t|^2 - d) (the 2:1 relation fails
// exactly by the second-moment excess).
TEST(Rates, VpMixtureEntropyChangeAndTheSecondMomentExcess) {
  taep::Config c = exact_model_config(taep::MixtureSpec{{0.3, 0.7}, {{-2.0}, {1.5}}, {0.4, 0.6}});
  taep::RatesOptions o;
  o.draws = 40000;
  o.grid_points = 129;
  const taep::RatesResult r = taep::entropy_rates(taep::build_problem(c), o);
  EXPECT_NEAR(r.int_G.mean, 1.418979 - 1.396810, 4 * r.int_G.stderr_ + 5e-4);
  EXPECT_NEAR(r.int_F.mean, r.int_G.mean, 4 * (r.int_F.stderr_ + r.int_G.stderr_) + 5e-4);
  ASSERT_TRUE(r.data_entropy && r.end_entropy);
  EXPECT_NEAR(r.data_entropy->mean, 1.396810, 4 * r.data_entropy->stderr_);
  EXPECT_NEAR(r.end_entropy->mean, 1.418979, 4 * r.end_entropy->stderr_);
  // Per-path entropies along forward paths (docs/entropy-rates.md section 5): the mean system
  // entropy change is H(p_1) - H(p_tmin), the medium one (abar(t_min) - abar(1)) (E|x0|^2 - d)/2,
  // and the total one the integral of the intrinsic rate.
  taep::RatesOptions po;
  po.grid_points = 65;
  po.draws = 20000;
  po.paths = 20000;
  c.schedule.steps = 400;
  const taep::RatesResult rp = taep::entropy_rates(taep::build_problem(c), po);
  ASSERT_TRUE(rp.path_system && rp.path_medium && rp.path_total);
  EXPECT_NEAR(rp.path_system->mean, 1.418979 - 1.396810, 4 * rp.path_system->stderr_ + 1e-3);
  const Schedule vp;
  const double ex2 = 0.3 * (4 + 0.16) + 0.7 * (2.25 + 0.36);
  EXPECT_NEAR(rp.path_medium->mean, 0.5 * (vp.abar(1e-3) - vp.abar(1)) * (ex2 - 1),
              4 * rp.path_medium->stderr_ + 1e-3);
  EXPECT_NEAR(rp.path_total->mean, rp.int_forward_intrinsic.mean,
              4 * (rp.path_total->stderr_ + rp.int_forward_intrinsic.stderr_) + 2e-3);
  for (const taep::RatePoint& p : r.points) {
    const double lhs = p.generative_exchange.mean + 2 * p.generative_intrinsic.mean;
    const double rhs = 0.5 * p.g2 * (p.x_sq.mean - 1) - p.g2 * (p.score_sq.mean + p.divergence.mean);
    EXPECT_NEAR(lhs, rhs, 1e-9 * (1 + std::abs(rhs))) << p.t;  // an identity of the estimators
    EXPECT_NEAR(p.score_sq.mean + p.divergence.mean, 0.0,
                5 * (p.score_sq.stderr_ + p.divergence.stderr_)) << p.t;  // Stein
    EXPECT_NEAR(p.x_dot_score.mean, -1.0, 5 * p.x_dot_score.stderr_ + 1e-3) << p.t;  // E x.s = -d
  }
}

TEST(Rates, ResultsDoNotDependOnThreads) {
  taep::Config c = taep_test::three_mode_config();
  taep::RatesOptions o;
  o.draws = 500;
  o.grid_points = 9;
  c.run.threads = 1;
  const taep::RatesResult a = taep::entropy_rates(taep::build_problem(c), o);
  c.run.threads = 2;
  const taep::RatesResult b = taep::entropy_rates(taep::build_problem(c), o);
  EXPECT_EQ(a.int_G.mean, b.int_G.mean);
  EXPECT_EQ(a.int_G.stderr_, b.int_G.stderr_);
  ASSERT_TRUE(a.int_score_error && b.int_score_error);
  EXPECT_EQ(a.int_score_error->mean, b.int_score_error->mean);
  EXPECT_GT(a.int_score_error->mean, 0.0);  // a different model: E|s - s*|^2 > 0
  EXPECT_EQ(a.data_entropy->mean, b.data_entropy->mean);
}

TEST(Rates, BadOptionsNameTheField) {
  const taep::Problem p = taep::build_problem(taep_test::three_mode_config());
  taep::RatesOptions o;
  o.grid_points = 2;
  expect_field([&] { taep::entropy_rates(p, o); }, "grid_points");
  o = {};
  o.draws = 1;
  expect_field([&] { taep::entropy_rates(p, o); }, "draws");
  o = {};
  o.data_entropy = std::nan("");
  expect_field([&] { taep::entropy_rates(p, o); }, "data_entropy");
}

class RatesCli : public taep_test::CliSandbox {};

TEST_F(RatesCli, WritesTheDocumentedSectionsAndNamesBadFlags) {
  const Outcome o = run("rates --grid 5 --draws 64 --nll-points 8 --threads 2 --out r.json --quiet");
  ASSERT_EQ(o.exit_code, 0) << o.err;
  const auto j = nlohmann::json::parse(taep_test::read_text(work_ / "r.json"));
  for (const char* key : {"grid", "integrals", "entropies", "bound", "performance", "provenance", "config"})
    EXPECT_TRUE(j.contains(key)) << key;
  EXPECT_EQ(j["grid"].size(), 5u);
  EXPECT_TRUE(j["bound"]["nll"]["mean"].is_number());
  // --set creates a section the config file leaves out (here the whole schedule).
  write("c.json", R"({"run": {"threads": 2}})");
  const Outcome ve = run("rates c.json --set schedule.type=ve --set schedule.sigma=10 --grid 3 "
                         "--draws 16 --out ve.json --quiet");
  ASSERT_EQ(ve.exit_code, 0) << ve.err;
  const auto jv = nlohmann::json::parse(taep_test::read_text(work_ / "ve.json"));
  EXPECT_EQ(jv["config"]["schedule"]["type"], "ve");
  EXPECT_EQ(jv["config"]["run"]["threads"], 2);
  const Outcome bad = run("rates --grid 2 --out bad.json");
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("--grid"), std::string::npos) << bad.err;
  EXPECT_FALSE(std::filesystem::exists(work_ / "bad.json"));
}

}  // namespace

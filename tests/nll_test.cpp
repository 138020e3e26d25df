// taep nll (taep/nll.hpp, docs/likelihood.md): the probability-flow ODE against the closed forms of
// exact-score mixture models, RK4's order, the standard prior's mismatch term, Hutchinson with a
// fixed probe, the learned ring network, thread independence, failures and the CLI's errors.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <vector>

#include "host/problem/forward_problem.hpp"
#include "support/cli_support.hpp"
#include "support/safetensors_support.hpp"
#include "support/test_support.hpp"
#include "taep/error.hpp"
#include "taep/nll.hpp"
#include "taep/physics/mixture.hpp"
#include "taep/problem.hpp"

namespace {

using taep_test::expect_config_error;
using taep_test::fixture;

constexpr double kPi = 3.14159265358979323846;

// Data N(0, s^2) in 1D and the exact model q = the data, VP with beta_max = 5 (abar(1) = 0.078, so
// the standard prior's mismatch is large enough to test).
taep::Config gaussian_config(double s) {
  taep::Config c = taep::default_config();
  c.target.preset.clear();
  c.target.mixture = taep::MixtureSpec{{1.0}, {{0.0}}, {s}};
  c.model.collapse.reset();
  c.model.mixture = c.target.mixture;
  c.schedule.sde.beta_max = 5.0;
  c.run.threads = 2;
  return c;
}

// The marginal variance of N(0, s^2) at t: abar s^2 + 1 - abar.
double gaussian_variance(const taep::Config& c, double s, double t) {
  return taep::physics::diffused_variance(s * s, c.schedule.sde.marginal(t));
}

double log_normal(double x, double var) { return -0.5 * x * x / var - 0.5 * std::log(2 * kPi * var); }

const std::vector<double> kGaussianPoints = {-5.0, -2.5, -1.0, -0.3, 0.0, 0.4, 1.7, 3.0, 6.0};

taep::NllOptions marginal_prior() {
  taep::NllOptions o;
  o.prior = taep::NllPrior::model_marginal;
  return o;
}

TEST(Nll, GaussianModelMarginalPriorIsExact) {
  const double s = 2.0;
  const taep::Config c = gaussian_config(s);
  const taep::NllResult r = taep::nll(taep::build_problem(c), kGaussianPoints, 1, marginal_prior());
  const double v0 = gaussian_variance(c, s, c.schedule.t_min), v1 = gaussian_variance(c, s, 1.0);
  ASSERT_EQ(r.count, kGaussianPoints.size());
  EXPECT_EQ(r.failures, 0u);
  for (std::size_t i = 0; i < kGaussianPoints.size(); ++i) {
    const double x0 = kGaussianPoints[i];
    // The exact score's flow is linear: x(t) = x0 sqrt(var(t) / var(t_min)) (docs/likelihood.md 4).
    EXPECT_NEAR(r.latent[i], x0 * std::sqrt(v1 / v0), 1e-4 * (1 + std::abs(x0))) << x0;
    EXPECT_NEAR(r.nll[i], -log_normal(x0, v0), 1e-3) << x0;
  }
  EXPECT_GT(r.nfe_mean, 7);
  EXPECT_LT(r.nfe_mean, 200);
}

TEST(Nll, StandardPriorAddsTheClosedFormPriorMismatch) {
  const double s = 2.0;
  const taep::Config c = gaussian_config(s);
  const taep::Problem p = taep::build_problem(c);
  const taep::NllResult exact = taep::nll(p, kGaussianPoints, 1, marginal_prior());
  const taep::NllResult standard = taep::nll(p, kGaussianPoints, 1);
  const double v0 = gaussian_variance(c, s, c.schedule.t_min), v1 = gaussian_variance(c, s, 1.0);
  for (std::size_t i = 0; i < kGaussianPoints.size(); ++i) {
    // NLL_standard = -log N(x0; 0, v0) + [log N(x1; 0, v1) - log N(x1; 0, 1)]: the same flow, only
    // the prior term differs (docs/likelihood.md section 4). At the computed latent the identity
    // holds to rounding; with the closed-form x1 to the solver's accuracy.
    const double y1 = standard.latent[i], x1 = kGaussianPoints[i] * std::sqrt(v1 / v0);
    EXPECT_EQ(y1, exact.latent[i]);
    const double at_latent = log_normal(y1, v1) - log_normal(y1, 1.0);
    EXPECT_NEAR(standard.nll[i] - exact.nll[i], at_latent, 1e-12 * (1 + std::abs(at_latent)));
    const double mismatch = log_normal(x1, v1) - log_normal(x1, 1.0);
    EXPECT_NEAR(standard.nll[i], -log_normal(kGaussianPoints[i], v0) + mismatch, 1e-3);
  }
  // Averaged over x0 ~ N(0, v0) the mismatch is KL(N(0, v1) || N(0, 1)) = (v1 - 1 - log v1)/2.
  const std::vector<double> drawn = taep::target_points(p, 4000);
  taep::NllOptions o;
  o.solver = taep::OdeSolver::rk4;
  o.ode_steps = 40;
  const taep::NllResult a = taep::nll(p, drawn, 1, o);
  o.prior = taep::NllPrior::model_marginal;
  const taep::NllResult b = taep::nll(p, drawn, 1, o);
  double mean = 0, var = 0;
  const double n = double(drawn.size());
  for (std::size_t i = 0; i < drawn.size(); ++i) mean += (a.nll[i] - b.nll[i]) / n;
  for (std::size_t i = 0; i < drawn.size(); ++i)
    var += (a.nll[i] - b.nll[i] - mean) * (a.nll[i] - b.nll[i] - mean) / (n - 1);
  // Its standard deviation is (v1 - 1)/sqrt(2) per point (x1^2/v1 is chi-squared with 1 dof).
  EXPECT_NEAR(std::sqrt(var), (v1 - 1) / std::sqrt(2.0), 0.05 * (v1 - 1));
  EXPECT_NEAR(mean, 0.5 * (v1 - 1 - std::log(v1)), 4 * std::sqrt(var / n));
  EXPECT_NEAR(a.nll_mean - b.nll_mean, mean, 1e-12);
}

TEST(Nll, Rk4ConvergesAtFourthOrder) {
  const double s = 2.0;
  const taep::Config c = gaussian_config(s);
  const taep::Problem p = taep::build_problem(c);
  const double v0 = gaussian_variance(c, s, c.schedule.t_min);
  const std::vector<double> x = {2.5};
  double previous = 0;
  for (int steps : {8, 16, 32}) {
    taep::NllOptions o = marginal_prior();
    o.solver = taep::OdeSolver::rk4;
    o.ode_steps = steps;
    const taep::NllResult r = taep::nll(p, x, 1, o);
    EXPECT_EQ(r.nfe[0], 4u * steps);
    const double error = std::abs(r.nll[0] + log_normal(x[0], v0));
    if (steps > 8) {
      // Doubling the steps divides a 4th-order error by 16.
      EXPECT_GT(previous / error, 11.0) << steps;
      EXPECT_LT(previous / error, 22.0) << steps;
    }
    previous = error;
  }
  EXPECT_LT(previous, 1e-3);
}

// The ring (ring8 target), exact model = its 1-mode collapse at eps 0.01: per point against
// -log q(x, t_min) of the model mixture.
TEST(Nll, RingMixtureMatchesTheClosedForm) {
  taep::Config c = taep::default_config();
  c.run.threads = 2;
  const taep::Problem p = taep::build_problem(c);
  const std::vector<double> x = taep::target_points(p, 64);
  const taep::NllResult r = taep::nll(p, x, 2, marginal_prior());
  const taep::detail::ForwardProblem& F = p.forward();
  const taep::physics::Marginal abar0 = F.schedule.marginal(c.schedule.t_min);
  double worst = 0;
  for (std::size_t i = 0; i < 64; ++i) {
    const double lq = taep::physics::mixture_log_density(2, F.model.K, F.model.mean_d.data(),
                                                         F.model.log_w.data(), F.model.sigma2.data(),
                                                         abar0, x.data() + 2 * i);
    worst = std::max(worst, std::abs(r.nll[i] + lq));
  }
  EXPECT_LT(worst, 1e-3);
  // bits per dimension is the mean over d ln 2.
  EXPECT_DOUBLE_EQ(r.bits_per_dim, r.nll_mean / (2 * std::log(2.0)));
}

TEST(Nll, ResultsDoNotDependOnThreads) {
  taep::Config c = taep::default_config();
  c.run.threads = 1;
  const taep::NllResult a = taep::nll(taep::build_problem(c), std::uint64_t(40));
  c.run.threads = 3;
  const taep::NllResult b = taep::nll(taep::build_problem(c), std::uint64_t(40));
  EXPECT_EQ(a.nll, b.nll);
  EXPECT_EQ(a.latent, b.latent);
  EXPECT_EQ(a.nfe, b.nfe);
  EXPECT_EQ(a.nll_mean, b.nll_mean);
}

TEST(Nll, UnfinishedSolvesAreCountedNotDropped) {
  const taep::Config c = gaussian_config(2.0);
  taep::NllOptions o;
  o.max_steps = 2;
  const taep::NllResult r = taep::nll(taep::build_problem(c), kGaussianPoints, 1, o);
  EXPECT_EQ(r.failures, kGaussianPoints.size());
  EXPECT_EQ(r.failed.size(), kGaussianPoints.size());
  EXPECT_TRUE(std::isnan(r.nll[0]));
  EXPECT_TRUE(std::isnan(r.nll_mean));
  ASSERT_EQ(r.warnings.size(), 1u);
  EXPECT_NE(taep::nll_result_to_json(r).find("\"mean\": null"), std::string::npos);
}

// The learned ring network (tests/fixtures/ring8_trained.safetensors) against the exact score of
// the ring itself, on the same 48 points of the ring. The network is a DSM fit with a score-matching
// loss of 0.074 (ring8_trained.json), so its density is not the ring's: the mean NLL differs by
// KL-like terms of that size, not by solver error; 0.25 nats is 12% of the ring's 2.1 nats.
TEST(Nll, LearnedRingNetworkIsCloseToTheRing) {
  taep::Config exact = taep::default_config();
  exact.model.collapse.reset();
  exact.model.mixture = taep::ring8();
  exact.run.threads = 2;
  const taep::Problem pe = taep::build_problem(exact);
  const std::vector<double> x = taep::target_points(pe, 48);
  const taep::NllResult re = taep::nll(pe, x, 2);
  taep::Config net = taep_test::mlp_config("ring8_trained.safetensors");
  net.run.threads = 2;
  const taep::NllResult rn = taep::nll(taep::build_problem(net), x, 2);
  EXPECT_EQ(rn.failures, 0u);
  EXPECT_EQ(rn.divergence, "exact");
  for (double v : rn.nll) EXPECT_TRUE(std::isfinite(v));
  EXPECT_NEAR(rn.nll_mean, re.nll_mean, 0.25);
  // Per point the difference estimates KL(ring || network) >= 0 in the mean (Gibbs), 0.066 nats on
  // 1000 points (docs/likelihood.md section 5).
  {
    double m = 0, v = 0;
    const std::size_t n = x.size() / 2;
    for (std::size_t i = 0; i < n; ++i) m += (rn.nll[i] - re.nll[i]) / n;
    for (std::size_t i = 0; i < n; ++i) v += (rn.nll[i] - re.nll[i] - m) * (rn.nll[i] - re.nll[i] - m) / (n - 1);
    EXPECT_GT(m, -3 * std::sqrt(v / n));
  }
  // A point's value does not depend on the points it is evaluated with.
  const std::vector<double> three(x.begin() + 10, x.begin() + 16);
  const taep::NllResult alone = taep::nll(taep::build_problem(net), three, 2);
  for (std::size_t i = 0; i < 3; ++i) EXPECT_EQ(alone.nll[i], rn.nll[5 + i]);
  // The ring's entropy at t_min is about log 8 + log(2 pi e sigma^2) = 2.145 nats.
  EXPECT_NEAR(re.nll_mean, 2.145, 3 * re.nll_stderr + 0.02);

  // Hutchinson with a fixed probe per point: per point the difference to the exact trace is noise
  // of mean zero, so its mean over points is within a few standard errors of zero.
  net.model.divergence = taep::Divergence::hutchinson;
  net.model.probes = 1;
  net.model.probe_distribution = taep::ProbeDistribution::gaussian;
  const taep::Problem ph = taep::build_problem(net);
  const taep::NllResult rh = taep::nll(ph, x, 2);
  EXPECT_EQ(rh.divergence, "hutchinson");
  double mean = 0, var = 0;
  for (std::size_t i = 0; i < x.size() / 2; ++i) mean += (rh.nll[i] - rn.nll[i]) / (x.size() / 2);
  for (std::size_t i = 0; i < x.size() / 2; ++i)
    var += (rh.nll[i] - rn.nll[i] - mean) * (rh.nll[i] - rn.nll[i] - mean) / (x.size() / 2 - 1);
  EXPECT_GT(var, 1e-6);  // the probe does add noise
  EXPECT_LT(std::abs(mean), 4 * std::sqrt(var / (x.size() / 2)));
  // The probe is fixed by (seed, point): the same call gives the same values.
  EXPECT_EQ(taep::nll(ph, x, 2).nll, rh.nll);
}

// Hutchinson in d = 16 (tests/fixtures/mlp_d16.safetensors on a 16-dimensional mixture target):
// the mean over points of (Hutchinson - exact) is within a few standard errors of zero.
TEST(Nll, HutchinsonIsUnbiasedInSixteenDimensions) {
  taep::Config c = taep_test::random_mixture_config(16);
  c.schedule.scheme = taep::Scheme::euler;
  c.model = taep::ModelConfig{};
  c.model.type = "mlp";
  c.model.weights = fixture("mlp_d16.safetensors");
  c.run.threads = 2;
  const taep::Problem pe = taep::build_problem(c);
  const std::vector<double> x = taep::target_points(pe, 40);
  taep::NllOptions o;
  o.rtol = o.atol = 1e-4;
  const taep::NllResult exact = taep::nll(pe, x, 16, o);
  c.model.divergence = taep::Divergence::hutchinson;
  c.model.probes = 2;
  const taep::NllResult hutch = taep::nll(taep::build_problem(c), x, 16, o);
  EXPECT_EQ(exact.failures, 0u);
  EXPECT_EQ(hutch.failures, 0u);
  double m = 0, v = 0;
  const std::size_t n = x.size() / 16;
  for (std::size_t i = 0; i < n; ++i) m += (hutch.nll[i] - exact.nll[i]) / n;
  for (std::size_t i = 0; i < n; ++i)
    v += (hutch.nll[i] - exact.nll[i] - m) * (hutch.nll[i] - exact.nll[i] - m) / (n - 1);
  EXPECT_GT(v, 1e-6);
  EXPECT_LT(std::abs(m), 4 * std::sqrt(v / n)) << "mean " << m << " sd " << std::sqrt(v);
  // The probes only change the divergence: the latents agree to the solver's tolerance.
  for (std::size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(hutch.latent[i], exact.latent[i], 1e-2);
}

TEST(Nll, RefusesWhatItCannotDo) {
  const taep::Problem p = taep::build_problem(gaussian_config(1.0));
  expect_config_error([&] { taep::nll(p, std::vector<double>{1.0, 2.0}, 2); }, "points", "dimension");
  expect_config_error([&] { taep::nll(p, std::vector<double>{}, 1); }, "points", "non-empty");
  taep::NllOptions bad;
  bad.rtol = 0;
  expect_config_error([&] { taep::nll(p, std::vector<double>{1.0}, 1, bad); }, "solver", "rtol");
  const taep::Problem net = taep::build_problem(taep_test::mlp_config("ring8_trained.safetensors"));
  expect_config_error([&] { taep::nll(net, std::vector<double>{1.0, 2.0}, 2, marginal_prior()); },
                      "prior", "exact-score");
  taep::Config cuda = gaussian_config(1.0);
  cuda.run.backend = taep::Backend::cuda;
  EXPECT_THROW(taep::nll(taep::build_problem(cuda), std::vector<double>{1.0}, 1),
               taep::BackendUnavailable);
}

class NllCli : public taep_test::CliSandbox {};

TEST_F(NllCli, WritesTheResultAndThePerPointArchive) {
  const Outcome o = run("nll --count 20 --threads 2 --out r.json --per-point p.npz --quiet");
  ASSERT_EQ(o.exit_code, 0) << o.err;
  const auto j = nlohmann::json::parse(taep_test::read_text(work_ / "r.json"));
  EXPECT_EQ(j["count"], 20);
  EXPECT_EQ(j["solver"]["method"], "dopri5");
  EXPECT_EQ(j["failures"]["count"], 0);
  EXPECT_GT(j["nfe"]["mean"].get<double>(), 10);
  const std::string npz = taep_test::read_text(work_ / "p.npz");
  EXPECT_NE(npz.find("nll.npy"), std::string::npos);
  EXPECT_NE(npz.find("latent.npy"), std::string::npos);
}

TEST_F(NllCli, NamesTheFlagOfEveryMistake) {
  Outcome o = run("nll");
  EXPECT_EQ(o.exit_code, 2);
  EXPECT_NE(o.err.find("--data: or --count is required"), std::string::npos) << o.err;
  write("pts.csv", "1,2\n3,4\n");
  o = run("nll --data pts.csv --count 3");
  EXPECT_EQ(o.exit_code, 2);
  EXPECT_NE(o.err.find("--count:"), std::string::npos) << o.err;
  write("one.csv", "1\n2\n");
  o = run("nll --data one.csv");
  EXPECT_EQ(o.exit_code, 2);
  EXPECT_NE(o.err.find("--data:"), std::string::npos) << o.err;
  EXPECT_NE(o.err.find("dimension 1"), std::string::npos) << o.err;
  write("bad.csv", "1,x\n");
  o = run("nll --data bad.csv");
  EXPECT_EQ(o.exit_code, 2);
  EXPECT_NE(o.err.find("--data"), std::string::npos) << o.err;
  o = run("nll --data missing.npy");
  EXPECT_EQ(o.exit_code, 2);
  EXPECT_NE(o.err.find("--data"), std::string::npos) << o.err;
  o = run("nll --data pts.csv --backend cuda");
  EXPECT_EQ(o.exit_code, 2);
  EXPECT_NE(o.err.find("CPU only"), std::string::npos) << o.err;
  o = run("nll --data pts.csv --quiet --out r.json");
  EXPECT_EQ(o.exit_code, 0) << o.err;
}

}  // namespace

// The mode-collapse experiment: its theory helpers against closed forms and simulation, and (label
// `experiment`, a few minutes) the quick experiment end to end with the trends the paper shows.
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "taep/engine.hpp"
#include "taep/error.hpp"
#include "taep/experiment.hpp"

namespace {

std::vector<double> uniform8() { return std::vector<double>(8, 1.0 / 8); }

// eq. 53 at the collapse weights is eq. 55 (docs/physics.md section 5) for every (m, eps) of the paper.
TEST(ExperimentTheory, Eq53AtCollapseWeightsIsEq55) {
  const double expected_m1[] = {0.0148, 0.1091, 0.4142, 0.7676, 1.2256};
  const double eps1[] = {0.09, 0.05, 0.02, 0.01, 0.005};
  for (int i = 0; i < 5; ++i) {
    const auto q = taep::collapse(taep::ring8(), {1, eps1[i]}).weights;
    EXPECT_NEAR(taep::relative_entropy_variance(uniform8(), q), expected_m1[i], 5e-5) << eps1[i];
  }
  for (int m = 1; m <= 5; ++m) {
    const double eps = 0.01;
    const auto q = taep::collapse(taep::ring8(), {m, eps}).weights;
    const double l = std::log((1 - m * eps) / ((8 - m) * eps));
    EXPECT_NEAR(taep::relative_entropy_variance(uniform8(), q), m * (8.0 - m) / 64.0 * l * l, 1e-12) << m;
  }
  EXPECT_NEAR(taep::relative_entropy_variance(uniform8(), uniform8()), 0.0, 1e-15);
}

// The delta-method error of eq. 53 at measured weights matches the spread of eq. 53 over repeated
// multinomial draws (to the precision 2000 repetitions give: about 3%, allowed 10%).
TEST(ExperimentTheory, Eq53StderrMatchesMultinomialSpread) {
  const auto q = taep::collapse(taep::ring8(), {2, 0.02}).weights;
  const std::uint64_t n = 20000;
  std::mt19937_64 rng(7);
  std::discrete_distribution<int> pick(q.begin(), q.end());
  std::vector<double> values;
  for (int rep = 0; rep < 2000; ++rep) {
    std::vector<double> counts(8, 0.0);
    for (std::uint64_t s = 0; s < n; ++s) counts[std::size_t(pick(rng))] += 1;
    for (double& c : counts) c /= double(n);
    values.push_back(taep::relative_entropy_variance(uniform8(), counts));
  }
  double mean = 0, var = 0;
  for (double v : values) mean += v;
  mean /= double(values.size());
  for (double v : values) var += (v - mean) * (v - mean);
  const double sd = std::sqrt(var / double(values.size() - 1));
  const double se = taep::relative_entropy_variance_stderr(uniform8(), q, n);
  EXPECT_NEAR(se / sd, 1.0, 0.10) << "delta " << se << " simulated " << sd;
}

// The quadrature of Fig. 2c's pair against the closed form of two concentric Gaussians in d = 2:
// log(p/q) = -log r - (1 - r) |u|^2/(2 v_p), r = v_p/v_q, so KL = r - 1 - log r and Var = (1 - r)^2.
TEST(ExperimentTheory, LogRatioMomentsOfTwoGaussiansAreClosedForm) {
  taep::MixtureSpec p;
  p.weights = {1.0};
  p.means = {{1.5, -0.5}};
  p.sigmas = {0.25};
  for (double c : {0.7, 1.0, 1.4, 3.0}) {
    for (double abar : {1.0, 0.3}) {
      const double vp = abar * 0.0625 + 1 - abar, vq = abar * 0.0625 * c * c + 1 - abar, r = vp / vq;
      const auto m = taep::log_ratio_moments(p, taep::widened(p, c), taep::physics::Marginal{abar, std::sqrt(abar), 1 - abar});
      EXPECT_NEAR(m.mean, r - 1 - std::log(r), 1e-12) << c << " " << abar;
      EXPECT_NEAR(m.variance, (1 - r) * (1 - r), 1e-12) << c << " " << abar;
    }
  }
}

// Fig. 2c in theory: the exact collapse's mean TAEP is eq. 53's relative entropy up to the finite
// t_min and t_max; the widened ring that matches it (c > 1) matches it to the bisection's precision,
// and its Var(S) is well below the collapse's (docs/physics.md section 5).
TEST(ExperimentTheory, WidenedRingMatchesTheCollapseMeanWithSmallerVariance) {
  const taep::ScheduleConfig schedule;
  const taep::MixtureSpec ring = taep::ring8();
  const taep::MixtureSpec collapsed = taep::collapse(ring, {1, 0.01});
  const double mean = taep::exact_mean_taep(ring, collapsed, schedule);
  EXPECT_NEAR(mean, 0.2077, 2e-3);
  const taep::WidthMatch match = taep::match_mean_by_width(ring, mean, schedule);
  const taep::MixtureSpec mediocre = taep::widened(ring, match.c);
  EXPECT_GT(match.c, 1.3);
  EXPECT_LT(match.c, 1.6);
  EXPECT_NEAR(taep::exact_mean_taep(ring, mediocre, schedule), mean, 1e-10);
  const taep::physics::Marginal abar = schedule.sde.marginal(schedule.t_min);
  const double var_collapse = taep::log_ratio_moments(ring, collapsed, abar).variance;
  const double var_mediocre = taep::log_ratio_moments(ring, mediocre, abar).variance;
  std::printf("c %.10f (%d steps), mean %.6f, Var collapse %.4f, mediocre %.4f\n", match.c, match.steps, mean,
              var_collapse, var_mediocre);
  EXPECT_NEAR(var_collapse, 0.7676, 0.02);  // eq. 55
  EXPECT_GT(var_collapse, 2 * var_mediocre);
}

// The exact-score pair through the engine on the quick grid: the closed form R has the same mean on
// both sides (within 2 SE; the theory means are equal by construction), S the same up to its O(h)
// bias, and Var(S) of the collapse is well above the widened ring's (Fig. 2c).
TEST(ExperimentTheory, ExactPairHasOneMeanAndTwoVariances) {
  const taep::ScheduleConfig schedule;
  const taep::MixtureSpec ring = taep::ring8();
  const double mean = taep::exact_mean_taep(ring, taep::collapse(ring, {1, 0.01}), schedule);
  const double c = taep::match_mean_by_width(ring, mean, schedule).c;
  taep::Config cfg = taep::default_config();
  cfg.schedule.steps = 200;
  cfg.schedule.scheme = taep::Scheme::milstein;
  cfg.run.paths = 16384;
  cfg.run.backend = taep::Backend::cpu;
  cfg.model.collapse = taep::CollapseSpec{1, 0.01};
  const taep::RunResult collapsed = taep::run(cfg);
  cfg.model.collapse.reset();
  cfg.model.mixture = taep::widened(ring, c);
  const taep::RunResult mediocre = taep::run(cfg);
  ASSERT_TRUE(collapsed.reference && mediocre.reference);
  const double n = double(cfg.run.paths);
  const double se = std::sqrt((collapsed.reference->variance + mediocre.reference->variance) / n);
  std::printf("R: %.4f vs %.4f (SE of the difference %.4f); S: %.4f vs %.4f; Var(S) %.4f vs %.4f\n",
              collapsed.reference->mean, mediocre.reference->mean, se, collapsed.taep.mean, mediocre.taep.mean,
              collapsed.taep.variance, mediocre.taep.variance);
  EXPECT_LT(std::fabs(collapsed.reference->mean - mediocre.reference->mean), 2 * se);
  EXPECT_LT(std::fabs(collapsed.reference->mean - mean), 3 * std::sqrt(collapsed.reference->variance / n));
  EXPECT_LT(std::fabs(mediocre.reference->mean - mean), 3 * std::sqrt(mediocre.reference->variance / n));
  // S - R: Milstein's mean error at 200 steps is about 0.02 for the widened ring, 0 for the collapse.
  EXPECT_LT(std::fabs(collapsed.reference->error_mean), 0.005);
  EXPECT_LT(std::fabs(mediocre.reference->error_mean), 0.04);
  EXPECT_GT(collapsed.taep.variance - mediocre.taep.variance,
            6 * std::hypot(collapsed.taep.stderr_variance, mediocre.taep.stderr_variance));
}

TEST(ExperimentConfig, PaperModelSet) {
  const auto full = taep::mode_collapse_config(false);
  ASSERT_EQ(full.models.size(), 10u);
  EXPECT_EQ(full.models[0].modes, 0);
  EXPECT_EQ(full.train.optimizer.steps, 50000u);
  EXPECT_EQ(full.train.optimizer.batch, 2048);
  int m1 = 0, eps01 = 0;
  for (const auto& m : full.models) {
    m1 += m.modes == 1;
    eps01 += m.modes >= 1 && m.eps == 0.01;
  }
  EXPECT_EQ(m1, 5);
  EXPECT_EQ(eps01, 5);
  const auto quick = taep::mode_collapse_config(true);
  EXPECT_EQ(quick.models.size(), full.models.size());
  EXPECT_LT(quick.train.optimizer.steps, full.train.optimizer.steps);
  EXPECT_LT(quick.paths, full.paths);
}

}  // namespace

// ---- the quick experiment end to end (a few minutes on two cores) -------------------------------

#ifdef TAEP_CLI_PATH
namespace {

nlohmann::json read_json_file(const std::filesystem::path& p) {
  std::ifstream in(p);
  return nlohmann::json::parse(in);
}

const nlohmann::json& model_row(const nlohmann::json& doc, const std::string& name) {
  for (const auto& m : doc["models"])
    if (m["name"] == name) return m;
  throw std::runtime_error("no model " + name);
}

double collapsed_fraction(const nlohmann::json& m) {
  double f = 0;
  for (int k = 0; k < m["modes"].get<int>(); ++k) f += m["occupancy"]["fractions"][std::size_t(k)].get<double>();
  return f;
}

struct CliRun {
  int code;
  std::string err;
};
CliRun run_cli(const std::string& args) {
  namespace fs = std::filesystem;
  const fs::path err = fs::temp_directory_path() / ("taep_exp_err_" + std::to_string(::getpid()));
  const int status = std::system((std::string(TAEP_CLI_PATH) + " " + args + " 2> " + err.string()).c_str());
  std::ifstream in(err);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  fs::remove(err);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, text};
}

// Bad input: exit 2, one line naming the flag, and no output directory left behind.
TEST(ModeCollapseCli, BadInputExitsTwoNamingTheFlagAndLeavesNothing) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("taep_exp_bad_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  const struct {
    std::string args, fragment;
  } cases[] = {
      {"--models nope", "--models: unknown model \"nope\""},
      {"--batch 0", "--batch"},
      {"--steps 0", "--steps"},
      {"--scheme rk4", "--scheme"},
      {"--backend gpu", "--backend"},
  };
  for (const auto& c : cases) {
    const CliRun r = run_cli("experiment mode-collapse --quick --out-dir " + dir.string() + " " + c.args);
    EXPECT_EQ(r.code, 2) << c.args << ": " << r.err;
    EXPECT_NE(r.err.find(c.fragment), std::string::npos) << c.args << ": " << r.err;
    EXPECT_FALSE(fs::exists(dir)) << c.args;
  }
  const CliRun missing = run_cli("experiment mode-collapse --quick");
  EXPECT_EQ(missing.code, 2);
  EXPECT_NE(missing.err.find("--out-dir"), std::string::npos) << missing.err;
  if (!taep::cuda_available()) {
    const CliRun cuda = run_cli("experiment mode-collapse --quick --backend cuda --out-dir " + dir.string());
    EXPECT_EQ(cuda.code, 2) << cuda.err;
    EXPECT_NE(cuda.err.find("cuda"), std::string::npos) << cuda.err;
    EXPECT_FALSE(fs::exists(dir));
  }
}

// --reuse-models reuses a model only when its stored training config is the one this run would
// train with (threads aside), retrains otherwise, and names an unreadable summary file.
TEST(ModeCollapseReuse, ReusesOnlyModelsTrainedWithTheSameSettings) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("taep_reuse_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  taep::ModeCollapseConfig cfg = taep::mode_collapse_config(true);
  cfg.models.resize(1);
  cfg.train.optimizer.steps = 20;
  cfg.train.optimizer.batch = 64;
  cfg.train.network.hidden = {16};
  cfg.paths = cfg.samples = 512;
  cfg.plot_samples = 10;
  cfg.schedule.steps = 10;
  cfg.backend = taep::Backend::cpu;
  taep::ExperimentOptions options;
  options.out_dir = dir.string();
  fs::create_directories(dir);
  {
    const taep::ModeCollapseResult first = taep::run_mode_collapse(cfg, options);
    EXPECT_FALSE(first.models[0].reused);
    EXPECT_FALSE(first.same_mean_pair) << "the pair needs m1_eps0.01 among the models";
  }
  options.reuse_models = true;
  cfg.threads = 1;  // does not change the model
  EXPECT_TRUE(taep::run_mode_collapse(cfg, options).models[0].reused);
  cfg.train.optimizer.steps = 21;
  EXPECT_FALSE(taep::run_mode_collapse(cfg, options).models[0].reused) << "other steps: retrain";
  EXPECT_TRUE(taep::run_mode_collapse(cfg, options).models[0].reused) << "the retrained one";

  const fs::path summary = dir / "models" / (cfg.models[0].name + ".train.json");
  const std::string text = [&] {
    std::ifstream in(summary);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }();
  std::ofstream(summary) << text.substr(0, text.size() / 2);
  try {
    taep::run_mode_collapse(cfg, options);
    ADD_FAILURE() << "a truncated summary was accepted";
  } catch (const taep::ConfigError& e) {
    EXPECT_EQ(e.field(), summary.string());
    EXPECT_NE(std::string(e.what()).find("--reuse-models"), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
}

// `taep experiment mode-collapse --quick`: models trained for 2000 steps are far from converged, so
// this checks the trends of the paper's Fig. 2 with margins the quick run clears by several standard
// errors (a full run's numbers are in examples/mode_collapse/), and the theorems.
TEST(ModeCollapseQuick, TrendsAndFluctuationTheoremsHold) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("taep_quick_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  const std::string cmd = std::string(TAEP_CLI_PATH) + " experiment mode-collapse --quick --backend cpu --quiet --out-dir " +
                          dir.string() + " > " + (dir.string() + ".log") + " 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << "see " << dir.string() << ".log";
  for (const char* f : {"mode_collapse.json", "mode_collapse.csv", "mode_collapse.md"})
    EXPECT_TRUE(fs::exists(dir / f)) << f;
  const nlohmann::json doc = read_json_file(dir / "mode_collapse.json");
  ASSERT_EQ(doc["models"].size(), 10u);

  auto var = [&](const std::string& name) { return model_row(doc, name)["taep"]["variance"].get<double>(); };
  auto frac = [&](const std::string& name) { return collapsed_fraction(model_row(doc, name)); };
  // Var(S) grows with the number of collapsed modes and as eps falls.
  EXPECT_GT(var("m5_eps0.01"), var("m3_eps0.01"));
  EXPECT_GT(var("m3_eps0.01"), var("m1_eps0.01"));
  EXPECT_GT(var("m1_eps0.005"), var("m1_eps0.09"));
  // The learned weights of collapsed modes follow eps (ordering) and sit below the uniform 1/8.
  EXPECT_LT(frac("m1_eps0.005"), frac("m1_eps0.02"));
  EXPECT_LT(frac("m1_eps0.02"), frac("m1_eps0.09"));
  for (const auto& m : doc["models"]) {
    const std::string name = m["name"];
    const int modes = m["modes"];
    if (modes > 0) {
      EXPECT_LT(collapsed_fraction(m), 0.8 * modes / 8.0) << name;
    }
    // The IFT within 4 standard errors where the estimate is not dominated by rare paths. With
    // models this far from converged Var(S) is several units and the weights exp(-S) are
    // log-normal-like with a heavy tail: the ESS falls to a few per cent of the paths, the
    // delta-method error no longer describes the estimate (docs/physics.md section 6), and only its
    // order of magnitude is checked.
    const double ess_fraction = m["ift"]["ess"].get<double>() / m["taep"]["count"].get<double>();
    if (ess_fraction >= 0.1)
      EXPECT_LT(std::fabs(m["ift"]["z"].get<double>()), 4.0) << name;
    else
      EXPECT_LT(std::fabs(std::log(m["ift"]["estimate"].get<double>())), 1.0) << name << " ESS " << ess_fraction;
    // Eq. 31's fit near slope 1 and intercept 0 (200 steps blur the histograms: docs/physics.md section 9).
    std::printf("%s: IFT %.4f +/- %.4f (ESS %.3f), DFT slope %.3f +/- %.3f, intercept %.3f, Var(S) %.3f\n",
                name.c_str(), m["ift"]["estimate"].get<double>(), m["ift"]["stderr"].get<double>(),
                ess_fraction, m["dft_fit"]["slope"].get<double>(), m["dft_fit"]["slope_stderr"].get<double>(),
                m["dft_fit"]["intercept"].get<double>(), m["taep"]["variance"].get<double>());
    EXPECT_GT(m["dft_fit"]["slope"].get<double>(), 0.8) << name;
    EXPECT_LT(m["dft_fit"]["slope"].get<double>(), 1.15) << name;
    EXPECT_LT(std::fabs(m["dft_fit"]["intercept"].get<double>()), 0.25) << name;
    EXPECT_EQ(m["taep"]["nonfinite"].get<int>(), 0) << name;
  }

  // Fig. 2c: the one-mode collapse at eps = 0.01 and the widened ring of the same exact mean TAEP.
  const nlohmann::json& pair = doc["same_mean_pair"];
  ASSERT_TRUE(pair.is_object());
  EXPECT_EQ(pair["collapse"]["model"], "m1_eps0.01");
  EXPECT_GT(pair["width_factor"].get<double>(), 1.3);
  EXPECT_LT(pair["width_factor"].get<double>(), 1.6);
  const nlohmann::json& ex = pair["exact"];
  EXPECT_NEAR(ex["collapse"]["mean_theory"].get<double>(), ex["mediocre"]["mean_theory"].get<double>(), 1e-9);
  EXPECT_LT(std::fabs(ex["reference_difference"]["z"].get<double>()), 2.0);
  auto var_gap = [](const nlohmann::json& a, const nlohmann::json& b) {  // in SE of the difference
    return (a["variance"].get<double>() - b["variance"].get<double>()) /
           std::hypot(a["stderr_variance"].get<double>(), b["stderr_variance"].get<double>());
  };
  const nlohmann::json& net = pair["network"];
  std::printf("same_mean_pair: c %.6f; exact <S> %.4f vs %.4f, Var %.4f vs %.4f; networks <S> %.4f vs %.4f "
              "(z %.1f), Var %.4f vs %.4f\n",
              pair["width_factor"].get<double>(), ex["collapse"]["taep"]["mean"].get<double>(),
              ex["mediocre"]["taep"]["mean"].get<double>(), ex["collapse"]["taep"]["variance"].get<double>(),
              ex["mediocre"]["taep"]["variance"].get<double>(), net["collapse"]["taep"]["mean"].get<double>(),
              net["mediocre"]["taep"]["mean"].get<double>(), net["z"].get<double>(),
              net["collapse"]["taep"]["variance"].get<double>(), net["mediocre"]["taep"]["variance"].get<double>());
  EXPECT_GT(var_gap(ex["collapse"]["taep"], ex["mediocre"]["taep"]), 6.0);
  // The quick networks are far from converged (both means near 2), but the collapse's variance stays
  // the larger.
  EXPECT_GT(var_gap(net["collapse"]["taep"], net["mediocre"]["taep"]), 4.0);
  EXPECT_EQ(net["mediocre"]["taep"]["nonfinite"].get<int>(), 0);
  EXPECT_TRUE(fs::exists(dir / "samples" / "mediocre.csv"));
  EXPECT_DOUBLE_EQ(net["collapse"]["taep"]["variance"].get<double>(),
                   model_row(doc, "m1_eps0.01")["taep"]["variance"].get<double>());
  fs::remove_all(dir);
  fs::remove(dir.string() + ".log");
}

}  // namespace
#endif

// Runs a small TAEP computation through the installed library and checks the fluctuation theorem.
#include <cmath>
#include <cstdio>

#include <taep/taep.hpp>

int main() {
  try {
    taep::Config config = taep::default_config();  // ring8 target, 1-mode collapse at eps 0.01
    config.run.paths = 8192;
    config.run.backend = taep::Backend::cpu;
    config.schedule.steps = 100;
    const taep::RunResult r = taep::run(config);
    std::printf("paths %llu  <S> %.4f  Var(S) %.4f  <exp(-S)> %.4f +- %.4f\n",
                static_cast<unsigned long long>(r.taep.count), r.taep.mean, r.taep.variance,
                r.ift.estimate, r.ift.stderr_);
    return std::abs(r.ift.estimate - 1.0) < 5 * r.ift.stderr_ ? 0 : 1;
  } catch (const taep::Error& e) {
    std::fprintf(stderr, "taep_downstream: %s\n", e.what());
    return 1;
  }
}

// Throughput benchmark: path-steps per second of the 2D ring with the exact-score (collapse) model,
// per backend. Prints one JSON object per measurement (one line each) on stdout.
//   taep_bench [--backend cpu|cuda|all] [--paths N] [--steps N] [--scheme euler|milstein] [--repeat R]
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "taep/taep.hpp"

namespace {

struct Args {
  std::string backend = "all";
  std::uint64_t paths = 0;  // 0: per-backend default
  int steps = 1000;
  std::string scheme = "euler";
  int repeat = 3;
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "taep_bench: %s needs a value\n", k.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (k == "--backend") a.backend = value();
    else if (k == "--paths") a.paths = std::strtoull(value().c_str(), nullptr, 10);
    else if (k == "--steps") a.steps = std::atoi(value().c_str());
    else if (k == "--scheme") a.scheme = value();
    else if (k == "--repeat") a.repeat = std::atoi(value().c_str());
    else {
      std::fprintf(stderr,
                   "usage: taep_bench [--backend cpu|cuda|all] [--paths N] [--steps N] "
                   "[--scheme euler|milstein] [--repeat R]\n");
      std::exit(k == "--help" ? 0 : 2);
    }
  }
  return a;
}

void measure(taep::Backend backend, const Args& a) {
  taep::Config c = taep::default_config();
  c.run.backend = backend;
  c.run.paths = a.paths ? a.paths : (backend == taep::Backend::cuda ? (1u << 24) : (1u << 17));
  c.schedule.steps = a.steps;
  c.schedule.scheme = a.scheme == "milstein" ? taep::Scheme::milstein : taep::Scheme::euler;
  double best = 0;
  taep::RunResult r;
  for (int i = 0; i < a.repeat; ++i) {
    r = taep::run(c);
    best = std::max(best, r.performance.path_steps_per_second);
  }
  std::printf(
      "{\"backend\": \"%s\", \"device\": \"%s\", \"threads\": %d, \"paths\": %llu, \"steps\": %d, "
      "\"scheme\": \"%s\", \"best_path_steps_per_second\": %.4e, \"last_wall_seconds\": %.4f, "
      "\"ift\": %.5f, \"ift_stderr\": %.5f, \"variance\": %.5f, \"rms_path_error\": %.5f}\n",
      r.performance.backend.c_str(), r.performance.device.c_str(), r.performance.threads,
      static_cast<unsigned long long>(c.run.paths), c.schedule.steps, a.scheme.c_str(), best,
      r.performance.wall_seconds, r.ift.estimate, r.ift.stderr_, r.taep.variance,
      r.reference ? r.reference->rms_path_error : 0.0);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  const Args a = parse(argc, argv);
  try {
    if (a.backend == "cpu" || a.backend == "all") measure(taep::Backend::cpu, a);
    if (a.backend == "cuda" || (a.backend == "all" && taep::cuda_available())) measure(taep::Backend::cuda, a);
  } catch (const taep::Error& e) {
    std::fprintf(stderr, "taep_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}

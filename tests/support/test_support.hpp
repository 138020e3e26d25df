#pragma once
// Backend selection for the shared test bodies: taep_tests runs them on the CPU backend, and
// taep_gpu_tests (CTest label gpu) on the CUDA backend. GPU tests skip when no device is usable,
// unless TAEP_REQUIRE_GPU=1, which turns every such skip into a failure.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "taep/taep.hpp"

namespace taep_test {

inline taep::Backend backend_under_test() {
#if defined(TAEP_TEST_BACKEND_CUDA)
  return taep::Backend::cuda;
#else
  return taep::Backend::cpu;
#endif
}

inline bool gpu_required() {
  const char* v = std::getenv("TAEP_REQUIRE_GPU");
  return v && std::string(v) == "1";
}

// Call at the start of a test body (or SetUp) that needs `b`.
#define TAEP_REQUIRE_BACKEND(b)                                                        \
  do {                                                                                 \
    std::string why_;                                                                  \
    if ((b) == taep::Backend::cuda && !taep::cuda_available(&why_)) {                  \
      if (::taep_test::gpu_required()) FAIL() << "TAEP_REQUIRE_GPU=1 but " << why_;    \
      GTEST_SKIP() << why_;                                                            \
    }                                                                                  \
  } while (0)

// A small ring8 run on the backend under test.
inline taep::Config ring_config(int modes, double eps, std::uint64_t paths, int steps) {
  taep::Config c = taep::default_config();
  c.model.collapse = taep::CollapseSpec{modes, eps};
  c.run.paths = paths;
  c.run.backend = backend_under_test();
  c.schedule.steps = steps;
  return c;
}

// A 3-mode 2D target and an exact model on other means, widths and weights (no shared components).
inline taep::Config three_mode_config() {
  taep::Config c = taep::default_config();
  c.target.preset.clear();
  c.target.mixture = {{0.5, 0.3, 0.2}, {{-2.0, 0.0}, {2.0, 1.0}, {0.0, -2.5}}, {0.4, 0.3, 0.5}};
  c.model.collapse.reset();
  c.model.mixture =
      taep::MixtureSpec{{0.3, 0.4, 0.3}, {{-1.8, 0.2}, {2.2, 1.0}, {0.1, -2.3}}, {0.45, 0.3, 0.4}};
  return c;
}

}  // namespace taep_test

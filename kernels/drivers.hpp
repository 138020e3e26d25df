#pragma once
// Launch arguments and free driver functions of the kernels; host code never writes <<<>>>
// (docs/architecture.md principle 2).
#include <cuda_runtime.h>

#include <cstdint>

#include "host/problem/forward_problem.hpp"
#include "taep/physics/accumulators.hpp"
#include "taep/physics/reverse_path.hpp"

namespace taep {
namespace detail {

struct ForwardLaunch {
  physics::ForwardView view;  // pointers into device memory
  physics::Log2Tables log2;   // the kernel's log2-domain tables, in device memory
  // The component tables on the host, for the kernels that take them as constant parameters.
  const float* host_target_mean = nullptr;  // target.K * d
  const float* host_model_mean = nullptr;   // model.K * d
  const float* host_ratio = nullptr;        // target.K (shared components)
  std::uint64_t first = 0;    // global id of the first path
  std::uint64_t count = 0;
  double* taep = nullptr;       // count
  double* reference = nullptr;  // count, or nullptr
  float* x0 = nullptr;          // count * d start points, or nullptr (per-path output only)
  float* xN = nullptr;          // count * d end points, or nullptr
  cudaStream_t stream = nullptr;
};
void launch_forward_taep(const ForwardLaunch& args);

// Reverse-process paths of an exact-score model (physics::reverse_path), one thread per path.
struct ReverseLaunch {
  physics::ReverseView view;  // pointers into device memory
  std::uint64_t first = 0;    // global id of the first path
  std::uint64_t count = 0;
  bool with_taep = true;        // also S read on the forward clock (and the closed form)
  double* taep = nullptr;       // count, or nullptr
  double* reference = nullptr;  // count, or nullptr (with_taep and an exact-score reference only)
  float* samples = nullptr;     // count * d, row-major x(t_min), or nullptr
  cudaStream_t stream = nullptr;
};
void launch_reverse(const ReverseLaunch& args);

struct ReduceLaunch {
  const double* taep = nullptr;
  const double* reference = nullptr;  // or nullptr
  const double* aux = nullptr;        // per-path side value (probe-noise variance), or nullptr
  std::uint64_t count = 0;
  physics::PathStats* blocks = nullptr;  // ceil(count / kReduceBlock)
  HistogramSpec hist;
  unsigned long long* histogram = nullptr;  // bins + 2, accumulated into (atomics)
  cudaStream_t stream = nullptr;
};
void launch_reduce(const ReduceLaunch& args);

}  // namespace detail
}  // namespace taep

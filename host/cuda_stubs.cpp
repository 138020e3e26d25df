// Built when TAEP_ENABLE_CUDA is off: the CUDA entry points exist and say why they cannot run, so the
// API and link surface are the same in every build (docs/architecture.md principle 4).
#include "host/engine/backend.hpp"
#include "taep/error.hpp"

namespace taep {
namespace detail {

bool cuda_device_available(std::string* why) {
  if (why) *why = "taep was built without CUDA (configure with -DTAEP_ENABLE_CUDA=ON)";
  return false;
}

std::unique_ptr<Backend> make_cuda_backend(const ForwardProblem&) {
  throw BackendUnavailable(
      "run.backend: 'cuda' is not available: taep was built without CUDA "
      "(configure with -DTAEP_ENABLE_CUDA=ON)");
}

}  // namespace detail
}  // namespace taep

#include "host/engine/trainer.hpp"

namespace taep {
namespace detail {

std::unique_ptr<Trainer> make_cuda_trainer(const TrainProblem&) {
  throw BackendUnavailable(
      "run.backend: 'cuda' is not available: taep was built without CUDA "
      "(configure with -DTAEP_ENABLE_CUDA=ON)");
}

}  // namespace detail
}  // namespace taep

#include "kernels/cuda_probe.hpp"

namespace taep {
namespace detail {

void cuda_philox_probe(std::uint64_t, std::uint64_t, int, std::vector<std::uint32_t>&,
                       std::vector<float>&) {
  throw BackendUnavailable("cuda_philox_probe: taep was built without CUDA");
}

}  // namespace detail
}  // namespace taep

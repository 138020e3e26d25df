// Built when TAEP_ENABLE_CUDA is off: the CUDA entry points exist and say why they cannot run, so the
// API and link surface are the same in every build (docs/architecture.md principle 4).
#include <string>

#include "host/engine/backend.hpp"
#include "host/engine/trainer.hpp"
#include "host/mpi/communicator.hpp"
#include "kernels/cuda_probe.hpp"
#include "taep/error.hpp"

namespace taep {
namespace detail {
namespace {

constexpr const char* kNoCuda = "taep was built without CUDA (configure with -DTAEP_ENABLE_CUDA=ON)";

[[noreturn]] void no_cuda_backend() {
  throw BackendUnavailable(std::string("run.backend: 'cuda' is not available: ") + kNoCuda);
}

}  // namespace

bool cuda_device_available(std::string* why) {
  if (why) *why = kNoCuda;
  return false;
}

std::unique_ptr<Backend> make_cuda_backend(const ForwardProblem&) { no_cuda_backend(); }

void bind_cuda_device() {}

std::unique_ptr<Trainer> make_cuda_trainer(const TrainProblem&) { no_cuda_backend(); }

void cuda_philox_probe(std::uint64_t, std::uint64_t, int, std::vector<std::uint32_t>&,
                       std::vector<float>&) {
  throw BackendUnavailable("cuda_philox_probe: taep was built without CUDA");
}

}  // namespace detail
}  // namespace taep

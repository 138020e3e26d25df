// Which GPU a thread drives (host/mpi/communicator.hpp, bind_cuda_device): the CUDA runtime's
// current device is a per-thread setting, so each thread that drives one of run.devices' backends
// selects that backend's device before its first call.
#include <cuda_runtime.h>

#include "cuda_check.cuh"
#include "host/mpi/communicator.hpp"

namespace taep {
namespace detail {

void bind_cuda_device() {
  int count = 0;
  TAEP_CUDA_CHECK(cudaGetDeviceCount(&count));
  TAEP_CUDA_CHECK(cudaSetDevice(job_device(count)));
}

}  // namespace detail
}  // namespace taep

#pragma once
// CUDA status checks: TAEP_CUDA_CHECK throws taep::CudaError with the call, file:line and the status
// string; TAEP_CUDA_CHECK_PRINT only prints (for destructors, which never throw).
#include <cuda_runtime.h>

#include <cstdio>
#include <string>

#include "taep/error.hpp"

namespace taep {
namespace detail {

[[noreturn]] inline void throw_cuda(const char* call, cudaError_t status, const char* file, int line) {
  throw CudaError(std::string(file) + ":" + std::to_string(line) + ": " + call + " failed: " +
                  cudaGetErrorName(status) + " (" + cudaGetErrorString(status) + ")");
}

}  // namespace detail
}  // namespace taep

#define TAEP_CUDA_CHECK(call)                                                   \
  do {                                                                          \
    const cudaError_t taep_status_ = (call);                                    \
    if (taep_status_ != cudaSuccess)                                            \
      ::taep::detail::throw_cuda(#call, taep_status_, __FILE__, __LINE__);      \
  } while (0)

#define TAEP_CUDA_CHECK_PRINT(call)                                                        \
  do {                                                                                     \
    const cudaError_t taep_status_ = (call);                                               \
    if (taep_status_ != cudaSuccess)                                                       \
      std::fprintf(stderr, "taep: %s:%d: %s failed: %s\n", __FILE__, __LINE__, #call,     \
                   cudaGetErrorString(taep_status_));                                      \
  } while (0)

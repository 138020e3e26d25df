#pragma once
// CUDA status checks: TAEP_CUDA_CHECK throws taep::CudaError with the call, file:line and the status
// string; TAEP_CUDA_CHECK_PRINT only prints (for destructors, which never throw).
#include <cuda_runtime.h>

#include <cstdio>
#include <string>

#include "taep/error.hpp"

namespace taep {
namespace detail {

// Throws CudaError "file:line: call failed: NAME (description)" for a failed CUDA or cuBLAS call.
[[noreturn]] inline void throw_status(const char* call, const char* name, const char* text,
                                      const char* file, int line) {
  throw CudaError(std::string(file) + ":" + std::to_string(line) + ": " + call + " failed: " + name +
                  " (" + text + ")");
}
[[noreturn]] inline void throw_cuda(const char* call, cudaError_t status, const char* file, int line) {
  throw_status(call, cudaGetErrorName(status), cudaGetErrorString(status), file, line);
}

}  // namespace detail
}  // namespace taep

// A status check of an API whose calls return a Status equal to `ok` on success; name_of and
// text_of turn a status into its name and description.
#define TAEP_STATUS_CHECK(call, Status, ok, name_of, text_of)                                     \
  do {                                                                                            \
    const Status taep_status_ = (call);                                                           \
    if (taep_status_ != ok)                                                                       \
      ::taep::detail::throw_status(#call, name_of(taep_status_), text_of(taep_status_), __FILE__, \
                                   __LINE__);                                                     \
  } while (0)

#define TAEP_CUDA_CHECK(call) \
  TAEP_STATUS_CHECK(call, cudaError_t, cudaSuccess, cudaGetErrorName, cudaGetErrorString)

#define TAEP_CUDA_CHECK_PRINT(call)                                                        \
  do {                                                                                     \
    const cudaError_t taep_status_ = (call);                                               \
    if (taep_status_ != cudaSuccess)                                                       \
      std::fprintf(stderr, "taep: %s:%d: %s failed: %s\n", __FILE__, __LINE__, #call,     \
                   cudaGetErrorString(taep_status_));                                      \
  } while (0)

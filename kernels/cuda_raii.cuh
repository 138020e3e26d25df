#pragma once
// RAII owners of a CUDA stream and a cuBLAS handle; status checks for cuBLAS.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <string>

#include "cuda_check.cuh"

namespace taep {
namespace detail {

[[noreturn]] inline void throw_cublas(const char* call, cublasStatus_t status, const char* file, int line) {
  throw CudaError(std::string(file) + ":" + std::to_string(line) + ": " + call + " failed: " +
                  cublasGetStatusName(status) + " (" + cublasGetStatusString(status) + ")");
}

}  // namespace detail
}  // namespace taep

#define TAEP_CUBLAS_CHECK(call)                                               \
  do {                                                                        \
    const cublasStatus_t taep_status_ = (call);                               \
    if (taep_status_ != CUBLAS_STATUS_SUCCESS)                                \
      ::taep::detail::throw_cublas(#call, taep_status_, __FILE__, __LINE__);  \
  } while (0)

namespace taep {
namespace detail {

class CudaStream {
 public:
  CudaStream() { TAEP_CUDA_CHECK(cudaStreamCreateWithFlags(&s_, cudaStreamNonBlocking)); }
  CudaStream(const CudaStream&) = delete;
  CudaStream& operator=(const CudaStream&) = delete;
  ~CudaStream() { TAEP_CUDA_CHECK_PRINT(cudaStreamDestroy(s_)); }
  cudaStream_t get() const { return s_; }

 private:
  cudaStream_t s_ = nullptr;
};

class CublasHandle {
 public:
  CublasHandle() { TAEP_CUBLAS_CHECK(cublasCreate(&h_)); }
  CublasHandle(const CublasHandle&) = delete;
  CublasHandle& operator=(const CublasHandle&) = delete;
  ~CublasHandle() {
    if (cublasDestroy(h_) != CUBLAS_STATUS_SUCCESS) std::fprintf(stderr, "taep: cublasDestroy failed\n");
  }
  cublasHandle_t get() const { return h_; }

 private:
  cublasHandle_t h_ = nullptr;
};

}  // namespace detail
}  // namespace taep

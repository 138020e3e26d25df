#pragma once
// RAII owners of a CUDA stream and a cuBLAS handle; status checks for cuBLAS.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <string>

#include "cuda_check.cuh"

#define TAEP_CUBLAS_CHECK(call)                                                         \
  TAEP_STATUS_CHECK(call, cublasStatus_t, CUBLAS_STATUS_SUCCESS, cublasGetStatusName, \
                    cublasGetStatusString)

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

#pragma once
// Move-only owner of device memory (docs/architecture.md principle 6). Kernels get raw pointers (views).
#include <cstddef>
#include <utility>
#include <vector>

#include "cuda_check.cuh"

namespace taep {
namespace detail {

template <class T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(std::size_t n) : n_(n) {
    if (n) TAEP_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&ptr_), n * sizeof(T)));
  }
  // The upload is complete when this returns: a cudaMemcpy from pageable memory may return once
  // the bytes are staged, before the DMA into ptr_ ends, and the backends' kernels then run on a
  // non-blocking stream that does not wait for the legacy stream the copy went through.
  explicit DeviceBuffer(const std::vector<T>& host) : DeviceBuffer(host.size()) {
    if (n_) {
      TAEP_CUDA_CHECK(cudaMemcpy(ptr_, host.data(), n_ * sizeof(T), cudaMemcpyHostToDevice));
      TAEP_CUDA_CHECK(cudaStreamSynchronize(cudaStreamLegacy));
    }
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& o) noexcept : ptr_(std::exchange(o.ptr_, nullptr)), n_(std::exchange(o.n_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) {
      release();
      ptr_ = std::exchange(o.ptr_, nullptr);
      n_ = std::exchange(o.n_, 0);
    }
    return *this;
  }
  ~DeviceBuffer() { release(); }

  T* data() { return ptr_; }
  const T* data() const { return ptr_; }
  std::size_t size() const { return n_; }

  void copy_to_host(std::vector<T>& host, std::size_t n, cudaStream_t stream) const {
    host.resize(n);
    if (n) TAEP_CUDA_CHECK(cudaMemcpyAsync(host.data(), ptr_, n * sizeof(T), cudaMemcpyDeviceToHost, stream));
  }

 private:
  void release() noexcept {
    if (ptr_) TAEP_CUDA_CHECK_PRINT(cudaFree(ptr_));
    ptr_ = nullptr;
    n_ = 0;
  }
  T* ptr_ = nullptr;
  std::size_t n_ = 0;
};

}  // namespace detail
}  // namespace taep

// The CUDA backend: problem tables uploaded once; per chunk the fused forward kernel writes S (and the
// closed form) per path, the reduction kernels turn them into per-block accumulators and histogram
// counts, and only those come back to the host.
#include <algorithm>
#include <map>
#include <string>

#include "cuda_check.cuh"
#include "cuda_raii.cuh"
#include "device_problem.cuh"
#include "device_buffer.cuh"
#include "drivers.hpp"
#include "taep/detail/backend.hpp"

namespace taep {
namespace detail {

bool cuda_device_available(std::string* why) {
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    cudaGetLastError();  // clear the sticky-free error so later calls start clean
    if (why) *why = std::string("no usable CUDA device: ") + cudaGetErrorString(status);
    return false;
  }
  if (count == 0) {
    if (why) *why = "no CUDA device found";
    return false;
  }
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess || prop.major < 8) {
    if (why)
      *why = "CUDA device 0 has compute capability " + std::to_string(prop.major) + "." +
             std::to_string(prop.minor) + "; taep needs 8.0 or later";
    return false;
  }
  if (why) why->clear();
  return true;
}

namespace {

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(const ForwardProblem& problem)
      : problem_(problem), device_(describe_device0()), tables_(problem_), view_(tables_.view()) {
    std::size_t free_bytes = 0, total_bytes = 0;
    TAEP_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
    // Per path: S and the closed form (16 bytes); take at most a quarter of free memory.
    const std::uint64_t fit = free_bytes / 4 / (2 * sizeof(double));
    max_chunk_ = std::max<std::uint64_t>(
        physics::kReduceBlock,
        std::min<std::uint64_t>(std::uint64_t(1) << 24, fit) / physics::kReduceBlock * physics::kReduceBlock);
  }

  std::string name() const override { return "cuda"; }
  std::string device() const override { return device_; }
  std::uint64_t max_chunk_paths() const override { return max_chunk_; }

  void simulate(std::uint64_t first, std::uint64_t count, std::vector<double>& taep,
                std::vector<double>& reference, std::vector<double>* aux) override {
    if (aux) aux->assign(count, 0.0);  // no side value for exact-score models
    taep.assign(count, 0.0);
    reference.assign(problem_.reference ? count : 0, 0.0);
    std::vector<double> part;
    for (std::uint64_t off = 0; off < count; off += max_chunk_) {
      const std::uint64_t n = std::min(max_chunk_, count - off);
      forward(first + off, n);
      s_.copy_to_host(part, n, stream_.get());
      TAEP_CUDA_CHECK(cudaStreamSynchronize(stream_.get()));
      std::copy(part.begin(), part.end(), taep.begin() + off);
      if (problem_.reference) {
        r_.copy_to_host(part, n, stream_.get());
        TAEP_CUDA_CHECK(cudaStreamSynchronize(stream_.get()));
        std::copy(part.begin(), part.end(), reference.begin() + off);
      }
    }
  }

  void run_chunk(std::uint64_t first, std::uint64_t count, const HistogramSpec& hist,
                 ChunkStats& out) override {
    forward(first, count);
    reducer_.reduce(s_.data(), problem_.reference ? r_.data() : nullptr, nullptr, count, hist,
                    stream_.get(), out);
  }

 private:
  void forward(std::uint64_t first, std::uint64_t count) {
    if (s_.size() < count) {
      s_ = DeviceBuffer<double>(count);
      if (problem_.reference) r_ = DeviceBuffer<double>(count);
    }
    ForwardLaunch f;
    f.view = view_;
    f.first = first;
    f.count = count;
    f.taep = s_.data();
    f.reference = problem_.reference ? r_.data() : nullptr;
    f.stream = stream_.get();
    launch_forward_taep(f);
  }

  ForwardProblem problem_;
  std::string device_;
  DeviceProblem tables_;
  physics::ForwardView view_;
  std::uint64_t max_chunk_ = physics::kReduceBlock;
  CudaStream stream_;
  DeviceBuffer<double> s_, r_;
  ChunkReducer reducer_;
};

}  // namespace

std::unique_ptr<Backend> make_cuda_backend(const ForwardProblem& problem) {
  std::string why;
  if (!cuda_device_available(&why))
    throw BackendUnavailable("run.backend: 'cuda' is not available: " + why);
  if (problem.mlp) return make_cuda_mlp_backend(problem);
  return std::make_unique<CudaBackend>(problem);
}

}  // namespace detail
}  // namespace taep

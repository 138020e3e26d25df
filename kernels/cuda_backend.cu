// The CUDA backend: problem tables uploaded once; per chunk the fused forward kernel writes S (and the
// closed form) per path, the reduction kernels turn them into per-block accumulators and histogram
// counts, and only those come back to the host. Reverse-process paths (samples, and S read on the
// forward clock) run in the fused reverse kernel, one thread per path, and come back per path.
#include <algorithm>
#include <map>
#include <string>

#include "cuda_check.cuh"
#include "cuda_raii.cuh"
#include "device_problem.cuh"
#include "device_buffer.cuh"
#include "drivers.hpp"
#include "host/engine/backend.hpp"

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
      : problem_(problem),
        device_(select_device()),
        tables_(problem_),
        view_(tables_.view()),
        log2_(problem_, view_),
        reverse_end_(build_reverse_end(problem_)),
        model_last_(reverse_end_.model_last) {
    reverse_view_.fwd = view_;
    reverse_view_.last = reverse_end_.last;
    reverse_view_.model_last = model_last_.data();
    std::size_t free_bytes = 0, total_bytes = 0;
    TAEP_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
    // Per path: S and the closed form (16 bytes), and for reverse paths also the sample (4d bytes),
    // for forward paths with their points x0 and xN (8d bytes); take at most a quarter of free
    // memory.
    const auto chunk_for = [&](std::uint64_t bytes_per_path) {
      const std::uint64_t fit = free_bytes / 4 / bytes_per_path;
      return std::max<std::uint64_t>(
          physics::kReduceBlock, std::min<std::uint64_t>(std::uint64_t(1) << 24, fit) /
                                     physics::kReduceBlock * physics::kReduceBlock);
    };
    max_chunk_ = chunk_for(2 * sizeof(double));
    max_reverse_chunk_ = chunk_for(2 * sizeof(double) + std::uint64_t(problem_.d) * sizeof(float));
    max_points_chunk_ = chunk_for(2 * sizeof(double) + 2 * std::uint64_t(problem_.d) * sizeof(float));
  }

  std::string name() const override { return "cuda"; }
  std::string device() const override { return device_; }
  std::uint64_t max_chunk_paths() const override { return max_chunk_; }

  void simulate(std::uint64_t first, std::uint64_t count, std::vector<double>& taep,
                std::vector<double>& reference, std::vector<double>* aux, std::vector<float>* x0,
                std::vector<float>* xN) override {
    // aux: no side value for exact-score models (zeros).
    size_path_outputs(count, problem_.d, problem_.reference, taep, reference, aux, x0, xN);
    const std::uint64_t d = std::uint64_t(problem_.d);
    std::vector<double> part;
    std::vector<float> part_x;
    // The points of n paths from a device buffer into rows off .. of *to.
    const auto points = [&](const DeviceBuffer<float>& from, std::vector<float>* to,
                            std::uint64_t off, std::uint64_t n) {
      if (!to) return;
      from.copy_to_host(part_x, n * d, stream_.get());
      TAEP_CUDA_CHECK(cudaStreamSynchronize(stream_.get()));
      std::copy(part_x.begin(), part_x.end(), to->begin() + off * d);
    };
    const std::uint64_t chunk = x0 || xN ? max_points_chunk_ : max_chunk_;
    for (std::uint64_t off = 0; off < count; off += chunk) {
      const std::uint64_t n = std::min(chunk, count - off);
      if (x0 && x0_.size() < n * d) x0_ = DeviceBuffer<float>(n * d);
      if (xN && x_.size() < n * d) x_ = DeviceBuffer<float>(n * d);
      forward(first + off, n, x0 ? x0_.data() : nullptr, xN ? x_.data() : nullptr);
      s_.copy_to_host(part, n, stream_.get());
      TAEP_CUDA_CHECK(cudaStreamSynchronize(stream_.get()));
      std::copy(part.begin(), part.end(), taep.begin() + off);
      if (problem_.reference) {
        r_.copy_to_host(part, n, stream_.get());
        TAEP_CUDA_CHECK(cudaStreamSynchronize(stream_.get()));
        std::copy(part.begin(), part.end(), reference.begin() + off);
      }
      points(x0_, x0, off, n);
      points(x_, xN, off, n);
    }
  }

  void simulate_reverse(std::uint64_t first, std::uint64_t count, bool with_taep,
                        std::vector<double>* taep, std::vector<double>* reference,
                        std::vector<float>* samples) override {
    const std::uint64_t d = std::uint64_t(problem_.d);
    const bool want_taep = with_taep && taep;
    const bool want_ref = with_taep && reference && problem_.reference;
    if (taep) taep->assign(with_taep ? count : 0, 0.0);
    if (reference) reference->assign(with_taep && problem_.reference ? count : 0, 0.0);
    if (samples) samples->assign(count * d, 0.f);
    std::vector<double> part;
    std::vector<float> part_x;
    for (std::uint64_t off = 0; off < count; off += max_reverse_chunk_) {
      const std::uint64_t n = std::min(max_reverse_chunk_, count - off);
      if (want_taep && s_.size() < n) s_ = DeviceBuffer<double>(n);
      if (want_ref && r_.size() < n) r_ = DeviceBuffer<double>(n);
      if (samples && x_.size() < n * d) x_ = DeviceBuffer<float>(n * d);
      ReverseLaunch a;
      a.view = reverse_view_;
      a.first = first + off;
      a.count = n;
      a.with_taep = with_taep;  // the path follows the same arithmetic whichever outputs are kept
      a.taep = want_taep ? s_.data() : nullptr;
      a.reference = want_ref ? r_.data() : nullptr;
      a.samples = samples ? x_.data() : nullptr;
      a.stream = stream_.get();
      launch_reverse(a);
      if (want_taep) {
        s_.copy_to_host(part, n, stream_.get());
        TAEP_CUDA_CHECK(cudaStreamSynchronize(stream_.get()));
        std::copy(part.begin(), part.end(), taep->begin() + off);
      }
      if (want_ref) {
        r_.copy_to_host(part, n, stream_.get());
        TAEP_CUDA_CHECK(cudaStreamSynchronize(stream_.get()));
        std::copy(part.begin(), part.end(), reference->begin() + off);
      }
      if (samples) {
        x_.copy_to_host(part_x, n * d, stream_.get());
        TAEP_CUDA_CHECK(cudaStreamSynchronize(stream_.get()));
        std::copy(part_x.begin(), part_x.end(), samples->begin() + off * d);
      }
      TAEP_CUDA_CHECK(cudaStreamSynchronize(stream_.get()));  // the kernel, when nothing is copied
    }
  }

  void run_chunk(std::uint64_t first, std::uint64_t count, const HistogramSpec& hist,
                 ChunkStats& out) override {
    forward(first, count);
    reducer_.reduce(s_.data(), problem_.reference ? r_.data() : nullptr, nullptr, count, hist,
                    stream_.get(), out);
  }

 private:
  // x0, xN: device buffers of count * d points, or null.
  void forward(std::uint64_t first, std::uint64_t count, float* x0 = nullptr, float* xN = nullptr) {
    if (s_.size() < count) s_ = DeviceBuffer<double>(count);
    if (problem_.reference && r_.size() < count) r_ = DeviceBuffer<double>(count);
    ForwardLaunch f;
    f.view = view_;
    f.log2 = log2_.view();
    f.host_target_mean = problem_.target.mean.data();
    f.host_model_mean = problem_.model.mean.data();
    f.host_ratio = problem_.ratio.data();
    f.first = first;
    f.count = count;
    f.taep = s_.data();
    f.reference = problem_.reference ? r_.data() : nullptr;
    f.x0 = x0;
    f.xN = xN;
    f.stream = stream_.get();
    launch_forward_taep(f);
  }

  ForwardProblem problem_;
  std::string device_;
  DeviceProblem tables_;
  physics::ForwardView view_;
  Log2DeviceTables log2_;
  ReverseEndTables reverse_end_;
  DeviceBuffer<physics::ComponentStep> model_last_;  // the model's coefficients at t_max
  physics::ReverseView reverse_view_;
  std::uint64_t max_chunk_ = physics::kReduceBlock;
  std::uint64_t max_reverse_chunk_ = physics::kReduceBlock;
  std::uint64_t max_points_chunk_ = physics::kReduceBlock;  // forward paths with their points
  CudaStream stream_;
  DeviceBuffer<double> s_, r_;
  DeviceBuffer<float> x_;   // reverse paths' samples; forward paths' end points
  DeviceBuffer<float> x0_;  // forward paths' start points
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

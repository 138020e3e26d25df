#pragma once
// Pieces both CUDA backends share: the device's description, the problem tables uploaded once, and
// the reduction of a chunk's per-path values into per-block accumulators and histogram counts.
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "cuda_check.cuh"
#include "device_buffer.cuh"
#include "drivers.hpp"
#include "host/engine/backend.hpp"
#include "host/mpi/communicator.hpp"

namespace taep {
namespace detail {

// Selects this thread's device (job_device: the rank's index on its node times run.devices, plus
// the device slot, modulo the visible devices; so one rank per GPU needs no setting, and one
// process gets device 0) and names it ("NVIDIA H100 80GB HBM3 (compute capability 9.0)").
inline std::string select_device() {
  int count = 0;
  TAEP_CUDA_CHECK(cudaGetDeviceCount(&count));
  const int device = job_device(count);
  TAEP_CUDA_CHECK(cudaSetDevice(device));
  cudaDeviceProp prop{};
  TAEP_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  return std::string(prop.name) + " (compute capability " + std::to_string(prop.major) + "." +
         std::to_string(prop.minor) + ")";
}

// The problem's tables in device memory and the view over them.
class DeviceProblem {
 public:
  explicit DeviceProblem(const ForwardProblem& problem)
      : view_(problem.view([this](const auto& host) {
          using T = typename std::decay_t<decltype(host)>::value_type;
          auto buf = std::make_shared<DeviceBuffer<T>>(host);
          uploads_.push_back(buf);
          return static_cast<const T*>(buf->data());
        })) {}
  const physics::ForwardView& view() const { return view_; }

 private:
  std::vector<std::shared_ptr<void>> uploads_;  // declared first: filled while view_ is built
  physics::ForwardView view_;
};

// The fused forward kernel's log2-domain component tables (physics::component_log2_at, folded on
// the host in double from the problem's weights, widths and schedule) in device memory, and the view
// over them; the means and ratios the kernels with a compiled K take as constant parameters instead.
class Log2DeviceTables {
 public:
  Log2DeviceTables(const ForwardProblem& problem, const physics::ForwardView& device_view)
      : target_(fold(problem, problem.target)), model_(fold(problem, problem.model)) {
    view_.target = target_.data();
    view_.model = problem.shared ? nullptr : model_.data();
    view_.target_mean = device_view.target.mean;
    view_.model_mean = problem.shared ? nullptr : device_view.model.mean;
    view_.ratio = device_view.ratio;
  }
  const physics::Log2Tables& view() const { return view_; }

 private:
  static std::vector<physics::ComponentLog2> fold(const ForwardProblem& p, const MixtureTablesHost& m) {
    std::vector<physics::ComponentLog2> out(std::size_t(p.steps) * m.K);
    for (int s = 0; s < p.steps; ++s) {
      const physics::Marginal mt = p.schedule.marginal(p.grid.t(s));
      for (int k = 0; k < m.K; ++k)
        out[std::size_t(s) * m.K + k] = physics::component_log2_at(p.d, m.log_w[k], m.sigma2[k], mt);
    }
    return out;
  }
  DeviceBuffer<physics::ComponentLog2> target_, model_;
  physics::Log2Tables view_;
};

// Reduces per-path values on the device (launch_reduce) and brings the per-block accumulators and
// the histogram counts back; owns their device buffers across chunks.
class ChunkReducer {
 public:
  void reduce(const double* taep, const double* reference, const double* aux, std::uint64_t count,
              const HistogramSpec& hist, cudaStream_t stream, ChunkStats& out) {
    const std::size_t blocks = (count + physics::kReduceBlock - 1) / physics::kReduceBlock;
    if (blocks_.size() < blocks) blocks_ = DeviceBuffer<physics::PathStats>(blocks);
    if (hist_.size() != std::size_t(hist.bins) + 2) hist_ = DeviceBuffer<unsigned long long>(hist.bins + 2);
    TAEP_CUDA_CHECK(cudaMemsetAsync(hist_.data(), 0, hist_.size() * sizeof(unsigned long long), stream));
    ReduceLaunch r;
    r.taep = taep;
    r.reference = reference;
    r.aux = aux;
    r.count = count;
    r.blocks = blocks_.data();
    r.hist = hist;
    r.histogram = hist_.data();
    r.stream = stream;
    launch_reduce(r);
    blocks_.copy_to_host(out.blocks, blocks, stream);
    std::vector<unsigned long long> counts;
    hist_.copy_to_host(counts, hist_.size(), stream);
    TAEP_CUDA_CHECK(cudaStreamSynchronize(stream));
    out.histogram.assign(counts.begin(), counts.end());
  }

 private:
  DeviceBuffer<physics::PathStats> blocks_;
  DeviceBuffer<unsigned long long> hist_;
};

}  // namespace detail
}  // namespace taep

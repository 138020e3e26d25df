// The CPU reference backend: OpenMP over blocks of paths, each path's whole time loop fused, the
// physics of include/taep/physics/ called exactly as the CUDA kernel calls it.
#include <omp.h>

#include <algorithm>
#include <array>
#include <thread>

#include "taep/detail/backend.hpp"
#include "taep/detail/dispatch.hpp"
#include "taep/physics/philox.hpp"
#include "taep/physics/rng_streams.hpp"

namespace taep {
namespace detail {

physics::PathStats reduce_block_cpu(const double* taep, const double* reference, int count) {
  using physics::kLaneSpan;
  using physics::kReduceLanes;
  std::array<physics::PathStats, kReduceLanes> lane{};
  const bool with_ref = reference != nullptr;
  for (int j = 0; j < kReduceLanes; ++j)
    for (int i = j * kLaneSpan; i < std::min(count, (j + 1) * kLaneSpan); ++i)
      lane[j].add(taep[i], with_ref ? reference[i] : 0.0, with_ref);
  for (int stride = kReduceLanes / 2; stride > 0; stride /= 2)
    for (int j = 0; j < stride; ++j) lane[j].merge(lane[j + stride]);
  return lane[0];
}

namespace {

template <int D>
void simulate_range(const physics::ForwardView& V, std::uint64_t first, int count, double* taep,
                    double* reference) {
  for (int i = 0; i < count; ++i) {
    const std::uint64_t path = first + i;
    rng::PhiloxHostStream init(V.seed, rng::subsequence(rng::kInitialState, path));
    rng::PhiloxHostStream noise(V.seed, rng::subsequence(rng::kForwardNoise, path));
    const physics::PathResult r = physics::forward_path<D>(V, init, noise);
    taep[i] = r.taep;
    if (reference) reference[i] = r.reference;
  }
}

class CpuBackend final : public Backend {
 public:
  CpuBackend(const ForwardProblem& problem, int threads)
      : problem_(problem),
        view_(problem_.view([](const auto& v) { return v.data(); })),
        threads_(threads > 0 ? threads : std::max(1, omp_get_max_threads())) {}

  std::string name() const override { return "cpu"; }
  std::string device() const override {
    return "CPU, " + std::to_string(threads_) + " OpenMP thread" + (threads_ == 1 ? "" : "s");
  }
  int threads() const override { return threads_; }
  std::uint64_t max_chunk_paths() const override { return std::uint64_t(1) << 20; }

  void simulate(std::uint64_t first, std::uint64_t count, std::vector<double>& taep,
                std::vector<double>& reference) override {
    taep.assign(count, 0.0);
    reference.assign(problem_.reference ? count : 0, 0.0);
    const std::int64_t blocks = std::int64_t((count + physics::kReduceBlock - 1) / physics::kReduceBlock);
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads_)
    for (std::int64_t b = 0; b < blocks; ++b) {
      const std::uint64_t off = std::uint64_t(b) * physics::kReduceBlock;
      const int n = int(std::min<std::uint64_t>(physics::kReduceBlock, count - off));
      run(first + off, n, taep.data() + off, problem_.reference ? reference.data() + off : nullptr);
    }
  }

  void run_chunk(std::uint64_t first, std::uint64_t count, const HistogramSpec& hist,
                 ChunkStats& out) override {
    const std::int64_t blocks = std::int64_t((count + physics::kReduceBlock - 1) / physics::kReduceBlock);
    out.blocks.assign(std::size_t(blocks), physics::PathStats{});
    out.histogram.assign(std::size_t(hist.bins) + 2, 0);
    const double inv_w = hist.inv_width();
#pragma omp parallel num_threads(threads_)
    {
      std::vector<double> taep(physics::kReduceBlock), ref(physics::kReduceBlock);
      std::vector<std::uint64_t> counts(std::size_t(hist.bins) + 2, 0);
#pragma omp for schedule(dynamic, 1)
      for (std::int64_t b = 0; b < blocks; ++b) {
        const std::uint64_t off = std::uint64_t(b) * physics::kReduceBlock;
        const int n = int(std::min<std::uint64_t>(physics::kReduceBlock, count - off));
        double* r = problem_.reference ? ref.data() : nullptr;
        run(first + off, n, taep.data(), r);
        out.blocks[std::size_t(b)] = reduce_block_cpu(taep.data(), r, n);
        for (int i = 0; i < n; ++i) {
          if (!physics::isfinite_(taep[i]) || (r && !physics::isfinite_(r[i]))) continue;
          counts[std::size_t(physics::histogram_bin(taep[i], hist.lo, inv_w, hist.bins) + 1)]++;
        }
      }
#pragma omp critical
      for (std::size_t i = 0; i < counts.size(); ++i) out.histogram[i] += counts[i];
    }
  }

 private:
  void run(std::uint64_t first, int n, double* taep, double* ref) const {
    dispatch_dim(problem_.d, [&](auto dim) {
      simulate_range<decltype(dim)::value>(view_, first, n, taep, ref);
    });
  }

  ForwardProblem problem_;
  physics::ForwardView view_;
  int threads_;
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(const ForwardProblem& problem, int threads) {
  return std::make_unique<CpuBackend>(problem, threads);
}

}  // namespace detail
}  // namespace taep

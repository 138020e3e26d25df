// The CPU reference backend: OpenMP over blocks of paths, each path's whole time loop fused, the
// physics of include/taep/physics/ called exactly as the CUDA kernel calls it: path by path (the
// scalar loop, below) or in packets of 8 or 16 paths (the vector loop, host/cpu/isa_*.cpp) where
// the CPU has AVX2 + FMA or AVX-512.
#include <omp.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <optional>
#include <string>
#include <thread>

#include "host/cpu/cpu_reverse_simd.hpp"
#include "host/engine/backend.hpp"
#include "host/cpu/cpu_simd.hpp"
#include "host/engine/dispatch.hpp"
#include "taep/error.hpp"
#include "taep/physics/philox.hpp"
#include "taep/physics/reverse_path.hpp"
#include "taep/physics/rng_streams.hpp"

namespace taep {
namespace detail {

physics::PathStats reduce_block_cpu(const double* taep, const double* reference, int count,
                                    const double* aux) {
  using physics::kLaneSpan;
  using physics::kReduceLanes;
  std::array<physics::PathStats, kReduceLanes> lane{};
  const bool with_ref = reference != nullptr;
  for (int j = 0; j < kReduceLanes; ++j)
    for (int i = j * kLaneSpan; i < std::min(count, (j + 1) * kLaneSpan); ++i)
      lane[j].add(taep[i], with_ref ? reference[i] : 0.0, with_ref, aux ? aux[i] : 0.0, aux != nullptr);
  for (int stride = kReduceLanes / 2; stride > 0; stride /= 2)
    for (int j = 0; j < stride; ++j) lane[j].merge(lane[j + stride]);
  return lane[0];
}

void Backend::simulate_reverse(std::uint64_t, std::uint64_t, bool, std::vector<double>*,
                               std::vector<double>*, std::vector<float>*) {
  throw BackendUnavailable("run.backend: the reverse process is not implemented on the " + name() +
                           " backend (" + device() + ")");
}

ReverseEndTables build_reverse_end(const ForwardProblem& problem) {
  ReverseEndTables t;
  t.last = physics::step_scalars_at(problem.schedule, problem.grid, problem.steps);
  const physics::Marginal end = problem.schedule.marginal(problem.grid.t(problem.steps));
  for (int k = 0; k < problem.model.K; ++k)
    t.model_last.push_back(physics::component_step_at(problem.d, problem.model.log_w[std::size_t(k)],
                                                      problem.model.sigma2[std::size_t(k)], end));
  return t;
}

const char* to_string(SimdIsa isa) { return isa == SimdIsa::avx512 ? "AVX-512" : "AVX2"; }

std::string cpu_device(const std::string& how, int threads) {
  return "CPU" + (how.empty() ? std::string() : " (" + how + ")") + ", " + std::to_string(threads) +
         " OpenMP thread" + (threads == 1 ? "" : "s");
}

// Defined here, in a unit built for the baseline instruction set: it decides whether code built for
// a wider one may run at all.
bool cpu_supports(SimdIsa isa) {
#if defined(TAEP_HAVE_CPU_SIMD)
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (isa == SimdIsa::avx2) return avx2;
  return avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512cd") &&
         __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl");
#else
  (void)isa;
  return false;
#endif
}

void simulate_range_simd(SimdIsa isa, const physics::ForwardView& V, std::uint64_t first, int count,
                         double* taep, double* reference, float* x0, float* xN) {
  TAEP_EXPECTS(cpu_supports(isa), "the CPU vector loop was asked for where it cannot run");
#if defined(TAEP_HAVE_CPU_SIMD)
  if (isa == SimdIsa::avx512) return avx512::simulate_range(V, first, count, taep, reference, x0, xN);
  avx2::simulate_range(V, first, count, taep, reference, x0, xN);
#else
  (void)V, (void)first, (void)count, (void)taep, (void)reference, (void)x0, (void)xN;
#endif
}

void simulate_reverse_simd(SimdIsa isa, const physics::ReverseView& R, std::uint64_t first,
                           int count, bool with_taep, double* taep, double* reference,
                           float* samples) {
  TAEP_EXPECTS(cpu_supports(isa), "the CPU vector loop was asked for where it cannot run");
#if defined(TAEP_HAVE_CPU_SIMD)
  if (isa == SimdIsa::avx512)
    return avx512::simulate_reverse_range(R, first, count, with_taep, taep, reference, samples);
  avx2::simulate_reverse_range(R, first, count, with_taep, taep, reference, samples);
#else
  (void)R, (void)first, (void)count, (void)with_taep, (void)taep, (void)reference, (void)samples;
#endif
}

void cpu_simd_philox_probe(SimdIsa isa, std::uint64_t seed, std::uint64_t first_subsequence,
                           int blocks, std::uint32_t* words, float* normals) {
  TAEP_EXPECTS(cpu_supports(isa), "the CPU vector loop was asked for where it cannot run");
#if defined(TAEP_HAVE_CPU_SIMD)
  if (isa == SimdIsa::avx512)
    return avx512::philox_probe(seed, first_subsequence, blocks, words, normals);
  avx2::philox_probe(seed, first_subsequence, blocks, words, normals);
#else
  (void)seed, (void)first_subsequence, (void)blocks, (void)words, (void)normals;
#endif
}

namespace {

// The loop a backend runs: nullopt for the scalar one.
std::optional<SimdIsa> choose_loop(CpuLoop loop) {
  const auto required = [](SimdIsa isa) {
    if (!cpu_supports(isa))
      throw BackendUnavailable(std::string("the CPU vector loop for ") + to_string(isa) +
                               " is not in this build or not supported by this CPU");
    return std::optional<SimdIsa>(isa);
  };
  switch (loop) {
    case CpuLoop::scalar: return std::nullopt;
    case CpuLoop::avx2: return required(SimdIsa::avx2);
    case CpuLoop::avx512: return required(SimdIsa::avx512);
    case CpuLoop::automatic: break;
  }
  // TAEP_CPU_SIMD=0 forces the scalar loop, =avx2 the narrower vector loop where the wider runs.
  const char* env = std::getenv("TAEP_CPU_SIMD");
  const std::string want = env ? env : "";
  if (want == "0") return std::nullopt;
  if (want != "avx2" && cpu_supports(SimdIsa::avx512)) return SimdIsa::avx512;
  if (cpu_supports(SimdIsa::avx2)) return SimdIsa::avx2;
  return std::nullopt;
}

template <int D>
void simulate_range(const physics::ForwardView& V, std::uint64_t first, int count, double* taep,
                    double* reference, float* x0, float* xN) {
  const std::size_t d = std::size_t(V.d);
  for (int i = 0; i < count; ++i) {
    const std::uint64_t path = first + i;
    rng::PhiloxHostStream init(V.seed, rng::subsequence(rng::kInitialState, path));
    rng::PhiloxHostStream noise(V.seed, rng::subsequence(rng::kForwardNoise, path));
    const physics::PathResult r = physics::forward_path<D>(
        V, init, noise, {x0 ? x0 + i * d : nullptr, xN ? xN + i * d : nullptr});
    taep[i] = r.taep;
    if (reference) reference[i] = r.reference;
  }
}

// Reverse paths first .. first + count - 1, path by path; the outputs that are not null get S, the
// closed form and the samples (d per path) at offset i.
template <int D>
void simulate_reverse_range(const physics::ReverseView& R, std::uint64_t first, int count,
                            bool with_taep, double* taep, double* reference, float* samples) {
  const int d = R.fwd.d;
  float x[physics::storage_dim<D>()];
  for (int i = 0; i < count; ++i) {
    const std::uint64_t path = first + i;
    rng::PhiloxHostStream start(R.fwd.seed, rng::subsequence(rng::kReverseStart, path));
    rng::PhiloxHostStream noise(R.fwd.seed, rng::subsequence(rng::kReverseNoise, path));
    const physics::PathResult r = physics::reverse_path<D>(R, start, noise, with_taep, x);
    if (taep) taep[i] = r.taep;
    if (reference) reference[i] = r.reference;
    if (samples)
      for (int j = 0; j < d; ++j) samples[std::size_t(i) * d + j] = x[j];
  }
}

class CpuBackend final : public Backend {
 public:
  CpuBackend(const ForwardProblem& problem, int threads, CpuLoop loop)
      : problem_(problem),
        view_(problem_.view([](const auto& v) { return v.data(); })),
        threads_(threads > 0 ? threads : std::max(1, omp_get_max_threads())),
        simd_(choose_loop(loop)),
        reverse_end_(build_reverse_end(problem_)) {
    reverse_view_.fwd = view_;
    reverse_view_.last = reverse_end_.last;
    reverse_view_.model_last = reverse_end_.model_last.data();
  }

  std::string name() const override { return "cpu"; }
  std::string device() const override {
    return cpu_device(simd_ ? std::string(to_string(*simd_)) + ", " +
                                  std::to_string(simd_lanes(*simd_)) + " paths per packet"
                            : std::string(),
                      threads_);
  }
  int threads() const override { return threads_; }
  std::uint64_t max_chunk_paths() const override { return std::uint64_t(1) << 20; }

  void simulate(std::uint64_t first, std::uint64_t count, std::vector<double>& taep,
                std::vector<double>& reference, std::vector<double>* aux, std::vector<float>* x0,
                std::vector<float>* xN) override {
    // aux: no side value for exact-score models (zeros).
    size_path_outputs(count, problem_.d, problem_.reference, taep, reference, aux, x0, xN);
    const std::uint64_t d = std::uint64_t(problem_.d);
    const std::int64_t blocks = std::int64_t((count + physics::kReduceBlock - 1) / physics::kReduceBlock);
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads_)
    for (std::int64_t b = 0; b < blocks; ++b) {
      const std::uint64_t off = std::uint64_t(b) * physics::kReduceBlock;
      const int n = int(std::min<std::uint64_t>(physics::kReduceBlock, count - off));
      run(first + off, n, taep.data() + off, problem_.reference ? reference.data() + off : nullptr,
          x0 ? x0->data() + off * d : nullptr, xN ? xN->data() + off * d : nullptr);
    }
  }

  void simulate_reverse(std::uint64_t first, std::uint64_t count, bool with_taep,
                        std::vector<double>* taep, std::vector<double>* reference,
                        std::vector<float>* samples) override {
    const bool with_ref = with_taep && problem_.reference;
    if (taep) taep->assign(with_taep ? count : 0, 0.0);
    if (reference) reference->assign(with_ref ? count : 0, 0.0);
    if (samples) samples->assign(count * std::uint64_t(problem_.d), 0.f);
    double* s = taep && with_taep ? taep->data() : nullptr;
    double* r = reference && with_ref ? reference->data() : nullptr;
    float* x = samples ? samples->data() : nullptr;
    constexpr std::uint64_t kBlock = 1024;  // paths per OpenMP work item
    const std::int64_t blocks = std::int64_t((count + kBlock - 1) / kBlock);
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads_)
    for (std::int64_t b = 0; b < blocks; ++b) {
      const std::uint64_t off = std::uint64_t(b) * kBlock;
      const int n = int(std::min(kBlock, count - off));
      double* s_b = s ? s + off : nullptr;
      double* r_b = r ? r + off : nullptr;
      float* x_b = x ? x + off * std::uint64_t(problem_.d) : nullptr;
      if (simd_) {
        simulate_reverse_simd(*simd_, reverse_view_, first + off, n, with_taep, s_b, r_b, x_b);
        continue;
      }
      dispatch_dim(problem_.d, [&](auto dim) {
        simulate_reverse_range<decltype(dim)::value>(reverse_view_, first + off, n, with_taep, s_b,
                                                     r_b, x_b);
      });
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
          const int slot = physics::histogram_slot(taep[i], r ? r[i] : 0.0, r != nullptr, hist.lo,
                                                   inv_w, hist.bins);
          if (slot >= 0) counts[std::size_t(slot)]++;
        }
      }
#pragma omp critical
      for (std::size_t i = 0; i < counts.size(); ++i) out.histogram[i] += counts[i];
    }
  }

 private:
  void run(std::uint64_t first, int n, double* taep, double* ref, float* x0 = nullptr,
           float* xN = nullptr) const {
    if (simd_) return simulate_range_simd(*simd_, view_, first, n, taep, ref, x0, xN);
    dispatch_dim(problem_.d, [&](auto dim) {
      simulate_range<decltype(dim)::value>(view_, first, n, taep, ref, x0, xN);
    });
  }

  ForwardProblem problem_;
  physics::ForwardView view_;
  int threads_;
  std::optional<SimdIsa> simd_;  // the vector loop's instruction set; none: the scalar loop
  ReverseEndTables reverse_end_;
  physics::ReverseView reverse_view_;
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(const ForwardProblem& problem, int threads,
                                          CpuLoop loop) {
  if (problem.mlp) return make_cpu_mlp_backend(problem, threads);
  return std::make_unique<CpuBackend>(problem, threads, loop);
}

}  // namespace detail
}  // namespace taep

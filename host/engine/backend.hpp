#pragma once
// The interface the engine drives; one implementation per backend (host/cpu/cpu_backend.cpp,
// kernels/cuda_backend.cu, or host/cuda_stubs.cpp when built without CUDA).
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "host/problem/forward_problem.hpp"
#include "taep/physics/accumulators.hpp"

namespace taep {
namespace detail {

// What one chunk reduces to: one PathStats per reduce block (in path order) and histogram counts
// laid out [underflow, bin 0 .. bin bins-1, overflow].
struct ChunkStats {
  std::vector<physics::PathStats> blocks;
  std::vector<std::uint64_t> histogram;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  virtual std::string device() const = 0;
  virtual int threads() const { return 1; }
  // Largest chunk (paths) that fits this backend's memory.
  virtual std::uint64_t max_chunk_paths() const = 0;
  // Paths [first, first + count), first a multiple of kReduceBlock: simulate and reduce.
  virtual void run_chunk(std::uint64_t first, std::uint64_t count, const HistogramSpec& hist,
                         ChunkStats& out) = 0;
  // Per-path values to host memory (reference empty unless the problem has one; aux, when asked
  // for, the per-path side value of the reduction: the probe-noise variance of S, else zeros).
  // x0 and xN, when not null, are resized to count * d and get each path's start point x(t_min)
  // and end point x(t_max), row-major, as the path held them (float). Asking for them changes no
  // other value; only per-path output asks (run_chunk never keeps them).
  virtual void simulate(std::uint64_t first, std::uint64_t count, std::vector<double>& taep,
                        std::vector<double>& reference, std::vector<double>* aux = nullptr,
                        std::vector<float>* x0 = nullptr, std::vector<float>* xN = nullptr) = 0;
  // Reverse-process paths [first, first + count) (physics/reverse_path.hpp; path i draws only from
  // its own streams kReverseStart, kReverseNoise and, for Hutchinson, kHutchinson, so its values do
  // not depend on first, count, batching or threads). Each output that is not null is resized and
  // filled: with_taep, S read on the forward clock into *taep (count) and, for exact-score models,
  // the closed form into *reference (count; cleared otherwise or without with_taep); the samples
  // x(t_min) into *samples (count * d, row-major). The default throws BackendUnavailable.
  virtual void simulate_reverse(std::uint64_t first, std::uint64_t count, bool with_taep,
                                std::vector<double>* taep, std::vector<double>* reference,
                                std::vector<float>* samples);
};

// Sizes Backend::simulate's outputs for `count` paths of dimension d: taep and each non-null aux
// zeros, reference count zeros with a closed form (else empty), each non-null x0 and xN count * d.
inline void size_path_outputs(std::uint64_t count, int d, bool with_reference,
                              std::vector<double>& taep, std::vector<double>& reference,
                              std::vector<double>* aux, std::vector<float>* x0,
                              std::vector<float>* xN) {
  taep.assign(count, 0.0);
  reference.assign(with_reference ? count : 0, 0.0);
  if (aux) aux->assign(count, 0.0);
  for (std::vector<float>* v : {x0, xN})
    if (v) v->assign(count * std::uint64_t(d), 0.f);
}

// The grid's last point t_N = t_max in host memory, which reverse paths need and forward paths never
// evaluate (physics::ReverseView::last, model_last): the step scalars there and, for exact-score
// models, the model's per-component coefficients (model.K; empty for learned models).
struct ReverseEndTables {
  physics::StepScalars last{};
  std::vector<physics::ComponentStep> model_last;
};
ReverseEndTables build_reverse_end(const ForwardProblem& problem);

// Which loop the CPU backend runs. automatic: the widest vector loop this build and CPU have
// (packets of 16 paths with AVX-512, of 8 with AVX2; host/cpu/isa_*.cpp), else the scalar loop;
// the environment can force TAEP_CPU_SIMD=0 (scalar) or =avx2. The others by request (tests
// compare them); asking for a vector loop that cannot run throws BackendUnavailable.
enum class CpuLoop { automatic, scalar, avx2, avx512 };
std::unique_ptr<Backend> make_cpu_backend(const ForwardProblem& problem, int threads,
                                          CpuLoop loop = CpuLoop::automatic);
// Learned-score (MLP) problems: step-synchronous batches with CPU-BLAS GEMMs (cpu_mlp_backend.cpp).
std::unique_ptr<Backend> make_cpu_mlp_backend(const ForwardProblem& problem, int threads);
// Learned-score (MLP) problems on the GPU: cuBLAS GEMMs per layer over a chunk (cuda_mlp_backend.cu).
std::unique_ptr<Backend> make_cuda_mlp_backend(const ForwardProblem& problem);
// Throws BackendUnavailable when built without CUDA or without a usable device.
std::unique_ptr<Backend> make_cuda_backend(const ForwardProblem& problem);
bool cuda_device_available(std::string* why);

// Reduces one block of per-path values (count <= kReduceBlock) in the fixed order of
// physics/accumulators.hpp; the CUDA reduction kernel follows the same order.
physics::PathStats reduce_block_cpu(const double* taep, const double* reference, int count,
                                    const double* aux = nullptr);

}  // namespace detail
}  // namespace taep

#pragma once
// Batched MLP score and divergence on the CPU, the divergence by forward-mode tangents (d per point
// for the exact trace, P per point for Hutchinson's v^T J v). Two implementations:
//   - vector kernels (host/cpu/isa_avx512.cpp, host/cpu/isa_avx2.cpp, one per instruction set,
//     entered only where the CPU has it): points in the lanes of a SIMD packet (16 with AVX-512, 8
//     with AVX2), each layer one register-tiled pass over the packed weights that carries the
//     forward values and up to kMlpGroup - 1 tangents at once, bias + SiLU + derivative + tangent
//     scaling fused into the pass. Every lane is one point with its own, fixed order of operations,
//     so a point's result does not depend on the other points of its packet or batch.
//   - CPU-BLAS GEMMs (OpenBLAS) over a batch of points, where no vector kernel runs (or
//     TAEP_CPU_SIMD=0).
// Not thread-safe per object: each thread owns one.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "taep/mlp.hpp"
#include "taep/physics/forward_taep.hpp"
#include "taep/physics/schedule.hpp"

namespace taep {
namespace detail {

// Which implementation evaluates the network (and runs the learned-score CPU backend's paths).
enum class MlpIsa { blas, avx2, avx512 };
const char* to_string(MlpIsa isa);
// The widest vector kernel this build and CPU have; TAEP_CPU_SIMD=0 forces the BLAS path, =avx2 the
// AVX2 kernels (as for the mixture backend's loop).
MlpIsa mlp_cpu_isa();

// Points per packet (SIMD lanes) and rows per register tile of the vector kernels.
constexpr int mlp_lanes(MlpIsa isa) { return isa == MlpIsa::avx512 ? 16 : 8; }
constexpr int mlp_tile(MlpIsa isa) { return isa == MlpIsa::avx512 ? 8 : 4; }
// Streams per pass of a vector kernel: the forward values and up to kMlpGroup - 1 tangents, or
// kMlpGroup tangents.
constexpr int kMlpGroup = 3;
// Paths per step-synchronous batch of the CPU backend (a multiple of every lane count).
constexpr int kMlpBatch = 256;

// A layer's weights packed for the vector kernels.
struct MlpKernelLayer {
  int in = 0;       // inputs the kernel reads (layer 0: the d columns of x; the embedding is bias0)
  int out = 0;      // outputs
  int out_pad = 0;  // outputs rounded up to the tile height; padding rows have zero weight and bias
  const float* w = nullptr;     // w[j0 * in + k * tile + r] = W[j0 + r][k], j0 a multiple of tile
  const float* bias = nullptr;  // out_pad values (layer 0: unused, bias0 of the view instead)
  const float* raw = nullptr;   // the layer's row-major weight W[j][k] at raw[j * ld + k]
  int ld = 0;
};

struct MlpKernelView {
  int d = 0;
  int hidden = 0;  // hidden layers; layer[hidden] is the linear output
  int tile = 0;
  int width = 0;   // largest out_pad of a hidden layer (rows of the activation buffers)
  const MlpKernelLayer* layer = nullptr;
  const float* bias0 = nullptr;  // layer 0's bias at the current time: W_t emb(t) + b_0 (out_pad)
  float out_scale = 1.f;
};

class MlpCpuEvaluator {
 public:
  explicit MlpCpuEvaluator(const MlpModel& model);
  MlpCpuEvaluator(const MlpModel& model, MlpIsa isa);  // isa must be available (see mlp_cpu_isa)

  // Per-step precomputation shared by every point: the time embedding folded into the first
  // layer's bias, and the eps-parameterization factor.
  void set_time(double t, double noise);  // noise: the schedule's noise variance n(t)

  // n points X [n x d] -> score [n x d]. Divergence, when `div` is not null:
  //   probes == 0: exact trace of the Jacobian, div[n];
  //   probes  > 0: Hutchinson estimates v^T J v for the probe vectors V [n x probes x d], written to
  //                div[n x probes] (the caller averages).
  void evaluate(int n, const float* X, float* score, float* div, int probes = 0,
                const float* V = nullptr);

  int dim() const { return d_; }
  MlpIsa isa() const { return isa_; }
  // The packed weights and the current time's bias0 for the vector kernels.
  const MlpKernelView& kernel_view() const;

 private:
  void ensure(int n, int tangents_per_point);
  void pack();
  void evaluate_blas(int n, const float* X, float* score, float* div, int probes, const float* V);

  const MlpModel& model_;
  int d_;
  MlpIsa isa_;
  std::vector<float> bias0_;  // W_t emb(t) + b_0 (padded to the tile height)
  float out_scale_ = 1.f;     // 1, or -1/sqrt(n(t)) for eps-prediction
  std::vector<double> emb_;
  // Vector kernels: packed weights, padded biases, their view; a 64-byte aligned workspace.
  std::vector<std::vector<float>> packed_w_, packed_b_;
  std::vector<MlpKernelLayer> klayers_;
  MlpKernelView view_;
  std::vector<float> work_;
  // BLAS path workspaces: activations and derivatives per layer, tangents in two ping-pong buffers.
  std::vector<float> act_a_, act_b_, deriv_, tan_a_, tan_b_, out_tan_;
  int capacity_points_ = 0, capacity_tangents_ = 0;
};

// A 64-byte aligned float workspace of at least `floats` values inside `storage`.
float* aligned_workspace(std::vector<float>& storage, std::size_t floats);

// Floats of workspace the vector kernels need: evaluating rows (MlpCpuEvaluator::evaluate) with T
// tangents per point, and one backend batch of kMlpBatch paths with P probes (0: exact).
std::size_t mlp_rows_workspace(const MlpKernelView& v, MlpIsa isa, int tangents);
std::size_t mlp_batch_workspace(const MlpKernelView& v, MlpIsa isa, int probes);

// One batch of paths of a learned-score problem, run by a vector kernel unit: paths
// [first, first + n), n <= kMlpBatch, S to taep[0..n) and the probe-noise variance to aux[0..n).
struct MlpBatchJob {
  const physics::ForwardView* view = nullptr;
  physics::Schedule schedule;
  physics::TimeGrid grid;
  int probes = 0;  // Hutchinson probes per step; 0: exact divergence
  bool rademacher = true;
  std::uint64_t first = 0;
  int n = 0;
  double* taep = nullptr;
  double* aux = nullptr;
  physics::PathEnds<float> ends;  // n * d start and end points, where not null
};

// Entry points of the vector kernel units (call only for an available MlpIsa).
namespace avx2 {
void mlp_evaluate_rows(const MlpKernelView& v, int n, const float* X, float* score, float* div,
                       int probes, const float* V, float* work);
void mlp_run_batch(const MlpBatchJob& job, MlpCpuEvaluator& net, float* work);
}  // namespace avx2
namespace avx512 {
void mlp_evaluate_rows(const MlpKernelView& v, int n, const float* X, float* score, float* div,
                       int probes, const float* V, float* work);
void mlp_run_batch(const MlpBatchJob& job, MlpCpuEvaluator& net, float* work);
}  // namespace avx512

}  // namespace detail
}  // namespace taep

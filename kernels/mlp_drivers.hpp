#pragma once
// Launch arguments and drivers of the learned-score (MLP) kernels; host code never writes <<<>>>.
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "taep/physics/forward_taep.hpp"
#include "taep/physics/mlp_fused.hpp"
#include "taep/physics/reverse_path.hpp"

namespace taep {
namespace detail {

// Per-path state and scratch of one chunk (device pointers).
struct MlpPathBuffers {
  float* x = nullptr;           // n*d: x_k
  float* dw = nullptr;          // n*d: dW_k (forward paths)
  float* x_next = nullptr;      // n*d: x_{k+1}, for the implied forward increment (reverse paths)
  float* probes = nullptr;      // n*P*d (Hutchinson)
  float* s_target = nullptr;    // n*d
  float* div_target = nullptr;  // n
  double* taep = nullptr;       // n: S (reverse paths: read on the forward clock, with TAEP)
  double* aux = nullptr;        // n: probe-noise variance of S (forward paths)
};

// One step of a chunk, forward or reverse. Forward paths: steps k = 0 .. N-1 of view.fwd (N =
// view.fwd.steps). Reverse paths (physics/reverse_path.hpp), at grid point k = N .. 0 (t_N = t_max):
// prepare (k < N, with TAEP: probes and the target's score at x_k), the network at (x_k, t_k) by
// the backend's GEMMs, then finish (the TAEP increment of forward step k when k < N, the reverse
// step from t_k when k > 0).
struct MlpStepLaunch {
  physics::ReverseView view;  // view.fwd: target tables, steps, init, seed (device pointers);
                              // view.last: the scalars at t_N (reverse paths)
  std::uint64_t first = 0;
  int n = 0;
  int step = 0;               // forward step k, or reverse grid point k
  int probes = 0;             // Hutchinson probes per TAEP evaluation; 0: exact divergence
  bool rademacher = true;
  bool with_taep = true;      // reverse paths: whether S is read on the forward clock
  MlpPathBuffers buf;
  cudaStream_t stream = nullptr;
};

struct MlpFinishLaunch {
  MlpStepLaunch step;
  const float* out = nullptr;      // n*d network output at (x_k, t_k), before bias
  const float* out_bias = nullptr; // d
  float out_scale = 1.f;           // 1, or -1/sqrt(1 - abar(t_k)) for eps-prediction
  const float* out_tan = nullptr;  // n*T*d output tangents (forward; reverse with TAEP and k < N)
};

// ---- Forward paths ---------------------------------------------------------------------------------
// x0 ~ p(x, t_min) and S = 0 for paths first .. first+n-1.
void launch_mlp_init(const MlpStepLaunch& a);
// Noise, probes and the target's score and divergence of step a.step.
void launch_mlp_prepare(const MlpStepLaunch& a);
// Score and divergence of the model, TAEP increment, Euler-Maruyama step.
void launch_mlp_finish(const MlpFinishLaunch& a);

// ---- Reverse-process paths -------------------------------------------------------------------------
// x_N ~ N(0, I) (stream kReverseStart) and S = 0 for paths first .. first+n-1.
void launch_mlp_reverse_init(const MlpStepLaunch& a);
// Grid point a.step < N with TAEP: the probes of this TAEP evaluation (stream kHutchinson, values
// (N-1-k) P d ..) and the target's score and divergence at x_k.
void launch_mlp_reverse_prepare(const MlpStepLaunch& a);
// The model's score (and divergence), the TAEP increment of forward step k (implied dW_k), then the
// reverse step from t_k with xi from stream kReverseNoise (values (N-k) d ..), x_{k+1} <- x_k.
void launch_mlp_reverse_finish(const MlpFinishLaunch& a);

// z[rows x width] += bias (per column), then SiLU in place, derivative into deriv (unless null).
void launch_bias_silu(int rows, int width, const float* bias, float* z, float* deriv,
                      cudaStream_t stream);
// tan[(p*d + i) x width] = W0[:, i] * deriv[p] (exact divergence: tangents e_i through layer 0).
void launch_tangent_basis(int n, int d, int width, const float* w0, int ld_w0, const float* deriv,
                          float* tan, cudaStream_t stream);
// A reference network (reference.type "mlp", docs/real-data.md section 2): s_target[n x d] =
// (out + bias) * scale, its score; and to[0..total) -= ratio * from, which folds its output
// tangents into the model's (ratio = its output scale over the model's), so that the finish
// kernels' estimates are those of the difference of the two divergences.
void launch_reference_score(int n, int d, const float* out, const float* bias, float scale,
                            float* s_target, cudaStream_t stream);
void launch_subtract_scaled(std::size_t total, float ratio, const float* from, float* to,
                            cudaStream_t stream);
// tan[(p*T + i) x width] *= deriv[p x width].
void launch_scale_tangents(int n, int T, int width, const float* deriv, float* tan,
                           cudaStream_t stream);

// ---- The fused forward kernel (kernels/fused_mlp_kernel.cu, docs/fused-mlp.md) --------------------
// Forward paths first .. first+n-1 from x0 through every step in one launch, a warp per 16 paths,
// the network on tensor cores (TF32): S to taep[0..n), the probe-noise variance of S to aux[0..n).
constexpr int kFusedMaxWarps = 8;  // warps per block
struct FusedMlpLaunch {
  physics::ForwardView view;   // target tables, steps, init, seed (device pointers)
  physics::fused::Net net;     // unbound: the kernel binds it to its shared-memory copy of weights
  const float* weights = nullptr;  // the packed block (physics::fused::pack), weight_floats floats
  std::size_t weight_floats = 0;
  const float* bias0 = nullptr;    // (steps + 1) x out0: layer 0's bias per grid point
  int out0 = 0;
  const float* out_scale = nullptr;  // steps + 1: the output factor per grid point
  std::uint64_t first = 0;
  int n = 0;
  bool rademacher = true;
  int warps = 1;
  double* taep = nullptr;
  double* aux = nullptr;
  float* x0 = nullptr;  // n * d start and end points, or null (per-path output only)
  float* xN = nullptr;
  cudaStream_t stream = nullptr;
};
// Shared memory of a block of `warps` warps: the weights, two rows of layer 0's bias, the tiles.
inline std::size_t fused_mlp_smem_bytes(const physics::fused::Net& net, std::size_t weight_floats,
                                        int warps) {
  return sizeof(float) * (weight_floats + 2 * std::size_t(net.layer[0].out) +
                          std::size_t(warps) * physics::fused::scratch_floats(net));
}
void launch_fused_mlp_forward(const FusedMlpLaunch& a);

}  // namespace detail
}  // namespace taep

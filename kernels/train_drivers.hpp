#pragma once
// Launch arguments and drivers of the DSM training kernels (train_kernels.cu), which the CUDA
// trainer (cuda_trainer.cu) runs between its cuBLAS GEMMs; host code never writes <<<>>>.
//
// Device parameter layout. The trainer keeps every layer as one augmented, row-major matrix
// [out x ld] whose row j is [W[j, 0..in), b[j], 0 ... 0], ld = in + 1 rounded up to a multiple of 4
// (16-byte aligned rows for cuBLAS). Each layer's input activations carry a constant 1 in column
// `in` (same leading dimension), so one GEMM gives X W^T + b in the forward pass and one GEMM gives
// both dW and db = column sums of dZ in the backward pass: the bias gradient is a fixed-order
// reduction inside cuBLAS, with no separate kernel. The padding columns stay zero in the parameters,
// gradients, moments and EMA (no GEMM writes them, the Adam kernel skips them).
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "taep/physics/dsm.hpp"

namespace taep {
namespace detail {

// One linear layer in the device layout.
struct TrainDeviceLayer {
  int in = 0, out = 0;
  int ld = 0;               // leading dimension: in + 1 rounded up to a multiple of 4
  std::size_t offset = 0;   // of row 0 in the device parameter vector
};

constexpr int train_leading_dimension(int in) { return (in + 1 + 3) / 4 * 4; }

// Draws the examples of one step and forms layer 0's input rows [x_t (d), emb(t) (E), 1, 0..].
struct TrainExamplesLaunch {
  physics::DsmData data;                // device pointers
  const std::uint64_t* step = nullptr;  // device: the 0-based step whose examples are drawn
  std::uint64_t seed = 0;
  int batch = 0;
  int embedding_dim = 0;
  double time_scale = 1.0, max_period = 10000.0;
  bool eps = false;                     // eps-prediction network
  float* input = nullptr;               // [batch x ld_input]; columns d+E.. are left alone
  int ld_input = 0;
  float* z = nullptr;                   // [batch x d] the noise of each example
  float* coef = nullptr;                // [batch] a of the loss |a o + z|^2
  cudaStream_t stream = nullptr;
};
void launch_train_examples(const TrainExamplesLaunch& a);

// Hidden layer activation in place: z[r * ld + c] <- SiLU(z[r * ld + c]) and
// deriv[r * width + c] <- SiLU'(z) for r < rows, c < width (the bias is already in z).
void launch_train_silu(int rows, int width, float* z, int ld, float* deriv, cudaStream_t stream);

// Per example i < batch: loss[i] = |a o + z|^2 and grad[i] = dL/do of the batch-mean loss
// (physics::dsm_example_loss with grad_scale 1/batch); o, z, grad are [batch x d].
struct TrainOutputLaunch {
  int batch = 0, d = 0;
  const float* o = nullptr;
  const float* z = nullptr;
  const float* coef = nullptr;
  float grad_scale = 1.f;
  float* loss = nullptr;
  float* grad = nullptr;
  cudaStream_t stream = nullptr;
};
void launch_train_output(const TrainOutputLaunch& a);

// Backward through SiLU: g[e] *= deriv[e] for e < count.
void launch_train_scale_by_derivative(std::size_t count, float* g, const float* deriv,
                                      cudaStream_t stream);

// First pass of the global gradient norm, and the batch loss. Blocks 0..blocks-1 write the sum of
// g^2 over their fixed slice of the gradient (in double) to partials[block]; one more block sums
// the per-example losses in a fixed order and writes the batch mean to *batch_loss, and, when the
// pointers are set, adds it to *loss_sum and increments *steps_done (the step counter the next
// step's examples and this step's Adam update read).
struct TrainNormLaunch {
  const float* grad = nullptr;
  std::size_t count = 0;
  double* partials = nullptr;           // train_norm_blocks(count)
  const float* loss = nullptr;          // [batch]
  int batch = 0;
  double* batch_loss = nullptr;
  double* loss_sum = nullptr;           // or nullptr
  std::uint64_t* steps_done = nullptr;  // or nullptr
  cudaStream_t stream = nullptr;
};
int train_norm_blocks(std::size_t count);
void launch_train_norm(const TrainNormLaunch& a);

// Second pass and the update: every block sums the partials in the same fixed order (so all
// agree bitwise on the norm N), takes clip_scale(N) and Adam's coefficients of step *steps_done
// (1-based here: the norm kernel has already counted this step), and applies adam_ema_update to
// its share of every layer's real (non-padding) parameters. Block (0, 0) adds N to *norm_sum.
struct TrainAdamLaunch {
  float* param = nullptr;
  float* m = nullptr;
  float* v = nullptr;
  float* ema = nullptr;
  const float* grad = nullptr;
  const TrainDeviceLayer* layers = nullptr;  // device array
  int layer_count = 0;
  std::size_t max_layer_size = 0;            // largest out * ld
  const double* partials = nullptr;
  int partial_count = 0;
  const std::uint64_t* steps_done = nullptr;
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, adam_eps = 1e-8, ema_decay = 0.999;
  double clip_norm = 1.0;
  double* norm_sum = nullptr;
  cudaStream_t stream = nullptr;
};
void launch_train_adam(const TrainAdamLaunch& a);

}  // namespace detail
}  // namespace taep

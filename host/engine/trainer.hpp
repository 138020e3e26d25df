#pragma once
// The interface `taep::train` drives; one implementation per backend (host/cpu/cpu_trainer.cpp,
// kernels/cuda_trainer.cu, or a stub in host/cuda_stubs.cpp when built without CUDA).
//
// A TrainProblem is the validated TrainConfig flattened: the network's shapes and its initial
// weights as one flat parameter vector, the data as plain arrays for physics::DsmData, and the
// optimizer's constants. The per-example and per-parameter arithmetic is physics/dsm.hpp; a trainer
// adds the network's forward and backward passes (GEMMs) and the reductions over the batch.
//
// Flat parameter layout (the trainer's parameters, gradients, Adam moments and EMA all use it):
// layer 0's weight [out x in] row-major (PyTorch's nn.Linear layout), layer 0's bias [out], layer
// 1's weight, layer 1's bias, ..., the output layer's weight and bias. Layer 0's input is
// [x_t (d), emb(t) (E)], so its weight's first d columns act on x_t.
//
// One step n of a trainer, on its current ("last") parameters p:
//   1. examples i = 0..B-1 of step n (physics::draw_example, stream train_example_subsequence(n, B, i)),
//      their embedding (physics::example_embedding) and the forward pass: hidden layers with SiLU
//      (physics::silu_and_derivative), then the linear output o;
//   2. the batch-mean loss and dL/do (physics::dsm_example_loss with grad_scale 1/B), the backward
//      pass to the gradient g of every parameter;
//   3. the global norm N of g (before clipping), the clip scale (physics::clip_scale) and, per
//      parameter, Adam and the EMA (physics::adam_ema_update with adam_coefficients(..., n + 1)).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "taep/mlp.hpp"
#include "taep/physics/dsm.hpp"
#include "taep/train.hpp"

namespace taep {
namespace detail {

// One dense layer's place in the flat parameter vector.
struct TrainLayer {
  int in = 0, out = 0;
  std::size_t weight = 0;  // offset of W [out x in], row-major
  std::size_t bias = 0;    // offset of b [out]
};

struct TrainProblem {
  // The network (mlp.hpp conventions).
  int d = 0;
  int embedding_dim = 0;
  double time_scale = 100.0, max_period = 10000.0;
  Parameterization parameterization = Parameterization::score;
  std::vector<TrainLayer> layers;    // hidden layers (SiLU) then the linear output layer
  std::size_t parameter_count = 0;
  int max_width() const;             // widest layer output
  std::vector<float> initial;        // flat initial parameters (drawn from kTrainInit)

  // The data, as host arrays behind physics::DsmData (data() points into them).
  int K = 0;                          // mixture components (0 with sample data)
  std::vector<float> mean, sigma;     // K*d, K
  std::vector<double> cum_w;          // K, last = 1
  std::vector<float> samples;         // sample_count*d (empty with mixture data)
  std::uint32_t sample_count = 0;
  double t_min = 1e-3;
  physics::Schedule schedule;
  physics::DsmData data() const;      // host pointers into this problem

  // The optimizer and the run.
  int batch = 2048;
  std::uint64_t steps = 0;
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, adam_eps = 1e-8;
  double clip_norm = 1.0;            // <= 0: no clipping
  double ema_decay = 0.999;
  std::uint64_t seed = 1;
  bool eps() const { return parameterization == Parameterization::eps; }
  // Adam's and the EMA's coefficients of step `step` (0-based).
  physics::AdamCoefficients adam(std::uint64_t step) const {
    return physics::adam_coefficients(lr, beta1, beta2, adam_eps, ema_decay, step + 1);
  }

  // GEMM flops of one step: 2 B in out per layer for the forward pass and for the weight gradients,
  // and again for the input gradients of every layer but the first (elementwise work not counted).
  double flops_per_step() const;

  // The flat parameters as a model (with this problem's metadata), and back.
  MlpModel to_model(const std::vector<float>& flat) const;
  std::vector<float> flatten(const MlpModel& model) const;
};

// Flattens a built problem (its data: the resolved target mixture or the samples read once).
TrainProblem make_train_problem(const taep::TrainProblem& problem);
// make_train_problem(build_train_problem(config)), for tests and tools.
TrainProblem make_train_problem(const TrainConfig& config);
// The initial weights, PyTorch nn.Linear's default law U(-1/sqrt(in), 1/sqrt(in)) for weights and
// biases, drawn from stream (seed, subsequence(kTrainInit, layer index)) as physics/dsm.hpp says.
std::vector<float> initial_parameters(const std::vector<TrainLayer>& layers,
                                      std::size_t parameter_count, std::uint64_t seed);

// Sums over the steps a trainer ran (read back at the end of run_steps).
struct TrainSums {
  double loss = 0;       // sum over steps of the batch-mean loss
  double grad_norm = 0;  // sum over steps of the global gradient norm before clipping
  std::uint64_t steps = 0;
};

// Everything a trainer carries from one step to the next: the steps run (Adam's counter), the
// last-iterate parameters, Adam's first and second moments and the EMA (flat layout). A trainer
// restored from it continues bitwise as if it had never stopped (a checkpoint of `taep train`).
struct TrainState {
  std::uint64_t steps = 0;
  std::vector<float> last, m, v, ema;
};

class Trainer {
 public:
  virtual ~Trainer() = default;
  virtual std::string name() const = 0;    // "cpu", "cuda"
  virtual std::string device() const = 0;  // for TrainResult::device
  virtual int threads() const { return 1; }
  // Runs steps [first, first + count); first must equal the number of steps already run (the Adam
  // counter). Adds each step's batch-mean loss and pre-clip gradient norm to `sums`, in step order:
  // a log window that snapshot steps cut into several calls with the same `sums` (train.cpp) must
  // sum bitwise as one call does.
  virtual void run_steps(std::uint64_t first, std::uint64_t count, TrainSums& sums) = 0;
  // The EMA and the last-iterate parameters (flat layout).
  virtual void read_parameters(std::vector<float>& ema, std::vector<float>& last) = 0;
  // The state after the steps run so far, and a state to continue from (before any run_steps or
  // after any; the next run_steps starts at state.steps).
  virtual TrainState state() = 0;
  virtual void restore(const TrainState& state) = 0;
  // For tests: the batch-mean loss of step `step`'s examples at the current last-iterate
  // parameters, and its gradient (flat layout, before clipping), without changing any state.
  virtual double loss_and_gradient(std::uint64_t step, std::vector<float>& grad) = 0;
};

// The problem must outlive the trainer. threads: CPU threads, 0 = all (OMP_NUM_THREADS). The CPU
// trainer's results are bitwise the same for every thread count.
std::unique_ptr<Trainer> make_cpu_trainer(const TrainProblem& problem, int threads);
// Throws BackendUnavailable when built without CUDA or without a usable device.
std::unique_ptr<Trainer> make_cuda_trainer(const TrainProblem& problem);

}  // namespace detail
}  // namespace taep
// taep: interface ready

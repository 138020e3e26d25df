// The CUDA trainer (host/engine/trainer.hpp): native DSM training of the score MLP on one GPU.
//
// One step, all on one stream, every buffer allocated once:
//   1 kernel   draws the batch's examples (Philox, as the CPU) and writes layer 0's input rows
//              [x_t, emb(t), 1];
//   per layer  one cuBLAS SGEMM (FP32) gives X W^T + b (the bias rides in the augmented layout of
//              train_drivers.hpp), then, for hidden layers, one kernel applies SiLU in place and
//              stores SiLU';
//   1 kernel   per-example loss and dL/do (physics::dsm_example_loss);
//   per layer  one SGEMM for [dW | db] = dZ^T [X | 1], one SGEMM for dX = dZ W (not for layer 0)
//              and one kernel for dZ of the layer below = dX * SiLU';
//   1 kernel   first pass of the global gradient norm (fixed slices, in double) plus the batch loss,
//              the log sum and the step counter;
//   1 kernel   second pass of the norm (redundantly in every block, in the same order), clip scale,
//              Adam and EMA over all parameters (one flat buffer).
// For the default 3 x 128 network that is 21 launches (plus any split-K reduction cuBLAS adds).
//
// CUDA graph: one step is captured once and replayed; kernel arguments are frozen in a graph, so the
// step index lives in device memory (steps_done), read by the examples kernel and by Adam's bias
// correction and incremented by the norm kernel. Per-step scalars stay on the device: the loss and
// gradient-norm sums are read back once per run_steps (one log window). At batch 2048 a step is a few
// tens of microseconds of small kernels, so the ~2-4 us per launch that a graph saves is a large
// share of the step.
//
// Determinism: cuBLAS is bitwise reproducible on one GPU for one stream and one workspace (we give it
// its own, so a captured GEMM picks the same kernel as an eager one); our reductions have a fixed
// order and use no floating-point atomics. So two runs with the same seed give the same bits.
//
// Cost of a step (default 3 x 128, d = 2, E = 16, B = 2048). GEMMs: 2 B sum_l out (in + 1) for the
// forward pass and again for [dW | db], 2 B sum_{l>0} out in for dX: 146 + 146 + 135 = 428 MFLOP;
// the elementwise work (SiLU and SiLU' of 3 x 262k values, the examples, Adam over 37k parameters)
// is ~20 MFLOP. Memory traffic ~39 MB: each GEMM reads its ~1 MB operands and writes ~1 MB, each
// SiLU and SiLU'-scaling pass moves 3 MB, Adam and the norm 1.4 MB; the working set (~10 MB) stays
// in the H100's 50 MB L2. At FP32 peak (~60 TFLOP/s) the flops take 7 us and the bytes ~12 us even
// from HBM, but these GEMMs (2048 x 128 x 128) fill only a fraction of the 132 SMs, so a step is
// latency-bound: 11 GEMMs of ~3-5 us and 10 small kernels of ~2-3 us, ~50-90 us per step, i.e.
// 5e4 steps in roughly 3-5 s (11k-20k steps/s).
#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "cuda_check.cuh"
#include "cuda_raii.cuh"
#include "device_buffer.cuh"
#include "device_problem.cuh"
#include "host/engine/backend.hpp"
#include "host/engine/trainer.hpp"
#include "taep/error.hpp"
#include "train_drivers.hpp"

namespace taep {
namespace detail {
namespace {

// cuBLAS's recommended workspace on Hopper. Given explicitly so that graph capture never has to
// allocate one and captured and eager GEMMs run the same kernels.
constexpr std::size_t kCublasWorkspaceBytes = std::size_t(32) << 20;

// Owner of an instantiated graph.
class CudaGraphExec {
 public:
  CudaGraphExec() = default;
  CudaGraphExec(const CudaGraphExec&) = delete;
  CudaGraphExec& operator=(const CudaGraphExec&) = delete;
  ~CudaGraphExec() { reset(); }
  void reset() {
    if (exec_) TAEP_CUDA_CHECK_PRINT(cudaGraphExecDestroy(exec_));
    exec_ = nullptr;
  }
  // Ends the capture on `stream` and instantiates what it recorded.
  void end_capture(cudaStream_t stream) {
    cudaGraph_t graph = nullptr;
    TAEP_CUDA_CHECK(cudaStreamEndCapture(stream, &graph));
    const cudaError_t status = cudaGraphInstantiate(&exec_, graph, 0);
    TAEP_CUDA_CHECK_PRINT(cudaGraphDestroy(graph));
    if (status != cudaSuccess) {
      exec_ = nullptr;
      throw_cuda("cudaGraphInstantiate(&exec_, graph, 0)", status, __FILE__, __LINE__);
    }
  }
  // After an exception during capture: end it and drop the partial graph, so the stream is usable.
  static void abandon_capture(cudaStream_t stream) noexcept {
    cudaGraph_t graph = nullptr;
    if (cudaStreamEndCapture(stream, &graph) == cudaSuccess && graph) cudaGraphDestroy(graph);
    cudaGetLastError();
  }
  explicit operator bool() const { return exec_ != nullptr; }
  cudaGraphExec_t get() const { return exec_; }

 private:
  cudaGraphExec_t exec_ = nullptr;
};

class CudaTrainer final : public Trainer {
 public:
  explicit CudaTrainer(const TrainProblem& problem)
      : P_(problem), device_(select_device() + "; cuBLAS FP32 SGEMM, one CUDA graph per step") {
    const int nl = int(P_.layers.size());
    TAEP_EXPECTS(nl >= 2, "a network has at least one hidden layer and the output layer");
    TAEP_EXPECTS(P_.initial.size() == P_.parameter_count, "problem without initial parameters");
    TAEP_EXPECTS(P_.layers.front().in == P_.d + P_.embedding_dim && P_.layers.back().out == P_.d,
                 "layer shapes do not match d and the embedding");
    TAEP_EXPECTS(P_.batch > 0, "empty batch");
    // The device layout (train_drivers.hpp).
    std::size_t offset = 0;
    for (int l = 0; l < nl; ++l) {
      const TrainLayer& src = P_.layers[std::size_t(l)];
      if (l > 0) TAEP_EXPECTS(src.in == P_.layers[std::size_t(l - 1)].out, "layer shapes do not chain");
      TrainDeviceLayer dl;
      dl.in = src.in;
      dl.out = src.out;
      dl.ld = train_leading_dimension(src.in);
      dl.offset = offset;
      offset += std::size_t(dl.out) * dl.ld;
      max_layer_size_ = std::max(max_layer_size_, std::size_t(dl.out) * dl.ld);
      layers_.push_back(dl);
    }
    device_count_ = offset;

    const std::size_t B = std::size_t(P_.batch), d = std::size_t(P_.d);
    const std::vector<float> initial = to_device_layout(P_.initial);
    param_ = DeviceBuffer<float>(initial);
    ema_ = DeviceBuffer<float>(initial);
    const std::vector<float> zeros(device_count_, 0.f);
    m_ = DeviceBuffer<float>(zeros);
    v_ = DeviceBuffer<float>(zeros);
    grad_ = DeviceBuffer<float>(zeros);  // the padding entries are never written again
    layer_table_ = DeviceBuffer<TrainDeviceLayer>(layers_);
    partials_ = DeviceBuffer<double>(std::size_t(train_norm_blocks(device_count_)));

    // Layer inputs [B x ld] with the constant 1 in column `in`, zero padding; the kernels and GEMMs
    // that fill them write only columns < in.
    for (const TrainDeviceLayer& l : layers_) {
      std::vector<float> host(B * std::size_t(l.ld), 0.f);
      for (std::size_t r = 0; r < B; ++r) host[r * std::size_t(l.ld) + std::size_t(l.in)] = 1.f;
      act_.emplace_back(host);
    }
    for (int l = 0; l + 1 < nl; ++l) deriv_.emplace_back(B * std::size_t(layers_[std::size_t(l)].out));
    const std::size_t width = std::size_t(P_.max_width());
    out_ = DeviceBuffer<float>(B * d);
    gout_ = DeviceBuffer<float>(B * d);
    noise_ = DeviceBuffer<float>(B * d);
    coef_ = DeviceBuffer<float>(B);
    loss_ = DeviceBuffer<float>(B);
    back_a_ = DeviceBuffer<float>(B * width);
    back_b_ = DeviceBuffer<float>(B * width);
    // Counters and sums: steps_done, the step used by loss_and_gradient, batch loss, log sums.
    counters_ = DeviceBuffer<std::uint64_t>(std::vector<std::uint64_t>{0, 0});
    scalars_ = DeviceBuffer<double>(std::vector<double>{0.0, 0.0, 0.0});

    // The data tables.
    mean_ = DeviceBuffer<float>(P_.mean);
    sigma_ = DeviceBuffer<float>(P_.sigma);
    cum_w_ = DeviceBuffer<double>(P_.cum_w);
    samples_ = DeviceBuffer<float>(P_.samples);
    data_ = P_.data();
    data_.mean = mean_.data();
    data_.sigma = sigma_.data();
    data_.cum_w = cum_w_.data();
    data_.samples = P_.samples.empty() ? nullptr : samples_.data();

    workspace_ = DeviceBuffer<unsigned char>(kCublasWorkspaceBytes);
    TAEP_CUDA_CHECK(cudaMemset(workspace_.data(), 0, workspace_.size()));  // defined bytes (initcheck)
    // cublasSetStream resets the workspace to cuBLAS's own pool: set the stream first.
    TAEP_CUBLAS_CHECK(cublasSetStream(blas_.get(), stream_.get()));
    TAEP_CUBLAS_CHECK(cublasSetWorkspace(blas_.get(), workspace_.data(), workspace_.size()));
    TAEP_CUBLAS_CHECK(cublasSetMathMode(blas_.get(), CUBLAS_DEFAULT_MATH));  // FP32, no TF32
    TAEP_CUBLAS_CHECK(cublasSetPointerMode(blas_.get(), CUBLAS_POINTER_MODE_HOST));
    // The uploads above went through the legacy default stream, with which the non-blocking
    // stream_ does not synchronize (and a pageable cudaMemcpy may return before its DMA ends).
    TAEP_CUDA_CHECK(cudaDeviceSynchronize());
  }

  ~CudaTrainer() override { TAEP_CUDA_CHECK_PRINT(cudaStreamSynchronize(stream_.get())); }

  std::string name() const override { return "cuda"; }
  std::string device() const override { return device_; }

  void run_steps(std::uint64_t first, std::uint64_t count, TrainSums& sums) override {
    TAEP_EXPECTS(first == done_, "run_steps must continue at the steps already run");
    if (count == 0) return;
    if (!step_graph_) capture_step();
    cudaStream_t st = stream_.get();
    // The sums continue on the device in step order from the caller's values.
    double host_sums[2] = {sums.loss, sums.grad_norm};
    TAEP_CUDA_CHECK(cudaMemcpyAsync(scalars_.data() + kLossSum, host_sums, sizeof host_sums,
                                    cudaMemcpyHostToDevice, st));
    for (std::uint64_t s = 0; s < count; ++s) TAEP_CUDA_CHECK(cudaGraphLaunch(step_graph_.get(), st));
    TAEP_CUDA_CHECK(cudaMemcpyAsync(host_sums, scalars_.data() + kLossSum, sizeof host_sums,
                                    cudaMemcpyDeviceToHost, st));
    TAEP_CUDA_CHECK(cudaStreamSynchronize(st));
    sums.loss = host_sums[0];
    sums.grad_norm = host_sums[1];
    sums.steps += count;
    done_ += count;
  }

  void read_parameters(std::vector<float>& ema, std::vector<float>& last) override {
    std::vector<float> e, p;
    ema_.copy_to_host(e, device_count_, stream_.get());
    param_.copy_to_host(p, device_count_, stream_.get());
    TAEP_CUDA_CHECK(cudaStreamSynchronize(stream_.get()));
    ema = to_flat_layout(e);
    last = to_flat_layout(p);
  }

  TrainState state() override {
    std::vector<float> p, m, v, e;
    param_.copy_to_host(p, device_count_, stream_.get());
    m_.copy_to_host(m, device_count_, stream_.get());
    v_.copy_to_host(v, device_count_, stream_.get());
    ema_.copy_to_host(e, device_count_, stream_.get());
    TAEP_CUDA_CHECK(cudaStreamSynchronize(stream_.get()));
    return {done_, to_flat_layout(p), to_flat_layout(m), to_flat_layout(v), to_flat_layout(e)};
  }

  void restore(const TrainState& s) override {
    cudaStream_t st = stream_.get();
    // Held until the stream has read them (the copies are asynchronous).
    const std::vector<float> p = to_device_layout(s.last), m = to_device_layout(s.m),
                             v = to_device_layout(s.v), e = to_device_layout(s.ema);
    const std::size_t bytes = device_count_ * sizeof(float);
    TAEP_CUDA_CHECK(cudaMemcpyAsync(param_.data(), p.data(), bytes, cudaMemcpyHostToDevice, st));
    TAEP_CUDA_CHECK(cudaMemcpyAsync(m_.data(), m.data(), bytes, cudaMemcpyHostToDevice, st));
    TAEP_CUDA_CHECK(cudaMemcpyAsync(v_.data(), v.data(), bytes, cudaMemcpyHostToDevice, st));
    TAEP_CUDA_CHECK(cudaMemcpyAsync(ema_.data(), e.data(), bytes, cudaMemcpyHostToDevice, st));
    TAEP_CUDA_CHECK(cudaMemcpyAsync(counters_.data() + kStepsDone, &s.steps, sizeof s.steps,
                                    cudaMemcpyHostToDevice, st));
    TAEP_CUDA_CHECK(cudaStreamSynchronize(st));
    done_ = s.steps;
  }

  double loss_and_gradient(std::uint64_t step, std::vector<float>& grad) override {
    cudaStream_t st = stream_.get();
    const std::uint64_t at = step;
    TAEP_CUDA_CHECK(cudaMemcpyAsync(counters_.data() + kProbeStep, &at, sizeof at,
                                    cudaMemcpyHostToDevice, st));
    enqueue_gradient(counters_.data() + kProbeStep);
    enqueue_norm(/*bookkeeping=*/false);
    double loss = 0;
    std::vector<float> g;
    grad_.copy_to_host(g, device_count_, st);
    TAEP_CUDA_CHECK(cudaMemcpyAsync(&loss, scalars_.data() + kBatchLoss, sizeof loss,
                                    cudaMemcpyDeviceToHost, st));
    TAEP_CUDA_CHECK(cudaStreamSynchronize(st));
    grad = to_flat_layout(g);
    return loss;
  }

 private:
  // Slots of counters_ and scalars_.
  enum : std::size_t { kStepsDone = 0, kProbeStep = 1 };
  enum : std::size_t { kBatchLoss = 0, kLossSum = 1, kNormSum = 2 };

  std::vector<float> to_device_layout(const std::vector<float>& flat) const {
    TAEP_EXPECTS(flat.size() == P_.parameter_count, "flat parameters of the wrong size");
    std::vector<float> dev(device_count_, 0.f);
    for (std::size_t l = 0; l < layers_.size(); ++l) {
      const TrainLayer& src = P_.layers[l];
      const TrainDeviceLayer& dl = layers_[l];
      for (int j = 0; j < dl.out; ++j) {
        float* row = dev.data() + dl.offset + std::size_t(j) * dl.ld;
        const float* w = flat.data() + src.weight + std::size_t(j) * src.in;
        std::copy(w, w + src.in, row);
        row[dl.in] = flat[src.bias + std::size_t(j)];
      }
    }
    return dev;
  }

  std::vector<float> to_flat_layout(const std::vector<float>& dev) const {
    std::vector<float> flat(P_.parameter_count, 0.f);
    for (std::size_t l = 0; l < layers_.size(); ++l) {
      const TrainLayer& dst = P_.layers[l];
      const TrainDeviceLayer& dl = layers_[l];
      for (int j = 0; j < dl.out; ++j) {
        const float* row = dev.data() + dl.offset + std::size_t(j) * dl.ld;
        std::copy(row, row + dl.in, flat.begin() + std::ptrdiff_t(dst.weight + std::size_t(j) * dst.in));
        flat[dst.bias + std::size_t(j)] = row[dl.in];
      }
    }
    return flat;
  }

  // cuBLAS column-major C[m x n] = op(A) op(B) (beta = 0). With row-major buffers a matrix
  // [rows x cols] with leading dimension ld is, to cuBLAS, its transpose [cols x rows].
  void sgemm(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, const float* A, int lda,
             const float* Bm, int ldb, float* C, int ldc) {
    const float one = 1.f, zero = 0.f;
    TAEP_CUBLAS_CHECK(cublasSgemm(blas_.get(), ta, tb, m, n, k, &one, A, lda, Bm, ldb, &zero, C, ldc));
  }

  // Examples of the step at *step, forward and backward pass: the gradient of the batch-mean loss
  // into grad_ (device layout), per-example losses into loss_.
  void enqueue_gradient(const std::uint64_t* step) {
    cudaStream_t st = stream_.get();
    const int B = P_.batch, d = P_.d, L = int(layers_.size()) - 1;
    const float* params = param_.data();

    TrainExamplesLaunch ex;
    ex.data = data_;
    ex.step = step;
    ex.seed = P_.seed;
    ex.batch = B;
    ex.embedding_dim = P_.embedding_dim;
    ex.time_scale = P_.time_scale;
    ex.max_period = P_.max_period;
    ex.eps = P_.eps();
    ex.input = act_[0].data();
    ex.ld_input = layers_[0].ld;
    ex.z = noise_.data();
    ex.coef = coef_.data();
    ex.stream = st;
    launch_train_examples(ex);

    // Forward. Layer l reads act_[l] [B x ld_l] (its input and the ones column) and writes its
    // pre-activation into the first `out` columns of act_[l + 1] (or out_ [B x d]):
    // Z^T [out x B] = W_aug [out x (in+1)] X_aug^T [(in+1) x B].
    for (int l = 0; l <= L; ++l) {
      const TrainDeviceLayer& ly = layers_[std::size_t(l)];
      const bool hidden = l < L;
      float* z = hidden ? act_[std::size_t(l + 1)].data() : out_.data();
      const int ldz = hidden ? layers_[std::size_t(l + 1)].ld : d;
      sgemm(CUBLAS_OP_T, CUBLAS_OP_N, ly.out, B, ly.in + 1, params + ly.offset, ly.ld,
            act_[std::size_t(l)].data(), ly.ld, z, ldz);
      if (hidden) launch_train_silu(B, ly.out, z, ldz, deriv_[std::size_t(l)].data(), st);
    }

    TrainOutputLaunch o;
    o.batch = B;
    o.d = d;
    o.o = out_.data();
    o.z = noise_.data();
    o.coef = coef_.data();
    o.grad_scale = 1.f / float(B);
    o.loss = loss_.data();
    o.grad = gout_.data();
    o.stream = st;
    launch_train_output(o);

    // Backward. dz: dL/dZ of layer l, [B x out] row-major (to cuBLAS dz^T [out x B], ld out).
    const float* dz = gout_.data();
    float* spare[2] = {back_a_.data(), back_b_.data()};
    int flip = 0;
    for (int l = L; l >= 0; --l) {
      const TrainDeviceLayer& ly = layers_[std::size_t(l)];
      // [dW | db]^T [(in+1) x out] = X_aug^T [(in+1) x B] dz [B x out], into the rows of the
      // augmented gradient (to cuBLAS its transpose, leading dimension ld).
      sgemm(CUBLAS_OP_N, CUBLAS_OP_T, ly.in + 1, ly.out, B, act_[std::size_t(l)].data(), ly.ld, dz,
            ly.out, grad_.data() + ly.offset, ly.ld);
      if (l == 0) break;
      // dX^T [in x B] = W^T [in x out] dz^T [out x B]: W's first `in` columns, read as cuBLAS's
      // [ld x out] with the first `in` rows. dX [B x in] row-major, ld in.
      float* dx = spare[flip];
      flip ^= 1;
      sgemm(CUBLAS_OP_N, CUBLAS_OP_N, ly.in, B, ly.out, params + ly.offset, ly.ld, dz, ly.out, dx, ly.in);
      launch_train_scale_by_derivative(std::size_t(B) * std::size_t(ly.in), dx,
                                       deriv_[std::size_t(l - 1)].data(), st);
      dz = dx;
    }
  }

  // The norm's first pass and the batch loss; with bookkeeping, the loss sum and the step counter.
  void enqueue_norm(bool bookkeeping) {
    TrainNormLaunch n;
    n.grad = grad_.data();
    n.count = device_count_;
    n.partials = partials_.data();
    n.loss = loss_.data();
    n.batch = P_.batch;
    n.batch_loss = scalars_.data() + kBatchLoss;
    n.loss_sum = bookkeeping ? scalars_.data() + kLossSum : nullptr;
    n.steps_done = bookkeeping ? counters_.data() + kStepsDone : nullptr;
    n.stream = stream_.get();
    launch_train_norm(n);
  }

  void enqueue_step() {
    enqueue_gradient(counters_.data() + kStepsDone);
    enqueue_norm(/*bookkeeping=*/true);
    TrainAdamLaunch a;
    a.param = param_.data();
    a.m = m_.data();
    a.v = v_.data();
    a.ema = ema_.data();
    a.grad = grad_.data();
    a.layers = layer_table_.data();
    a.layer_count = int(layers_.size());
    a.max_layer_size = max_layer_size_;
    a.partials = partials_.data();
    a.partial_count = int(partials_.size());
    a.steps_done = counters_.data() + kStepsDone;
    a.lr = P_.lr;
    a.beta1 = P_.beta1;
    a.beta2 = P_.beta2;
    a.adam_eps = P_.adam_eps;
    a.ema_decay = P_.ema_decay;
    a.clip_norm = P_.clip_norm;
    a.norm_sum = scalars_.data() + kNormSum;
    a.stream = stream_.get();
    launch_train_adam(a);
  }

  void capture_step() {
    cudaStream_t st = stream_.get();
    // Warm-up outside the capture: the first use of each kernel and GEMM shape (module loading,
    // cuBLAS's first-call setup) then never happens inside it. It changes no training state: a
    // gradient of the current step's examples and the loss of the norm kernel's side block.
    TAEP_CUDA_CHECK(cudaMemcpyAsync(counters_.data() + kProbeStep, counters_.data() + kStepsDone,
                                    sizeof(std::uint64_t), cudaMemcpyDeviceToDevice, st));
    enqueue_gradient(counters_.data() + kProbeStep);
    enqueue_norm(/*bookkeeping=*/false);
    TAEP_CUDA_CHECK(cudaStreamSynchronize(st));

    TAEP_CUDA_CHECK(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal));
    try {
      enqueue_step();
    } catch (...) {
      CudaGraphExec::abandon_capture(st);
      throw;
    }
    step_graph_.end_capture(st);
    // Upload the executable graph now rather than on its first launch.
    TAEP_CUDA_CHECK(cudaGraphUpload(step_graph_.get(), st));
  }

  const TrainProblem& P_;
  std::string device_;
  std::vector<TrainDeviceLayer> layers_;
  std::size_t device_count_ = 0;    // parameters in the device layout (with padding)
  std::size_t max_layer_size_ = 0;  // largest out * ld
  std::uint64_t done_ = 0;
  physics::DsmData data_;           // device pointers

  // Declared before the handle, which is destroyed first (it uses both).
  CudaStream stream_;
  DeviceBuffer<unsigned char> workspace_;
  CublasHandle blas_;

  DeviceBuffer<float> param_, m_, v_, ema_, grad_;
  DeviceBuffer<TrainDeviceLayer> layer_table_;
  DeviceBuffer<double> partials_;
  std::vector<DeviceBuffer<float>> act_, deriv_;
  DeviceBuffer<float> out_, gout_, noise_, coef_, loss_, back_a_, back_b_;
  DeviceBuffer<std::uint64_t> counters_;
  DeviceBuffer<double> scalars_;
  DeviceBuffer<float> mean_, sigma_, samples_;
  DeviceBuffer<double> cum_w_;
  CudaGraphExec step_graph_;  // last: destroyed first
};

}  // namespace

std::unique_ptr<Trainer> make_cuda_trainer(const TrainProblem& problem) {
  std::string why;
  if (!cuda_device_available(&why))
    throw BackendUnavailable("run.backend: 'cuda' is not available: " + why);
  return std::make_unique<CudaTrainer>(problem);
}

}  // namespace detail
}  // namespace taep

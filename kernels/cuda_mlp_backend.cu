// The CUDA backend of learned-score (MLP) models: step-synchronous over a chunk of paths. Per step:
// one kernel draws noise and probes and evaluates the target's score; one cuBLAS GEMM per layer
// evaluates the network over the chunk, with the divergence's tangents (e_1..e_d, or the P probes)
// as extra GEMM rows; a fused kernel adds the TAEP increment and takes the Euler-Maruyama step.
// The time embedding is folded into layer 0's bias once per step (a table built on the host).
// Forward paths of a model.math "tf32" run take the fused kernel instead where the network fits it
// (kernels/fused_mlp_kernel.cu, docs/fused-mlp.md): one launch per chunk, the whole path per warp
// tile, the network on tensor cores. TAEP_CUDA_MLP=cublas forces the GEMM path, =fused refuses to run
// without the fused kernel (BackendUnavailable, saying why).
// Reverse-process paths run the same network over the chunk at every grid point from t_max down
// (tangents only where a TAEP increment is evaluated), between a per-path prepare kernel (probes,
// target score) and a finish kernel (implied increment, TAEP increment, reverse step).
// A reference network (reference.type "mlp") runs right after the model on the same points and
// tangents; its score becomes the target's and its output tangents are subtracted from the model's
// (networks(); docs/real-data.md section 2), on the cuBLAS path.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cuda_check.cuh"
#include "cuda_raii.cuh"
#include "device_buffer.cuh"
#include "device_problem.cuh"
#include "drivers.hpp"
#include "mlp_drivers.hpp"
#include "host/engine/backend.hpp"
#include "taep/physics/mlp_elementwise.hpp"

namespace taep {
namespace detail {
namespace {

struct DeviceLayer {
  int in = 0, out = 0;
  DeviceBuffer<float> weight, bias;
};

// One network on the device: its layers, layer 0's bias per grid point, W_t emb(t_k) + b_0 in
// double (as the CPU evaluator computes it), and the output factor (1, or the eps-parameterization's)
// per grid point: k = 0 .. N, the last (t_max) for the first reverse step.
struct DeviceNet {
  std::vector<DeviceLayer> layers;
  DeviceBuffer<float> bias0;
  std::vector<float> out_scale;
  int width = 0;  // the widest layer output

  DeviceNet(const MlpModel& m, const ForwardProblem& P) {
    for (const MlpLayer& l : m.layers) {
      DeviceLayer dl;
      dl.in = l.in;
      dl.out = l.out;
      dl.weight = DeviceBuffer<float>(l.weight);
      dl.bias = DeviceBuffer<float>(l.bias);
      width = std::max(width, l.out);
      layers.push_back(std::move(dl));
    }
    const MlpLayer& l0 = m.layers.front();
    std::vector<float> b0(std::size_t(P.steps + 1) * l0.out);
    std::vector<double> emb(std::size_t(m.embedding_dim));
    for (int k = 0; k <= P.steps; ++k) {
      const double t = P.grid.t(k);
      physics::fold_time_bias(t, m.dim, m.embedding_dim, m.time_scale, m.max_period, l0.out, l0.in,
                              l0.weight.data(), l0.bias.data(), emb.data(),
                              b0.data() + std::size_t(k) * l0.out);
      out_scale.push_back(physics::output_scale(m.parameterization == Parameterization::eps,
                                                P.schedule.marginal(t).noise));
    }
    bias0 = DeviceBuffer<float>(b0);
  }
};

class CudaMlpBackend final : public Backend {
 public:
  explicit CudaMlpBackend(const ForwardProblem& problem)
      : problem_(problem),
        mlp_(*problem_.mlp),
        tables_(problem_),
        view_(tables_.view()),
        net_(mlp_.model, problem_) {
    reverse_view_.fwd = view_;  // no model mixture: model_last stays null
    reverse_view_.last = build_reverse_end(problem_).last;
    width_ = net_.width;
    if (problem_.reference_mlp) {
      ref_.emplace(*problem_.reference_mlp, problem_);
      width_ = std::max(width_, ref_->width);
    }
    choose_fused();
    // The GEMM path takes Euler steps only: it must not silently drop the Milstein correction,
    // which the fused kernel's forward paths carry (docs/physics.md section 4.3).
    if (problem_.milstein && fused_warps_ == 0)
      throw BackendUnavailable(
          "schedule.scheme: 'milstein' for a learned model needs the cuda backend's fused kernel "
          "(model.math 'tf32' and a network it fits: " + fused_why_ + ")");
    device_ = select_device() + "; MLP via " +
              (fused_warps_ > 0 ? "the fused tensor-core kernel (" + std::to_string(fused_warps_) +
                                      " warps per block, forward paths), " + to_string(mlp_.math)
                                : "cuBLAS, " + std::string(to_string(mlp_.math)));

    TAEP_CUBLAS_CHECK(cublasSetStream(blas_.get(), stream_.get()));
    TAEP_CUBLAS_CHECK(cublasSetMathMode(
        blas_.get(), mlp_.math == MathMode::tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));

    std::size_t free_bytes = 0, total_bytes = 0;
    TAEP_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
    const std::uint64_t per_path = bytes_per_path();
    const std::uint64_t fit = free_bytes / 4 / per_path;
    max_chunk_ = std::max<std::uint64_t>(
        physics::kReduceBlock,
        std::min<std::uint64_t>(std::uint64_t(1) << 20, fit) / physics::kReduceBlock * physics::kReduceBlock);
  }

  std::string name() const override { return "cuda"; }
  std::string device() const override { return device_; }
  std::uint64_t max_chunk_paths() const override { return max_chunk_; }

  void simulate(std::uint64_t first, std::uint64_t count, std::vector<double>& taep,
                std::vector<double>& reference, std::vector<double>* aux,
                std::vector<float>* x0, std::vector<float>* xN) override {
    const std::uint64_t d = std::uint64_t(problem_.d);
    size_path_outputs(count, problem_.d, false, taep, reference, aux, x0, xN);  // no closed form
    std::vector<double> part;
    for (std::uint64_t off = 0; off < count; off += max_chunk_) {
      const int n = int(std::min(max_chunk_, count - off));
      forward(first + off, n, x0 ? x0->data() + off * d : nullptr,
              xN ? xN->data() + off * d : nullptr);
      s_.copy_to_host(part, std::size_t(n), stream_.get());
      TAEP_CUDA_CHECK(cudaStreamSynchronize(stream_.get()));
      std::copy(part.begin(), part.end(), taep.begin() + off);
      if (aux) {
        aux_.copy_to_host(part, std::size_t(n), stream_.get());
        TAEP_CUDA_CHECK(cudaStreamSynchronize(stream_.get()));
        std::copy(part.begin(), part.end(), aux->begin() + off);
      }
    }
  }

  void simulate_reverse(std::uint64_t first, std::uint64_t count, bool with_taep,
                        std::vector<double>* taep, std::vector<double>* reference,
                        std::vector<float>* samples) override {
    if (problem_.milstein)  // reverse paths run the GEMM path, which has no Milstein correction
      throw BackendUnavailable(
          "schedule.scheme: 'milstein' for a learned model: reverse paths are not implemented on "
          "the cuda backend");
    const std::uint64_t d = std::uint64_t(problem_.d);
    if (reference) reference->clear();  // no closed form for learned models
    if (taep) taep->assign(with_taep ? count : 0, 0.0);
    if (samples) samples->assign(count * d, 0.f);
    std::vector<double> part;
    std::vector<float> part_x;
    for (std::uint64_t off = 0; off < count; off += max_chunk_) {
      const int n = int(std::min(max_chunk_, count - off));
      reverse(first + off, n, with_taep);
      if (with_taep && taep) {
        s_.copy_to_host(part, std::size_t(n), stream_.get());
        TAEP_CUDA_CHECK(cudaStreamSynchronize(stream_.get()));
        std::copy(part.begin(), part.end(), taep->begin() + off);
      }
      if (samples) {
        x_.copy_to_host(part_x, std::size_t(n) * d, stream_.get());
        TAEP_CUDA_CHECK(cudaStreamSynchronize(stream_.get()));
        std::copy(part_x.begin(), part_x.end(), samples->begin() + off * d);
      }
      TAEP_CUDA_CHECK(cudaStreamSynchronize(stream_.get()));  // the kernels, when nothing is copied
    }
  }

  void run_chunk(std::uint64_t first, std::uint64_t count, const HistogramSpec& hist,
                 ChunkStats& out) override {
    // The chunk driver keeps count within max_chunk_paths() (<= 2^20), which int indexes.
    TAEP_EXPECTS(count <= max_chunk_, "chunk larger than the backend's limit");
    const int n = int(count);
    forward(first, n);
    reducer_.reduce(s_.data(), nullptr, (mlp_.hutchinson() && mlp_.probes >= 2) ? aux_.data() : nullptr,
                    count, hist, stream_.get(), out);
  }

 private:
  int tangents() const { return mlp_.tangents(); }

  // The fused kernel runs the forward paths where the run asked for TF32 (its products are TF32),
  // the shape fits its registers (physics::fused::fits) and at least one warp's tile fits the
  // device's shared memory beside the weights; TAEP_CUDA_MLP overrides (see the top of the file).
  void choose_fused() {
    const char* env = std::getenv("TAEP_CUDA_MLP");
    const std::string want = env ? env : "";
    if (!want.empty() && want != "fused" && want != "cublas")
      throw BackendUnavailable("TAEP_CUDA_MLP must be 'fused' or 'cublas', not '" + want + "'");
    if (want == "cublas") {
      fused_why_ = "TAEP_CUDA_MLP=cublas";
      return;
    }
    if (ref_) {  // the fused kernel evaluates one network; the target's score is analytic there
      fused_why_ = "a reference network (reference.type 'mlp') runs on the cuBLAS path";
      if (want == "fused") throw BackendUnavailable("TAEP_CUDA_MLP=fused: " + fused_why_);
      return;
    }
    const int P = mlp_.hutchinson() ? mlp_.probes : 0;
    std::string& why = fused_why_;
    int dev = 0, major = 0, optin = 0;
    TAEP_CUDA_CHECK(cudaGetDevice(&dev));
    TAEP_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
    TAEP_CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
    physics::fused::PackedNet packed;
    if (mlp_.math != MathMode::tf32) {
      why = "model.math is not 'tf32'";
    } else if (major < 8) {
      why = "the device has no TF32 tensor cores (compute capability < 8.0)";
    } else if (!physics::fused::fits(mlp_.model, P)) {
      why = "the network is wider than 128 or deeper than 8 layers";
    } else {
      packed = physics::fused::pack(mlp_.model, P, true, problem_.milstein);
      for (int w = kFusedMaxWarps; w >= 1 && fused_warps_ == 0; --w)
        if (fused_mlp_smem_bytes(packed.net, packed.data.size(), w) <= std::size_t(optin)) fused_warps_ = w;
      if (fused_warps_ == 0) why = "its weights and one tile do not fit the device's shared memory";
    }
    if (fused_warps_ == 0) {
      if (want == "fused") throw BackendUnavailable("TAEP_CUDA_MLP=fused: " + why);
      return;
    }
    fused_weights_ = DeviceBuffer<float>(packed.data);
    fused_scale_ = DeviceBuffer<float>(net_.out_scale);
    // Everything but the chunk (first, n and the output buffers: forward_fused), in the order of
    // FusedMlpLaunch's members.
    const bool rademacher = mlp_.probe_distribution == ProbeDistribution::rademacher;
    fused_ = FusedMlpLaunch{view_, packed.net, fused_weights_.data(), fused_weights_.size(),
                            net_.bias0.data(), net_.layers.front().out, fused_scale_.data(),
                            0, 0, rademacher, fused_warps_, nullptr, nullptr, nullptr, nullptr,
                            stream_.get()};
  }

  // The same through the fused kernel, which writes the points straight from its tiles.
  void forward_fused(std::uint64_t first, int n, float* x0, float* xN) {
    ensure_paths(n);
    const std::size_t points = std::size_t(n) * std::size_t(problem_.d);
    if ((x0 || xN) && points_.size() < 2 * points) points_ = DeviceBuffer<float>(2 * points);
    FusedMlpLaunch chunk = fused_;
    chunk.first = first;
    chunk.n = n;
    chunk.taep = s_.data();
    chunk.aux = aux_.data();
    chunk.x0 = x0 ? points_.data() : nullptr;
    chunk.xN = xN ? points_.data() + points : nullptr;
    launch_fused_mlp_forward(chunk);
    for (float* to : {x0, xN}) {
      if (!to) continue;
      TAEP_CUDA_CHECK(cudaMemcpyAsync(to, to == x0 ? chunk.x0 : chunk.xN, points * sizeof(float),
                                      cudaMemcpyDeviceToHost, stream_.get()));
    }
    if (x0 || xN) TAEP_CUDA_CHECK(cudaStreamSynchronize(stream_.get()));
  }

  std::uint64_t bytes_per_path() const {
    const int d = problem_.d, T = tangents(), P = mlp_.hutchinson() ? mlp_.probes : 0;
    const std::uint64_t ref = ref_ ? std::uint64_t(d) + std::uint64_t(T) * d : 0;  // out_ref_, out_tan_ref_
    return sizeof(float) * (std::uint64_t(3) * width_ + 2ull * T * width_ + 5ull * d + std::uint64_t(P) * d +
                            std::uint64_t(T) * d + 1 + ref) +
           2 * sizeof(double);
  }

  // S and the probe-noise variance per path: all the fused kernel needs.
  void ensure_paths(int n) {
    if (std::size_t(n) <= s_.size()) return;
    s_ = DeviceBuffer<double>(std::size_t(n));
    aux_ = DeviceBuffer<double>(std::size_t(n));
  }

  void ensure(int n) {
    ensure_paths(n);
    if (std::size_t(n) <= x_.size() / std::size_t(problem_.d)) return;
    const std::size_t N = std::size_t(n), d = std::size_t(problem_.d), T = std::size_t(tangents());
    const std::size_t P = mlp_.hutchinson() ? std::size_t(mlp_.probes) : 0, W = std::size_t(width_);
    x_ = DeviceBuffer<float>(N * d);
    dw_ = DeviceBuffer<float>(N * d);
    probes_ = DeviceBuffer<float>(std::max<std::size_t>(1, N * P * d));
    s_target_ = DeviceBuffer<float>(N * d);
    div_target_ = DeviceBuffer<float>(N);
    act_a_ = DeviceBuffer<float>(N * W);
    act_b_ = DeviceBuffer<float>(N * W);
    deriv_ = DeviceBuffer<float>(N * W);
    tan_a_ = DeviceBuffer<float>(N * T * W);
    tan_b_ = DeviceBuffer<float>(N * T * W);
    out_ = DeviceBuffer<float>(N * d);
    out_tan_ = DeviceBuffer<float>(N * T * d);
    if (ref_) {
      out_ref_ = DeviceBuffer<float>(N * d);
      out_tan_ref_ = DeviceBuffer<float>(N * T * d);
    }
  }

  // Row-major C[m x n] = A[m x k] . B^T with B row-major [n x k] (leading dimension ldb): in cuBLAS's
  // column-major terms C^T = B A^T.
  void gemm_bt(int m, int n, int k, const float* A, int lda, const float* B, int ldb, float* C) {
    const float one = 1.f, zero = 0.f;
    TAEP_CUBLAS_CHECK(cublasSgemm(blas_.get(), CUBLAS_OP_T, CUBLAS_OP_N, n, m, k, &one, B, ldb, A,
                                  lda, &zero, C, n));
  }

  // The network at grid point k over the chunk's n points x_ (row-major n x d): its output before
  // the output bias into out_ and, with_tangents, the output tangents into out_tan_ (e_1..e_d, or
  // the probes in probes_). The derivative buffer is rewritten layer by layer: each layer's
  // tangents are scaled before the next layer's SiLU overwrites it (one stream orders them).
  void network(const DeviceNet& net, int n, int k, bool with_tangents, float* out, float* out_tan) {
    const int d = problem_.d, T = tangents();
    const bool hutch = mlp_.hutchinson();
    cudaStream_t st = stream_.get();
    const DeviceLayer& l0 = net.layers.front();
    const DeviceLayer& lout = net.layers.back();
    float* act = act_a_.data();
    float* next = act_b_.data();
    float* tan = tan_a_.data();
    float* tan_next = tan_b_.data();
    // Layer 0: x columns of W_0 per point; the embedding is in the per-step bias.
    gemm_bt(n, l0.out, d, x_.data(), d, l0.weight.data(), l0.in, act);
    float* deriv = with_tangents ? deriv_.data() : nullptr;  // SiLU' only scales tangents
    launch_bias_silu(n, l0.out, net.bias0.data() + std::size_t(k) * l0.out, act, deriv, st);
    if (with_tangents) {
      if (hutch) {
        gemm_bt(n * T, l0.out, d, probes_.data(), d, l0.weight.data(), l0.in, tan);
        launch_scale_tangents(n, T, l0.out, deriv_.data(), tan, st);
      } else {
        launch_tangent_basis(n, d, l0.out, l0.weight.data(), l0.in, deriv_.data(), tan, st);
      }
    }
    int width = l0.out;
    for (std::size_t l = 1; l + 1 < net.layers.size(); ++l) {
      const DeviceLayer& L = net.layers[l];
      gemm_bt(n, L.out, width, act, width, L.weight.data(), L.in, next);
      launch_bias_silu(n, L.out, L.bias.data(), next, deriv, st);
      if (with_tangents) {
        gemm_bt(n * T, L.out, width, tan, width, L.weight.data(), L.in, tan_next);
        launch_scale_tangents(n, T, L.out, deriv_.data(), tan_next, st);
        std::swap(tan, tan_next);
      }
      std::swap(act, next);
      width = L.out;
    }
    gemm_bt(n, d, width, act, width, lout.weight.data(), lout.in, out);
    if (with_tangents) gemm_bt(n * T, d, width, tan, width, lout.weight.data(), lout.in, out_tan);
  }

  // The model at grid point k, and with a TAEP evaluation (with_tangents) the reference network on
  // the same points and tangents folded in: s* into s_target_, the model's output tangents minus
  // the reference's (scaled to the model's output factor) in out_tan_ (docs/real-data.md section 2).
  void networks(int n, int k, bool with_tangents) {
    network(net_, n, k, with_tangents, out_.data(), out_tan_.data());
    if (!ref_ || !with_tangents) return;
    network(*ref_, n, k, true, out_ref_.data(), out_tan_ref_.data());
    const float scale = ref_->out_scale[std::size_t(k)];
    launch_reference_score(n, problem_.d, out_ref_.data(), ref_->layers.back().bias.data(), scale,
                           s_target_.data(), stream_.get());
    launch_subtract_scaled(std::size_t(n) * tangents() * problem_.d,
                           scale / net_.out_scale[std::size_t(k)], out_tan_ref_.data(),
                           out_tan_.data(), stream_.get());
  }

  // The launch of a chunk of n paths from `first`, at no step yet.
  MlpStepLaunch chunk_launch(std::uint64_t first, int n, bool with_taep) {
    MlpStepLaunch a;
    a.view = reverse_view_;
    a.first = first;
    a.n = n;
    a.probes = with_taep && mlp_.hutchinson() ? mlp_.probes : 0;
    a.rademacher = mlp_.probe_distribution == ProbeDistribution::rademacher;
    a.with_taep = with_taep;
    a.buf.x = x_.data();
    a.buf.probes = probes_.data();
    a.buf.s_target = s_target_.data();
    a.buf.div_target = div_target_.data();
    a.buf.taep = with_taep ? s_.data() : nullptr;
    a.stream = stream_.get();
    return a;
  }

  // The finish kernel's view of the network's output at grid point a.step (its tangents only where
  // a TAEP increment is evaluated).
  MlpFinishLaunch finish_launch(const MlpStepLaunch& a, bool with_tangents) const {
    MlpFinishLaunch f;
    f.step = a;
    f.out = out_.data();
    f.out_bias = net_.layers.back().bias.data();
    f.out_scale = net_.out_scale[std::size_t(a.step)];
    f.out_tan = with_tangents ? out_tan_.data() : nullptr;
    return f;
  }

  // x0, xN: host memory for the n * d start and end points (x_ before the first step and after
  // the last), or null.
  void forward(std::uint64_t first, int n, float* x0 = nullptr, float* xN = nullptr) {
    if (fused_warps_ > 0) return forward_fused(first, n, x0, xN);
    ensure(n);
    MlpStepLaunch a = chunk_launch(first, n, true);
    a.buf.dw = dw_.data();
    a.buf.aux = aux_.data();
    launch_mlp_init(a);
    copy_points(n, x0);
    for (int k = 0; k < problem_.steps; ++k) {
      a.step = k;
      launch_mlp_prepare(a);
      networks(n, k, true);
      launch_mlp_finish(finish_launch(a, true));
    }
    copy_points(n, xN);
  }

  void copy_points(int n, float* to) {
    if (!to) return;
    TAEP_CUDA_CHECK(cudaMemcpyAsync(to, x_.data(), std::size_t(n) * problem_.d * sizeof(float),
                                    cudaMemcpyDeviceToHost, stream_.get()));
    TAEP_CUDA_CHECK(cudaStreamSynchronize(stream_.get()));
  }

  // Reverse paths [first, first + n) (physics/reverse_path.hpp): x_ ends as their samples x(t_min),
  // s_ as S read on the forward clock (with_taep).
  void reverse(std::uint64_t first, int n, bool with_taep) {
    ensure(n);
    const int N = problem_.steps;
    MlpStepLaunch a = chunk_launch(first, n, with_taep);
    a.buf.x_next = dw_.data();  // n*d, unused by reverse paths otherwise: their increments are implied
    launch_mlp_reverse_init(a);
    for (int k = N; k >= 0; --k) {
      const bool taep_here = with_taep && k < N;  // the TAEP increment of forward step k
      if (!taep_here && k == 0) break;            // x_0 is the sample: nothing to evaluate there
      a.step = k;
      if (taep_here) launch_mlp_reverse_prepare(a);
      networks(n, k, taep_here);
      launch_mlp_reverse_finish(finish_launch(a, taep_here));
    }
  }

  ForwardProblem problem_;
  const MlpSetup& mlp_;
  std::string device_;
  DeviceProblem tables_;
  physics::ForwardView view_;
  physics::ReverseView reverse_view_;
  DeviceNet net_;
  std::optional<DeviceNet> ref_;  // reference.type "mlp": the network that plays s*
  int width_ = 0;                 // the widest layer of either network
  std::uint64_t max_chunk_ = physics::kReduceBlock;
  CudaStream stream_;
  CublasHandle blas_;
  DeviceBuffer<float> x_, dw_, probes_, s_target_, div_target_, act_a_, act_b_, deriv_, tan_a_,
      tan_b_, out_, out_tan_, out_ref_, out_tan_ref_;
  DeviceBuffer<double> s_, aux_;
  ChunkReducer reducer_;
  int fused_warps_ = 0;  // warps per block of the fused kernel; 0: the cuBLAS path
  std::string fused_why_;  // why not the fused kernel
  DeviceBuffer<float> fused_weights_, fused_scale_;
  DeviceBuffer<float> points_;  // the fused kernel's x0 and xN of a chunk
  FusedMlpLaunch fused_;  // the fused kernel's launch without its chunk
};

}  // namespace

std::unique_ptr<Backend> make_cuda_mlp_backend(const ForwardProblem& problem) {
  return std::make_unique<CudaMlpBackend>(problem);
}

}  // namespace detail
}  // namespace taep

// Batched MLP evaluation on the CPU (see host/cpu/mlp_cpu.hpp): the packed weights and per-time bias
// of the vector kernels (host/cpu/cpu_mlp_loop.hpp), and the CPU-BLAS path where they do not run.
// BLAS path: row-major throughout, points are rows; tangents of point p are rows p*T .. p*T+T-1.
#include "host/cpu/mlp_cpu.hpp"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <utility>

#include "host/cpu/cpu_simd.hpp"
#include "taep/error.hpp"
#include "taep/physics/mlp_elementwise.hpp"

namespace taep {
namespace detail {

const char* to_string(MlpIsa isa) {
  switch (isa) {
    case MlpIsa::avx512: return "AVX-512";
    case MlpIsa::avx2: return "AVX2";
    case MlpIsa::blas: break;
  }
  return "OpenBLAS";
}

MlpIsa mlp_cpu_isa() {
#if defined(TAEP_HAVE_CPU_SIMD)
  const char* env = std::getenv("TAEP_CPU_SIMD");
  const std::string want = env ? env : "";
  if (want == "0") return MlpIsa::blas;
  if (want != "avx2" && cpu_supports(SimdIsa::avx512)) return MlpIsa::avx512;
  if (cpu_supports(SimdIsa::avx2)) return MlpIsa::avx2;
#endif
  return MlpIsa::blas;
}

float* aligned_workspace(std::vector<float>& storage, std::size_t floats) {
  constexpr std::size_t kAlign = 64 / sizeof(float);
  if (storage.size() < floats + kAlign) storage.resize(floats + kAlign);
  const auto addr = reinterpret_cast<std::uintptr_t>(storage.data());
  return storage.data() + (kAlign - (addr / sizeof(float)) % kAlign) % kAlign;
}

namespace {

std::size_t net_scratch(const MlpKernelView& v, int lanes) {
  return std::size_t(lanes) * v.width * (2 * kMlpGroup + v.hidden);
}

}  // namespace

std::size_t mlp_rows_workspace(const MlpKernelView& v, MlpIsa isa, int tangents) {
  const std::size_t L = std::size_t(mlp_lanes(isa));
  return net_scratch(v, mlp_lanes(isa)) +
         L * (std::size_t(v.d) * (1 + kMlpGroup) + v.layer[v.hidden].out_pad + std::max(1, tangents));
}

std::size_t mlp_batch_workspace(const MlpKernelView& v, MlpIsa isa, int probes) {
  const std::size_t L = std::size_t(mlp_lanes(isa));
  // Probe rows: P probes, or d for the Milstein basis (physics::milstein_basis) of exact models.
  const std::size_t rows = std::size_t(std::max(probes, v.d));
  return net_scratch(v, mlp_lanes(isa)) + std::size_t(kMlpBatch) * v.d +
         L * (rows * v.d + v.layer[v.hidden].out_pad + rows);
}

MlpCpuEvaluator::MlpCpuEvaluator(const MlpModel& model) : MlpCpuEvaluator(model, mlp_cpu_isa()) {}

MlpCpuEvaluator::MlpCpuEvaluator(const MlpModel& model, MlpIsa isa)
    : model_(model), d_(model.dim), isa_(isa) {
  TAEP_EXPECTS(isa == MlpIsa::blas || (isa == MlpIsa::avx2 && cpu_supports(SimdIsa::avx2)) ||
                   (isa == MlpIsa::avx512 && cpu_supports(SimdIsa::avx512)),
               "the MLP vector kernels were asked for where they cannot run");
  emb_.assign(std::size_t(model.embedding_dim), 0.0);
  const int tile = isa_ == MlpIsa::blas ? 1 : mlp_tile(isa_);
  const int out0 = model.layers.front().out;
  bias0_.assign(std::size_t((out0 + tile - 1) / tile * tile), 0.f);
  if (isa_ != MlpIsa::blas) pack();
}

// Each layer's weights in tiles of `tile` rows, k-major inside a tile (the order a kernel pass
// reads them), padded with zero rows; layer 0 keeps only its d x columns.
void MlpCpuEvaluator::pack() {
  const int tile = mlp_tile(isa_);
  const auto& layers = model_.layers;
  const int nl = int(layers.size());
  TAEP_EXPECTS(nl >= 2, "an MLP has at least one hidden layer and the output layer");
  packed_w_.assign(std::size_t(nl), {});
  packed_b_.assign(std::size_t(nl), {});
  klayers_.assign(std::size_t(nl), MlpKernelLayer{});
  int width = 0;
  for (int l = 0; l < nl; ++l) {
    const MlpLayer& src = layers[std::size_t(l)];
    MlpKernelLayer& k = klayers_[std::size_t(l)];
    k.in = l == 0 ? d_ : src.in;
    k.out = src.out;
    k.out_pad = (src.out + tile - 1) / tile * tile;
    k.raw = src.weight.data();
    k.ld = src.in;
    std::vector<float>& w = packed_w_[std::size_t(l)];
    w.assign(std::size_t(k.out_pad) * k.in, 0.f);
    for (int j = 0; j < src.out; ++j)
      for (int c = 0; c < k.in; ++c)
        w[std::size_t(j / tile * tile) * k.in + std::size_t(c) * tile + j % tile] =
            src.weight[std::size_t(j) * src.in + c];
    std::vector<float>& b = packed_b_[std::size_t(l)];
    b.assign(std::size_t(k.out_pad), 0.f);
    std::copy(src.bias.begin(), src.bias.end(), b.begin());
    k.w = w.data();
    k.bias = b.data();
    if (l + 1 < nl) width = std::max(width, k.out_pad);
  }
  view_.d = d_;
  view_.hidden = nl - 1;
  view_.tile = tile;
  view_.width = width;
  view_.layer = klayers_.data();
  view_.bias0 = bias0_.data();
  view_.out_scale = out_scale_;
}

const MlpKernelView& MlpCpuEvaluator::kernel_view() const { return view_; }

void MlpCpuEvaluator::set_time(double t, double noise) {
  const MlpLayer& l0 = model_.layers.front();
  physics::fold_time_bias(t, d_, model_.embedding_dim, model_.time_scale, model_.max_period, l0.out,
                          l0.in, l0.weight.data(), l0.bias.data(), emb_.data(), bias0_.data());
  out_scale_ = physics::output_scale(model_.parameterization == Parameterization::eps, noise);
  view_.out_scale = out_scale_;
}

void MlpCpuEvaluator::evaluate(int n, const float* X, float* score, float* div, int probes,
                               const float* V) {
  if (n <= 0) return;
#if defined(TAEP_HAVE_CPU_SIMD)
  if (isa_ != MlpIsa::blas) {
    const int T = div ? (probes > 0 ? probes : d_) : 0;
    float* work = aligned_workspace(work_, mlp_rows_workspace(view_, isa_, T));
    if (isa_ == MlpIsa::avx512)
      avx512::mlp_evaluate_rows(view_, n, X, score, div, probes, V, work);
    else
      avx2::mlp_evaluate_rows(view_, n, X, score, div, probes, V, work);
    return;
  }
#endif
  evaluate_blas(n, X, score, div, probes, V);
}

// ---- CPU-BLAS path ------------------------------------------------------------------------------

void MlpCpuEvaluator::ensure(int n, int tangents) {
  if (n <= capacity_points_ && tangents <= capacity_tangents_) return;
  capacity_points_ = std::max(n, capacity_points_);
  capacity_tangents_ = std::max(tangents, capacity_tangents_);
  int width = 0;
  for (const MlpLayer& l : model_.layers) width = std::max(width, l.out);
  const std::size_t rows = std::size_t(capacity_points_), trows = rows * std::max(1, capacity_tangents_);
  act_a_.resize(rows * width);
  act_b_.resize(rows * width);
  deriv_.resize(rows * width);
  tan_a_.resize(trows * width);
  tan_b_.resize(trows * width);
  out_tan_.resize(trows * d_);
}

namespace {

// C[m x n] = A[m x k] . B^T, B row-major [n x k] with leading dimension ldb (PyTorch Linear weight).
void gemm_bt(int m, int n, int k, const float* A, int lda, const float* B, int ldb, float* C) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.f, A, lda, B, ldb, 0.f, C, n);
}

// Adds the bias, applies SiLU in place and stores the derivative.
void bias_silu(int rows, int width, const float* bias, float* z, float* deriv) {
  for (int p = 0; p < rows; ++p) {
    float* zr = z + std::size_t(p) * width;
    float* dr = deriv + std::size_t(p) * width;
    for (int j = 0; j < width; ++j) physics::silu_and_derivative(zr[j] + bias[j], zr[j], dr[j]);
  }
}

// Tangent rows of point p (T of them) times the point's activation derivative.
void scale_tangents(int points, int T, int width, const float* deriv, float* tan) {
  for (int p = 0; p < points; ++p) {
    const float* dr = deriv + std::size_t(p) * width;
    for (int i = 0; i < T; ++i) {
      float* tr = tan + (std::size_t(p) * T + i) * width;
      for (int j = 0; j < width; ++j) tr[j] *= dr[j];
    }
  }
}

}  // namespace

void MlpCpuEvaluator::evaluate_blas(int n, const float* X, float* score, float* div, int probes,
                                    const float* V) {
  const int d = d_;
  const int T = div ? (probes > 0 ? probes : d) : 0;
  ensure(n, T);
  const auto& layers = model_.layers;
  const MlpLayer& l0 = layers.front();

  // Layer 0: only the x columns of W_0 vary per point; the embedding is in bias0_.
  float* act = act_a_.data();
  float* next = act_b_.data();
  float* tan = tan_a_.data();
  float* tan_next = tan_b_.data();
  gemm_bt(n, l0.out, d, X, d, l0.weight.data(), l0.in, act);
  bias_silu(n, l0.out, bias0_.data(), act, deriv_.data());
  if (T > 0) {
    if (probes > 0) {
      gemm_bt(n * T, l0.out, d, V, d, l0.weight.data(), l0.in, tan);  // W_x v per probe
    } else {
      for (int p = 0; p < n; ++p)  // W_x e_i: column i of W_0
        for (int i = 0; i < d; ++i) {
          float* tr = tan + (std::size_t(p) * T + i) * l0.out;
          for (int j = 0; j < l0.out; ++j) tr[j] = l0.weight[std::size_t(j) * l0.in + i];
        }
    }
    scale_tangents(n, T, l0.out, deriv_.data(), tan);
  }

  // Hidden layers 1 .. L-2.
  int width = l0.out;
  for (std::size_t l = 1; l + 1 < layers.size(); ++l) {
    const MlpLayer& L = layers[l];
    gemm_bt(n, L.out, width, act, width, L.weight.data(), L.in, next);
    bias_silu(n, L.out, L.bias.data(), next, deriv_.data());
    if (T > 0) {
      gemm_bt(n * T, L.out, width, tan, width, L.weight.data(), L.in, tan_next);
      scale_tangents(n, T, L.out, deriv_.data(), tan_next);
      std::swap(tan, tan_next);
    }
    std::swap(act, next);
    width = L.out;
  }

  // Linear output.
  const MlpLayer& out = layers.back();
  gemm_bt(n, d, width, act, width, out.weight.data(), out.in, score);
  for (int p = 0; p < n; ++p)
    for (int i = 0; i < d; ++i) {
      float& s = score[std::size_t(p) * d + i];
      s = (s + out.bias[i]) * out_scale_;
    }
  if (T == 0) return;
  gemm_bt(n * T, d, width, tan, width, out.weight.data(), out.in, out_tan_.data());
  for (int p = 0; p < n; ++p) {
    if (probes > 0) {
      for (int k = 0; k < T; ++k) {
        const float* o = out_tan_.data() + (std::size_t(p) * T + k) * d;
        const float* v = V + (std::size_t(p) * T + k) * d;
        float vjv = 0.f;
        for (int i = 0; i < d; ++i) vjv += v[i] * o[i];
        div[std::size_t(p) * T + k] = vjv * out_scale_;
      }
    } else {
      float trace = 0.f;
      for (int i = 0; i < d; ++i) trace += out_tan_[(std::size_t(p) * d + i) * d + i];
      div[p] = trace * out_scale_;
    }
  }
}

}  // namespace detail
}  // namespace taep

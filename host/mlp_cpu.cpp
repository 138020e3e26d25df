// Batched MLP evaluation on the CPU with CPU-BLAS GEMMs (see detail/mlp_cpu.hpp). Row-major
// throughout: points are rows; tangents of point p are rows p*T .. p*T+T-1.
#include "taep/detail/mlp_cpu.hpp"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <utility>

#include "taep/physics/mlp_elementwise.hpp"

namespace taep {
namespace detail {

MlpCpuEvaluator::MlpCpuEvaluator(const MlpModel& model) : model_(model), d_(model.dim) {
  emb_.assign(std::size_t(model.embedding_dim), 0.0);
  bias0_.assign(std::size_t(model.layers.front().out), 0.f);
}

void MlpCpuEvaluator::set_time(double t, double abar) {
  const MlpLayer& l0 = model_.layers.front();
  physics::time_embedding(t, model_.embedding_dim, model_.time_scale, model_.max_period, emb_.data());
  for (int j = 0; j < l0.out; ++j) {
    double b = l0.bias[j];
    const float* w = l0.weight.data() + std::size_t(j) * l0.in + d_;
    for (int e = 0; e < model_.embedding_dim; ++e) b += double(w[e]) * emb_[e];
    bias0_[j] = float(b);
  }
  out_scale_ = model_.parameterization == Parameterization::eps ? float(-1.0 / std::sqrt(1.0 - abar)) : 1.f;
}

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

void MlpCpuEvaluator::evaluate(int n, const float* X, float* score, float* div, int probes,
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

#pragma once
// Batched MLP score and divergence on the CPU: one CPU-BLAS GEMM per layer over a batch of points,
// the divergence by forward-mode tangents carried as extra GEMM rows (d per point for the exact
// trace, P per point for Hutchinson's v^T J v). Not thread-safe per object: each thread owns one.
#include <vector>

#include "taep/mlp.hpp"

namespace taep {
namespace detail {

class MlpCpuEvaluator {
 public:
  explicit MlpCpuEvaluator(const MlpModel& model);

  // Per-step precomputation shared by every point: the time embedding folded into the first
  // layer's bias, and the eps-parameterization factor.
  void set_time(double t, double abar);

  // n points X [n x d] -> score [n x d]. Divergence, when `div` is not null:
  //   probes == 0: exact trace of the Jacobian, div[n];
  //   probes  > 0: Hutchinson estimates v^T J v for the probe vectors V [n x probes x d], written to
  //                div[n x probes] (the caller averages).
  void evaluate(int n, const float* X, float* score, float* div, int probes = 0,
                const float* V = nullptr);

  int dim() const { return d_; }

 private:
  void ensure(int n, int tangents_per_point);

  const MlpModel& model_;
  int d_;
  std::vector<float> bias0_;  // W_t emb(t) + b_0
  float out_scale_ = 1.f;     // 1, or -1/sqrt(1 - abar) for eps-prediction
  std::vector<double> emb_;
  // Workspaces: activations and derivatives per layer, tangents in two ping-pong buffers.
  std::vector<float> act_a_, act_b_, deriv_, tan_a_, tan_b_, out_tan_;
  int capacity_points_ = 0, capacity_tangents_ = 0;
};

}  // namespace detail
}  // namespace taep

// The learned-score (MLP) vector kernels for AVX2 + FMA, 8 points per packet, 4-row register tiles
// (built with -mavx2 -mfma; see host/cpu_mlp_loop.hpp).
#define TAEP_ISA_UNIT 1

#include "cpu_mlp_loop.hpp"

namespace taep {
namespace detail {
namespace avx2 {

static_assert(mlp_kernels::Arch<Avx2>::L == mlp_lanes(MlpIsa::avx2), "lanes of MlpIsa::avx2");

void mlp_evaluate_rows(const MlpKernelView& v, int n, const float* X, float* score, float* div,
                       int probes, const float* V, float* work) {
  mlp_kernels::evaluate_rows<Avx2>(v, n, X, score, div, probes, V, work);
}

void mlp_run_batch(const MlpBatchJob& job, MlpCpuEvaluator& net, float* work) {
  mlp_kernels::run_batch_any<Avx2>(job, net, work);
}

}  // namespace avx2
}  // namespace detail
}  // namespace taep

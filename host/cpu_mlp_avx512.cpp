// The learned-score (MLP) vector kernels for AVX-512, 16 points per packet, 8-row register tiles
// (built with the flags of host/cpu_simd_avx512.cpp; see host/cpu_mlp_loop.hpp).
#define TAEP_ISA_UNIT 1

#include "cpu_mlp_loop.hpp"

namespace taep {
namespace detail {
namespace avx512 {

static_assert(mlp_kernels::Arch<Avx512>::L == mlp_lanes(MlpIsa::avx512), "lanes of MlpIsa::avx512");

void mlp_evaluate_rows(const MlpKernelView& v, int n, const float* X, float* score, float* div,
                       int probes, const float* V, float* work) {
  mlp_kernels::evaluate_rows<Avx512>(v, n, X, score, div, probes, V, work);
}

void mlp_run_batch(const MlpBatchJob& job, MlpCpuEvaluator& net, float* work) {
  mlp_kernels::run_batch_any<Avx512>(job, net, work);
}

}  // namespace avx512
}  // namespace detail
}  // namespace taep

// CPU backend for learned-score (MLP) models: step-synchronous over batches of paths, everything per
// path by the shared physics (physics/mlp_path.hpp). Where the CPU has AVX-512 or AVX2 the network
// and the per-path physics run on packets of paths in one unit per instruction set
// (host/cpu/cpu_mlp_loop.hpp); otherwise the network is CPU-BLAS GEMMs (host/cpu/mlp_cpu.hpp) and the
// physics is scalar, path by path. OpenMP over reduce blocks; each thread owns its evaluator and
// buffers.
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <optional>
#include <vector>

#include "host/engine/backend.hpp"
#include "host/engine/dispatch.hpp"
#include "host/cpu/cpu_simd.hpp"
#include "host/cpu/mlp_cpu.hpp"
#include "host/cpu/path_streams.hpp"
#include "taep/physics/mlp_path.hpp"
#include "taep/physics/reverse_path.hpp"
#include "taep/physics/rng_streams.hpp"

namespace taep {
namespace detail {
namespace {

// Paths per batch. Batches start at multiples of kBatch from the chunk start (chunks start at
// multiples of kReduceBlock), so which paths share a batch (a GEMM, or a SIMD packet) does not
// depend on the chunking; in the vector kernels no lane depends on another anyway.
constexpr int kBatch = kMlpBatch;
static_assert(physics::kReduceBlock % kBatch == 0, "batches tile a reduce block");

struct BatchBuffers {
  BatchBuffers(const MlpModel& m, const MlpModel* reference, MlpIsa isa) : net(m, isa) {
    if (reference) ref.emplace(*reference, isa);
  }
  MlpCpuEvaluator net;
  std::optional<MlpCpuEvaluator> ref;  // reference.type "mlp": the network that plays s*
  std::vector<float> div_ref;          // its tangents' estimates
  std::vector<float> x, dw, probes, s_model, div_model, s_target, div_target, work;
  std::vector<float> quad_target, r2;  // Milstein: the target's dW.(grad s_*).dW and |dW|^2
  std::vector<float> x_next;  // reverse paths: x_{k+1}
};

class CpuMlpBackend final : public Backend {
 public:
  CpuMlpBackend(const ForwardProblem& problem, int threads)
      : problem_(problem),
        view_(problem_.view([](const auto& v) { return v.data(); })),
        mlp_(*problem_.mlp),
        threads_(threads > 0 ? threads : std::max(1, omp_get_max_threads())),
        isa_(mlp_cpu_isa()) {
    // OpenMP already runs one batch per thread: BLAS must not start threads of its own.
    if (isa_ == MlpIsa::blas) openblas_set_num_threads(1);
  }
  CpuMlpBackend(const CpuMlpBackend&) = delete;
  CpuMlpBackend& operator=(const CpuMlpBackend&) = delete;

  std::string name() const override { return "cpu"; }
  std::string device() const override {
    return cpu_device(isa_ == MlpIsa::blas ? "MLP via OpenBLAS"
                                           : std::string("MLP by ") + to_string(isa_) + " kernels",
                      threads_);
  }
  int threads() const override { return threads_; }
  std::uint64_t max_chunk_paths() const override { return std::uint64_t(1) << 16; }

  void simulate(std::uint64_t first, std::uint64_t count, std::vector<double>& taep,
                std::vector<double>& reference, std::vector<double>* aux_out,
                std::vector<float>* x0, std::vector<float>* xN) override {
    std::vector<double> scratch;
    std::vector<double>& aux = aux_out ? *aux_out : scratch;
    // No closed form: the model is not a mixture.
    size_path_outputs(count, problem_.d, false, taep, reference, &aux, x0, xN);
    const std::uint64_t d = std::uint64_t(problem_.d);
    for_each_batch(count, [&](std::uint64_t off, int n, BatchBuffers& buf) {
      run_batch(first + off, n, taep.data() + off, aux.data() + off, buf,
                {x0 ? x0->data() + off * d : nullptr, xN ? xN->data() + off * d : nullptr});
    });
  }

  // Reverse paths step-synchronously over batches of kBatch paths (batches start at multiples of
  // kBatch from `first`, and no path's values depend on its batch: the network's vector kernels keep
  // every point in its own lane).
  void simulate_reverse(std::uint64_t first, std::uint64_t count, bool with_taep,
                        std::vector<double>* taep, std::vector<double>* reference,
                        std::vector<float>* samples) override {
    const int d = problem_.d;
    if (reference) reference->clear();  // no closed form for learned models
    std::vector<double> taep_scratch;
    std::vector<float> sample_scratch;
    std::vector<double>& S = taep ? *taep : taep_scratch;
    std::vector<float>& X = samples ? *samples : sample_scratch;
    S.assign(with_taep ? count : 0, 0.0);
    X.assign(count * std::uint64_t(d), 0.f);
    for_each_batch(count, [&](std::uint64_t off, int n, BatchBuffers& buf) {
      dispatch_dim(d, [&](auto dim) {
        run_reverse_batch<decltype(dim)::value>(first + off, n, with_taep,
                                                with_taep ? S.data() + off : nullptr,
                                                X.data() + off * std::uint64_t(d), buf);
      });
    });
  }

  void run_chunk(std::uint64_t first, std::uint64_t count, const HistogramSpec& hist,
                 ChunkStats& out) override {
    constexpr int B = physics::kReduceBlock;
    const std::int64_t blocks = std::int64_t((count + B - 1) / B);
    out.blocks.assign(std::size_t(blocks), physics::PathStats{});
    out.histogram.assign(std::size_t(hist.bins) + 2, 0);
    const double inv_w = hist.inv_width();
    const bool with_aux = mlp_.hutchinson() && mlp_.probes >= 2;
#pragma omp parallel num_threads(threads_)
    {
      BatchBuffers buf(mlp_.model, problem_.reference_mlp.get(), isa_);
      std::vector<double> taep(B), aux(B);
      std::vector<std::uint64_t> counts(std::size_t(hist.bins) + 2, 0);
#pragma omp for schedule(dynamic, 1)
      for (std::int64_t b = 0; b < blocks; ++b) {
        const std::uint64_t off = std::uint64_t(b) * B;
        const int n = int(std::min<std::uint64_t>(B, count - off));
        for (int i = 0; i < n; i += kBatch)
          run_batch(first + off + i, std::min(kBatch, n - i), taep.data() + i, aux.data() + i, buf);
        out.blocks[std::size_t(b)] = reduce_block_cpu(taep.data(), nullptr, n, with_aux ? aux.data() : nullptr);
        for (int i = 0; i < n; ++i) {
          const int slot = physics::histogram_slot(taep[i], 0.0, false, hist.lo, inv_w, hist.bins);
          if (slot >= 0) counts[std::size_t(slot)]++;
        }
      }
#pragma omp critical
      for (std::size_t i = 0; i < counts.size(); ++i) out.histogram[i] += counts[i];
    }
  }

 private:
  // fn(offset, size, buffers) for the batches of kBatch paths that tile [0, count), spread over the
  // threads, each with its own evaluator and buffers.
  template <class Fn>
  void for_each_batch(std::uint64_t count, Fn&& fn) const {
    const std::int64_t batches = std::int64_t((count + kBatch - 1) / kBatch);
#pragma omp parallel num_threads(threads_)
    {
      BatchBuffers buf(mlp_.model, problem_.reference_mlp.get(), isa_);
#pragma omp for schedule(dynamic, 1)
      for (std::int64_t b = 0; b < batches; ++b) {
        const std::uint64_t off = std::uint64_t(b) * kBatch;
        fn(off, int(std::min<std::uint64_t>(kBatch, count - off)), buf);
      }
    }
  }

  // Paths [first, first + n): S into taep[0..n), the probe-noise variance of S into aux[0..n),
  // and the start and end points into ends (n * d each, where not null).
  void run_batch(std::uint64_t first, int n, double* taep, double* aux, BatchBuffers& b,
                 physics::PathEnds<float> ends = {}) const {
#if defined(TAEP_HAVE_CPU_SIMD)
    // The fused packet loop evaluates the target analytically; a reference network takes the
    // step-synchronous evaluators below (which still use the vector kernels for both networks).
    if (isa_ != MlpIsa::blas && !problem_.reference_mlp) {
      MlpBatchJob job;
      job.view = &view_;
      job.schedule = problem_.schedule;
      job.grid = problem_.grid;
      job.probes = mlp_.hutchinson() ? mlp_.probes : 0;
      job.rademacher = rademacher();
      job.first = first;
      job.n = n;
      job.taep = taep;
      job.aux = aux;
      job.ends = ends;
      float* work = aligned_workspace(
          b.work, mlp_batch_workspace(b.net.kernel_view(), isa_, job.probes));
      if (isa_ == MlpIsa::avx512)
        avx512::mlp_run_batch(job, b.net, work);
      else
        avx2::mlp_run_batch(job, b.net, work);
      return;
    }
#endif
    dispatch_dim(problem_.d, [&](auto dim) {
      run_batch_d<decltype(dim)::value>(first, n, taep, aux, b, ends);
    });
  }

  physics::MlpTangentPlan plan_for(bool with_taep) const {
    return physics::mlp_tangent_plan(with_taep, mlp_.hutchinson() ? mlp_.probes : 0,
                                     problem_.milstein, problem_.d);
  }

  void resize_buffers(int n, const physics::MlpTangentPlan& t, BatchBuffers& b) const {
    const std::size_t nd = std::size_t(n) * problem_.d;
    b.x.resize(nd);
    b.dw.resize(nd);
    b.s_model.resize(nd);
    b.s_target.resize(nd);
    b.div_model.resize(std::size_t(n) * std::max(1, t.count));
    b.div_target.resize(std::size_t(n));
    b.probes.resize(nd * std::size_t(t.count));
    b.quad_target.resize(std::size_t(n));
    b.r2.resize(std::size_t(n));
  }

  // Path p's TAEP evaluation at grid point k before the network (physics::mlp_prepare), with its
  // state in b.x and its increment in b.dw.
  template <int D>
  void prepare_path(int p, int k, const physics::StepScalars& c, const physics::MlpTangentPlan& t,
                    BatchBuffers& b, PathStreams& st) const {
    const int d = problem_.d;
    const std::size_t o = std::size_t(p) * d, q = std::size_t(p);
    b.r2[q] = prepare_learned_path<D>(view_, k, c.mean_scale, t, &b.x[o], &b.dw[o],
                                      b.probes.data() + o * std::size_t(t.count), st.probes[q],
                                      &b.s_target[o], &b.div_target[q], &b.quad_target[q]);
  }

  // Path p's TAEP increment after the network ran (physics::mlp_increment).
  float path_increment(int p, const physics::StepScalars& c, const physics::MlpTangentPlan& t,
                       const BatchBuffers& b, double* noise_variance) const {
    const std::size_t o = std::size_t(p) * problem_.d, q = std::size_t(p);
    return physics::mlp_increment(problem_.d, c, t, &b.s_model[o],
                                  b.div_model.data() + q * std::size_t(std::max(1, t.count)),
                                  &b.s_target[o], b.div_target[q], b.quad_target[q], b.r2[q],
                                  &b.dw[o], noise_variance);
  }

  template <int D>
  void run_batch_d(std::uint64_t first, int n, double* taep, double* aux, BatchBuffers& b,
                   physics::PathEnds<float> ends) const {
    const int d = problem_.d;
    const physics::MlpTangentPlan plan = plan_for(true);
    resize_buffers(n, plan, b);
    PathStreams st(view_.seed, first, n, rng::kForwardNoise, rademacher());
    for (int p = 0; p < n; ++p) {
      rng::PhiloxHostStream init(view_.seed, rng::subsequence(rng::kInitialState, first + p));
      physics::sample_initial_state<D>(view_, init, b.x.data() + std::size_t(p) * d);
      taep[p] = 0.0;
      aux[p] = 0.0;
    }
    const std::size_t nd = std::size_t(n) * d;
    if (ends.x0) std::copy(b.x.begin(), b.x.begin() + std::ptrdiff_t(nd), ends.x0);

    for (int k = 0; k < problem_.steps; ++k) {
      const physics::StepScalars c = view_.step[k];
      set_time(k, b);
      for (int p = 0; p < n; ++p) {
        float* dw = b.dw.data() + std::size_t(p) * d;
        for (int i = 0; i < d; ++i) dw[i] = c.sqrt_h * st.noise[std::size_t(p)].next();
        prepare_path<D>(p, k, c, plan, b, st);
      }
      evaluate(n, plan, true, b);
      for (int p = 0; p < n; ++p) {
        const std::size_t o = std::size_t(p) * d;
        taep[p] += double(path_increment(p, c, plan, b, &aux[p]));
        physics::euler_maruyama_step(d, c.decay, c.sqrt_g2, &b.dw[o], &b.x[o]);
      }
    }
    if (ends.xN) std::copy(b.x.begin(), b.x.begin() + std::ptrdiff_t(nd), ends.xN);
  }

  // Reverse paths [first, first + n) (physics/reverse_path.hpp): at each grid point t_k from t_N
  // down, every path draws its probes (with_taep), evaluates the target and the implied increment of
  // forward step k; one network evaluation over the batch gives s_theta (and its divergence); then
  // every path adds its TAEP increment and takes the reverse step from t_k. Samples x(t_min) to
  // samples[n * d], S to taep[n] (with_taep).
  template <int D>
  void run_reverse_batch(std::uint64_t first, int n, bool with_taep, double* taep, float* samples,
                         BatchBuffers& b) const {
    const int d = problem_.d;
    const physics::MlpTangentPlan plan = plan_for(with_taep);
    resize_buffers(n, plan, b);
    const std::size_t nd = std::size_t(n) * d;
    b.x_next.resize(nd);
    PathStreams st(view_.seed, first, n, rng::kReverseNoise, rademacher());
    start_reverse_paths(view_, first, n, b.x.data(), taep);
    auto step_all = [&](const physics::StepScalars& c) {
      reverse_step_all<D>(n, d, c, b.s_model.data(), st, b.x.data(), b.x_next.data());
    };

    const int N = problem_.steps;
    set_time(N, b);
    evaluate(n, plan, false, b);
    step_all(physics::step_scalars_at(problem_.schedule, problem_.grid, N));

    for (int k = N - 1; k >= 0; --k) {
      if (!with_taep && k == 0) break;  // x_0 is the sample; nothing is evaluated there
      const physics::StepScalars c = view_.step[k];
      set_time(k, b);
      if (with_taep)
        for (int p = 0; p < n; ++p) {
          const std::size_t o = std::size_t(p) * d;
          physics::implied_increment(d, c, &b.x_next[o], &b.x[o], &b.dw[o]);
          prepare_path<D>(p, k, c, plan, b, st);
        }
      evaluate(n, plan, with_taep, b);
      if (with_taep)
        for (int p = 0; p < n; ++p) taep[p] += double(path_increment(p, c, plan, b, nullptr));
      if (k > 0) step_all(c);
    }
    std::copy(b.x.begin(), b.x.begin() + std::ptrdiff_t(nd), samples);
  }

  bool rademacher() const { return mlp_.probe_distribution == ProbeDistribution::rademacher; }

  // The network's per-step precomputation at grid point k.
  void set_time(int k, BatchBuffers& b) const {
    const double t = problem_.grid.t(k);
    b.net.set_time(t, problem_.schedule.marginal(t).noise);
    if (b.ref) b.ref->set_time(t, problem_.schedule.marginal(t).noise);
  }

  // The network over the batch's states: scores into b.s_model and, with the divergence, the
  // estimates into b.div_model (with the plan's tangents).
  // With a reference network (and the divergence: a TAEP evaluation) it runs on the same states and
  // tangents: its score becomes s* in b.s_target, and the model's estimates become the differences
  // est_theta - est_ref with div_target 0, so that the Hutchinson mean and its probe-noise variance
  // are those of the difference of the divergences (physics::mlp_increment, docs/physics.md
  // section 6).
  void evaluate(int n, const physics::MlpTangentPlan& plan, bool with_divergence,
                BatchBuffers& b) const {
    const float* probes = plan.count > 0 ? b.probes.data() : nullptr;
    b.net.evaluate(n, b.x.data(), b.s_model.data(), with_divergence ? b.div_model.data() : nullptr,
                   plan.count, probes);
    if (!b.ref || !with_divergence) return;
    const std::size_t estimates = std::size_t(n) * std::size_t(std::max(1, plan.count));
    b.div_ref.resize(estimates);
    b.ref->evaluate(n, b.x.data(), b.s_target.data(), b.div_ref.data(), plan.count, probes);
    for (std::size_t j = 0; j < estimates; ++j) b.div_model[j] -= b.div_ref[j];
  }

  ForwardProblem problem_;
  physics::ForwardView view_;
  const MlpSetup& mlp_;
  int threads_;
  MlpIsa isa_;
};

}  // namespace

std::unique_ptr<Backend> make_cpu_mlp_backend(const ForwardProblem& problem, int threads) {
  return std::make_unique<CpuMlpBackend>(problem, threads);
}

}  // namespace detail
}  // namespace taep

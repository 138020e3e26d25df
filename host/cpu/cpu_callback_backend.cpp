// CPU backend for a score model given as a function (taep/score_callback.hpp): paths step by step in
// batches of the callback's batch size, the function called once per batch and grid point from the
// calling thread (a Python function takes its interpreter lock there), everything else per path by
// the shared physics of learned models (physics/mlp_path.hpp: mlp_prepare before the model,
// mlp_increment after it), on the same thread: per path-step it is a small fraction of any model's
// cost, and OpenMP regions between the calls cost more than they save on a loaded machine (14x
// slower on two busy cores, measured). No value of a path depends on its batch or its chunk; only
// the function could make it so.
#include <algorithm>
#include <vector>

#include "host/cpu/cpu_callback_backend.hpp"
#include "host/cpu/cpu_simd.hpp"
#include "host/cpu/path_streams.hpp"
#include "host/engine/dispatch.hpp"
#include "taep/error.hpp"
#include "taep/physics/mlp_elementwise.hpp"
#include "taep/physics/mlp_path.hpp"
#include "taep/physics/reverse_path.hpp"

namespace taep {
namespace detail {
namespace {

// One batch's state and the model's outputs, as flat (n, ...) arrays the function sees directly.
struct CallbackBatch {
  std::vector<float> x, dw, out, est, vectors;            // the model's side
  std::vector<float> x_next;                              // reverse paths: x_{k+1}
  std::vector<float> s_target, div_target, quad_target, r2;  // the target's side, per path
};

class CpuCallbackBackend final : public Backend {
 public:
  explicit CpuCallbackBackend(const ForwardProblem& problem)
      : problem_(problem),
        view_(problem_.view([](const auto& v) { return v.data(); })),
        setup_(*problem_.callback),
        plan_(physics::mlp_tangent_plan(true, setup_.hutchinson() ? setup_.probes : 0, false,
                                        problem_.d)) {}
  CpuCallbackBackend(const CpuCallbackBackend&) = delete;
  CpuCallbackBackend& operator=(const CpuCallbackBackend&) = delete;

  std::string name() const override { return "cpu"; }
  std::string device() const override { return cpu_device("score callback", 1); }
  // A chunk holds at least one whole batch, so a large batch is one call per step.
  std::uint64_t max_chunk_paths() const override {
    constexpr std::uint64_t B = physics::kReduceBlock;
    const std::uint64_t batch = std::uint64_t(setup_.callback.batch);
    return std::max<std::uint64_t>(std::uint64_t(1) << 16, (batch + B - 1) / B * B);
  }

  void simulate(std::uint64_t first, std::uint64_t count, std::vector<double>& taep,
                std::vector<double>& reference, std::vector<double>* aux_out,
                std::vector<float>* x0, std::vector<float>* xN) override {
    const std::uint64_t d = std::uint64_t(problem_.d);
    std::vector<double> aux_scratch;  // the batches write aux whether or not it is kept
    std::vector<double>& aux = aux_out ? *aux_out : aux_scratch;
    size_path_outputs(count, problem_.d, false, taep, reference, &aux, x0, xN);  // no closed form
    CallbackBatch b;
    const std::uint64_t batch = std::uint64_t(setup_.callback.batch);
    for (std::uint64_t off = 0; off < count; off += batch) {
      const int n = int(std::min(batch, count - off));
      const physics::PathEnds<float> ends{x0 ? x0->data() + off * d : nullptr,
                                          xN ? xN->data() + off * d : nullptr};
      dispatch_dim(problem_.d, [&](auto dim) {
        run_batch<decltype(dim)::value>(first + off, n, taep.data() + off, aux.data() + off, b,
                                        ends);
      });
    }
  }

  void run_chunk(std::uint64_t first, std::uint64_t count, const HistogramSpec& hist,
                 ChunkStats& out) override {
    constexpr std::uint64_t B = physics::kReduceBlock;
    std::vector<double> taep, reference, aux;
    simulate(first, count, taep, reference, &aux, nullptr, nullptr);
    const bool with_aux = setup_.hutchinson() && setup_.probes >= 2;
    out.blocks.clear();
    for (std::uint64_t off = 0; off < count; off += B)
      out.blocks.push_back(reduce_block_cpu(taep.data() + off, nullptr,
                                            int(std::min(B, count - off)),
                                            with_aux ? aux.data() + off : nullptr));
    out.histogram.assign(std::size_t(hist.bins) + 2, 0);
    const double inv_w = hist.inv_width();
    for (double s : taep) {
      const int slot = physics::histogram_slot(s, 0.0, false, hist.lo, inv_w, hist.bins);
      if (slot >= 0) out.histogram[std::size_t(slot)]++;
    }
  }

  // Reverse paths in batches of the callback's batch size, as the MLP backend runs them
  // (physics/reverse_path.hpp): the function is evaluated at every grid point from t_max down, with
  // its divergence (or probes) only where a TAEP increment is read (with_taep, k < N).
  void simulate_reverse(std::uint64_t first, std::uint64_t count, bool with_taep,
                        std::vector<double>* taep, std::vector<double>* reference,
                        std::vector<float>* samples) override {
    const std::uint64_t d = std::uint64_t(problem_.d);
    if (reference) reference->clear();  // no closed form: the model is not a mixture
    std::vector<double> taep_scratch;
    std::vector<float> sample_scratch;
    std::vector<double>& S = taep ? *taep : taep_scratch;
    std::vector<float>& X = samples ? *samples : sample_scratch;
    S.assign(with_taep ? count : 0, 0.0);
    X.assign(count * d, 0.f);
    CallbackBatch b;
    const std::uint64_t batch = std::uint64_t(setup_.callback.batch);
    for (std::uint64_t off = 0; off < count; off += batch) {
      const int n = int(std::min(batch, count - off));
      dispatch_dim(problem_.d, [&](auto dim) {
        run_reverse_batch<decltype(dim)::value>(first + off, n, with_taep,
                                                with_taep ? S.data() + off : nullptr,
                                                X.data() + off * d, b);
      });
    }
  }

 private:
  void resize(int n, const physics::MlpTangentPlan& plan, CallbackBatch& b) const {
    const int P = plan.count;
    const std::size_t nd = std::size_t(n) * problem_.d;
    b.x.resize(nd);
    b.dw.resize(nd);
    b.out.resize(nd);
    b.s_target.resize(nd);
    b.est.resize(std::size_t(n) * std::max(1, P));
    b.vectors.resize(nd * std::size_t(P));
    b.div_target.resize(std::size_t(n));
    b.quad_target.resize(std::size_t(n));
    b.r2.resize(std::size_t(n));
  }

  // The function over the batch b.x at grid point k: the model's output into b.out and, with
  // `with_divergence`, its divergence (or the plan's probe estimates) into b.est, both converted to
  // the score's for an eps-prediction (mlp.hpp); then the reference function, if any, into the
  // target's buffers.
  void call_model(std::uint64_t first, int n, int k, bool with_divergence,
                  const physics::MlpTangentPlan& plan, CallbackBatch& b) const {
    const int P = with_divergence ? plan.count : 0;
    ScoreRequest request;
    request.n = n;
    request.d = problem_.d;
    request.first_path = first;
    request.x = b.x.data();
    request.output = b.out.data();
    request.divergence = with_divergence && P == 0 ? b.est.data() : nullptr;
    request.probes = P;
    request.probe_vectors = P > 0 ? b.vectors.data() : nullptr;
    request.probe_estimates = P > 0 ? b.est.data() : nullptr;
    const double t = problem_.grid.t(k);
    request.step = k;
    request.t = t;
    setup_.callback.evaluate(request);
    const double noise = problem_.schedule.marginal(t).noise;
    if (with_divergence && setup_.callback.reference) this->reference(request, noise, b);
    if (setup_.callback.parameterization != Parameterization::eps) return;
    const float scale = physics::output_scale(true, noise);
    const std::size_t nd = std::size_t(n) * problem_.d, ne = std::size_t(n) * std::max(1, P);
    for (std::size_t i = 0; i < nd; ++i) b.out[i] *= scale;
    if (with_divergence)
      for (std::size_t i = 0; i < ne; ++i) b.est[i] *= scale;
  }

  // Reverse paths [first, first + n): S read on the forward clock into taep[0..n) (with_taep), the
  // samples x(t_min) into samples[0..n*d).
  template <int D>
  void run_reverse_batch(std::uint64_t first, int n, bool with_taep, double* taep, float* samples,
                         CallbackBatch& b) const {
    const int d = problem_.d;
    const physics::MlpTangentPlan plan = with_taep ? plan_ : physics::MlpTangentPlan{};
    const int P = plan.count;
    const std::size_t nd = std::size_t(n) * d;
    resize(n, plan, b);
    b.x_next.resize(nd);
    const bool rademacher = setup_.probe_distribution == ProbeDistribution::rademacher;
    PathStreams st(view_.seed, first, n, rng::kReverseNoise, rademacher);
    start_reverse_paths(view_, first, n, b.x.data(), taep);
    auto step_all = [&](const physics::StepScalars& c) {
      reverse_step_all<D>(n, d, c, b.out.data(), st, b.x.data(), b.x_next.data());
    };
    const int N = problem_.steps;
    call_model(first, n, N, false, plan, b);
    step_all(physics::step_scalars_at(problem_.schedule, problem_.grid, N));
    for (int k = N - 1; k >= 0; --k) {
      if (!with_taep && k == 0) break;  // x_0 is the sample; nothing is evaluated there
      const physics::StepScalars c = view_.step[k];
      if (with_taep)
        for (int p = 0; p < n; ++p) {
          const std::size_t o = std::size_t(p) * d;
          physics::implied_increment(d, c, &b.x_next[o], &b.x[o], &b.dw[o]);
          b.r2[std::size_t(p)] = prepare_learned_path<D>(
              view_, k, c.mean_scale, plan, &b.x[o], &b.dw[o], b.vectors.data() + o * std::size_t(P),
              st.probes[std::size_t(p)], &b.s_target[o], &b.div_target[std::size_t(p)],
              &b.quad_target[std::size_t(p)]);
        }
      call_model(first, n, k, with_taep, plan, b);
      if (with_taep)
        for (int p = 0; p < n; ++p) {
          const std::size_t o = std::size_t(p) * d, q = std::size_t(p) * std::size_t(std::max(1, P));
          taep[p] += double(physics::mlp_increment(d, c, plan, &b.out[o], &b.est[q], &b.s_target[o],
                                                   b.div_target[std::size_t(p)],
                                                   b.quad_target[std::size_t(p)],
                                                   b.r2[std::size_t(p)], &b.dw[o], nullptr));
        }
      if (k > 0) step_all(c);
    }
    std::copy(b.x.begin(), b.x.begin() + std::ptrdiff_t(nd), samples);
  }

  // Paths [first, first + n): S into taep[0..n), the probe-noise variance of S into aux[0..n),
  // the start and end points into ends (n * d each, where not null).
  template <int D>
  void run_batch(std::uint64_t first, int n, double* taep, double* aux, CallbackBatch& b,
                 physics::PathEnds<float> ends) const {
    const int d = problem_.d;
    const int P = plan_.count;  // Hutchinson probes, or 0: the function gives the divergence
    const std::size_t nd = std::size_t(n) * d;
    resize(n, plan_, b);
    const bool rademacher = setup_.probe_distribution == ProbeDistribution::rademacher;
    PathStreams st(view_.seed, first, n, rng::kForwardNoise, rademacher);
    for (int p = 0; p < n; ++p) {
      rng::PhiloxHostStream init(view_.seed, rng::subsequence(rng::kInitialState, first + p));
      physics::sample_initial_state<D>(view_, init, b.x.data() + std::size_t(p) * d);
      taep[p] = 0.0;
      aux[p] = 0.0;
    }
    if (ends.x0) std::copy(b.x.begin(), b.x.begin() + std::ptrdiff_t(nd), ends.x0);

    for (int k = 0; k < problem_.steps; ++k) {
      const physics::StepScalars c = view_.step[k];
      for (int p = 0; p < n; ++p) {
        const std::size_t o = std::size_t(p) * d;
        for (int i = 0; i < d; ++i) b.dw[o + i] = c.sqrt_h * st.noise[std::size_t(p)].next();
        b.r2[std::size_t(p)] = prepare_learned_path<D>(
            view_, k, c.mean_scale, plan_, &b.x[o], &b.dw[o], b.vectors.data() + o * std::size_t(P),
            st.probes[std::size_t(p)], &b.s_target[o], &b.div_target[std::size_t(p)],
            &b.quad_target[std::size_t(p)]);
      }

      call_model(first, n, k, true, plan_, b);
      for (int p = 0; p < n; ++p) {
        const std::size_t o = std::size_t(p) * d, q = std::size_t(p) * std::size_t(std::max(1, P));
        taep[p] += double(physics::mlp_increment(d, c, plan_, &b.out[o], &b.est[q], &b.s_target[o],
                                                 b.div_target[std::size_t(p)],
                                                 b.quad_target[std::size_t(p)],
                                                 b.r2[std::size_t(p)], &b.dw[o], &aux[p]));
        physics::euler_maruyama_step(d, c.decay, c.sqrt_g2, &b.dw[o], &b.x[o]);
      }
    }
    if (ends.xN) std::copy(b.x.begin(), b.x.begin() + std::ptrdiff_t(nd), ends.xN);
  }

  // s* and its divergence from the reference function, in place of the mixture's (the mixture's
  // were computed by prepare_learned_path and are overwritten).
  void reference(const ScoreRequest& model, double noise, CallbackBatch& b) const {
    ScoreRequest r = model;  // the same batch, step and x; s* and its exact divergence out
    r.output = b.s_target.data();
    r.divergence = b.div_target.data();
    r.probes = 0;
    r.probe_vectors = nullptr;
    r.probe_estimates = nullptr;
    setup_.callback.reference(r);
    const ScoreCallback& cb = setup_.callback;
    if (cb.reference_parameterization != Parameterization::eps) return;
    const float scale = physics::output_scale(true, noise);
    for (std::size_t i = 0; i < std::size_t(r.n) * std::size_t(r.d); ++i) b.s_target[i] *= scale;
    for (int p = 0; p < r.n; ++p) b.div_target[std::size_t(p)] *= scale;
  }

  ForwardProblem problem_;
  physics::ForwardView view_;
  const CallbackSetup& setup_;
  physics::MlpTangentPlan plan_;
};

}  // namespace

std::unique_ptr<Backend> make_callback_backend(const ForwardProblem& problem,
                                               taep::Backend requested) {
  if (requested == taep::Backend::cuda)
    throw BackendUnavailable(
        "run.backend: \"cuda\" does not take a score callback yet (the function runs on the host; "
        "device arrays through DLPack are a later step): use \"cpu\" or \"auto\"");
  return std::make_unique<CpuCallbackBackend>(problem);
}

}  // namespace detail
}  // namespace taep

// The CPU trainer (host/engine/trainer.hpp): forward and backward passes of the MLP as OpenBLAS SGEMMs
// over slabs of the batch, the per-example and per-parameter physics of physics/dsm.hpp.
//
// Determinism. The batch is cut into fixed slabs of kSlab examples. A slab is computed by one
// thread with single-threaded BLAS into its own gradient buffer, so its result does not depend on
// which thread ran it; the slab gradients (and losses) are then summed in slab order, element by
// element. The parameters after any number of steps are therefore bitwise the same for every
// thread count (the tests check this).
//
// Layout. Activations are row-major [examples x features], the weights row-major [out x in] as in
// the flat parameter vector, so with X the layer input and W its weight:
//   forward          Z  = X W^T + b                   sgemm(N, T)
//   weight gradient  dW = dZ^T X,  db = column sums    sgemm(T, N)
//   input gradient   dX = dZ W                         sgemm(N, N)   (not for layer 0)
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <memory>
#include <new>
#include <vector>

#include "host/cpu/cpu_trainer_simd.hpp"
#include "host/cpu/mlp_cpu.hpp"
#include "host/engine/trainer.hpp"
#include "taep/error.hpp"
#include "taep/physics/dsm.hpp"
#include "taep/physics/mlp_elementwise.hpp"
#include "taep/physics/philox.hpp"

namespace taep {
namespace detail {
namespace {

// Examples per slab: big enough for efficient GEMMs, small enough that a default batch (2048)
// gives every thread of a small machine several slabs.
constexpr int kSlab = 256;
// Slab gradients held at once: at most 32, and for big networks at most 2^26 floats in all (but
// one per thread). Slabs beyond are summed in later rounds, continuing the same sequential sum, so
// the round size never changes a result.
constexpr int kSlabsPerRound = 32;
// Elements per block of the parallel sum of the slab gradients.
constexpr std::size_t kSumBlock = 4096;
constexpr std::size_t kSlabGradientFloats = std::size_t(1) << 26;
int slabs_per_round(int slabs, int threads, std::size_t parameters) {
  const int by_memory = int(std::max<std::size_t>(1, kSlabGradientFloats / parameters));
  return std::min(slabs, std::max(threads, std::min(kSlabsPerRound, by_memory)));
}

// A 64-byte aligned float array (the same alignment in every thread's workspace).
class AlignedFloats {
 public:
  AlignedFloats() = default;
  explicit AlignedFloats(std::size_t n) : n_(n) {
    const std::size_t bytes = ((n * sizeof(float) + 63) / 64) * 64;
    p_ = static_cast<float*>(std::aligned_alloc(64, std::max<std::size_t>(bytes, 64)));
    if (!p_) throw std::bad_alloc();
  }
  AlignedFloats(AlignedFloats&& o) noexcept : p_(o.p_), n_(o.n_) { o.p_ = nullptr; }
  AlignedFloats& operator=(AlignedFloats&& o) noexcept {
    std::swap(p_, o.p_);
    std::swap(n_, o.n_);
    return *this;
  }
  AlignedFloats(const AlignedFloats&) = delete;
  AlignedFloats& operator=(const AlignedFloats&) = delete;
  ~AlignedFloats() { std::free(p_); }
  float* data() const { return p_; }
  std::size_t size() const { return n_; }

 private:
  float* p_ = nullptr;
  std::size_t n_ = 0;
};

// One thread's buffers for a slab.
struct SlabWork {
  AlignedFloats x0;                 // kSlab x (d + E): the network input
  std::vector<AlignedFloats> act;   // per hidden layer: kSlab x out, SiLU(Z)
  std::vector<AlignedFloats> der;   // per hidden layer: kSlab x out, SiLU'(Z)
  AlignedFloats out, dout, noise;   // kSlab x d
  AlignedFloats da, db;             // kSlab x max width: gradient w.r.t. a layer's output
  std::vector<float> coef;          // kSlab: a of |a o + z|^2
};

class CpuTrainer final : public Trainer {
 public:
  CpuTrainer(const TrainProblem& P, int threads)
      : P_(P),
        D_(P.data()),
        threads_(threads > 0 ? threads : std::max(1, omp_get_max_threads())),
        slabs_((P.batch + kSlab - 1) / kSlab),
        round_(slabs_per_round(slabs_, threads_, P.parameter_count)),
        p_(P.initial),
        m_(P.parameter_count, 0.f),
        v_(P.parameter_count, 0.f),
        ema_(P.initial),
        grad_(P.parameter_count, 0.f),
        isa_(mlp_cpu_isa()) {
    for (int i = 0; i < P.embedding_dim / 2; ++i)
      freq_.push_back(physics::embedding_frequency(i, P.embedding_dim, P.max_period));
    TAEP_EXPECTS(P.initial.size() == P.parameter_count, "problem without initial parameters");
    // OpenMP runs one slab per thread: BLAS must not start threads of its own.
    openblas_set_num_threads(1);
    slab_grad_.resize(std::size_t(round_));
    for (auto& g : slab_grad_) g = AlignedFloats(P.parameter_count);
    slab_loss_.resize(std::size_t(round_));
    const int workers = std::min(threads_, slabs_);
    work_.resize(std::size_t(workers));
    const int in0 = P.d + P.embedding_dim, width = P.max_width();
    for (SlabWork& w : work_) {
      w.x0 = AlignedFloats(std::size_t(kSlab) * in0);
      for (std::size_t l = 0; l + 1 < P.layers.size(); ++l) {
        w.act.emplace_back(std::size_t(kSlab) * P.layers[l].out);
        w.der.emplace_back(std::size_t(kSlab) * P.layers[l].out);
      }
      w.out = AlignedFloats(std::size_t(kSlab) * P.d);
      w.dout = AlignedFloats(std::size_t(kSlab) * P.d);
      w.noise = AlignedFloats(std::size_t(kSlab) * P.d);
      w.da = AlignedFloats(std::size_t(kSlab) * width);
      w.db = AlignedFloats(std::size_t(kSlab) * width);
      w.coef.resize(kSlab);
    }
  }

  std::string name() const override { return "cpu"; }
  std::string device() const override {
    const std::string elementwise = isa_ == MlpIsa::blas ? "scalar" : to_string(isa_);
    return "CPU (OpenBLAS SGEMM, " + elementwise + " elementwise), " + std::to_string(threads_) +
           " OpenMP thread" + (threads_ == 1 ? "" : "s");
  }
  int threads() const override { return threads_; }

  void run_steps(std::uint64_t first, std::uint64_t count, TrainSums& sums) override {
    TAEP_EXPECTS(first == done_, "run_steps must continue at the steps already run");
    for (std::uint64_t n = first; n < first + count; ++n) {
      const double loss = batch_gradient(n);
      double ss = 0;
      for (float g : grad_) ss += double(g) * g;
      const double norm = std::sqrt(ss);
      const float scale = physics::clip_scale(norm, P_.clip_norm);
      const physics::AdamCoefficients c = P_.adam(n);
      const std::int64_t np = std::int64_t(P_.parameter_count);
      float *p = p_.data(), *m = m_.data(), *v = v_.data(), *ema = ema_.data();
      const float* g = grad_.data();
#pragma omp parallel for schedule(static) num_threads(threads_) if (np >= 65536)
      for (std::int64_t i = 0; i < np; ++i) physics::adam_ema_update(c, g[i], scale, p[i], m[i], v[i], ema[i]);
      sums.loss += loss;
      sums.grad_norm += norm;
      sums.steps += 1;
      ++done_;
    }
  }

  void read_parameters(std::vector<float>& ema, std::vector<float>& last) override {
    ema = ema_;
    last = p_;
  }

  TrainState state() override { return {done_, p_, m_, v_, ema_}; }
  void restore(const TrainState& s) override {
    for (const auto* v : {&s.last, &s.m, &s.v, &s.ema})
      TAEP_EXPECTS(v->size() == p_.size(), "a training state of another network");
    done_ = s.steps;
    p_ = s.last;
    m_ = s.m;
    v_ = s.v;
    ema_ = s.ema;
  }

  double loss_and_gradient(std::uint64_t step, std::vector<float>& grad) override {
    const double loss = batch_gradient(step);
    grad = grad_;
    return loss;
  }

 private:
  // The batch-mean loss of step n at the current parameters; its gradient into grad_.
  double batch_gradient(std::uint64_t n) {
    double loss = 0;
    const std::size_t np = P_.parameter_count;
    for (int r0 = 0; r0 < slabs_; r0 += round_) {
      const int nr = std::min(round_, slabs_ - r0);
      const int workers = std::min<int>(int(work_.size()), nr);
#pragma omp parallel num_threads(workers)
      {
        SlabWork& w = work_[std::size_t(omp_get_thread_num())];
#pragma omp for schedule(dynamic, 1)
        for (int s = 0; s < nr; ++s) slab_loss_[std::size_t(s)] = slab(n, r0 + s, w, slab_grad_[std::size_t(s)].data());
        // Sum the slab gradients in slab order, element by element: grad = g_0 + g_1 + ... over
        // all rounds (parallel over fixed blocks of elements, so the order per element is fixed).
        const std::int64_t blocks = std::int64_t((np + kSumBlock - 1) / kSumBlock);
#pragma omp for schedule(static)
        for (std::int64_t b = 0; b < blocks; ++b) {
          const std::size_t lo = std::size_t(b) * kSumBlock, hi = std::min(np, lo + kSumBlock);
          float* acc = grad_.data();
          int s0 = 0;
          if (r0 == 0) {
            std::copy(slab_grad_[0].data() + lo, slab_grad_[0].data() + hi, acc + lo);
            s0 = 1;
          }
          for (int s = s0; s < nr; ++s) {
            const float* gs = slab_grad_[std::size_t(s)].data();
            for (std::size_t i = lo; i < hi; ++i) acc[i] += gs[i];
          }
        }
      }
      for (int s = 0; s < nr; ++s) loss += slab_loss_[std::size_t(s)];
    }
    return loss / double(P_.batch);
  }

  // Slab s of step n: forward, loss, backward; the slab's gradient into g (overwritten), returns
  // the slab's summed loss.
  double slab(std::uint64_t n, int s, SlabWork& w, float* g) {
    const int first = s * kSlab;
    const int rows = std::min(kSlab, P_.batch - first);
    const int d = P_.d, E = P_.embedding_dim, in0 = d + E;
    const std::size_t L = P_.layers.size();
    const float* params = p_.data();

    // Examples and the network input [x_t, emb(t)].
    for (int r = 0; r < rows; ++r) {
      rng::PhiloxHostStream stream(P_.seed, physics::train_example_subsequence(n, P_.batch, first + r));
      float* x = w.x0.data() + std::size_t(r) * in0;
      const physics::DsmTime tm = physics::draw_example(D_, stream, x, w.noise.data() + std::size_t(r) * d);
      physics::example_embedding(tm.t, E, P_.time_scale, freq_.data(), x + d);
      w.coef[std::size_t(r)] = physics::output_coefficient(P_.eps(), tm.sigma_t);
    }

    // Forward.
    const float* x = w.x0.data();
    for (std::size_t l = 0; l < L; ++l) {
      const TrainLayer& Ly = P_.layers[l];
      const bool hidden = l + 1 < L;
      float* z = hidden ? w.act[l].data() : w.out.data();
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, Ly.out, Ly.in, 1.f, x, Ly.in,
                  params + Ly.weight, Ly.in, 0.f, z, Ly.out);
      const float* b = params + Ly.bias;
      if (hidden) {
        bias_silu(rows, Ly.out, z, b, w.der[l].data());
      } else {
        for (int r = 0; r < rows; ++r)
          for (int j = 0; j < Ly.out; ++j) z[std::size_t(r) * Ly.out + j] += b[j];
      }
      x = z;
    }

    // Loss and dL/do.
    double loss = 0;
    const float inv_batch = 1.f / float(P_.batch);
    for (int r = 0; r < rows; ++r) {
      const std::size_t o = std::size_t(r) * d;
      loss += physics::dsm_example_loss(d, w.coef[std::size_t(r)], w.out.data() + o,
                                        w.noise.data() + o, inv_batch, w.dout.data() + o);
    }

    // Backward: dz holds the gradient w.r.t. layer l's pre-activation output.
    const float* dz = w.dout.data();
    float* spare[2] = {w.da.data(), w.db.data()};
    int flip = 0;
    for (std::size_t l = L; l-- > 0;) {
      const TrainLayer& Ly = P_.layers[l];
      const float* xin = l == 0 ? w.x0.data() : w.act[l - 1].data();
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Ly.out, Ly.in, rows, 1.f, dz, Ly.out,
                  xin, Ly.in, 0.f, g + Ly.weight, Ly.in);
      column_sums(rows, Ly.out, dz, g + Ly.bias);
      if (l == 0) break;
      // dA = dz W (the input gradient of layer l), then dZ of layer l-1 = dA * SiLU'.
      float* da = spare[flip];
      flip ^= 1;
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, Ly.in, Ly.out, 1.f, dz, Ly.out,
                  params + Ly.weight, Ly.in, 0.f, da, Ly.in);
      multiply(long(rows) * Ly.in, da, w.der[l - 1].data());
      dz = da;
    }
    return loss;
  }

  // z <- SiLU(z + b), der <- SiLU'(z + b): the widest vector unit the CPU has, else scalar.
  void bias_silu(int rows, int width, float* z, const float* b, float* der) const {
#if defined(TAEP_HAVE_CPU_SIMD)
    if (isa_ == MlpIsa::avx512) return avx512::train_bias_silu(rows, width, z, b, der);
    if (isa_ == MlpIsa::avx2) return avx2::train_bias_silu(rows, width, z, b, der);
#endif
    for (int r = 0; r < rows; ++r) {
      float* zr = z + std::size_t(r) * width;
      float* dr = der + std::size_t(r) * width;
      for (int j = 0; j < width; ++j) physics::silu_and_derivative(zr[j] + b[j], zr[j], dr[j]);
    }
  }

  // sums[c] = column sums of x [rows x width], each in row order (the bias gradient).
  void column_sums(int rows, int width, const float* x, float* sums) const {
#if defined(TAEP_HAVE_CPU_SIMD)
    if (isa_ == MlpIsa::avx512) return avx512::train_column_sums(rows, width, x, sums);
    if (isa_ == MlpIsa::avx2) return avx2::train_column_sums(rows, width, x, sums);
#endif
    for (int c = 0; c < width; ++c) sums[c] = 0.f;
    for (int r = 0; r < rows; ++r)
      for (int c = 0; c < width; ++c) sums[c] += x[std::size_t(r) * width + c];
  }
  // a[i] *= b[i].
  void multiply(long n, float* a, const float* b) const {
#if defined(TAEP_HAVE_CPU_SIMD)
    if (isa_ == MlpIsa::avx512) return avx512::train_multiply(n, a, b);
    if (isa_ == MlpIsa::avx2) return avx2::train_multiply(n, a, b);
#endif
    for (long i = 0; i < n; ++i) a[i] *= b[i];
  }

  const TrainProblem& P_;
  physics::DsmData D_;
  int threads_;
  int slabs_, round_;
  std::vector<float> p_, m_, v_, ema_, grad_;
  std::vector<AlignedFloats> slab_grad_;
  std::vector<double> slab_loss_;
  std::vector<SlabWork> work_;
  MlpIsa isa_;
  std::vector<double> freq_;  // the embedding's frequencies
  std::uint64_t done_ = 0;
};

}  // namespace

std::unique_ptr<Trainer> make_cpu_trainer(const TrainProblem& problem, int threads) {
  return std::make_unique<CpuTrainer>(problem, threads);
}

}  // namespace detail
}  // namespace taep

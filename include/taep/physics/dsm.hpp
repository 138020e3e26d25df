#pragma once
// The per-example and per-parameter physics of denoising score matching (DSM) training (`taep
// train`, include/taep/train.hpp), shared by the CPU trainer (host/cpu/cpu_trainer.cpp, around CPU-BLAS
// GEMMs) and the CUDA trainer (around cuBLAS GEMMs). Everything here is TAEP_HD.
//
// One training step n (0-based) of batch size B sees examples i = 0..B-1. Example i of step n reads
// its own Philox stream, curand_init(seed, subsequence(kTrainExample, n*B + i), 0) on the device or
// rng::PhiloxHostStream(seed, same subsequence) on the host (train_example_subsequence below), in
// this order:
//   1. one 128-bit block (next_u4): word x picks the data point, word y the time; z, w unused.
//        mixture data: component k by cumulative weight, u = (x + 0.5) 2^-32 in (0, 1)
//                      (the same rule as the engine's initial state, forward_taep.hpp);
//        sample file:  row floor(x * n_rows / 2^32), an exact integer product;
//        time:         t = t_min + (1 - t_min) (y + 0.5) 2^-32, in double.
//   2. normals, one at a time from next_normal4 blocks (NormalSource of forward_taep.hpp):
//        mixture data: z0[0..d) then z[0..d);  sample file: z[0..d).
//   x0  = m_k + sigma_k z0  (mixture)  or the file's row (samples);
//   x_t = c(t) x0 + sqrt(n(t)) z   (the schedule's transition: c = sqrt(abar), n = 1 - abar for VP;
//                                  c = 1, n = sigma(t)^2 - sigma_min^2 for VE; physics/schedule.hpp).
// The host and device streams deal the same words; the normals agree to a few ulp (Box-Muller's
// sincos, philox.hpp), so both backends train on the same examples.
//
// Loss. With lambda(t) = n(t) and s = b o the score the network output o stands for
// (b = 1 for a score network, b = -1/sqrt(n) for an eps-prediction network):
//   l = lambda |s + z / sqrt(n)|^2 = |a o + z|^2,   a = sqrt(n) b
// i.e. a = sqrt(n) (score) or a = -1 (eps: l = |z - eps_theta|^2). The batch loss is the mean
// of l over the B examples (a sum over the d components, a mean over examples), and its gradient with
// respect to example i's output is dL/do = 2 a (a o + z) / B.
//
// Optimizer, per parameter, after the gradient of the batch is complete:
//   global norm N = sqrt(sum over all parameters of g^2) (in double), scale = clip_scale(N, max_norm)
//   g <- scale g;  Adam with bias correction (PyTorch's torch.optim.Adam, no weight decay, n = step+1):
//   m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2
//   p <- p - [lr / (1 - b1^n)] m / (sqrt(v) / sqrt(1 - b2^n) + eps)
//   ema <- ema + (1 - decay) (p - ema)        (EMA of the updated weights; starts at the initial ones)
//
// Initial weights (host only, so that every backend starts from the same ones): layer l draws from
// stream (seed, subsequence(kTrainInit, l)) its weights in row-major order, then its biases, each
// U(-1/sqrt(in), 1/sqrt(in)) as PyTorch's nn.Linear default, from consecutive 32-bit words
// (next_u4 blocks, words x, y, z, w in order) by init_uniform.
#include <cstdint>

#include "taep/physics/forward_taep.hpp"
#include "taep/physics/hd.hpp"
#include "taep/physics/mixture.hpp"
#include "taep/physics/mlp_elementwise.hpp"
#include "taep/physics/rng_streams.hpp"
#include "taep/physics/schedule.hpp"

namespace taep {
namespace physics {

// Where x0 comes from, as flat non-owning arrays (host or device pointers), plus the time law.
struct DsmData {
  int d = 0;
  // Mixture data (samples == nullptr): K components.
  int K = 0;
  const float* mean = nullptr;    // K*d, component means m_k
  const float* sigma = nullptr;   // K, component widths sigma_k
  const double* cum_w = nullptr;  // K, cumulative normalized weights (the last is 1)
  // Sample data (used when samples != nullptr): rows of d values.
  const float* samples = nullptr;  // sample_count*d
  std::uint32_t sample_count = 0;
  // t ~ U[t_min, 1] and the schedule.
  double t_min = 1e-3;
  Schedule schedule;
};

// The time of one example and the schedule's values at it.
struct DsmTime {
  double t = 0;
  Marginal marginal;     // the transition from 0 to t
  float mean_scale = 1;  // its mean scale (sqrt(abar(t)) for VP)
  float sigma_t = 0;     // the square root of its noise variance (sqrt(1 - abar(t)) for VP)
};

// The Philox subsequence of example i of step n (batch B): the "path" is n*B + i, so that
// n*B + i < 2^40 is required (train.cpp validates steps*batch).
TAEP_HD std::uint64_t train_example_subsequence(std::uint64_t step, int batch, int i) {
  return rng::subsequence(rng::kTrainExample, step * std::uint64_t(batch) + std::uint64_t(i));
}

// Draws one example from a stream positioned at its start (offset 0): writes x_t[0..d) and the
// noise z[0..d), returns its time. Stream: rng::PhiloxHostStream, or detail::CurandPhiloxStream
// (kernels/curand_stream.cuh), or anything with next_u4() and next_normal4().
template <class Stream>
TAEP_HD DsmTime draw_example(const DsmData& D, Stream& stream, float* x_t, float* z) {
  const int d = D.d;
  const rng::U4 w = stream.next_u4();
  // The time.
  DsmTime tm;
  tm.t = D.t_min + (1.0 - D.t_min) * rng::uniform_open(w.y);
  tm.marginal = D.schedule.marginal(tm.t);
  tm.mean_scale = float(tm.marginal.scale);
  tm.sigma_t = float(sqrt_(tm.marginal.noise));
  // x0 into x_t (then diffused in place).
  NormalSource<Stream> normals(stream);
  if (D.samples) {
    const std::uint64_t row = (std::uint64_t(w.x) * D.sample_count) >> 32;  // < sample_count
    const float* r = D.samples + row * std::uint64_t(d);
    for (int i = 0; i < d; ++i) x_t[i] = r[i];
  } else {
    const int k = pick_component(rng::uniform_open(w.x), D.cum_w, D.K);
    const float* mk = D.mean + k * d;
    const float sk = D.sigma[k];
    for (int i = 0; i < d; ++i) x_t[i] = mk[i] + sk * normals.next();
  }
  for (int i = 0; i < d; ++i) {
    z[i] = normals.next();
    x_t[i] = tm.mean_scale * x_t[i] + tm.sigma_t * z[i];
  }
  return tm;
}

// The sinusoidal time embedding of docs/physics.md section 7 as the network's float input, out[j * stride]
// for j = 0..E-1. The same expressions, in double, as time_embedding (mlp_elementwise.hpp), so the
// values equal the float rounding of those the evaluators use; here t differs per example, so it is
// computed per example, without a temporary array.
TAEP_HD void example_embedding(double t, int E, double time_scale, double max_period, float* out,
                               int stride = 1) {
  const int half = E / 2;
  for (int i = 0; i < half; ++i) {
    const double a = time_scale * t * embedding_frequency(i, E, max_period);
    out[i * stride] = float(::sin(a));
    out[(half + i) * stride] = float(::cos(a));
  }
}
// The same values from a table freq[i] = embedding_frequency(i, E, max_period), i < E/2, computed
// once (bitwise the same result: the frequencies are the same doubles).
TAEP_HD void example_embedding(double t, int E, double time_scale, const double* freq, float* out,
                               int stride = 1) {
  const int half = E / 2;
  for (int i = 0; i < half; ++i) {
    const double a = time_scale * t * freq[i];
    out[i * stride] = float(::sin(a));
    out[(half + i) * stride] = float(::cos(a));
  }
}

// a of the loss |a o + z|^2: sqrt(n(t)) for a score network, -1 for an eps-prediction network.
TAEP_HD float output_coefficient(bool eps_parameterization, float sigma_t) {
  return eps_parameterization ? -1.f : sigma_t;
}

// The loss |a o + z|^2 of one example (returned) and, when grad_o is not null, its contribution to
// the batch-mean loss's gradient: grad_o[i] = grad_scale * 2 a (a o[i] + z[i]), grad_scale = 1/B.
TAEP_HD float dsm_example_loss(int d, float a, const float* o, const float* z, float grad_scale,
                               float* grad_o) {
  float loss = 0.f;
  const float g = 2.f * a * grad_scale;
  for (int i = 0; i < d; ++i) {
    const float r = a * o[i] + z[i];
    loss += r * r;
    if (grad_o) grad_o[i] = g * r;
  }
  return loss;
}

// PyTorch's clip_grad_norm_: min(1, max_norm / (norm + 1e-6)); max_norm <= 0 disables clipping.
TAEP_HD float clip_scale(double norm, double max_norm) {
  if (!(max_norm > 0.0)) return 1.f;
  const double c = max_norm / (norm + 1e-6);
  return c < 1.0 ? float(c) : 1.f;
}

// Adam's and the EMA's coefficients for step n (1-based: the first update is n = 1), computed once
// per step in double and applied per parameter in float.
struct AdamCoefficients {
  float beta1 = 0.9f, one_minus_beta1 = 0.1f;
  float beta2 = 0.999f, one_minus_beta2 = 0.001f;
  float eps = 1e-8f;
  float step_size = 1e-3f;     // lr / (1 - beta1^n)
  float inv_sqrt_bc2 = 1.f;    // 1 / sqrt(1 - beta2^n)
  float ema_rate = 1e-3f;      // 1 - ema decay
};

TAEP_HD AdamCoefficients adam_coefficients(double lr, double beta1, double beta2, double eps,
                                           double ema_decay, std::uint64_t n) {
  AdamCoefficients c;
  c.beta1 = float(beta1);
  c.one_minus_beta1 = float(1.0 - beta1);
  c.beta2 = float(beta2);
  c.one_minus_beta2 = float(1.0 - beta2);
  c.eps = float(eps);
  c.step_size = float(lr / (1.0 - ::pow(beta1, double(n))));
  c.inv_sqrt_bc2 = float(1.0 / sqrt_(1.0 - ::pow(beta2, double(n))));
  c.ema_rate = float(1.0 - ema_decay);
  return c;
}

// One parameter's update: g is its raw gradient, scale the clip scale of the step.
TAEP_HD void adam_ema_update(const AdamCoefficients& c, float g, float scale, float& p, float& m,
                             float& v, float& ema) {
  g *= scale;
  m = c.beta1 * m + c.one_minus_beta1 * g;
  v = c.beta2 * v + c.one_minus_beta2 * g * g;
  const float denom = sqrt_(v) * c.inv_sqrt_bc2 + c.eps;
  p -= c.step_size * (m / denom);
  ema += c.ema_rate * (p - ema);
}

// A 32-bit word to U(-bound, bound): bound (2u - 1) with cuRAND's uniform u = x 2^-32 + 2^-33 in
// (0, 1] (philox.hpp, uniform_from_bits).
TAEP_HD float init_uniform(std::uint32_t word, float bound) {
  const float u = rng::uniform_from_bits(word);
  return bound * (2.f * u - 1.f);
}

}  // namespace physics
}  // namespace taep

#pragma once
// The vector kernels of the learned-score (MLP) models for one instruction set Arch: the network on
// packets of points (lane l of every packet is point l), and the CPU backend's batches of paths
// around it (the per-path physics of physics/mlp_path.hpp, taep_increment.hpp and forward_taep.hpp
// instantiated with packets, as host/cpu/cpu_simd_loop.hpp does for the mixture models). Included by
// exactly one translation unit per instruction set (host/cpu/isa_avx2.cpp, host/cpu/isa_avx512.cpp),
// which defines TAEP_ISA_UNIT first (see host/cpu/cpu_simd_loop.hpp for why: no standard containers or
// algorithms here, every header function inlined).
//
// Layout: a packet's values of one stream (the forward activations, or one tangent) are rows of L
// floats, row j at buf + j * L; streams are width * L floats apart. A layer is one pass over the
// packed weights (host/cpu/mlp_cpu.hpp, MlpKernelLayer) per group of S <= kMlpGroup streams: for each
// tile of `tile` output rows, acc[s][r] += W[j0 + r][k] * in_s[k] over k = 0, 1, ... (FMA, in that
// order, the same for every stream and lane), then the epilogue while the tile is in registers:
//   hidden layer, forward stream: z = acc + b, a = SiLU(z), s' = SiLU'(z) (physics/mlp_elementwise);
//   hidden layer, tangent stream: t = s' * acc (s' of the forward pass, kept per layer when the
//                                 tangents need more than one group);
//   output layer: score = (acc + b) * out_scale; Hutchinson: v . acc; exact: only the diagonal
//                 sum_j W[i][j] t_i[j] of tangent i is needed (a dot product, not a GEMM).
// Layer 0 reads only x (its embedding columns are in bias0); for the exact trace its tangents are
// W_0 e_i = column i of W_0, so they cost one multiply by s', no GEMM.
#if !defined(TAEP_ISA_UNIT)
#error "define TAEP_ISA_UNIT before including host/cpu/cpu_mlp_loop.hpp"
#endif

#include <cstddef>
#include <cstdint>
#include <new>
#include <vector>

#include "host/cpu/cpu_simd_loop.hpp"
#include "host/engine/dispatch.hpp"
#include "host/cpu/mlp_cpu.hpp"
#include "host/cpu/simd.hpp"
#include "taep/physics/mlp_elementwise.hpp"
#include "taep/physics/mlp_path.hpp"
#include "taep/physics/rng_streams.hpp"

#define TAEP_MLP_INLINE inline __attribute__((always_inline))

namespace taep {
namespace detail {
namespace mlp_kernels {

template <class A>
struct Arch {
  using F = FloatPacket<A>;
  static constexpr int L = int(F::size);
  static constexpr int MR = kIsAvx512<A> ? mlp_tile(MlpIsa::avx512) : mlp_tile(MlpIsa::avx2);
};

// One layer pass over S streams: for every tile of MR output rows, the register tile
// acc[s][r] = sum_k W[j0 + r][k] in[s][k] (k ascending, FMA), then epi(j0, acc).
template <class A, int S, class Epi>
TAEP_MLP_INLINE void layer_pass(const MlpKernelLayer& layer, const float* const* in, Epi&& epi) {
  using F = typename Arch<A>::F;
  constexpr int L = Arch<A>::L, MR = Arch<A>::MR;
  const int K = layer.in;
  for (int j0 = 0; j0 < layer.out_pad; j0 += MR) {
    const float* w = layer.w + std::size_t(j0) * K;
    F acc[S][MR];
#pragma GCC unroll 8
    for (int s = 0; s < S; ++s)
#pragma GCC unroll 16
      for (int r = 0; r < MR; ++r) acc[s][r] = F(0.f);
    for (int k = 0; k < K; ++k) {
      F x[S];
#pragma GCC unroll 8
      for (int s = 0; s < S; ++s) x[s] = F::load_aligned(in[s] + std::size_t(k) * L);
#pragma GCC unroll 16
      for (int r = 0; r < MR; ++r) {
        const F wr(w[k * MR + r]);
#pragma GCC unroll 8
        for (int s = 0; s < S; ++s) acc[s][r] = xsimd::fma(wr, x[s], acc[s][r]);
      }
    }
    epi(j0, acc);
  }
}

// Scratch of one packet's network evaluation (floats, 64-byte aligned).
template <class A>
struct NetScratch {
  float* act[2];  // ping-pong: kMlpGroup streams of width rows each
  float* deriv;   // hidden * width rows: s' per hidden layer (kept when tangents need more groups)
  static std::size_t floats(const MlpKernelView& v) {
    return std::size_t(Arch<A>::L) * v.width * (2 * kMlpGroup + v.hidden);
  }
  NetScratch(const MlpKernelView& v, float* ws) {
    const std::size_t stream = std::size_t(Arch<A>::L) * v.width;
    act[0] = ws;
    act[1] = ws + kMlpGroup * stream;
    deriv = ws + 2 * kMlpGroup * stream;
  }
};

// The exact divergence's output layer when d fits TR < tile rows: the score rows (the first TR rows
// of the packed tile) and the diagonal terms sum_j W_out[i][j] t_i[j] of the NT tangents in one pass,
// so that the short, latency-bound chains overlap. Same operations in the same order as layer_pass
// and the separate diagonal loop.
template <class A, int TR, int NT, class Store>
TAEP_MLP_INLINE void output_exact_small(const MlpKernelLayer& lo, const float* x,
                                        const float* const* tan, const float* const* wrow, int d,
                                        Store&& store_score, typename Arch<A>::F* diag) {
  using F = typename Arch<A>::F;
  constexpr int L = Arch<A>::L, MR = Arch<A>::MR;
  F acc[TR], dg[NT > 0 ? NT : 1];
#pragma GCC unroll 8
  for (int r = 0; r < TR; ++r) acc[r] = F(0.f);
#pragma GCC unroll 8
  for (int s = 0; s < NT; ++s) dg[s] = F(0.f);
  for (int k = 0; k < lo.in; ++k) {
    const F xk = F::load_aligned(x + std::size_t(k) * L);
#pragma GCC unroll 8
    for (int r = 0; r < TR; ++r) acc[r] = xsimd::fma(F(lo.w[k * MR + r]), xk, acc[r]);
#pragma GCC unroll 8
    for (int s = 0; s < NT; ++s)
      dg[s] = xsimd::fma(F(wrow[s][k]), F::load_aligned(tan[s] + std::size_t(k) * L), dg[s]);
  }
#pragma GCC unroll 8
  for (int r = 0; r < TR; ++r)
    if (r < d) store_score(r, acc[r]);
#pragma GCC unroll 8
  for (int s = 0; s < NT; ++s) diag[s] = dg[s];
}

// One group of streams through the whole network: the forward values (FWD) and tangents
// t0 .. t0 + S - 1 - FWD. x: d rows; probe(q): d rows of probe q (Hutchinson). Writes score (d rows,
// FWD only) and est: Hutchinson row q = v_q . J v_q (without out_scale); exact: adds the diagonal
// terms of this group's tangents to row 0 in order of i.
template <class A, int S, bool FWD, class Probe>
void run_group(const MlpKernelView& V, int T, bool hutch, int t0, const float* x, Probe&& probe,
               float* score, float* est, const NetScratch<A>& sc) {
  using F = typename Arch<A>::F;
  constexpr int L = Arch<A>::L, MR = Arch<A>::MR;
  constexpr int NT = S - (FWD ? 1 : 0);  // tangents in this group
  const int d = V.d;
  const std::size_t stream = std::size_t(L) * V.width;
  // Layer derivatives are kept when later groups will need them.
  const bool keep = FWD && T > NT;
  int cur = 0;
  const float* in[S];
  float* out[S];
  auto bind = [&](int buf) {
    for (int s = 0; s < S; ++s) out[s] = sc.act[buf] + s * stream;
  };
  // The forward epilogue of a hidden unit: SiLU of the pre-activation into out[0] at offset j, its
  // derivative kept for later groups; returns the derivative that scales this group's tangents.
  auto activate = [&](F z, std::size_t j, float* deriv) {
    F a, dv;
    physics::silu_and_derivative(z, a, dv);
    a.store_aligned(out[0] + j);
    if (keep) dv.store_aligned(deriv + j);
    return dv;
  };
  // The epilogues of a layer pass over S streams (layer 0 with probes, and the hidden layers):
  // forward groups activate stream 0 (bias, SiLU, derivative into deriv) and scale the other
  // streams, their tangents, by the derivative; tangent-only groups scale every stream by the
  // derivative their forward group kept in deriv.
  auto forward_epilogue = [&](const float* bias, float* deriv) {
    return [&, bias, deriv](int j0, F(&acc)[S][MR]) {
#pragma GCC unroll 16
      for (int r = 0; r < MR; ++r) {
        const std::size_t j = std::size_t(j0 + r) * L;
        const F dv = activate(acc[0][r] + F(bias[j0 + r]), j, deriv);
#pragma GCC unroll 8
        for (int s = 1; s < S; ++s) (acc[s][r] * dv).store_aligned(out[s] + j);
      }
    };
  };
  auto tangent_epilogue = [&](const float* deriv) {
    return [&, deriv](int j0, F(&acc)[S][MR]) {
#pragma GCC unroll 16
      for (int r = 0; r < MR; ++r) {
        const std::size_t j = std::size_t(j0 + r) * L;
        const F dv = F::load_aligned(deriv + j);
#pragma GCC unroll 8
        for (int s = 0; s < S; ++s) (acc[s][r] * dv).store_aligned(out[s] + j);
      }
    };
  };

  {
    // ---- layer 0: x (and the probes) through the x columns of W_0 ----
    const MlpKernelLayer& l0 = V.layer[0];
    const float* b0 = V.bias0;
    float* deriv0 = sc.deriv;
    bind(cur);
    if (FWD) {
      if (hutch) {
        in[0] = x;
        for (int s = 1; s < S; ++s) in[s] = probe(t0 + s - 1);
        layer_pass<A, S>(l0, in, forward_epilogue(b0, deriv0));
      } else {
        in[0] = x;
        layer_pass<A, 1>(l0, in, [&](int j0, F(&acc)[1][MR]) {
#pragma GCC unroll 16
          for (int r = 0; r < MR; ++r) {
            const std::size_t j = std::size_t(j0 + r) * L;
            const F dv = activate(acc[0][r] + F(b0[j0 + r]), j, deriv0);
            // Tangent of e_i: column i of W_0 (its packed value W[j0 + r][i]) times s'.
#pragma GCC unroll 8
            for (int s = 1; s < S; ++s)
              (F(l0.w[std::size_t(j0) * l0.in + (t0 + s - 1) * MR + r]) * dv).store_aligned(out[s] + j);
          }
        });
      }
    } else if (hutch) {
      for (int s = 0; s < S; ++s) in[s] = probe(t0 + s);
      layer_pass<A, S>(l0, in, tangent_epilogue(deriv0));
    } else {
      for (int j0 = 0; j0 < l0.out_pad; j0 += MR)
        for (int r = 0; r < MR; ++r) {
          const std::size_t j = std::size_t(j0 + r) * L;
          const F dv = F::load_aligned(deriv0 + j);
          for (int s = 0; s < S; ++s)
            (F(l0.w[std::size_t(j0) * l0.in + (t0 + s) * MR + r]) * dv).store_aligned(out[s] + j);
        }
    }

    // ---- hidden layers 1 .. hidden-1 ----
    for (int l = 1; l < V.hidden; ++l) {
      const MlpKernelLayer& layer = V.layer[l];
      float* deriv = sc.deriv + std::size_t(l) * stream;
      for (int s = 0; s < S; ++s) in[s] = sc.act[cur] + s * stream;
      cur ^= 1;
      bind(cur);
      if (FWD)
        layer_pass<A, S>(layer, in, forward_epilogue(layer.bias, deriv));
      else
        layer_pass<A, S>(layer, in, tangent_epilogue(deriv));
    }
    for (int s = 0; s < S; ++s) in[s] = sc.act[cur] + s * stream;
  }

  // ---- output layer ----
  const MlpKernelLayer& lo = V.layer[V.hidden];
  const float* bias_out = lo.bias;
  if (hutch) {
    F vjv[S];
    for (int s = 0; s < S; ++s) vjv[s] = F(0.f);
    const float* pv[S];
    for (int s = FWD ? 1 : 0; s < S; ++s) pv[s] = probe(t0 + s - (FWD ? 1 : 0));
    layer_pass<A, S>(lo, in, [&](int j0, F(&acc)[S][MR]) {
#pragma GCC unroll 16
      for (int r = 0; r < MR; ++r) {  // rows past d are padding
        const int i = j0 + r;
        if (i >= d) break;
        if (FWD) ((acc[0][r] + F(bias_out[i])) * F(V.out_scale)).store_aligned(score + std::size_t(i) * L);
#pragma GCC unroll 8
        for (int s = FWD ? 1 : 0; s < S; ++s)
          vjv[s] = xsimd::fma(F::load_aligned(pv[s] + std::size_t(i) * L), acc[s][r], vjv[s]);
      }
    });
    for (int s = FWD ? 1 : 0; s < S; ++s)
      vjv[s].store_aligned(est + std::size_t(t0 + s - (FWD ? 1 : 0)) * L);
    return;
  }
  // Exact trace: tangent i contributes sum_j W_out[i][j] t_i[j] (k ascending, like the GEMM tiles).
  constexpr int NTS = NT > 0 ? NT : 1;
  const int K = lo.in;
  F diag[NTS];
  const float* wrow[NTS];
  for (int s = 0; s < NT; ++s) {
    diag[s] = F(0.f);
    wrow[s] = lo.raw + std::size_t(t0 + s) * lo.ld;
  }
  const float* const* tan = in + (FWD ? 1 : 0);
  bool diag_done = false;
  if (FWD) {
    auto store_score = [&](int i, const F& acc) {
      ((acc + F(bias_out[i])) * F(V.out_scale)).store_aligned(score + std::size_t(i) * L);
    };
    if (MR > 2 && d <= 2) {
      output_exact_small<A, 2, NT>(lo, in[0], tan, wrow, d, store_score, diag);
      diag_done = true;
    } else if (MR > 4 && d <= 4) {
      output_exact_small<A, 4, NT>(lo, in[0], tan, wrow, d, store_score, diag);
      diag_done = true;
    } else {
      layer_pass<A, 1>(lo, in, [&](int j0, F(&acc)[1][MR]) {
#pragma GCC unroll 16
        for (int r = 0; r < MR; ++r) {
          if (j0 + r >= d) break;
          store_score(j0 + r, acc[0][r]);
        }
      });
    }
  }
  if (NT == 0) return;
  if (!diag_done)
    for (int k = 0; k < K; ++k)
#pragma GCC unroll 8
      for (int s = 0; s < NT; ++s)
        diag[s] = xsimd::fma(F(wrow[s][k]), F::load_aligned(tan[s] + std::size_t(k) * L), diag[s]);
  F trace = F::load_aligned(est);
  for (int s = 0; s < NT; ++s) trace = trace + diag[s];
  trace.store_aligned(est);
}

template <class A, int S, bool FWD, class Probe>
TAEP_MLP_INLINE void run_group_n(int n, const MlpKernelView& V, int T, bool hutch, int t0,
                                 const float* x, Probe&& probe, float* score, float* est,
                                 const NetScratch<A>& sc) {
  static_assert(S >= 1 && S <= kMlpGroup, "group size");
  if constexpr (S > 1) {
    if (n < S) return run_group_n<A, S - 1, FWD>(n, V, T, hutch, t0, x, probe, score, est, sc);
  }
  run_group<A, S, FWD>(V, T, hutch, t0, x, probe, score, est, sc);
}

// One packet of L points through the network: x (d rows) -> score (d rows); with T > 0 tangents,
// est: Hutchinson (hutch) rows q = v_q . J v_q for q < T, probe(q) giving probe q's d rows; exact:
// row 0 = the trace. Both times out_scale.
template <class A, class Probe>
void net_packet(const MlpKernelView& V, int T, bool hutch, const float* x, Probe&& probe,
                float* score, float* est, float* ws) {
  using F = typename Arch<A>::F;
  constexpr int L = Arch<A>::L;
  const NetScratch<A> sc(V, ws);
  if (T > 0 && !hutch) F(0.f).store_aligned(est);
  const int first = T < kMlpGroup - 1 ? T : kMlpGroup - 1;  // tangents carried with the forward pass
  run_group_n<A, kMlpGroup, true>(1 + first, V, T, hutch, 0, x, probe, score, est, sc);
  for (int t0 = first; t0 < T; t0 += kMlpGroup) {
    const int n = T - t0 < kMlpGroup ? T - t0 : kMlpGroup;
    run_group_n<A, kMlpGroup, false>(n, V, T, hutch, t0, x, probe, score, est, sc);
  }
  if (T == 0) return;
  const F scale(V.out_scale);
  for (int q = 0; q < (hutch ? T : 1); ++q)
    (F::load_aligned(est + std::size_t(q) * L) * scale).store_aligned(est + std::size_t(q) * L);
}

// MlpCpuEvaluator::evaluate on rows: packets of L points transposed in and out (a last partial
// packet padded with zeros, whose results are dropped).
template <class A>
void evaluate_rows(const MlpKernelView& V, int n, const float* X, float* score, float* div,
                   int probes, const float* Vp, float* ws) {
  constexpr int L = Arch<A>::L;
  const int d = V.d;
  const bool hutch = div && probes > 0;
  const int T = div ? (probes > 0 ? probes : d) : 0;
  const std::size_t net = NetScratch<A>::floats(V);
  float* x = ws + net;
  float* slots = x + std::size_t(d) * L;  // kMlpGroup probes, d rows each
  float* sc = slots + std::size_t(kMlpGroup) * d * L;
  float* est = sc + std::size_t(V.layer[V.hidden].out_pad) * L;
  for (int p0 = 0; p0 < n; p0 += L) {
    const int m = n - p0 < L ? n - p0 : L;
    for (int i = 0; i < d; ++i)
      for (int l = 0; l < L; ++l) x[i * L + l] = l < m ? X[std::size_t(p0 + l) * d + i] : 0.f;
    int slot_of[kMlpGroup] = {-1, -1, -1};
    auto probe = [&](int q) -> const float* {
      float* s = slots + std::size_t(q % kMlpGroup) * d * L;
      if (slot_of[q % kMlpGroup] != q) {
        slot_of[q % kMlpGroup] = q;
        for (int i = 0; i < d; ++i)
          for (int l = 0; l < L; ++l)
            s[i * L + l] = l < m ? Vp[(std::size_t(p0 + l) * probes + q) * d + i] : 0.f;
      }
      return s;
    };
    net_packet<A>(V, T, hutch, x, probe, sc, est, ws);
    for (int l = 0; l < m; ++l) {
      for (int i = 0; i < d; ++i) score[std::size_t(p0 + l) * d + i] = sc[i * L + l];
      if (!div) continue;
      if (hutch)
        for (int q = 0; q < T; ++q) div[std::size_t(p0 + l) * T + q] = est[std::size_t(q) * L + l];
      else
        div[p0 + l] = est[l];
    }
  }
}

// ---- the CPU backend's batches ------------------------------------------------------------------

// The streams of one packet of paths (lane l: path first + l), read in lockstep.
template <class A>
struct PacketStreams {
  using Stream = PhiloxPacketStream<A>;
  Stream noise, probe;
  physics::NormalSource<Stream> noise_normals;
  physics::ProbeSource<Stream> probes;
  DoublePacket<A> taep, aux;  // S and its probe-noise variance per lane
  PacketStreams(std::uint64_t seed, std::uint64_t first, bool rademacher)
      : noise(packet_stream<A>(seed, rng::subsequence(rng::kForwardNoise, first))),
        probe(packet_stream<A>(seed, rng::subsequence(rng::kHutchinson, first))),
        noise_normals(noise),
        probes(probe, rademacher),
        taep(0.0),
        aux(0.0) {}
  PacketStreams(const PacketStreams&) = delete;
  PacketStreams& operator=(const PacketStreams&) = delete;
};

// A packet's tangents (physics::mlp_prepare's store): value j of every lane in row j (rows + j L);
// a lane's Milstein basis is built in `scratch` (d*d floats) and then copied into its lane.
template <class A>
struct PacketTangents {
  using F = typename Arch<A>::F;
  float* rows;
  float* scratch;
  int d;
  void put(int j, const F& x) const { x.store_aligned(rows + std::size_t(j) * Arch<A>::L); }
  float* basis(int) const { return scratch; }
  void basis_done(int l) const {
    for (int j = 0; j < d * d; ++j) rows[std::size_t(j) * Arch<A>::L + l] = scratch[j];
  }
};

// Paths [first, first + n) step-synchronously: at each step every packet draws its noise, prepares
// its TAEP evaluation, runs the network and adds its increment, then moves (physics/mlp_path.hpp).
// A last partial packet is padded with the following path ids, whose values are dropped.
template <class A, int D>
void run_batch(const MlpBatchJob& job, MlpCpuEvaluator& net, float* ws) {
  using F = typename Arch<A>::F;
  constexpr int L = Arch<A>::L;
  constexpr int kMaxPackets = kMlpBatch / L;
  constexpr int SD = physics::storage_dim<D>();
  constexpr int kMaxEst = SD > 64 ? SD : 64;  // P <= 64 (config limit), or d for Milstein
  const physics::ForwardView& V = *job.view;
  const int d = D > 0 ? D : V.d;
  const int P = job.probes;
  const physics::MlpTangentPlan plan = physics::mlp_tangent_plan(true, P, V.milstein, d);
  const int packets = (job.n + L - 1) / L;

  const MlpKernelView& kv0 = net.kernel_view();
  const std::size_t net_floats = NetScratch<A>::floats(kv0);
  float* xs = ws + net_floats;                          // packets * d rows: the states
  float* probes = xs + std::size_t(kMaxPackets) * d * L;  // P * d rows
  float* score = probes + std::size_t(P > d ? P : d) * d * L;  // out_pad rows
  float* est = score + std::size_t(kv0.layer[kv0.hidden].out_pad) * L;  // max(P, d) rows
  std::vector<float> basis(plan.milstein ? std::size_t(d) * d : 0);
  const PacketTangents<A> tan{probes, basis.data(), d};

  alignas(64) unsigned char storage[kMaxPackets * sizeof(PacketStreams<A>)];
  PacketStreams<A>* st = reinterpret_cast<PacketStreams<A>*>(storage);
  for (int g = 0; g < packets; ++g) {
    const std::uint64_t first = job.first + std::uint64_t(g) * L;
    new (st + g) PacketStreams<A>(V.seed, first, job.rademacher);
    F x[SD];
    for (int i = 0; i < d; ++i) x[i] = F(0.f);
    for (int l = 0; l < L; ++l) {
      rng::PhiloxHostStream init(V.seed, rng::subsequence(rng::kInitialState, first + l));
      physics::sample_initial_state<D>(V, init, x, l);
    }
    for (int i = 0; i < d; ++i) x[i].store_aligned(xs + (std::size_t(g) * d + i) * L);
  }
  // Path g L + l's point in xs to row g L + l of `rows` (n * d).
  const auto store_points = [&](float* rows) {
    for (int g = 0; g < packets; ++g)
      for (int l = 0; l < L && g * L + l < job.n; ++l)
        for (int i = 0; i < d; ++i)
          rows[std::size_t(g * L + l) * d + i] = xs[(std::size_t(g) * d + i) * L + l];
  };
  if (job.ends.x0) store_points(job.ends.x0);

  auto probe = [&](int q) -> const float* { return probes + std::size_t(q) * d * L; };
  for (int k = 0; k < V.steps; ++k) {
    const physics::StepScalars c = V.step[k];
    const double t = job.grid.t(k);
    net.set_time(t, job.schedule.marginal(t).noise);
    const MlpKernelView& kv = net.kernel_view();
    for (int g = 0; g < packets; ++g) {
      PacketStreams<A>& s = st[g];
      float* xg = xs + std::size_t(g) * d * L;
      F x[SD], dw[SD];
      for (int i = 0; i < d; ++i) x[i] = F::load_aligned(xg + std::size_t(i) * L);
      for (int i = 0; i < d; ++i) dw[i] = c.sqrt_h * s.noise_normals.next();
      physics::ScoreEval<D, F> target;
      const F r2 = physics::mlp_prepare<D>(
          V, k, c.mean_scale, plan, x, dw,
          [&]() -> physics::ProbeSource<typename PacketStreams<A>::Stream>& { return s.probes; },
          tan, target);

      net_packet<A>(kv, plan.hutch ? P : d, plan.count > 0, xg, probe, score, est, ws);

      F s_model[SD], e[kMaxEst];
      for (int i = 0; i < d; ++i) s_model[i] = F::load_aligned(score + std::size_t(i) * L);
      for (int q = 0; q < (plan.count > 0 ? plan.count : 1); ++q)
        e[q] = F::load_aligned(est + std::size_t(q) * L);
      const F inc = physics::mlp_increment(d, c, plan, s_model, e, target.s, target.div,
                                           target.quad, r2, dw, &s.aux);
      physics::add_widened(s.taep, inc);
      physics::euler_maruyama_step(d, c.decay, c.sqrt_g2, dw, x);
      for (int i = 0; i < d; ++i) x[i].store_aligned(xg + std::size_t(i) * L);
    }
  }
  if (job.ends.xN) store_points(job.ends.xN);
  for (int g = 0; g < packets; ++g) {
    for (int l = 0; l < L && g * L + l < job.n; ++l) {
      job.taep[g * L + l] = physics::get_lane(st[g].taep, l);
      job.aux[g * L + l] = physics::get_lane(st[g].aux, l);
    }
    st[g].~PacketStreams<A>();
  }
}

template <class A>
void run_batch_any(const MlpBatchJob& job, MlpCpuEvaluator& net, float* ws) {
  dispatch_dim(job.view->d, [&](auto dim) { run_batch<A, decltype(dim)::value>(job, net, ws); });
}

}  // namespace mlp_kernels
}  // namespace detail
}  // namespace taep

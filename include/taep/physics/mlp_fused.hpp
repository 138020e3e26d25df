#pragma once
// The fused learned-score forward path of one warp tile of 16 paths (docs/fused-mlp.md), written
// once against a warp executor (physics/mlp_tile.hpp): kernels/fused_mlp_kernel.cu runs it with
// DeviceWarp on tensor cores, tests/mlp_tile_test.cpp runs the same code with HostWarp against the
// CPU backend. Per step every path of the tile does what the CPU backend's scalar loop does
// (host/cpu/cpu_mlp_backend.cpp, run_batch_d): its dW, its probes and the target's score
// (physics::mlp_prepare), the network, its TAEP increment (physics::mlp_increment) and the
// Euler-Maruyama step. Only the network differs: it is a chain of m16n8k8 tiles, paths as the 16
// rows, the forward values and each tangent (d basis vectors e_i, or P probes; docs/physics.md
// section 7.3) as separate 16-row "streams" of the warp's activation buffer.
//
// A layer of one stream: the whole output width into registers (acc, at most kMaxTiles tiles of 8
// outputs), k block by k block (A from the buffer, B from the packed weights), then, once every
// lane has read its inputs, the epilogue writes the outputs over them in place: the forward stream
// z + b -> SiLU(z) (its derivative kept in registers), a tangent acc * SiLU'(z). Layer 0 reads the
// d columns of x (the time embedding is in the step's bias0, docs/physics.md section 7.2); its exact
// tangents W_0 e_i need no product (column i of W_0 times SiLU').
#include <cstddef>
#include <cstdint>
#include <vector>

#include "taep/mlp.hpp"
#include "taep/physics/mlp_elementwise.hpp"
#include "taep/physics/mlp_path.hpp"
#include "taep/physics/mlp_tile.hpp"

#if defined(__CUDACC__)
#define TAEP_TILE_UNROLL _Pragma("unroll")
#else
#define TAEP_TILE_UNROLL
#endif

namespace taep {
namespace physics {
namespace fused {

constexpr int kRows = 16;                    // paths per warp tile (the m of m16n8k8)
constexpr int kMaxWidth = 128;               // widest layer, padded to 8 (register budget)
constexpr int kMaxTiles = kMaxWidth / 8;     // output tiles per layer
constexpr int kMaxLayers = 8;                // hidden layers + the output layer
constexpr int kMaxProbes = 64;               // the config's limit
TAEP_HD constexpr int pad8(int n) { return (n + 7) / 8 * 8; }

// One layer as the tile math reads it. in, out: padded to multiples of 8 (padding has zero weights
// and biases, so padded outputs are SiLU(0) = 0 and their tangents 0).
struct Layer {
  int in = 0, out = 0;
  // Offsets (floats) in the packed block of the B fragments -- value i of lane l for k block kb
  // and output tile nb at frag_at + ((kb * out/8 + nb) * 32 + l) * 2 + i holds
  // W[8 nb + g][8 kb + 2 t + i] (tile::kslot_column) -- and of the out biases (layer 0: none, the
  // step's bias0 instead).
  std::uint32_t frag_at = 0, bias_at = 0;
};

struct Net {
  int d = 0;
  int hidden = 0;  // hidden layers; layer[hidden] is the linear output (out = pad8(d))
  int stride = 0;  // floats per activation row: widest layer + 8 (64-bit loads without conflicts)
  int probes = 0;  // Hutchinson probes P; 0: the exact divergence, d tangents
  Layer layer[kMaxLayers];
  std::uint32_t w0col_at = 0;  // exact divergence: W_0[j][i] at w0col_at + i * layer[0].out + j
  // A copy of the packed block (host memory, or the kernel's shared memory). Only offsets live in
  // the layers: the device then sees every address derive from its shared array (LDS, not generic
  // loads), though the layer table itself sits in local memory.
  const float* base = nullptr;
  TAEP_HD int tangents() const { return probes > 0 ? probes : d; }
  TAEP_HD int streams() const { return 1 + tangents(); }
  TAEP_HD void bind(const float* block) { base = block; }
  TAEP_HD const float* frag(int l) const { return base + layer[l].frag_at; }
  TAEP_HD const float* bias(int l) const { return base + layer[l].bias_at; }
  TAEP_HD const float* w0col() const { return base + w0col_at; }
};

// The per-path state and the activation buffer of one tile (a warp's slice of shared memory).
struct Scratch {
  double* taep;  // kRows: S
  double* aux;   // kRows: probe-noise variance of S (Hutchinson, P >= 2)
  float* act;    // streams * kRows rows of `stride` floats; stream s, path p: row s * kRows + p
  float* x;      // kRows * d
  float* dw;     // kRows * d
  float* st;     // kRows * d: the target's score
  float* divt;   // kRows: the target's divergence
  float* pv;     // kRows * P * d: the probes
};

// Floats of one tile's Scratch, a multiple of 4 (tiles stay 16-byte aligned).
TAEP_HD std::size_t scratch_floats(const Net& n) {
  const std::size_t d = std::size_t(n.d);
  const std::size_t f = 4 * kRows + std::size_t(n.streams()) * kRows * n.stride + 3 * kRows * d +
                        kRows + std::size_t(kRows) * n.probes * d;
  return (f + 3) / 4 * 4;
}

// base: 8-byte aligned.
TAEP_HD Scratch scratch_at(const Net& n, float* base) {
  Scratch s;
  s.taep = reinterpret_cast<double*>(base);
  s.aux = s.taep + kRows;
  s.act = base + 4 * kRows;
  s.x = s.act + std::size_t(n.streams()) * kRows * n.stride;
  s.dw = s.x + kRows * n.d;
  s.st = s.dw + kRows * n.d;
  s.divt = s.st + kRows * n.d;
  s.pv = s.divt + kRows;
  return s;
}

// Whether a model has the shape the fused kernel holds: every layer at most kMaxWidth outputs (the
// output layer: d padded), at most kMaxLayers layers. Shared memory is the launcher's check.
inline bool fits(const MlpModel& m, int probes) {
  if (m.layers.size() < 2 || m.layers.size() > std::size_t(kMaxLayers)) return false;
  if (probes > kMaxProbes) return false;
  for (const MlpLayer& l : m.layers)
    if (pad8(l.out) > kMaxWidth) return false;
  return pad8(m.dim) <= kMaxWidth;
}

struct PackedNet {
  Net net;                  // unbound: bind() it to where `data` lives
  std::vector<float> data;  // B fragments, biases, W_0's x columns; a multiple of 4 floats
};

// Packs a model for the tile math: B fragments per layer (rounded to TF32 when tf32, as the
// device's operands are; biases and W_0's columns stay FP32: they enter FP32 epilogues).
// Precondition: fits(m, probes).
inline PackedNet pack(const MlpModel& m, int probes, bool tf32) {
  PackedNet p;
  Net& n = p.net;
  n.d = m.dim;
  n.hidden = int(m.layers.size()) - 1;
  n.probes = probes;
  int widest = pad8(m.dim);
  auto take = [&](std::size_t count) {
    const std::uint32_t at = std::uint32_t(p.data.size());
    p.data.resize(p.data.size() + (count + 3) / 4 * 4, 0.f);
    return at;
  };
  for (int l = 0; l <= n.hidden; ++l) {
    const MlpLayer& src = m.layers[std::size_t(l)];
    Layer& L = n.layer[l];
    const int in_raw = l == 0 ? m.dim : src.in;
    L.in = pad8(in_raw);
    L.out = pad8(src.out);
    widest = widest > L.out ? widest : L.out;
    L.frag_at = take(std::size_t(L.in) * L.out);
    const int NT = L.out / 8;
    for (int kb = 0; kb < L.in / 8; ++kb)
      for (int nb = 0; nb < NT; ++nb)
        for (int lane = 0; lane < tile::kWarp; ++lane)
          for (int i = 0; i < 2; ++i) {
            const int row = 8 * nb + tile::b_col(lane, i);
            const int col = 8 * kb + tile::kslot_column(tile::b_row(lane, i));
            float w = row < src.out && col < in_raw ? src.weight[std::size_t(row) * src.in + col] : 0.f;
            if (tf32) w = tile::round_tf32_emulated(w);
            p.data[L.frag_at + ((std::size_t(kb) * NT + nb) * tile::kWarp + lane) * 2 + i] = w;
          }
    if (l > 0) {
      L.bias_at = take(std::size_t(L.out));
      for (int j = 0; j < src.out; ++j) p.data[L.bias_at + std::size_t(j)] = src.bias[std::size_t(j)];
    }
  }
  const MlpLayer& l0 = m.layers.front();
  n.w0col_at = take(std::size_t(m.dim) * n.layer[0].out);
  for (int i = 0; i < m.dim; ++i)
    for (int j = 0; j < l0.out; ++j)
      p.data[n.w0col_at + std::size_t(i) * n.layer[0].out + j] = l0.weight[std::size_t(j) * l0.in + i];
  n.stride = widest + 8;
  return p;
}

template <class X>
using Tiles = typename X::template Reg<float>[kMaxTiles][4];

// acc = in . W^T over the layer (in: 16 rows of `stride`, the permuted k order of the packing).
template <class X>
TAEP_HD void layer_matmul(const Net& net, int l, const float* in, int stride, Tiles<X>& acc) {
  using R = typename X::template Reg<float>;
  const Layer& L = net.layer[l];
  const int NT = L.out / 8;
  for (int kb = 0; kb < L.in / 8; ++kb) {
    R a[4];
    X::lanes([&](int lane) {
      const float* p = in + tile::group_of(lane) * stride + 8 * kb + 2 * tile::thread_in_group(lane);
      float v0, v1, v2, v3;
      X::load2(p, v0, v2);               // row g: k slots t, t + 4
      X::load2(p + 8 * stride, v1, v3);  // row g + 8
      a[0][lane] = X::operand(v0);
      a[1][lane] = X::operand(v1);
      a[2][lane] = X::operand(v2);
      a[3][lane] = X::operand(v3);
    });
    const float* bk = net.frag(l) + kb * NT * (2 * tile::kWarp);  // int offsets: immediate addresses
    TAEP_TILE_UNROLL
    for (int nt = 0; nt < kMaxTiles; ++nt) {
      if (nt >= NT) break;
      R b[2];
      X::lanes([&](int lane) { X::load2(bk + (nt * tile::kWarp + lane) * 2, b[0][lane], b[1][lane]); });
      X::mma(acc[nt], a, b);
    }
  }
}

template <class X>
TAEP_HD void zero_tiles(Tiles<X>& acc) {
  X::lanes([&](int lane) {
    TAEP_TILE_UNROLL
    for (int nt = 0; nt < kMaxTiles; ++nt)
      TAEP_TILE_UNROLL
      for (int i = 0; i < 4; ++i) acc[nt][i][lane] = 0.f;
  });
}

// Writes out(row, col) of every C element of the layer's tiles over `rows` (the stream's buffer):
// out(nt, i, lane, col) gives the value of element i of tile nt at column col.
template <class X, class Out>
TAEP_HD void store_tiles(int NT, float* rows, int stride, Out&& out) {
  X::lanes([&](int lane) {
    const int g = tile::group_of(lane), col0 = 2 * tile::thread_in_group(lane);
    TAEP_TILE_UNROLL
    for (int nt = 0; nt < kMaxTiles; ++nt) {
      if (nt >= NT) break;
      const int c = 8 * nt + col0;
      X::store2(rows + g * stride + c, out(nt, 0, lane, c), out(nt, 1, lane, c + 1));
      X::store2(rows + (g + 8) * stride + c, out(nt, 2, lane, c), out(nt, 3, lane, c + 1));
    }
  });
}

// The network over the tile's streams in sc.act (inputs: stream 0 the points x, Hutchinson streams
// 1..P the probes; d columns, zero padded to layer 0's in). Leaves in each stream's row p, columns
// 0..d-1: stream 0 the score (output bias and out_scale applied), stream s > 0 the output tangent
// (J v_s before out_scale; exact: J e_s).
template <class X>
TAEP_HD void network(const Net& net, const float* bias0, float out_scale, const Scratch& sc) {
  const int S = net.streams(), stride = net.stride;
  Tiles<X> deriv;  // SiLU'(z) of the current layer, in the C fragments' places
  for (int l = 0; l <= net.hidden; ++l) {
    const Layer& L = net.layer[l];
    const bool last = l == net.hidden;
    const float* bias = l == 0 ? bias0 : net.bias(l);
    for (int s = 0; s < S; ++s) {
      float* rows = sc.act + std::size_t(s) * kRows * stride;
      const bool basis = l == 0 && s > 0 && net.probes == 0;  // W_0 e_i: no product needed
      Tiles<X> acc;
      zero_tiles<X>(acc);
      if (!basis) layer_matmul<X>(net, l, rows, stride, acc);
      X::sync();  // every lane has read this stream's inputs before any output overwrites them
      if (last) {
        store_tiles<X>(L.out / 8, rows, stride, [&](int nt, int i, int lane, int c) {
          return s == 0 ? (acc[nt][i][lane] + bias[c]) * out_scale : acc[nt][i][lane];
        });
      } else if (s == 0) {
        store_tiles<X>(L.out / 8, rows, stride, [&](int nt, int i, int lane, int c) {
          float a, dz;
          silu_and_derivative(acc[nt][i][lane] + bias[c], a, dz);
          deriv[nt][i][lane] = dz;
          return a;
        });
      } else if (basis) {
        const float* w = net.w0col() + (s - 1) * L.out;
        store_tiles<X>(L.out / 8, rows, stride,
                       [&](int nt, int i, int lane, int c) { return w[c] * deriv[nt][i][lane]; });
      } else {
        store_tiles<X>(L.out / 8, rows, stride,
                       [&](int nt, int i, int lane, int) { return acc[nt][i][lane] * deriv[nt][i][lane]; });
      }
      X::sync();
    }
  }
}

// The tile's paths first .. first + rows - 1 at t_min: x0 ~ p(x, t_min) from each path's
// kInitialState stream (open_init(p) returns it), S = 0; the buffer zeroed (rows past `rows` stay
// finite and are never read back).
template <class X, int D, class OpenInit>
TAEP_HD void tile_init(const Net& net, const ForwardView& V, int rows, const Scratch& sc,
                       OpenInit&& open_init) {
  const int d = D > 0 ? D : V.d;
  const std::size_t act = std::size_t(net.streams()) * kRows * net.stride;
  X::lanes([&](int lane) {
    for (std::size_t e = std::size_t(lane); e < act; e += tile::kWarp) sc.act[e] = 0.f;
    for (int e = lane; e < kRows * d; e += tile::kWarp) sc.x[e] = 0.f;
  });
  X::sync();
  X::rows(rows, [&](int p) {
    auto&& init = open_init(p);
    sample_initial_state<D>(V, init, sc.x + std::size_t(p) * d);
    sc.taep[p] = 0.0;
    sc.aux[p] = 0.0;
  });
  X::sync();
}

// Step k of the tile's paths. bias0: layer 0's bias at t_k (W_t emb(t_k) + b_0, padded to layer
// 0's out); out_scale: the output factor at t_k. rng.noise(p, k) and rng.probes(p, k) return path
// p's sources positioned at step k (kForwardNoise values k d .., kHutchinson values k P d ..).
template <class X, int D, class Rng>
TAEP_HD void tile_step(const Net& net, const ForwardView& V, int k, const float* bias0,
                       float out_scale, int rows, const Scratch& sc, Rng& rng) {
  const int d = D > 0 ? D : V.d;
  const int P = net.probes, stride = net.stride, in0 = net.layer[0].in;
  const MlpTangentPlan plan = mlp_tangent_plan(true, P, false, d);
  X::rows(rows, [&](int p) {
    const StepScalars c = V.step[k];
    float* x = sc.x + std::size_t(p) * d;
    float* dw = sc.dw + std::size_t(p) * d;
    {
      auto&& z = rng.noise(p, k);
      for (int i = 0; i < d; ++i) dw[i] = c.sqrt_h * z.next();
    }
    PathTangents tan{sc.pv + std::size_t(p) * P * d};
    ScoreEval<D, float> target;
    mlp_prepare<D>(V, k, c.sqrt_abar, plan, x, dw, [&]() -> decltype(auto) { return rng.probes(p, k); },
                   tan, target);
    for (int i = 0; i < d; ++i) sc.st[std::size_t(p) * d + i] = target.s[i];
    sc.divt[p] = target.div;
    for (int q = 0; q <= P; ++q) {
      float* row = sc.act + (std::size_t(q) * kRows + p) * stride;
      const float* v = q == 0 ? x : tan.v + std::size_t(q - 1) * d;
      for (int i = 0; i < in0; ++i) row[i] = i < d ? v[i] : 0.f;
    }
  });
  X::sync();
  network<X>(net, bias0, out_scale, sc);
  X::rows(rows, [&](int p) {
    const StepScalars c = V.step[k];
    float s[storage_dim<D>()], est[kMaxProbes];
    const float* out = sc.act + std::size_t(p) * stride;
    for (int i = 0; i < d; ++i) s[i] = out[i];
    if (P > 0) {
      for (int j = 0; j < P; ++j) {
        const float* oj = sc.act + (std::size_t(1 + j) * kRows + p) * stride;
        const float* vj = sc.pv + (std::size_t(p) * P + j) * d;
        float vjv = 0.f;
        for (int i = 0; i < d; ++i) vjv += vj[i] * oj[i];
        est[j] = vjv * out_scale;
      }
    } else {
      float trace = 0.f;
      for (int i = 0; i < d; ++i) trace += sc.act[(std::size_t(1 + i) * kRows + p) * stride + i];
      est[0] = trace * out_scale;
    }
    float* dw = sc.dw + std::size_t(p) * d;
    sc.taep[p] += double(mlp_increment(d, c, plan, s, est, sc.st + std::size_t(p) * d, sc.divt[p],
                                       0.f, 0.f, dw, P > 0 ? sc.aux + p : nullptr));
    euler_maruyama_step(d, c.decay, c.sqrt_beta, dw, sc.x + std::size_t(p) * d);
  });
  X::sync();
}

}  // namespace fused
}  // namespace physics
}  // namespace taep

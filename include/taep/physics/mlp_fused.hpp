#pragma once
// The fused learned-score forward path of one warp tile of 16 paths (docs/fused-mlp.md), written
// once against a warp executor (physics/mlp_tile.hpp): kernels/fused_mlp_kernel.cu runs it with
// DeviceWarp on tensor cores, tests/mlp_tile_test.cpp runs the same code with HostWarp against the
// CPU backend. Per step every path of the tile does what the CPU backend's scalar loop does
// (host/cpu/cpu_mlp_backend.cpp, run_batch_d): its dW, its probes and the target's score
// (physics::mlp_prepare), the network, its TAEP increment with (Milstein) its correction
// (physics::mlp_increment) and the Euler-Maruyama step. Only the network differs: it is a chain of
// m16n8k8 tiles, paths as the 16 rows, the forward values and each tangent (the d basis vectors
// e_i, P probes, or Milstein's rotated basis; docs/physics.md sections 4.3 and 7.3) as separate
// 16-row "streams" of the warp's activation buffer.
//
// A layer of one stream: the whole output width into registers (acc, at most kMaxTiles tiles of 8
// outputs), k block by k block (A from the buffer, B from the packed weights), then, once every
// lane has read its inputs, the epilogue writes the outputs over them in place: the forward stream
// z + b -> SiLU(z) (its derivative kept in registers), a tangent acc * SiLU'(z). Layer 0 reads the
// d columns of x (the time embedding is in the step's bias0, docs/physics.md section 7.2); its exact
// tangents W_0 e_i need no product (column i of W_0 times SiLU').
#include <cstddef>
#include <cstdint>
#include <type_traits>
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
// (Offsets, not pointers: on the device every address is then visibly the shared array plus an
// integer, and the compiler emits shared loads, not generic ones.)

struct Net {
  int d = 0;
  int hidden = 0;  // hidden layers; layer[hidden] is the linear output (out = pad8(d))
  int stride = 0;   // floats per row pair of a tangent stream's buffer (act_at): widest layer, padded
  int stride0 = 0;  // the same for the forward stream: narrow (layer 0's in, the output) when its
                    // values stay in registers between layers (uniform 128-wide hidden layers)
  int probes = 0;  // Hutchinson probes P; 0: the exact divergence, d tangents
  // Milstein (exact divergence only): the d tangents are the rotated basis of physics::
  // milstein_basis (docs/physics.md section 4.3), carried through layer 0 by products like probes.
  bool milstein = false;
  Layer layer[kMaxLayers];
  std::uint32_t w0col_at = 0;  // exact divergence: W_0[j][i] at w0col_at + i * layer[0].out + j
  TAEP_HD int tangents() const { return probes > 0 ? probes : d; }
  TAEP_HD int streams() const { return 1 + tangents(); }
  TAEP_HD int stride_of(int s) const { return s == 0 ? stride0 : stride; }
  // Stream s's buffer in the tile's activation area, and the area's size (floats).
  TAEP_HD int stream_at(int s) const { return s == 0 ? 0 : kRows * (stride0 + (s - 1) * stride); }
  TAEP_HD int act_floats() const { return kRows * (stride0 + tangents() * stride); }
  // The tangents are e_1..e_d (W_0 e_i needs no product), not vectors the paths carry.
  TAEP_HD bool unit_tangents() const { return probes == 0 && !milstein; }
  // Tangent values each path carries into the network: P or d vectors of d, or none.
  TAEP_HD int carried() const { return unit_tangents() ? 0 : tangents() * d; }
  // Output tiles of every hidden layer when they are all one width of 128 (the paper's networks),
  // for loops the compiler unrolls; 0 otherwise.
  TAEP_HD int uniform_hidden_tiles() const {
    for (int l = 0; l < hidden; ++l)
      if (layer[l].out != kMaxWidth) return 0;
    return kMaxTiles;
  }
};

// f(std::integral_constant<int, NTH>) with NTH = net.uniform_hidden_tiles(): 16 or 0.
template <class F>
decltype(auto) dispatch_hidden_tiles(const Net& net, F&& f) {
  if (net.uniform_hidden_tiles() == kMaxTiles) return f(std::integral_constant<int, kMaxTiles>{});
  return f(std::integral_constant<int, 0>{});
}

// A stream's buffer holds its 16 rows as 8 row pairs (r, r + 8), interleaved element by element:
// then a lane's A fragment (a0..a3 = rows g, g + 8 at k slots t, t + 4, i.e. columns 2t, 2t + 1) is
// four adjacent floats, one 128-bit load, and its C fragment one 128-bit store (c0, c2, c1, c3).
// With stride = 8 mod 16, the 8 lanes of each quarter-warp hit distinct banks.
TAEP_HD int act_at(int stride, int row, int col) { return ((row & 7) * stride + col) * 2 + (row >> 3); }

// The per-path state and the activation buffer of one tile (a warp's slice of shared memory).
struct Scratch {
  double* taep;  // kRows: S
  double* aux;   // kRows: probe-noise variance of S (Hutchinson, P >= 2)
  float* act;    // the streams' buffers: stream s at net.stream_at(s), kRows * net.stride_of(s)
  float* x;      // kRows * d
  float* dw;     // kRows * d
  float* st;     // kRows * d: the target's score
  float* divt;   // kRows: the target's divergence
  float* quad;   // kRows: the target's dW.(grad s_*).dW (Milstein)
  float* r2;     // kRows: |dW|^2 (Milstein)
  float* pv;     // kRows * carried(): the probes, or the Milstein basis
  TAEP_HD float* stream(const Net& n, int s) const { return act + n.stream_at(s); }
};

// Floats of one tile's Scratch, a multiple of 4 (tiles stay 16-byte aligned).
TAEP_HD std::size_t scratch_floats(const Net& n) {
  const std::size_t d = std::size_t(n.d);
  const std::size_t f = 4 * kRows + std::size_t(n.act_floats()) + 3 * kRows * d +
                        3 * kRows + std::size_t(kRows) * n.carried();
  return (f + 3) / 4 * 4;
}

// base: 16-byte aligned.
TAEP_HD Scratch scratch_at(const Net& n, float* base) {
  Scratch s;
  s.taep = reinterpret_cast<double*>(base);
  s.aux = s.taep + kRows;
  s.act = base + 4 * kRows;
  s.x = s.act + n.act_floats();
  s.dw = s.x + kRows * n.d;
  s.st = s.dw + kRows * n.d;
  s.divt = s.st + kRows * n.d;
  s.quad = s.divt + kRows;
  s.r2 = s.quad + kRows;
  s.pv = s.r2 + kRows;
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
  Net net;
  std::vector<float> data;  // B fragments, biases, W_0's x columns; a multiple of 4 floats
};

// Packs a model for the tile math: B fragments per layer (rounded to TF32 when tf32, as the
// device's operands are; biases and W_0's columns stay FP32: they enter FP32 epilogues).
// Precondition: fits(m, probes); milstein only with probes == 0.
inline PackedNet pack(const MlpModel& m, int probes, bool tf32, bool milstein = false) {
  PackedNet p;
  Net& n = p.net;
  n.d = m.dim;
  n.hidden = int(m.layers.size()) - 1;
  n.probes = probes;
  n.milstein = milstein && probes == 0;
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
  n.stride = (widest + 15) / 16 * 16 + 8;
  const int narrow = n.layer[0].in > n.layer[n.hidden].out ? n.layer[0].in : n.layer[n.hidden].out;
  n.stride0 = n.uniform_hidden_tiles() == kMaxTiles ? (narrow + 15) / 16 * 16 + 8 : n.stride;
  return p;
}

template <class X>
using Tiles = typename X::template Reg<float>[kMaxTiles][4];

// The output tiles of a layer: NTC when the caller knows it at compile time, else NT (runtime).
template <int NTC>
TAEP_HD constexpr bool tile_in(int nt, int NT) {
  return NTC > 0 ? nt < NTC : nt < NT;
}

// acc[nt] += a . B_nt for the output tiles of one k block, its B fragments at bk (int offsets from
// there: immediate addresses).
template <class X, int NTC>
TAEP_HD void mma_row(const float* bk, int NT, const typename X::template Reg<float> (&a)[4], Tiles<X>& acc) {
  using R = typename X::template Reg<float>;
  TAEP_TILE_UNROLL
  for (int nt = 0; nt < kMaxTiles; ++nt) {
    if (!tile_in<NTC>(nt, NT)) break;
    R b[2];
    X::lanes([&](int lane) { X::load2(bk + (nt * tile::kWarp + lane) * 2, b[0][lane], b[1][lane]); });
    X::mma(acc[nt], a, b);
  }
}

// acc += in . W^T over layer l (in: one stream's buffer of row-pair stride `stride`, act_at; w: the
// packed block).
template <class X, int NTC>
TAEP_HD void layer_matmul(const Net& net, const float* w, int l, const float* in, int stride,
                          Tiles<X>& acc) {
  using R = typename X::template Reg<float>;
  const Layer& L = net.layer[l];
  const int NT = NTC > 0 ? NTC : L.out / 8;
  const float* frag = w + L.frag_at;
  for (int kb = 0; kb < L.in / 8; ++kb) {
    R a[4];
    X::lanes([&](int lane) {
      float v[4];
      X::load4(in + act_at(stride, tile::group_of(lane), 8 * kb + 2 * tile::thread_in_group(lane)), v);
      for (int i = 0; i < 4; ++i) a[i][lane] = X::operand(v[i]);
    });
    mma_row<X, NTC>(frag + kb * NT * (2 * tile::kWarp), NT, a, acc);
  }
}

// acc += act . W^T over layer l, its input the previous layer's C fragments in registers (all
// kMaxTiles of them: a 128-wide input): the chaining permutation makes them the A fragments.
template <class X, int NTC>
TAEP_HD void layer_matmul_chained(const Net& net, const float* w, int l, const Tiles<X>& act,
                                  Tiles<X>& acc) {
  using R = typename X::template Reg<float>;
  const Layer& L = net.layer[l];
  const int NT = NTC > 0 ? NTC : L.out / 8;
  const float* frag = w + L.frag_at;
  TAEP_TILE_UNROLL
  for (int kb = 0; kb < kMaxTiles; ++kb) {
    R a[4];
    X::lanes([&](int lane) {
      a[0][lane] = X::operand(act[kb][0][lane]);
      a[1][lane] = X::operand(act[kb][2][lane]);
      a[2][lane] = X::operand(act[kb][1][lane]);
      a[3][lane] = X::operand(act[kb][3][lane]);
    });
    mma_row<X, NTC>(frag + kb * NT * (2 * tile::kWarp), NT, a, acc);
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

// Writes every C element of the layer's tiles into a stream's buffer: out(nt, i, lane, col) gives
// element i of tile nt (at column col).
template <class X, int NTC, class Out>
TAEP_HD void store_tiles(int NT, int stride, float* buf, Out&& out) {
  X::lanes([&](int lane) {
    const int g = tile::group_of(lane), c = 2 * tile::thread_in_group(lane);
    TAEP_TILE_UNROLL
    for (int nt = 0; nt < kMaxTiles; ++nt) {
      if (!tile_in<NTC>(nt, NT)) break;
      const int col = 8 * nt + c;
      const float v[4] = {out(nt, 0, lane, col), out(nt, 2, lane, col), out(nt, 1, lane, col + 1),
                          out(nt, 3, lane, col + 1)};
      X::store4(buf + act_at(stride, g, col), v);
    }
  });
}

// The network over the tile's streams (inputs: stream 0 the points x, streams 1.. the carried
// tangents, Hutchinson's probes or Milstein's basis; d columns, zero padded to layer 0's in). Leaves
// in each stream's row p, columns 0..d-1: stream 0 the score (output bias and out_scale applied),
// stream s > 0 the output tangent (J v_s before out_scale; exact: J e_s). NTH:
// net.uniform_hidden_tiles(); when it is kMaxTiles the forward values stay in registers from layer
// 0's output to the output layer (the C fragments chained as A fragments), and only the tangents
// pass through shared memory.
template <class X, int NTH>
TAEP_HD void network(const Net& net, const float* w, const float* bias0, float out_scale,
                     const Scratch& sc) {
  constexpr bool kChained = NTH == kMaxTiles;
  const int S = net.streams();
  Tiles<X> deriv;  // SiLU'(z) of the current layer, in the C fragments' places
  Tiles<X> act;    // kChained: the forward values of the current layer, likewise
  for (int l = 0; l < net.hidden; ++l) {
    const Layer& L = net.layer[l];
    const int NT = L.out / 8;
    const float* bias = l == 0 ? bias0 : w + L.bias_at;
    for (int s = 0; s < S; ++s) {
      float* buf = sc.stream(net, s);
      const int stride = net.stride_of(s);
      const bool basis = l == 0 && s > 0 && net.unit_tangents();  // W_0 e_i: no product needed
      Tiles<X> acc;
      zero_tiles<X>(acc);
      if (kChained && s == 0 && l > 0)
        layer_matmul_chained<X, NTH>(net, w, l, act, acc);
      else if (!basis)
        layer_matmul<X, NTH>(net, w, l, buf, stride, acc);
      X::sync();  // every lane has read this stream's inputs before any output overwrites them
      if (s == 0 && kChained) {
        X::lanes([&](int lane) {
          const int c0 = 2 * tile::thread_in_group(lane);
          TAEP_TILE_UNROLL
          for (int nt = 0; nt < kMaxTiles; ++nt)
            TAEP_TILE_UNROLL
            for (int i = 0; i < 4; ++i)
              X::silu(acc[nt][i][lane] + bias[8 * nt + c0 + (i & 1)], act[nt][i][lane], deriv[nt][i][lane]);
        });
      } else if (s == 0) {
        store_tiles<X, NTH>(NT, stride, buf, [&](int nt, int i, int lane, int c) {
          float a, dz;
          X::silu(acc[nt][i][lane] + bias[c], a, dz);
          deriv[nt][i][lane] = dz;
          return a;
        });
      } else if (basis) {
        const float* col = w + net.w0col_at + (s - 1) * L.out;
        store_tiles<X, NTH>(NT, stride, buf,
                            [&](int nt, int i, int lane, int c) { return col[c] * deriv[nt][i][lane]; });
      } else {
        store_tiles<X, NTH>(NT, stride, buf, [&](int nt, int i, int lane, int) {
          return acc[nt][i][lane] * deriv[nt][i][lane];
        });
      }
      X::sync();
    }
  }
  const Layer& L = net.layer[net.hidden];
  const float* bias = w + L.bias_at;
  for (int s = 0; s < S; ++s) {
    float* buf = sc.stream(net, s);
    Tiles<X> acc;
    zero_tiles<X>(acc);
    if (kChained && s == 0)
      layer_matmul_chained<X, 0>(net, w, net.hidden, act, acc);
    else
      layer_matmul<X, 0>(net, w, net.hidden, buf, net.stride_of(s), acc);
    X::sync();
    store_tiles<X, 0>(L.out / 8, net.stride_of(s), buf, [&](int nt, int i, int lane, int c) {
      return s == 0 ? (acc[nt][i][lane] + bias[c]) * out_scale : acc[nt][i][lane];
    });
    X::sync();
  }
}

// The tile's paths first .. first + rows - 1 at t_min: x0 ~ p(x, t_min) from each path's
// kInitialState stream (open_init(p) returns it), S = 0; the buffer zeroed (rows past `rows` stay
// finite and are never read back).
template <class X, int D, class OpenInit>
TAEP_HD void tile_init(const Net& net, const ForwardView& V, int rows, const Scratch& sc,
                       OpenInit&& open_init) {
  const int d = D > 0 ? D : V.d;
  const int act = net.act_floats();
  X::lanes([&](int lane) {
    for (int e = lane; e < act; e += tile::kWarp) sc.act[e] = 0.f;
    for (int e = lane; e < kRows * d; e += tile::kWarp) sc.x[e] = 0.f;
  });
  X::sync();
  X::rows(rows, [&](int p) {
    auto&& init = open_init(p);
    sample_initial_state<D>(V, init, sc.x + p * d);
    sc.taep[p] = 0.0;
    sc.aux[p] = 0.0;
  });
  X::sync();
}

// Step k of the tile's paths. w: the packed block; bias0: layer 0's bias at t_k (W_t emb(t_k) + b_0,
// padded to layer 0's out); out_scale: the output factor at t_k. rng.noise(p, k) and
// rng.probes(p, k) return path p's sources positioned at step k (kForwardNoise values k d ..,
// kHutchinson values k P d ..). NTH: net.uniform_hidden_tiles().
template <class X, int D, int NTH, class Rng>
TAEP_HD void tile_step(const Net& net, const float* w, const ForwardView& V, int k, const float* bias0,
                       float out_scale, int rows, const Scratch& sc, Rng& rng) {
  const int d = D > 0 ? D : V.d;
  const int P = net.probes, T = net.tangents(), stride = net.stride, in0 = net.layer[0].in;
  const int stride0 = net.stride0;
  const int inputs = net.unit_tangents() ? 1 : 1 + T;  // streams whose layer-0 input a path writes
  const MlpTangentPlan plan = mlp_tangent_plan(true, P, net.milstein, d);
  X::rows(rows, [&](int p) {
    const StepScalars c = V.step[k];
    float* x = sc.x + p * d;
    float* dw = sc.dw + p * d;
    {
      auto&& z = rng.noise(p, k);
      for (int i = 0; i < d; ++i) dw[i] = c.sqrt_h * z.next();
    }
    PathTangents tan{sc.pv + p * net.carried()};
    ScoreEval<D, float> target;
    sc.r2[p] = mlp_prepare<D>(V, k, c.mean_scale, plan, x, dw,
                              [&]() -> decltype(auto) { return rng.probes(p, k); }, tan, target);
    for (int i = 0; i < d; ++i) sc.st[p * d + i] = target.s[i];
    sc.divt[p] = target.div;
    sc.quad[p] = target.quad;
    for (int q = 0; q < inputs; ++q) {
      float* buf = sc.stream(net, q);
      const float* v = q == 0 ? x : tan.v + (q - 1) * d;
      for (int i = 0; i < in0; ++i) buf[act_at(net.stride_of(q), p, i)] = i < d ? v[i] : 0.f;
    }
  });
  X::sync();
  network<X, NTH>(net, w, bias0, out_scale, sc);
  X::rows(rows, [&](int p) {
    const StepScalars c = V.step[k];
    constexpr int kEst = kMaxProbes > storage_dim<D>() ? kMaxProbes : storage_dim<D>();  // P or d
    float s[storage_dim<D>()], est[kEst];
    const float* out = sc.stream(net, 0);
    for (int i = 0; i < d; ++i) s[i] = out[act_at(stride0, p, i)];
    if (!net.unit_tangents()) {  // v_j . J v_j of each carried tangent
      for (int j = 0; j < T; ++j) {
        const float* oj = sc.stream(net, 1 + j);
        const float* vj = sc.pv + p * net.carried() + j * d;
        float vjv = 0.f;
        for (int i = 0; i < d; ++i) vjv += vj[i] * oj[act_at(stride, p, i)];
        est[j] = vjv * out_scale;
      }
    } else {
      float trace = 0.f;
      for (int i = 0; i < d; ++i) trace += sc.stream(net, 1 + i)[act_at(stride, p, i)];
      est[0] = trace * out_scale;
    }
    float* dw = sc.dw + p * d;
    sc.taep[p] += double(mlp_increment(d, c, plan, s, est, sc.st + p * d, sc.divt[p], sc.quad[p],
                                       sc.r2[p], dw, P > 0 ? sc.aux + p : nullptr));
    euler_maruyama_step(d, c.decay, c.sqrt_g2, dw, sc.x + p * d);
  });
  X::sync();
}

}  // namespace fused
}  // namespace physics
}  // namespace taep

// The fused learned-score kernel's tile math (physics/mlp_tile.hpp, physics/mlp_fused.hpp) run on
// the CPU by its host executor, a simulated warp: the mma fragment layout against a plain matmul,
// TF32 rounding against cvt.rna's rule, and the whole fused path -- the code of
// kernels/fused_mlp_kernel.cu -- against the CPU MLP (network outputs, and per-path S of the CPU
// backend) within a tolerance derived from TF32's rounding (docs/fused-mlp.md, "Error model").
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <ostream>
#include <vector>

#include "host/cpu/mlp_cpu.hpp"
#include "host/cpu/path_streams.hpp"
#include "host/problem/forward_problem.hpp"
#include "taep/config.hpp"
#include "taep/engine.hpp"
#include "taep/physics/mlp_fused.hpp"
#include "taep/physics/rng_streams.hpp"
#include "taep/problem.hpp"
#include "tests/support/test_rng.hpp"
#include "tests/support/test_support.hpp"

namespace {

namespace tile = taep::physics::tile;
namespace fused = taep::physics::fused;
using taep_test::TestRng;

constexpr double kF32 = 0x1.0p-24;   // FP32 unit roundoff
constexpr double kTf32 = 0x1.0p-11;  // TF32 unit roundoff (10 stored mantissa bits, nearest)

float bits_float(std::uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// ---- fragments ---------------------------------------------------------------------------------

TEST(MlpTile, FragmentOwnershipIsABijection) {
  int a[16][8] = {}, b[8][8] = {}, c[16][8] = {};
  for (int l = 0; l < tile::kWarp; ++l) {
    for (int i = 0; i < 4; ++i) {
      a[tile::a_row(l, i)][tile::a_col(l, i)]++;
      c[tile::c_row(l, i)][tile::c_col(l, i)]++;
    }
    for (int i = 0; i < 2; ++i) b[tile::b_row(l, i)][tile::b_col(l, i)]++;
  }
  for (int r = 0; r < 16; ++r)
    for (int k = 0; k < 8; ++k) {
      EXPECT_EQ(a[r][k], 1) << r << "," << k;
      EXPECT_EQ(c[r][k], 1) << r << "," << k;
    }
  for (int k = 0; k < 8; ++k)
    for (int n = 0; n < 8; ++n) EXPECT_EQ(b[k][n], 1) << k << "," << n;
  // The chaining permutation: a C fragment is the next A fragment (a0 c0, a1 c2, a2 c1, a3 c3).
  const int from_c[4] = {0, 2, 1, 3};
  for (int l = 0; l < tile::kWarp; ++l)
    for (int i = 0; i < 4; ++i) {
      EXPECT_EQ(tile::a_row(l, i), tile::c_row(l, from_c[i]));
      EXPECT_EQ(tile::kslot_column(tile::a_col(l, i)), tile::c_col(l, from_c[i]));
    }
}

// One m16n8k8 through the simulated warp's fragments equals the plain product bit for bit: small
// integers are exact in TF32, and so is every partial sum.
TEST(MlpTile, MmaFragmentsMatchPlainMatmul) {
  TestRng rng(7);
  float A[16][8], B[8][8], C[16][8];
  auto small = [&] { return float(int(rng.uniform() * 17) - 8); };
  for (auto& r : A) for (float& v : r) v = small();
  for (auto& r : B) for (float& v : r) v = small();
  for (auto& r : C) for (float& v : r) v = small();
  using X = tile::HostWarp<true>;
  X::Reg<float> a[4], b[2], c[4];
  for (int l = 0; l < tile::kWarp; ++l) {
    for (int i = 0; i < 4; ++i) {
      a[i][l] = X::operand(A[tile::a_row(l, i)][tile::a_col(l, i)]);
      c[i][l] = C[tile::c_row(l, i)][tile::c_col(l, i)];
    }
    for (int i = 0; i < 2; ++i) b[i][l] = X::operand(B[tile::b_row(l, i)][tile::b_col(l, i)]);
  }
  X::mma(c, a, b);
  for (int l = 0; l < tile::kWarp; ++l)
    for (int i = 0; i < 4; ++i) {
      const int m = tile::c_row(l, i), n = tile::c_col(l, i);
      float want = C[m][n];
      for (int k = 0; k < 8; ++k) want += A[m][k] * B[k][n];
      EXPECT_EQ(c[i][l], want) << "lane " << l << " element " << i;
    }
}

// cvt.rna.tf32.f32: nearest, ties away from zero (not to even), low 13 bits cleared.
TEST(MlpTile, Tf32RoundingIsNearestTiesAway) {
  const float one = 1.f;
  EXPECT_EQ(tile::round_tf32_emulated(bits_float(0x3f801000u)), bits_float(0x3f802000u));   // tie up
  EXPECT_EQ(tile::round_tf32_emulated(bits_float(0x3f803000u)), bits_float(0x3f804000u));   // tie, odd
  EXPECT_EQ(tile::round_tf32_emulated(bits_float(0xbf801000u)), bits_float(0xbf802000u));   // away
  EXPECT_EQ(tile::round_tf32_emulated(bits_float(0x3f800fffu)), one);                         // below
  EXPECT_EQ(tile::round_tf32_emulated(bits_float(0x7f7fffffu)), bits_float(0x7f800000u));    // to inf
  EXPECT_TRUE(std::isnan(tile::round_tf32_emulated(std::nanf(""))));
  TestRng rng(3);
  for (int i = 0; i < 1000; ++i) {
    const float x = float(rng.normal() * 100);
    const float r = tile::round_tf32_emulated(x);
    std::uint32_t u;
    std::memcpy(&u, &r, sizeof u);
    EXPECT_EQ(u & 0x1fffu, 0u);
    EXPECT_LE(std::fabs(double(r) - double(x)), kTf32 * std::fabs(double(x)));
  }
}

// A packed layer (B fragments in the chaining permutation, two k blocks, three output tiles, padded
// input and output) through layer_matmul and store_tiles equals the plain product bit for bit, and
// the buffer layout round-trips: integer weights and inputs are exact in TF32, and so is every sum.
TEST(MlpTile, PackedLayerMatmulIsExact) {
  TestRng rng(9);
  taep::MlpModel m;
  m.dim = 13;
  m.embedding_dim = 2;
  auto small = [&] { return float(int(rng.uniform() * 9) - 4); };
  for (const auto& shape : {std::pair<int, int>{15, 21}, std::pair<int, int>{21, 13}}) {
    taep::MlpLayer l;
    l.in = shape.first;
    l.out = shape.second;
    for (int e = 0; e < l.in * l.out; ++e) l.weight.push_back(small());
    for (int e = 0; e < l.out; ++e) l.bias.push_back(small());
    m.layers.push_back(l);
  }
  using X = tile::HostWarp<true>;
  const fused::PackedNet packed = fused::pack(m, 0, true);
  const fused::Net& net = packed.net;
  ASSERT_EQ(net.layer[0].in, 16);
  ASSERT_EQ(net.layer[0].out, 24);
  std::vector<float> buf(std::size_t(fused::kRows * net.stride), 0.f);
  float x[fused::kRows][13];
  for (int p = 0; p < fused::kRows; ++p)
    for (int i = 0; i < 13; ++i) buf[std::size_t(fused::act_at(net.stride, p, i))] = x[p][i] = small();
  fused::Tiles<X> acc;
  fused::zero_tiles<X>(acc);
  fused::layer_matmul<X, 0>(net, packed.data.data(), 0, buf.data(), net.stride, acc);
  fused::store_tiles<X, 0>(3, net.stride, buf.data(), [&](int nt, int i, int lane, int) { return acc[nt][i][lane]; });
  for (int p = 0; p < fused::kRows; ++p)
    for (int j = 0; j < 21; ++j) {
      float want = 0.f;
      for (int i = 0; i < 13; ++i) want += m.layers[0].weight[std::size_t(j * 15 + i)] * x[p][i];
      EXPECT_EQ(buf[std::size_t(fused::act_at(net.stride, p, j))], want) << p << "," << j;
    }
  for (int p = 0; p < fused::kRows; ++p)  // padded outputs: zero weights, zero sums
    for (int j = 21; j < 24; ++j) EXPECT_EQ(buf[std::size_t(fused::act_at(net.stride, p, j))], 0.f);
}

// ---- networks ----------------------------------------------------------------------------------

// nn.Linear's initialization U(-1/sqrt(in), 1/sqrt(in)), biases too; time embedding E = 16.
taep::MlpModel random_model(int d, const std::vector<int>& hidden, std::uint64_t seed) {
  TestRng rng(seed);
  taep::MlpModel m;
  m.dim = d;
  m.embedding_dim = 16;
  m.time_scale = 100.0;
  m.max_period = 1e4;
  int in = d + m.embedding_dim;
  std::vector<int> widths = hidden;
  widths.push_back(d);
  for (int out : widths) {
    taep::MlpLayer l;
    l.in = in;
    l.out = out;
    const double a = 1.0 / std::sqrt(double(in));
    for (int e = 0; e < in * out; ++e) l.weight.push_back(float(a * (2 * rng.uniform() - 1)));
    for (int e = 0; e < out; ++e) l.bias.push_back(float(a * (2 * rng.uniform() - 1)));
    m.layers.push_back(l);
    in = out;
  }
  return m;
}

// Layer 0's bias at t with the embedding folded in, padded to the packed layer's width.
std::vector<float> bias0_at(const taep::MlpModel& m, const fused::Net& net, double t) {
  const taep::MlpLayer& l0 = m.layers.front();
  std::vector<float> b(std::size_t(net.layer[0].out), 0.f);
  std::vector<double> emb(std::size_t(m.embedding_dim));
  taep::physics::fold_time_bias(t, m.dim, m.embedding_dim, m.time_scale, m.max_period, l0.out,
                                l0.in, l0.weight.data(), l0.bias.data(), emb.data(), b.data());
  return b;
}

struct TileMemory {
  std::vector<double> storage;  // doubles: the Scratch's 8-byte alignment
  fused::Scratch sc;
  explicit TileMemory(const fused::Net& net)
      : storage(fused::scratch_floats(net) / 2 + 1), sc(fused::scratch_at(net, reinterpret_cast<float*>(storage.data()))) {}
};

// The rounding noise of network(fused) - network(CPU) at one point, as a standard deviation
// propagated layer by layer in double (docs/fused-mlp.md, "Error model"): roundings are independent
// and uniform, so a dot product y = sum_k w_k a_k of K terms gets the variance
//   sum_k w_k^2 sd(a_k)^2  +  (2 u^2 / 3  +  2 f^2 (K / 6 + 1)) sum_k (w_k a_k)^2,
// the first its inputs' noise, the second the rounding of both operands (u: TF32's 2^-11, or 0 in
// exact-FP32 mode; a uniform error on [-u, u] has variance u^2 / 3) and two FP32 accumulations, the
// fused one's and the CPU's (f = 2^-24; a running sum of K random-sign terms rounds K times at a
// typical size sqrt(k), K / 6 in all). SiLU passes noise with its Lipschitz constant 1.1, SiLU' with
// sup |SiLU''| = 0.5; every elementwise FP32 operation adds f relative. The tests allow 8 standard
// deviations.
struct PointNoise {
  std::vector<double> s, sd_s;      // score and its noise
  std::vector<double> est, sd_est;  // divergence estimates (exact: one, the trace) and their noise
};

double hypot3(double a, double b, double c = 0) { return std::sqrt(a * a + b * b + c * c); }

PointNoise point_noise(const taep::MlpModel& m, const float* bias0, double out_scale, const float* x,
                       int probes, const float* V, double u) {
  const int d = m.dim, T = probes > 0 ? probes : d;
  const int H = int(m.layers.size()) - 1;
  const double f = kF32;
  const auto zeros = [](int n) { return std::vector<double>(static_cast<std::size_t>(n), 0.0); };
  std::vector<double> a(x, x + d);
  std::vector<double> ea = zeros(d);  // x enters as the same float on both sides
  std::vector<std::vector<double>> t(static_cast<std::size_t>(T)), et = t;
  for (int q = 0; q < T; ++q) {
    t[std::size_t(q)] = zeros(d);
    et[std::size_t(q)] = zeros(d);
    for (int i = 0; i < d; ++i)
      t[std::size_t(q)][std::size_t(i)] = probes > 0 ? V[q * d + i] : (i == q ? 1.0 : 0.0);
  }
  // y = row j of W (its first K columns) times v, and the noise of y.
  auto dot = [&](const taep::MlpLayer& L, int j, int K, const std::vector<double>& v,
                 const std::vector<double>& ev, double& y, double& ey) {
    const double c2 = 2 * u * u / 3 + 2 * f * f * (K / 6.0 + 1);
    double s = 0, s2 = 0, e2 = 0;
    for (int k = 0; k < K; ++k) {
      const double w = L.weight[std::size_t(j) * L.in + k], wv = w * v[std::size_t(k)];
      s += wv;
      s2 += wv * wv;
      e2 += w * w * ev[std::size_t(k)] * ev[std::size_t(k)];
    }
    y = s;
    ey = std::sqrt(e2 + c2 * s2);
  };
  for (int l = 0; l < H; ++l) {
    const taep::MlpLayer& L = m.layers[std::size_t(l)];
    const int K = l == 0 ? d : L.in;
    std::vector<double> na = zeros(L.out), nea = na, sd = na, esd = na;
    for (int j = 0; j < L.out; ++j) {
      double z, ez;
      dot(L, j, K, a, ea, z, ez);
      z += l == 0 ? double(bias0[j]) : double(L.bias[std::size_t(j)]);
      ez = hypot3(ez, f * z);
      const double sig = 1 / (1 + std::exp(-z));
      na[std::size_t(j)] = z * sig;
      sd[std::size_t(j)] = sig * (1 + z * (1 - sig));
      nea[std::size_t(j)] = hypot3(1.1 * ez, 4 * f * z * sig, 4 * f);
      esd[std::size_t(j)] = hypot3(0.5 * ez, 4 * f);
    }
    for (int q = 0; q < T; ++q) {
      std::vector<double> nt = zeros(L.out), net = nt;
      for (int j = 0; j < L.out; ++j) {
        double y, ey;
        if (l == 0 && probes == 0) {
          y = L.weight[std::size_t(j) * L.in + q];  // W_0 e_q, exact on both sides
          ey = 0;
        } else {
          dot(L, j, K, t[std::size_t(q)], et[std::size_t(q)], y, ey);
        }
        const double sj = sd[std::size_t(j)];
        nt[std::size_t(j)] = sj * y;
        net[std::size_t(j)] = hypot3(sj * ey, y * esd[std::size_t(j)], f * sj * y);
      }
      t[std::size_t(q)] = nt;
      et[std::size_t(q)] = net;
    }
    a = na;
    ea = nea;
  }
  const taep::MlpLayer& Lo = m.layers.back();
  PointNoise b;
  for (int i = 0; i < d; ++i) {
    double y, ey;
    dot(Lo, i, Lo.in, a, ea, y, ey);
    y = (y + Lo.bias[std::size_t(i)]) * out_scale;
    b.s.push_back(y);
    b.sd_s.push_back(hypot3(out_scale * ey, 2 * f * y));
  }
  std::vector<std::vector<double>> o(static_cast<std::size_t>(T), zeros(d)), eo = o;
  for (int q = 0; q < T; ++q)
    for (int i = 0; i < d; ++i) dot(Lo, i, Lo.in, t[std::size_t(q)], et[std::size_t(q)], o[q][i], eo[q][i]);
  for (int q = 0; q < (probes == 0 ? 1 : T); ++q) {
    double e = 0, e2 = 0;  // the trace, or v_q . J v_q
    for (int i = 0; i < d; ++i) {
      const double w = probes == 0 ? 1.0 : V[q * d + i];
      const int row = probes == 0 ? i : q;
      e += w * o[row][i];
      e2 += w * w * eo[row][i] * eo[row][i];
    }
    b.est.push_back(e * out_scale);
    b.sd_est.push_back(hypot3(out_scale * std::sqrt(e2), (d + 2) * f * e * out_scale));
  }
  return b;
}

constexpr double kSigmas = 8;

// The fused network over 16 points (and their probes) by the simulated warp: scores and the
// divergence estimates, in the layout of MlpCpuEvaluator::evaluate.
template <bool Tf32>
void fused_network(const taep::MlpModel& m, int probes, double t, float out_scale,
                   const std::vector<float>& X, const std::vector<float>& V, std::vector<float>& score,
                   std::vector<float>& est) {
  const fused::PackedNet packed = fused::pack(m, probes, Tf32);
  const fused::Net& net = packed.net;
  TileMemory mem(net);
  const int d = m.dim, P = probes, T = net.tangents(), in0 = net.layer[0].in, st = net.stride;
  std::fill(mem.sc.act, mem.sc.act + net.act_floats(), 0.f);
  for (int p = 0; p < fused::kRows; ++p)
    for (int q = 0; q <= P; ++q)
      for (int i = 0; i < in0; ++i)
        mem.sc.stream(net, q)[fused::act_at(net.stride_of(q), p, i)] =
            i >= d ? 0.f : q == 0 ? X[std::size_t(p * d + i)] : V[std::size_t((p * P + q - 1) * d + i)];
  const std::vector<float> bias0 = bias0_at(m, net, t);
  fused::dispatch_hidden_tiles(net, [&](auto nth) {
    fused::network<tile::HostWarp<Tf32>, decltype(nth)::value>(net, packed.data.data(), bias0.data(),
                                                                out_scale, mem.sc);
  });
  score.assign(std::size_t(fused::kRows * d), 0.f);
  est.assign(std::size_t(fused::kRows * std::max(1, P)), 0.f);
  for (int p = 0; p < fused::kRows; ++p) {
    for (int i = 0; i < d; ++i)
      score[std::size_t(p * d + i)] = mem.sc.stream(net, 0)[fused::act_at(net.stride0, p, i)];
    if (P == 0) {
      float tr = 0.f;
      for (int i = 0; i < T; ++i) tr += mem.sc.stream(net, 1 + i)[fused::act_at(st, p, i)];
      est[std::size_t(p)] = tr * out_scale;
    } else {
      for (int j = 0; j < P; ++j) {
        float e = 0.f;
        for (int i = 0; i < d; ++i)
          e += V[std::size_t((p * P + j) * d + i)] * mem.sc.stream(net, 1 + j)[fused::act_at(st, p, i)];
        est[std::size_t(p * P + j)] = e * out_scale;
      }
    }
  }
}

struct NetCase {
  const char* name;
  int d;
  std::vector<int> hidden;
  int probes;
};

void PrintTo(const NetCase& c, std::ostream* os) { *os << c.name; }

class MlpTileNetwork : public ::testing::TestWithParam<NetCase> {};

// The fused network against the CPU evaluator at 16 points: TF32 within the derived bound, exact
// FP32 within the bound with u = 0 (about 1/60 of it), and the TF32 run really rounds (its error
// exceeds the FP32 bound somewhere).
TEST_P(MlpTileNetwork, MatchesCpuEvaluator) {
  const NetCase& c = GetParam();
  const taep::MlpModel m = random_model(c.d, c.hidden, 11);
  const int d = c.d, P = c.probes, E = std::max(1, P);
  TestRng rng(5);
  std::vector<float> X(std::size_t(fused::kRows * d)), V(std::size_t(fused::kRows * std::max(P, 1) * d));
  for (float& v : X) v = float(2 * rng.normal());
  for (float& v : V) v = rng.uniform() < 0.5 ? -1.f : 1.f;
  const double t = 0.3;
  const float out_scale = 1.f;
  taep::detail::MlpCpuEvaluator cpu(m, taep::detail::MlpIsa::blas);
  cpu.set_time(t, 0.5);
  std::vector<float> s_cpu(X.size()), e_cpu(std::size_t(fused::kRows * E));
  cpu.evaluate(fused::kRows, X.data(), s_cpu.data(), e_cpu.data(), P, P > 0 ? V.data() : nullptr);

  std::vector<float> s32, e32, s19, e19;
  fused_network<false>(m, P, t, out_scale, X, V, s32, e32);
  fused_network<true>(m, P, t, out_scale, X, V, s19, e19);
  fused::PackedNet packed = fused::pack(m, P, false);
  const std::vector<float> bias0 = bias0_at(m, packed.net, t);
  double max_tol = 0, max_s = 0, max_err19 = 0, max_tol32 = 0;
  for (int p = 0; p < fused::kRows; ++p) {
    const float* v = P > 0 ? V.data() + std::size_t(p * P * d) : nullptr;
    const PointNoise n19 = point_noise(m, bias0.data(), out_scale, &X[std::size_t(p * d)], P, v, kTf32);
    const PointNoise n32 = point_noise(m, bias0.data(), out_scale, &X[std::size_t(p * d)], P, v, 0.0);
    for (int i = 0; i < d; ++i) {
      const std::size_t e = std::size_t(p * d + i);
      const double tol19 = kSigmas * n19.sd_s[std::size_t(i)], tol32 = kSigmas * n32.sd_s[std::size_t(i)];
      EXPECT_LE(std::fabs(s19[e] - s_cpu[e]), tol19) << "TF32 score " << p << "," << i;
      EXPECT_LE(std::fabs(s32[e] - s_cpu[e]), tol32) << "FP32 score " << p << "," << i;
      max_tol = std::max(max_tol, tol19);
      max_tol32 = std::max(max_tol32, tol32);
      max_s = std::max(max_s, std::fabs(n19.s[std::size_t(i)]));
      max_err19 = std::max(max_err19, double(std::fabs(s19[e] - s_cpu[e])));
    }
    for (int j = 0; j < E; ++j) {
      const std::size_t e = std::size_t(p * E + j);
      EXPECT_LE(std::fabs(e19[e] - e_cpu[e]), kSigmas * n19.sd_est[std::size_t(j)]) << "TF32 div " << p << "," << j;
      EXPECT_LE(std::fabs(e32[e] - e_cpu[e]), kSigmas * n32.sd_est[std::size_t(j)]) << "FP32 div " << p << "," << j;
    }
  }
  // The check has teeth: the TF32 tolerance is a small fraction of the scores (a misplaced fragment
  // element moves a score by its own size), and TF32's error is visible above FP32's tolerance (the
  // operands really are rounded).
  EXPECT_LT(max_tol, 0.01 * max_s);
  EXPECT_GT(max_err19, max_tol32);
  RecordProperty("max_abs_ds_tf32", std::to_string(max_err19));
  RecordProperty("max_tolerance_tf32", std::to_string(max_tol));
  RecordProperty("max_tolerance_fp32", std::to_string(max_tol32));
  RecordProperty("max_abs_score", std::to_string(max_s));
}

INSTANTIATE_TEST_SUITE_P(Nets, MlpTileNetwork,
                         ::testing::Values(NetCase{"h3x128_d2_exact", 2, {128, 128, 128}, 0},
                                           NetCase{"h2x64_d16_hutch2", 16, {64, 64}, 2},
                                           NetCase{"h100_60_d3_exact", 3, {100, 60}, 0}),
                         [](const auto& info) { return std::string(info.param.name); });

// ---- whole paths -------------------------------------------------------------------------------

// The host's streams of a tile, read in step order (the device re-enters them at each step).
struct HostTileRng {
  taep::detail::PathStreams st;
  HostTileRng(std::uint64_t seed, std::uint64_t first, int n, bool rademacher)
      : st(seed, first, n, taep::rng::kForwardNoise, rademacher) {}
  auto& noise(int p, int) { return st.noise[std::size_t(p)]; }
  auto& probes(int p, int) { return st.probes[std::size_t(p)]; }
};

// Per-path S of paths 0 .. n-1 by the fused tile body on the simulated warp.
template <bool Tf32>
std::vector<double> fused_paths(const taep::Problem& problem, int n) {
  const taep::detail::ForwardProblem& fp = problem.forward();
  const taep::physics::ForwardView V = fp.view([](const auto& v) { return v.data(); });
  const taep::detail::MlpSetup& mlp = *fp.mlp;
  const int P = mlp.hutchinson() ? mlp.probes : 0;
  const fused::PackedNet packed = fused::pack(mlp.model, P, Tf32, V.milstein);
  const fused::Net& net = packed.net;
  std::vector<std::vector<float>> bias0;
  std::vector<float> scale;
  for (int k = 0; k < fp.steps; ++k) {
    const double t = fp.grid.t(k);
    bias0.push_back(bias0_at(mlp.model, net, t));
    scale.push_back(taep::physics::output_scale(
        mlp.model.parameterization == taep::Parameterization::eps, fp.schedule.abar(t)));
  }
  std::vector<double> S;
  for (int first = 0; first < n; first += fused::kRows) {
    const int rows = std::min(fused::kRows, n - first);
    TileMemory mem(net);
    HostTileRng rng(V.seed, std::uint64_t(first), rows,
                    mlp.probe_distribution == taep::ProbeDistribution::rademacher);
    using X = tile::HostWarp<Tf32>;
    fused::tile_init<X, 0>(net, V, rows, mem.sc, [&](int p) {
      return taep::rng::PhiloxHostStream(V.seed, taep::rng::subsequence(taep::rng::kInitialState, std::uint64_t(first + p)));
    });
    fused::dispatch_hidden_tiles(net, [&](auto nth) {
      for (int k = 0; k < fp.steps; ++k)
        fused::tile_step<X, 0, decltype(nth)::value>(net, packed.data.data(), V, k, bias0[std::size_t(k)].data(),
                                                     scale[std::size_t(k)], rows, mem.sc, rng);
    });
    S.insert(S.end(), mem.sc.taep, mem.sc.taep + rows);
  }
  return S;
}

// The tolerance of |S(fused) - S(CPU)| of each path: the paths' states do not depend on the model
// (forward paths move with the true drift), so they are replayed here, and at every step the
// network's noise at x_k (point_noise) becomes the TAEP increment's (docs/physics.md section 4: to
// first order 2 e_div + sum 2 |s_i| e_i in the drift term, sum |dW_i| e_i in the noise term, and
// Milstein's r2 e_{v0.J v0} - h e_div); the steps' roundings are independent, so their variances
// add. The tolerance is kSigmas standard deviations of the sum, plus what is not random: the second
// order term sum e_i^2 of the drift at kSigmas, and the FP32 rounding of the increment on both sides
// (added over the steps).
std::vector<double> path_bounds(const taep::Problem& problem, int n, double u) {
  const taep::detail::ForwardProblem& fp = problem.forward();
  const taep::physics::ForwardView V = fp.view([](const auto& v) { return v.data(); });
  const taep::detail::MlpSetup& mlp = *fp.mlp;
  const taep::MlpModel& m = mlp.model;
  const int d = V.d, P = mlp.hutchinson() ? mlp.probes : 0;
  const fused::PackedNet packed = fused::pack(m, P, false);
  const taep::physics::MlpTangentPlan plan = taep::physics::mlp_tangent_plan(true, P, V.milstein, d);
  taep::detail::PathStreams st(V.seed, 0, n, taep::rng::kForwardNoise,
                               mlp.probe_distribution == taep::ProbeDistribution::rademacher);
  std::vector<double> bound(std::size_t(n), 0.0);
  for (int p = 0; p < n; ++p) {
    double var = 0, fixed = 0;
    taep::rng::PhiloxHostStream init(V.seed, taep::rng::subsequence(taep::rng::kInitialState, std::uint64_t(p)));
    std::vector<float> x(static_cast<std::size_t>(d)), dw = x, probes(static_cast<std::size_t>(std::max(P, d) * d));
    taep::physics::sample_initial_state<0>(V, init, x.data());
    for (int k = 0; k < fp.steps; ++k) {
      const taep::physics::StepScalars c = V.step[k];
      const double t = fp.grid.t(k);
      for (int i = 0; i < d; ++i) dw[std::size_t(i)] = c.sqrt_h * st.noise[std::size_t(p)].next();
      float s_target[taep::physics::kMaxDim], div_target, quad;
      const float r2 = taep::detail::prepare_learned_path<0>(V, k, c.mean_scale, plan, x.data(), dw.data(),
                                                             probes.data(), st.probes[std::size_t(p)],
                                                             s_target, &div_target, &quad);
      const std::vector<float> bias0 = bias0_at(m, packed.net, t);
      const double scale = taep::physics::output_scale(m.parameterization == taep::Parameterization::eps,
                                                       fp.schedule.abar(t));
      // Milstein's tangents are its basis, its divergence their sum; Hutchinson's is the mean.
      const PointNoise b = point_noise(m, bias0.data(), scale, x.data(), V.milstein ? d : P, probes.data(), u);
      double ediv = 0, div = 0;  // the noise of the divergence (its estimates' mean, or sum)
      const double w = V.milstein ? 1.0 : 1.0 / double(b.est.size());
      for (std::size_t j = 0; j < b.est.size(); ++j) {
        ediv += b.sd_est[j] * w;
        div += b.est[j] * w;
      }
      double drift = 2 * ediv, second = 0, noise = 0, nsize = 0;
      double size = 2 * (std::fabs(div) + std::fabs(div_target));
      for (int i = 0; i < d; ++i) {
        const double e = b.sd_s[std::size_t(i)], s = b.s[std::size_t(i)], a = std::fabs(dw[std::size_t(i)]);
        drift += 2 * std::fabs(s) * e;
        second += (kSigmas * e) * (kSigmas * e);
        noise += a * e;
        size += s * s + double(s_target[i]) * s_target[i];
        nsize += (std::fabs(s) + std::fabs(s_target[i])) * a;
      }
      const double hb = double(c.half_g2) * c.h, sb = c.sqrt_g2;
      double sd = hb * drift + sb * noise;
      fixed += hb * second + 16 * (d + 2) * kF32 * (hb * size + sb * nsize);
      if (V.milstein) {  // c.half_g2 ((r2 est_0 - quad_target) - h (div - div_target))
        const double q = double(r2) * b.est[0];
        sd += c.half_g2 * (r2 * b.sd_est[0] + c.h * ediv);
        fixed += 16 * (d + 2) * kF32 * c.half_g2 *
                 (std::fabs(q) + std::fabs(quad) + c.h * (std::fabs(div) + std::fabs(div_target)));
      }
      var += sd * sd;
      taep::physics::euler_maruyama_step(d, c.decay, c.sqrt_g2, dw.data(), x.data());
    }
    bound[std::size_t(p)] = kSigmas * std::sqrt(var) + fixed;
  }
  return bound;
}

struct PathCase {
  const char* name;
  int d;
  std::vector<int> hidden;
  int probes;  // 0: exact
  int paths, steps;
  bool milstein = false;
};

void PrintTo(const PathCase& c, std::ostream* os) { *os << c.name; }

class MlpTilePaths : public ::testing::TestWithParam<PathCase> {};

// The fused tile body (the kernel's code) on the simulated warp against the CPU backend's per-path
// S: TF32 within the derived bound; exact FP32 within the bound with u = 0.
TEST_P(MlpTilePaths, PerPathTaepMatchesCpuBackend) {
  const PathCase& c = GetParam();
  taep::Config cfg = taep::default_config();
  if (c.d != 2) {
    cfg.target.preset.clear();
    taep::MixtureSpec mix;
    mix.weights = {0.6, 0.4};
    for (int k = 0; k < 2; ++k) {
      std::vector<double> mean(std::size_t(c.d), 0.0);
      mean[std::size_t(k)] = k == 0 ? 2.0 : -2.0;
      mix.means.push_back(mean);
      mix.sigmas.push_back(0.5);
    }
    cfg.target.mixture = mix;
  }
  cfg.model = taep::ModelConfig{};
  cfg.model.type = "mlp";
  cfg.model.weights = "in-memory";
  if (c.probes > 0) {
    cfg.model.divergence = taep::Divergence::hutchinson;
    cfg.model.probes = c.probes;
  }
  cfg.run.paths = std::uint64_t(c.paths);
  cfg.run.backend = taep::Backend::cpu;
  cfg.schedule.steps = c.steps;
  if (c.milstein) cfg.schedule.scheme = taep::Scheme::milstein;
  const taep::Problem problem = taep::build_problem(
      cfg, c.hidden.empty() ? taep::load_mlp(taep_test::fixture("ring8_trained.safetensors"))
                            : random_model(c.d, c.hidden, 21));
  const taep::PathValues cpu = taep::simulate_paths(problem, taep::Backend::cpu, 0, std::uint64_t(c.paths));
  const std::vector<double> s19 = fused_paths<true>(problem, c.paths);
  const std::vector<double> s32 = fused_paths<false>(problem, c.paths);
  const std::vector<double> b19 = path_bounds(problem, c.paths, kTf32);
  const std::vector<double> b32 = path_bounds(problem, c.paths, 0.0);
  ASSERT_EQ(cpu.taep.size(), s19.size());
  double worst19 = 0, worst32 = 0;
  for (int p = 0; p < c.paths; ++p) {
    const std::size_t q = std::size_t(p);
    EXPECT_LE(std::fabs(s19[q] - cpu.taep[q]), b19[q]) << "TF32 path " << p << " S " << cpu.taep[q];
    EXPECT_LE(std::fabs(s32[q] - cpu.taep[q]), b32[q]) << "FP32 path " << p << " S " << cpu.taep[q];
    worst19 = std::max(worst19, std::fabs(s19[q] - cpu.taep[q]));
    worst32 = std::max(worst32, std::fabs(s32[q] - cpu.taep[q]));
  }
  EXPECT_LT(worst32, worst19) << "exact FP32 must agree more tightly than TF32";
  RecordProperty("max_abs_dS_tf32", std::to_string(worst19));
  RecordProperty("max_abs_dS_fp32", std::to_string(worst32));
  RecordProperty("max_tolerance_S_tf32", std::to_string(*std::max_element(b19.begin(), b19.end())));
  RecordProperty("max_tolerance_S_fp32", std::to_string(*std::max_element(b32.begin(), b32.end())));
}

INSTANTIATE_TEST_SUITE_P(Nets, MlpTilePaths,
                         ::testing::Values(PathCase{"h3x128_d2_exact", 2, {128, 128, 128}, 0, 20, 30},
                                           PathCase{"ring8_trained_3x128_exact", 2, {}, 0, 20, 30},
                                           PathCase{"ring8_trained_3x128_hutch2", 2, {}, 2, 20, 30},
                                           PathCase{"ring8_trained_3x128_milstein", 2, {}, 0, 20, 30, true},
                                           PathCase{"h2x64_d16_milstein", 16, {64, 64}, 0, 18, 20, true},
                                           PathCase{"h2x64_d16_hutch2", 16, {64, 64}, 2, 18, 20}),
                         [](const auto& info) { return std::string(info.param.name); });

}  // namespace

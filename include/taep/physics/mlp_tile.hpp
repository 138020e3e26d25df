#pragma once
// Tensor-core tile math of the fused learned-score kernel (docs/fused-mlp.md): the fragments of
// mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 and two executors of a warp over them,
//   DeviceWarp  (nvcc, device code): each lane is a thread; mma is the PTX instruction and the TF32
//               rounding is cvt.rna.tf32.f32;
//   HostWarp    (any compiler): 32 simulated lanes, every per-lane value an array of 32; mma gathers
//               the lanes' fragments into the 16x8 and 8x8 matrices and multiplies them with plain
//               loops; TF32 rounding emulated bit for bit (round to nearest, ties away from zero, on
//               the 13 dropped mantissa bits, as cvt.rna does), or switched off (exact FP32 mode).
// Code written against an executor X (per-lane values X::Reg<T>, lane regions X::lanes, X::sync,
// X::mma) runs unchanged on both; the CPU tests run the host build (tests/mlp_tile_test.cpp).
//
// Fragment ownership (PTX ISA, "Matrix fragments for mma.m16n8k8", .tf32): lane = 4 g + t, g the
// group id (0..7), t the thread in the group (0..3).
//   A (16 x 8, row): a0 (g, t)   a1 (g + 8, t)   a2 (g, t + 4)   a3 (g + 8, t + 4)
//   B (8 x 8, col):  b0 (k = t, n = g)           b1 (k = t + 4, n = g)
//   C (16 x 8, f32): c0 (g, 2t)  c1 (g, 2t + 1)  c2 (g + 8, 2t)  c3 (g + 8, 2t + 1)
// Chained layers use a permutation of k inside each block of 8 (slot t holds column 2t, slot t + 4
// column 2t + 1; kslot_column): then a layer's C fragment is, element for element, the next
// layer's A fragment (a0 = c0, a1 = c2, a2 = c1, a3 = c3), and a lane's A values are columns 2t,
// 2t + 1 of rows g and g + 8 (physics/mlp_fused.hpp keeps these four adjacent: one 128-bit load). B
// is packed with the same permutation, so the product is unchanged: a sum over k does not care how
// k is numbered.
#include <cmath>
#include <cstdint>
#include <cstring>

#include "taep/physics/hd.hpp"
#include "taep/physics/mlp_elementwise.hpp"

namespace taep {
namespace physics {
namespace tile {

constexpr int kWarp = 32;

TAEP_HD constexpr int group_of(int lane) { return lane >> 2; }
TAEP_HD constexpr int thread_in_group(int lane) { return lane & 3; }
// Element i of a lane's A fragment (i = 0..3), B fragment (i = 0..1), C fragment (i = 0..3).
TAEP_HD constexpr int a_row(int lane, int i) { return group_of(lane) + 8 * (i & 1); }
TAEP_HD constexpr int a_col(int lane, int i) { return thread_in_group(lane) + 4 * (i >> 1); }
TAEP_HD constexpr int b_row(int lane, int i) { return thread_in_group(lane) + 4 * i; }
TAEP_HD constexpr int b_col(int lane, int) { return group_of(lane); }
TAEP_HD constexpr int c_row(int lane, int i) { return group_of(lane) + 8 * (i >> 1); }
TAEP_HD constexpr int c_col(int lane, int i) { return 2 * thread_in_group(lane) + (i & 1); }
// The column of a block of 8 that k slot s holds (the chaining permutation above).
TAEP_HD constexpr int kslot_column(int s) { return 2 * (s & 3) + (s >> 2); }

// TF32 of x: the top 19 bits (sign, 8 exponent, 10 mantissa bits), rounded to nearest with ties
// away from zero; infinities and NaNs pass through. The result is a float whose low 13 bits are 0.
TAEP_HD float round_tf32_emulated(float x) {
  std::uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  if ((u & 0x7f800000u) != 0x7f800000u) u = (u + 0x1000u) & 0xffffe000u;
  std::memcpy(&x, &u, sizeof u);
  return x;
}

TAEP_HD float round_tf32(float x) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  std::uint32_t r;
  asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(x));
  return __uint_as_float(r);
#else
  return round_tf32_emulated(x);
#endif
}

// The host's product of one mma: d = a b + c, 16 x 8 x 8, every element a float FMA chain over
// k = 0..7 (the hardware's accumulation order and internal width are its own; docs/fused-mlp.md,
// "Error model").
TAEP_HD void mma_16x8x8(const float (&a)[16][8], const float (&b)[8][8], float (&c)[16][8]) {
  for (int m = 0; m < 16; ++m)
    for (int n = 0; n < 8; ++n) {
      float acc = c[m][n];
      for (int k = 0; k < 8; ++k) acc = ::fmaf(a[m][k], b[k][n], acc);
      c[m][n] = acc;
    }
}

// ---- Host executor: a simulated warp -----------------------------------------------------------

template <class T>
struct HostReg {
  T v[kWarp];
  T& operator[](int lane) { return v[lane]; }
  const T& operator[](int lane) const { return v[lane]; }
};

// Tf32: round every mma operand to TF32 as the device does; false: exact FP32 operands.
template <bool Tf32>
struct HostWarp {
  template <class T>
  using Reg = HostReg<T>;
  static constexpr bool tf32 = Tf32;
  // A region of per-lane code with no communication between lanes inside it: lanes one after the
  // other is then the same as lanes at once.
  template <class F>
  static void lanes(F&& f) {
    for (int l = 0; l < kWarp; ++l) f(l);
  }
  // The same for lanes 0 .. n-1 only.
  template <class F>
  static void rows(int n, F&& f) {
    for (int l = 0; l < n; ++l) f(l);
  }
  static void sync() {}
  static float operand(float x) { return Tf32 ? round_tf32_emulated(x) : x; }
  // SiLU and its derivative as the CPU computes them.
  static void silu(float z, float& act, float& deriv) { silu_and_derivative(z, act, deriv); }
  // Two or four adjacent floats (the device moves them as one 64- or 128-bit word).
  static void load2(const float* p, float& x, float& y) {
    x = p[0];
    y = p[1];
  }
  static void load4(const float* p, float (&v)[4]) {
    for (int i = 0; i < 4; ++i) v[i] = p[i];
  }
  static void store4(float* p, const float (&v)[4]) {
    for (int i = 0; i < 4; ++i) p[i] = v[i];
  }
  // c += a b over the warp's fragments.
  static void mma(Reg<float> (&c)[4], const Reg<float> (&a)[4], const Reg<float> (&b)[2]) {
    float A[16][8], B[8][8], C[16][8];
    for (int l = 0; l < kWarp; ++l) {
      for (int i = 0; i < 4; ++i) {
        A[a_row(l, i)][a_col(l, i)] = a[i][l];
        C[c_row(l, i)][c_col(l, i)] = c[i][l];
      }
      for (int i = 0; i < 2; ++i) B[b_row(l, i)][b_col(l, i)] = b[i][l];
    }
    mma_16x8x8(A, B, C);
    for (int l = 0; l < kWarp; ++l)
      for (int i = 0; i < 4; ++i) c[i][l] = C[c_row(l, i)][c_col(l, i)];
  }
};

// ---- Device executor: the warp itself ----------------------------------------------------------

#if defined(__CUDACC__)
template <class T>
struct DeviceReg {
  T v;
  __device__ __forceinline__ T& operator[](int) { return v; }
  __device__ __forceinline__ const T& operator[](int) const { return v; }
};

struct DeviceWarp {
  template <class T>
  using Reg = DeviceReg<T>;
  static constexpr bool tf32 = true;
  __device__ __forceinline__ static int lane() { return int(threadIdx.x) & (kWarp - 1); }
  template <class F>
  __device__ __forceinline__ static void lanes(F&& f) {
    f(lane());
  }
  template <class F>
  __device__ __forceinline__ static void rows(int n, F&& f) {
    const int l = lane();
    if (l < n) f(l);
  }
  __device__ __forceinline__ static void sync() { __syncwarp(); }
  __device__ __forceinline__ static float operand(float x) { return round_tf32(x); }
  // SiLU with the fast exponential and an IEEE reciprocal: its error, a few FP32 ulps (__expf:
  // 2 + 1.16 |z| ulp), is far below the TF32 rounding of the next layer's operands, and the
  // accurate expf and division cost more issue slots than the layer's mma (docs/fused-mlp.md).
  __device__ __forceinline__ static void silu(float z, float& act, float& deriv) {
    const float sig = __frcp_rn(1.f + __expf(-z));
    act = z * sig;
    deriv = sig * (1.f + z * (1.f - sig));
  }
  __device__ __forceinline__ static void load2(const float* p, float& x, float& y) {
    const float2 v = *reinterpret_cast<const float2*>(p);
    x = v.x;
    y = v.y;
  }
  __device__ __forceinline__ static void load4(const float* p, float (&v)[4]) {
    const float4 q = *reinterpret_cast<const float4*>(p);
    v[0] = q.x;
    v[1] = q.y;
    v[2] = q.z;
    v[3] = q.w;
  }
  __device__ __forceinline__ static void store4(float* p, const float (&v)[4]) {
    *reinterpret_cast<float4*>(p) = make_float4(v[0], v[1], v[2], v[3]);
  }
  __device__ __forceinline__ static void mma(Reg<float> (&c)[4], const Reg<float> (&a)[4],
                                             const Reg<float> (&b)[2]) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile(
        "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(c[0].v), "+f"(c[1].v), "+f"(c[2].v), "+f"(c[3].v)
        : "r"(__float_as_uint(a[0].v)), "r"(__float_as_uint(a[1].v)), "r"(__float_as_uint(a[2].v)),
          "r"(__float_as_uint(a[3].v)), "r"(__float_as_uint(b[0].v)), "r"(__float_as_uint(b[1].v)));
#else
    // No tensor cores before sm_80; the fused kernel is never launched there (the backend checks
    // the device), this only keeps the PTX of older targets building.
    (void)c;
    (void)a;
    (void)b;
    __trap();
#endif
  }
};
#endif

}  // namespace tile
}  // namespace physics
}  // namespace taep

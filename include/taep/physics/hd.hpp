#pragma once
// TAEP_HD marks every physics function: __host__ __device__ under nvcc, nothing under a plain C++
// compiler, so the CPU backend and the CUDA kernels call the same code. TAEP_HOST_INLINE marks the
// host-only inline functions (the Philox host mirror).
#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define TAEP_HD __host__ __device__ __forceinline__
#define TAEP_HOST_INLINE inline
#define TAEP_DEVICE_CODE 1
#define TAEP_UNROLL _Pragma("unroll")
#elif defined(TAEP_ISA_UNIT)
// A translation unit built for a wider instruction set than the rest of the library
// (host/cpu/isa_*.cpp, -mavx2 or -mavx512f): every header function is inlined there, so that unit
// emits no out-of-line copy of an inline function which the linker could pick in place of the
// baseline copy the scalar code calls.
#define TAEP_HD inline __attribute__((always_inline))
#define TAEP_HOST_INLINE inline __attribute__((always_inline))
#else
#define TAEP_HD inline
#define TAEP_HOST_INLINE inline
#endif

#ifndef TAEP_UNROLL
#define TAEP_UNROLL  // a hint for nvcc; host compilers unroll on their own
#endif

namespace taep {
namespace physics {

TAEP_HD float exp_(float x) { return ::expf(x); }
TAEP_HD double exp_(double x) { return ::exp(x); }
TAEP_HD float log_(float x) { return ::logf(x); }
TAEP_HD double log_(double x) { return ::log(x); }
TAEP_HD float sqrt_(float x) { return ::sqrtf(x); }
TAEP_HD double sqrt_(double x) { return ::sqrt(x); }
TAEP_HD float abs_(float x) { return ::fabsf(x); }
TAEP_HD double abs_(double x) { return ::fabs(x); }
TAEP_HD bool isfinite_(double x) { return (x - x) == 0.0; }  // false for inf and nan, even under -ffast-math-ish flags

// ---- Intrinsic wrappers ---------------------------------------------------------------------------
// The few functions whose speed sets the GPU kernels' instruction count (docs/gpu-kernels.md): on the
// device a hardware approximation (MUFU: exp2 and log2 to about 2 ulp, sin/cos to about 2^-21.4
// absolute on [-pi, pi], sqrt and 1/x to 1 ulp; denormals flushed), on the host exactly the std::
// function the CPU has always called, so the CPU's results stay bit for bit what they were and the
// CPU tests run the same formulas as the kernels. Packets (hd.hpp, "Lane types") forward to their
// exact PacketOps.
#if defined(__CUDA_ARCH__)
#define TAEP_PTX_F32(name, op)                                                 \
  __device__ __forceinline__ float name(float x) {                            \
    float r;                                                                   \
    asm(op " %0, %1;" : "=f"(r) : "f"(x));                                     \
    return r;                                                                  \
  }
TAEP_PTX_F32(ptx_ex2, "ex2.approx.ftz.f32")
TAEP_PTX_F32(ptx_lg2, "lg2.approx.ftz.f32")  // __logf would first rescale denormals
TAEP_PTX_F32(ptx_sqrt, "sqrt.approx.ftz.f32")
TAEP_PTX_F32(ptx_rcp, "rcp.approx.ftz.f32")
#undef TAEP_PTX_F32
#define TAEP_FAST(device, host) device
#else
#define TAEP_FAST(device, host) host
#endif
TAEP_HD float fast_exp2(float x) { return TAEP_FAST(ptx_ex2(x), ::exp2f(x)); }
TAEP_HD float fast_log(float x) { return TAEP_FAST(ptx_lg2(x) * 0.69314718f, ::logf(x)); }
TAEP_HD float fast_sqrt(float x) { return TAEP_FAST(ptx_sqrt(x), ::sqrtf(x)); }
TAEP_HD float fast_rcp(float x) { return TAEP_FAST(ptx_rcp(x), 1.f / x); }
TAEP_HD void fast_sincos(float x, float& s, float& c) {
  TAEP_FAST(__sincosf(x, &s, &c), (s = ::sinf(x), c = ::cosf(x)));
}
#undef TAEP_FAST

constexpr double kPi = 3.14159265358979323846;
constexpr double kLog2e = 1.44269504088896340736;
constexpr double kLog2Pi = 1.83787706640934548356;

// ---- Lane types ---------------------------------------------------------------------------------
// The path integrator is written once over the type T of the path state: float for one path (a GPU
// thread, the scalar CPU loop), or a SIMD packet of floats whose lane l is a path of its own (the
// CPU's vector loop; the packet types live in host/cpu/simd.hpp, which nvcc never sees). Code
// written for T never branches on data (a data-dependent choice is a select, so all lanes do the
// same work) and never mixes lanes, so a path's result does not depend on the packet or lane it ran
// in.
//
// Each helper has a plain overload for float (or uint32/double) and a template that forwards to
// PacketOps<T>, which the packet header specializes. A class specialization is found when the
// physics template is instantiated, so the physics headers need not have seen the packet header.
template <class T>
struct PacketOps;

TAEP_HD float select(bool m, float a, float b) { return m ? a : b; }
TAEP_HD float to_float_(std::uint32_t x) { return float(x); }
TAEP_HD void sincos_(float x, float& s, float& c) {
  s = ::sinf(x);
  c = ::cosf(x);
}
// 32x32 -> 64-bit product of Philox's round function, split into high and low words.
TAEP_HD void mulhilo32(std::uint32_t m, std::uint32_t x, std::uint32_t& hi, std::uint32_t& lo) {
#if defined(__CUDA_ARCH__)
  // One IMAD.WIDE.U32 (from the 64-bit product in C++ nvcc adds a zero high word each round).
  asm("{\n\t.reg .u64 t;\n\tmul.wide.u32 t, %2, %3;\n\tmov.b64 {%0, %1}, t;\n\t}"
      : "=r"(lo), "=r"(hi)
      : "r"(m), "r"(x));
#else
  const std::uint64_t p = std::uint64_t(m) * x;
  hi = std::uint32_t(p >> 32);
  lo = std::uint32_t(p);
#endif
}
TAEP_HD float get_lane(float x, int) { return x; }
TAEP_HD double get_lane(double x, int) { return x; }
TAEP_HD void set_lane(float& x, int, float v) { x = v; }
TAEP_HD void set_lane(double& x, int, double v) { x = v; }
// acc += x in double precision, lane by lane (S is a double per path, the state float).
TAEP_HD void add_widened(double& acc, float x) { acc += double(x); }

template <class T>
TAEP_HD T exp_(const T& x) { return PacketOps<T>::exp(x); }
template <class T>
TAEP_HD T log_(const T& x) { return PacketOps<T>::log(x); }
template <class T>
TAEP_HD T sqrt_(const T& x) { return PacketOps<T>::sqrt(x); }
template <class T>
TAEP_HD T abs_(const T& x) { return PacketOps<T>::abs(x); }
template <class M, class T>
TAEP_HD T select(const M& m, const T& a, const T& b) { return PacketOps<T>::select(m, a, b); }
template <class U>
TAEP_HD auto to_float_(const U& x) { return PacketOps<U>::to_float(x); }
template <class T>
TAEP_HD void sincos_(const T& x, T& s, T& c) { PacketOps<T>::sincos(x, s, c); }
template <class T>
TAEP_HD T fast_log(const T& x) { return PacketOps<T>::log(x); }
template <class T>
TAEP_HD T fast_sqrt(const T& x) { return PacketOps<T>::sqrt(x); }
template <class T>
TAEP_HD void fast_sincos(const T& x, T& s, T& c) { PacketOps<T>::sincos(x, s, c); }
template <class U>
TAEP_HD void mulhilo32(std::uint32_t m, const U& x, U& hi, U& lo) {
  PacketOps<U>::mulhilo32(m, x, hi, lo);
}
template <class T>
TAEP_HD auto get_lane(const T& x, int l) { return PacketOps<T>::get_lane(x, l); }
template <class T, class V>
TAEP_HD void set_lane(T& x, int l, V v) { PacketOps<T>::set_lane(x, l, v); }
template <class W, class T>
TAEP_HD void add_widened(W& acc, const T& x) { PacketOps<W>::add_widened(acc, x); }

// Paths per value of T, and the per-path double type that goes with it (S, the closed form).
template <class T>
struct Lanes {
  static constexpr int count = PacketOps<T>::lanes;
  using wide = typename PacketOps<T>::wide;
};
template <>
struct Lanes<float> {
  static constexpr int count = 1;
  using wide = double;
};

}  // namespace physics
}  // namespace taep

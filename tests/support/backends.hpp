#pragma once
// The backends a property is checked on, and the fixture that puts a test body on one of them.
//
// One test body per property, instantiated over every backend present: the CPU backend's three
// loops (scalar, AVX2, AVX-512: host/cpu/, picked when a backend is constructed, from
// TAEP_CPU_SIMD for the public API) and CUDA. SetUp skips a loop this build or CPU lacks, and CUDA
// where this build has no CUDA or no device is usable; TAEP_REQUIRE_GPU=1 turns the CUDA skip into
// a failure. Parameter names start with the backend's name (`scalar`, `avx2`, `avx512`, `cuda`, then
// `_<case>` where a body has cases of its own), which is how tests/CMakeLists.txt gives the CUDA
// ones the CTest label `gpu` (filter `*/cuda:*/cuda_*`).
//
// The loop is chosen the way a user chooses it: TAEP_CPU_SIMD, set for the length of the test
// (0: the scalar loop, and the OpenBLAS path of learned models; avx2; anything else: the widest,
// which is AVX-512 when SetUp lets that case run). No library hook is needed, since both CPU
// backends read it when they are built, i.e. inside the test body.
#include <gtest/gtest.h>

#include <cstdlib>
#include <optional>
#include <ostream>
#include <string>
#include <tuple>
#include <vector>

#include "host/cpu/cpu_simd.hpp"
#include "host/engine/backend.hpp"
#include "taep/taep.hpp"
#include "test_support.hpp"

namespace taep_test {

enum class Loop { scalar, avx2, avx512, cuda };

struct BackendCase {
  const char* name;
  Loop loop;
  taep::Backend backend() const { return loop == Loop::cuda ? taep::Backend::cuda : taep::Backend::cpu; }
};

inline void PrintTo(const BackendCase& b, std::ostream* os) { *os << b.name; }

inline const std::vector<BackendCase>& cpu_loops() {
  static const std::vector<BackendCase> v{
      {"scalar", Loop::scalar}, {"avx2", Loop::avx2}, {"avx512", Loop::avx512}};
  return v;
}

// The CPU loops and CUDA.
inline const std::vector<BackendCase>& all_backends() {
  static const std::vector<BackendCase> v = [] {
    std::vector<BackendCase> out = cpu_loops();
    out.push_back({"cuda", Loop::cuda});
    return out;
  }();
  return v;
}

// The vector loops alone (compared with the scalar one).
inline const std::vector<BackendCase>& vector_loops() {
  static const std::vector<BackendCase> v{{"avx2", Loop::avx2}, {"avx512", Loop::avx512}};
  return v;
}

// Sets an environment variable (or unsets it, for nullopt) until destroyed, then restores it.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, std::optional<std::string> value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value)
      ::setenv(name, value->c_str(), 1);
    else
      ::unsetenv(name);
  }
  ~ScopedEnv() {
    if (old_)
      ::setenv(name_.c_str(), old_->c_str(), 1);
    else
      ::unsetenv(name_.c_str());
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  std::string name_;
  std::optional<std::string> old_;
};

// The vector loop's instruction set (nullopt for the scalar loop and CUDA), and the TAEP_CPU_SIMD
// value that selects a CPU loop.
inline std::optional<taep::detail::SimdIsa> vector_isa(Loop loop) {
  if (loop == Loop::avx2) return taep::detail::SimdIsa::avx2;
  if (loop == Loop::avx512) return taep::detail::SimdIsa::avx512;
  return std::nullopt;
}
// The loop as make_cpu_backend takes it (host/engine/backend.hpp); CUDA has none.
inline taep::detail::CpuLoop cpu_loop(Loop loop) {
  using taep::detail::CpuLoop;
  return loop == Loop::avx2 ? CpuLoop::avx2 : loop == Loop::avx512 ? CpuLoop::avx512 : CpuLoop::scalar;
}
inline std::string simd_setting(Loop loop) {
  return loop == Loop::scalar ? "0" : loop == Loop::avx2 ? "avx2" : "avx512";
}

// Fixture of a body checked on every backend; P is a BackendCase, or a tuple of one and a case of
// the body's own.
template <class P>
class OnBackendOf : public ::testing::TestWithParam<P> {
 protected:
  static const BackendCase& backend_case_of(const BackendCase& b) { return b; }
  template <class T>
  static const BackendCase& backend_case_of(const std::tuple<BackendCase, T>& p) {
    return std::get<0>(p);
  }

  void SetUp() override {
    const BackendCase& b = backend_case();
    if (b.loop == Loop::cuda) {
      TAEP_REQUIRE_BACKEND(taep::Backend::cuda);
      return;
    }
    if (const auto isa = vector_isa(b.loop); isa && !taep::detail::cpu_supports(*isa))
      GTEST_SKIP() << taep::detail::to_string(*isa)
                   << " vector loop not in this build or not supported by this CPU";
    env_.emplace("TAEP_CPU_SIMD", simd_setting(b.loop));
  }
  void TearDown() override { env_.reset(); }

  const BackendCase& backend_case() const { return backend_case_of(this->GetParam()); }
  taep::Backend backend() const { return backend_case().backend(); }
  bool on_cuda() const { return backend_case().loop == Loop::cuda; }
  // `c` on this backend.
  taep::Config on_backend(taep::Config c) const {
    c.run.backend = backend();
    return c;
  }

 private:
  std::optional<ScopedEnv> env_;
};

using OnBackend = OnBackendOf<BackendCase>;
template <class T>
using OnBackendWith = OnBackendOf<std::tuple<BackendCase, T>>;

// Test-name suffixes: the backend's name, then "_" and `case_name(param)` for combined parameters.
inline std::string backend_param_name(const ::testing::TestParamInfo<BackendCase>& info) {
  return info.param.name;
}
template <class T, class Name>
auto backend_and(Name case_name) {
  return [case_name](const ::testing::TestParamInfo<std::tuple<BackendCase, T>>& info) {
    return std::string(std::get<0>(info.param).name) + "_" + case_name(std::get<1>(info.param));
  };
}

}  // namespace taep_test

#pragma once
// Maps the runtime dimension to the compiled path: fixed sizes keep the state in registers, every
// other d takes the dynamic-size path (arrays of physics::kMaxDim).
#include <utility>

namespace taep {
namespace detail {

template <class F>
decltype(auto) dispatch_dim(int d, F&& f) {
  switch (d) {
    case 1: return f(std::integral_constant<int, 1>{});
    case 2: return f(std::integral_constant<int, 2>{});
    case 3: return f(std::integral_constant<int, 3>{});
    case 4: return f(std::integral_constant<int, 4>{});
    case 8: return f(std::integral_constant<int, 8>{});
    case 16: return f(std::integral_constant<int, 16>{});
    default: return f(std::integral_constant<int, 0>{});
  }
}

}  // namespace detail
}  // namespace taep

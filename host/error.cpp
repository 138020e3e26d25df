#include "taep/error.hpp"

namespace taep {
namespace detail {

void throw_internal(const char* file, int line, const std::string& message) {
  throw Error(std::string(file) + ":" + std::to_string(line) + ": " + message);
}

}  // namespace detail
}  // namespace taep

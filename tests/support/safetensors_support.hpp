#pragma once
// Builds safetensors bytes in memory for the reader's and the MLP loader's tests, valid or not.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "taep/error.hpp"
#include "taep/mlp.hpp"

namespace taep_test {

inline void append_le(std::string& out, std::uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out += char((v >> (8 * i)) & 0xff);
}

// 8-byte length (the header's size unless `length` overrides it), header text, data buffer.
inline std::string safetensors_bytes(const std::string& header, const std::string& data = "",
                                     std::optional<std::uint64_t> length = std::nullopt) {
  std::string out;
  append_le(out, length.value_or(header.size()), 8);
  return out + header + data;
}

inline std::string f32_bytes(const std::vector<float>& values) {
  std::string out;
  for (float x : values) {
    std::uint32_t bits;
    std::memcpy(&bits, &x, sizeof bits);
    append_le(out, bits, 4);
  }
  return out;
}

// Raw 16-bit patterns (F16 or BF16), little-endian.
inline std::string u16_bytes(const std::vector<std::uint16_t>& values) {
  std::string out;
  for (std::uint16_t v : values) append_le(out, v, 2);
  return out;
}

// Parses from a heap buffer of exactly the file's size, so that a sanitizer or valgrind catches
// any read past the end (a std::string's spare capacity would hide it).
inline taep::SafetensorsFile parse_bytes(const std::string& bytes,
                                         const std::string& what = "weights") {
  const std::vector<std::uint8_t> exact(bytes.begin(), bytes.end());
  return taep::parse_safetensors(exact.data(), exact.size(), what);
}

// Runs `f`, expects a ConfigError naming `field` whose one-line message contains `fragment`.
template <class F>
void expect_config_error(F&& f, const std::string& field, const std::string& fragment) {
  try {
    f();
  } catch (const taep::ConfigError& e) {
    const std::string what = e.what();
    EXPECT_EQ(e.field(), field) << what;
    EXPECT_EQ(what.rfind(field + ": ", 0), 0u) << what;
    EXPECT_EQ(what.find('\n'), std::string::npos) << what;
    EXPECT_NE(what.find(fragment), std::string::npos)
        << "expected \"" << fragment << "\" in: " << what;
    return;
  }
  ADD_FAILURE() << "no ConfigError; expected one containing \"" << fragment << "\"";
}

}  // namespace taep_test

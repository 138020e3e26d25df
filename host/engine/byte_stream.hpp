#pragma once
// Trivially copyable values and vectors of them as bytes, for what travels between ranks and into
// checkpoints (host/engine/chunk_driver.hpp, host/engine/checkpoint.cpp). The bytes are read back
// by the same build on the same kind of machine (a job's ranks, a resumed run), so host byte order
// is kept; lengths are checked on every read.
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "taep/error.hpp"

namespace taep {
namespace detail {

class ByteWriter {
 public:
  template <class T>
  void put(const T& v) {
    static_assert(std::is_trivially_copyable<T>::value, "bytes of a trivially copyable value");
    bytes_.append(reinterpret_cast<const char*>(&v), sizeof v);
  }
  template <class T>
  void put_vector(const std::vector<T>& v) {
    static_assert(std::is_trivially_copyable<T>::value, "bytes of a trivially copyable value");
    put(std::uint64_t(v.size()));
    if (!v.empty()) bytes_.append(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
  }
  void put_string(const std::string& s) {
    put(std::uint64_t(s.size()));
    bytes_ += s;
  }
  const std::string& bytes() const { return bytes_; }
  std::string take() { return std::move(bytes_); }

 private:
  std::string bytes_;
};

// Reads what a ByteWriter wrote; `what` names the source in the error a short or corrupt input
// gives. It keeps a reference to `bytes`, which must outlive it (a temporary may not be passed).
class ByteReader {
 public:
  ByteReader(const std::string& bytes, std::string what) : bytes_(bytes), what_(std::move(what)) {}
  ByteReader(std::string&&, std::string) = delete;
  template <class T>
  T get() {
    T v;
    need(sizeof v);
    std::memcpy(&v, bytes_.data() + pos_, sizeof v);
    pos_ += sizeof v;
    return v;
  }
  template <class T>
  std::vector<T> get_vector() {
    const std::uint64_t n = get<std::uint64_t>();
    if (n > (bytes_.size() - pos_) / sizeof(T)) fail();
    std::vector<T> v(static_cast<std::size_t>(n));
    if (n) std::memcpy(v.data(), bytes_.data() + pos_, std::size_t(n) * sizeof(T));
    pos_ += std::size_t(n) * sizeof(T);
    return v;
  }
  std::string get_string() {
    const std::uint64_t n = get<std::uint64_t>();
    need(n);
    std::string s = bytes_.substr(pos_, std::size_t(n));
    pos_ += std::size_t(n);
    return s;
  }
  bool done() const { return pos_ == bytes_.size(); }

 private:
  void need(std::uint64_t n) {
    if (n > bytes_.size() - pos_) fail();
  }
  [[noreturn]] void fail() const { throw Error(what_ + ": truncated or corrupt data"); }
  const std::string& bytes_;
  std::string what_;
  std::size_t pos_ = 0;
};

}  // namespace detail
}  // namespace taep

#pragma once
// numpy's .npy and .npz formats (the NumPy format specification, version 1.0; .npz is a zip archive
// of .npy members, stored uncompressed, here always with zip64 records so members of any size
// work), for per-path arrays and samples that numpy.load reads as they are.
#include <cstdint>
#include <string>
#include <vector>

namespace taep {
namespace detail {

// One array: little-endian float64 ("<f8") or float32 ("<f4") values in C order.
struct NpyArray {
  std::string name;                // the member name in an .npz, without ".npy"
  std::vector<std::uint64_t> shape;
  const void* data = nullptr;
  bool float32 = false;
};

std::string npy_bytes(const NpyArray& a);
std::string npz_bytes(const std::vector<NpyArray>& arrays);

}  // namespace detail
}  // namespace taep

#pragma once
// The one reader of sample files: the training data (data.samples) and data-file targets
// (target.samples) alike. A file is either numpy's .npy (recognized by its magic bytes, whatever its
// name: float32 or float64, little-endian, C order, shape (N, d) or (N,) for d = 1) or CSV text (one
// sample per line, d numbers separated by commas or spaces; LF, CR or CRLF line ends; '#' comments
// and a first line with no number in it, a header, are skipped). README.md, "Sample files".
#include <cstdint>
#include <string>
#include <vector>

namespace taep {
namespace detail {

struct SampleTable {
  int d = 0;
  std::vector<double> values;  // row-major, rows() x d
  std::uint64_t rows() const { return d > 0 ? values.size() / std::size_t(d) : 0; }
};

// Reads the whole file once (bounded by kMaxSamplesBytes, input_file.hpp). Every value must be
// finite with |x| <= 1e30, d in [1, physics::kMaxDim], at least one and at most 2^31 rows. Throws
// ConfigError(field, message naming the file and what is wrong: line, shape, dtype, value).
SampleTable read_sample_file(const std::string& path, const std::string& field);

}  // namespace detail
}  // namespace taep

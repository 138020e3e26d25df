// Sample files (samples_file.hpp): CSV text or .npy, read once and checked value by value.
#include "host/io/samples_file.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <regex>
#include <string>
#include <utility>
#include <vector>

#include "host/io/input_file.hpp"
#include "host/io/json_fields.hpp"
#include "taep/error.hpp"
#include "taep/physics/mixture.hpp"

namespace taep {
namespace detail {
namespace {

using fields::fail;

constexpr std::uint64_t kMaxSamples = std::uint64_t(1) << 31;
constexpr double kMaxMagnitude = 1e30;  // keeps d * x^2 and the trainer's float casts finite
constexpr std::size_t kMaxFieldBytes = 1024;  // a number is ~25 characters, a column name few more

bool is_separator(char c) { return c == ',' || c == ' ' || c == '\t' || c == '\v' || c == '\f'; }

// The samples of a CSV file (train.hpp, TrainDataConfig), streamed into their final row-major
// array: the text is read in pieces and each line's values go straight to `out`, so the peak memory
// is the array itself. Lines end at LF, CR or CRLF; '#' starts a comment; a UTF-8 byte-order mark
// at the start is skipped. The first line that is not blank or a comment is a header (column names)
// when none of its fields is a number; every other line must be a sample.
class CsvReader {
 public:
  CsvReader(const std::string& path, const std::string& field, std::vector<double>& out)
      : path_(path), field_(field), out_(out) {}

  void feed(const char* p, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
      const char c = p[i];
      if (c == '\n' || c == '\r') {
        if (!(c == '\n' && after_cr_)) end_line();
        after_cr_ = c == '\r';
        continue;
      }
      after_cr_ = false;
      if (in_comment_) continue;
      if (c == '#') {
        end_field();
        in_comment_ = true;
      } else if (is_separator(c)) {
        end_field();
      } else {
        // A field's text is kept until it ends, so it is bounded (a file of NULs is one field).
        if (token_.size() >= kMaxFieldBytes)
          fail(field_, where() + ": field " + std::to_string(fields_ + 1) + " is longer than " +
                           std::to_string(kMaxFieldBytes) + " bytes; a sample is numbers "
                           "separated by commas or spaces");
        token_ += c;
      }
    }
  }

  // The file ended: its last line need not end with a line break. Returns d.
  int finish() {
    if (!after_cr_) end_line();
    if (rows_ == 0) fail(field_, "the samples file \"" + path_ + "\" holds no samples");
    return int(d_);
  }

 private:
  std::string where() const { return "\"" + path_ + "\" line " + std::to_string(line_no_); }

  void end_field() {
    if (token_.empty()) return;
    ++fields_;
    char* end = nullptr;
    const double v = std::strtod(token_.c_str(), &end);
    if (end != token_.c_str() + token_.size()) {
      if (!bad_) bad_ = std::pair<std::size_t, std::string>(fields_, token_);
    } else if (++numbers_ <= std::size_t(physics::kMaxDim)) {
      out_.push_back(v);  // at most kMaxDim per line, however long the line
    }
    token_.clear();
  }

  void end_line() {
    end_field();
    in_comment_ = false;
    const std::size_t row_start = std::size_t(rows_) * d_;
    const bool content = fields_ > 0, header = content && first_content_ && numbers_ == 0;
    if (content) first_content_ = false;
    if (content && !header) check_row(row_start);
    out_.resize(content && !header ? row_start + numbers_ : row_start);
    if (content && !header) {
      d_ = numbers_;
      ++rows_;
    }
    fields_ = numbers_ = 0;
    bad_.reset();
    ++line_no_;
  }

  void check_row(std::size_t row_start) {
    if (bad_)
      fail(field_, where() + ": field " + std::to_string(bad_->first) + " (" +
                       fields::show(bad_->second) +
                       ") is not a number; a sample is numbers separated by commas or spaces" +
                       (numbers_ > 0 && rows_ == 0
                            ? ", and only a first line with no number in it is a header"
                            : ""));
    if (numbers_ > std::size_t(physics::kMaxDim))
      fail(field_, where() + ": a sample must have d in [1, " + std::to_string(physics::kMaxDim) +
                       "] values (got " + std::to_string(numbers_) + ")");
    if (rows_ > 0 && numbers_ != d_)
      fail(field_, where() + ": has " + std::to_string(numbers_) + " values, the first sample " +
                       std::to_string(d_));
    for (std::size_t k = row_start; k < out_.size(); ++k)
      if (!(std::fabs(out_[k]) <= kMaxMagnitude))  // also false for nan
        fail(field_, where() + ": values must be finite with |x| <= 1e30 (got " +
                         fields::show(out_[k]) + ")");
    if (rows_ >= kMaxSamples)
      fail(field_, where() + ": a samples file holds at most " + std::to_string(kMaxSamples) +
                       " samples");
  }

  const std::string& path_;
  const std::string& field_;
  std::vector<double>& out_;
  std::size_t d_ = 0;
  std::uint64_t rows_ = 0, line_no_ = 1;
  std::string token_;
  std::size_t fields_ = 0, numbers_ = 0;                // of the current line
  std::optional<std::pair<std::size_t, std::string>> bad_;  // its first field that is no number
  bool in_comment_ = false, after_cr_ = false, first_content_ = true;
};


// A .npy file (the NumPy format specification, versions 1.0 to 3.0), fed in pieces like the CSV
// reader: the header is collected and parsed, then the data is converted value by value into `out`,
// so the peak memory is the array of doubles itself.
class NpyReader {
 public:
  NpyReader(const std::string& path, const std::string& field, std::vector<double>& out)
      : path_(path), field_(field), out_(out) {}

  void feed(const char* p, std::size_t n) {
    while (n > 0 && !header_done_) {
      head_.push_back(*p++);
      --n;
      parse_header_when_complete();
    }
    while (n > 0) {
      const std::size_t take = std::min(n, item_ - partial_.size());
      partial_.append(p, take);
      p += take;
      n -= take;
      if (partial_.size() == item_) {
        take_value();
        partial_.clear();
      }
    }
  }

  int finish() {
    if (!header_done_) bad("ends inside its header");
    if (values_ != expected_ || !partial_.empty())
      bad("holds " + std::to_string(values_) + (partial_.empty() ? "" : " and a part") +
          " values, its shape " + shape_text() + " needs " + std::to_string(expected_));
    return int(d_);
  }

 private:
  [[noreturn]] void bad(const std::string& what) const {
    fail(field_, "the .npy file \"" + path_ + "\" " + what);
  }
  std::string shape_text() const {
    return one_d_ ? "(" + std::to_string(rows_) + ",)"
                  : "(" + std::to_string(rows_) + ", " + std::to_string(d_) + ")";
  }

  void parse_header_when_complete() {
    if (head_.size() == 8) {
      if (head_.compare(0, 6, "\x93NUMPY") != 0) bad("does not start with the .npy magic bytes");
      const int major = static_cast<unsigned char>(head_[6]);
      if (major < 1 || major > 3) bad("has format version " + std::to_string(major) + ", not 1 to 3");
      len_bytes_ = major == 1 ? 2 : 4;
    }
    if (len_bytes_ > 0 && head_.size() == 8 + len_bytes_) {
      for (std::size_t i = 0; i < len_bytes_; ++i)
        header_len_ |= std::size_t(static_cast<unsigned char>(head_[8 + i])) << (8 * i);
      if (header_len_ == 0 || header_len_ > (1u << 20)) bad("has a header of implausible length");
    }
    if (header_len_ == 0 || head_.size() != 8 + len_bytes_ + header_len_) return;
    header_done_ = true;
    const std::string dict = head_.substr(8 + len_bytes_);
    std::smatch m;
    if (!std::regex_search(dict, m, std::regex("'descr'\\s*:\\s*'([^']*)'")))
      bad("has no 'descr' in its header");
    const std::string descr = m[1];
    if (descr == "<f8") {
      item_ = 8;
    } else if (descr == "<f4") {
      item_ = 4;
    } else {
      bad("holds dtype " + fields::show(descr) +
          "; samples must be little-endian float32 ('<f4') or float64 ('<f8')");
    }
    if (std::regex_search(dict, std::regex("'fortran_order'\\s*:\\s*True")))
      bad("is in Fortran order; save it in C order (numpy.ascontiguousarray)");
    if (!std::regex_search(dict, m, std::regex("'shape'\\s*:\\s*\\(([^)]*)\\)")))
      bad("has no 'shape' in its header");
    std::vector<std::uint64_t> dims;
    const std::string s = m[1];
    const std::regex number("[0-9]+");
    for (std::sregex_iterator it(s.begin(), s.end(), number), end; it != end; ++it)
      dims.push_back(std::strtoull(it->str().c_str(), nullptr, 10));
    if (dims.size() == 1) {
      one_d_ = true;
      dims.push_back(1);
    }
    if (dims.size() != 2)
      bad("has shape " + fields::show("(" + s + ")") + "; samples must have shape (N, d) or (N,)");
    rows_ = dims[0];
    d_ = dims[1];
    if (rows_ == 0) bad("holds no samples (shape " + shape_text() + ")");
    if (d_ < 1 || d_ > std::uint64_t(physics::kMaxDim))
      bad("has shape " + shape_text() + ": a sample must have d in [1, " +
          std::to_string(physics::kMaxDim) + "] values");
    if (rows_ > kMaxSamples)
      bad("has shape " + shape_text() + ": a samples file holds at most " +
          std::to_string(kMaxSamples) + " samples");
    expected_ = rows_ * d_;
    out_.reserve(std::size_t(expected_));
  }

  void take_value() {
    double v;
    if (item_ == 8) {
      std::memcpy(&v, partial_.data(), 8);
    } else {
      float f;
      std::memcpy(&f, partial_.data(), 4);
      v = f;
    }
    if (values_ >= expected_)
      bad("holds more data than its shape " + shape_text() + " needs");
    if (!(std::fabs(v) <= kMaxMagnitude))
      bad("row " + std::to_string(values_ / d_) + ", column " + std::to_string(values_ % d_) +
          ": values must be finite with |x| <= 1e30 (got " + fields::show(v) + ")");
    out_.push_back(v);
    ++values_;
  }

  const std::string& path_;
  const std::string& field_;
  std::vector<double>& out_;
  std::string head_, partial_;
  std::size_t len_bytes_ = 0, header_len_ = 0, item_ = 8;
  bool header_done_ = false, one_d_ = false;
  std::uint64_t rows_ = 0, d_ = 0, expected_ = 0, values_ = 0;
};

}  // namespace

SampleTable read_sample_file(const std::string& path, const std::string& field) {
  const std::string file_name = "the samples file \"" + path + "\"";
  InputFile f(path);
  if (f.is_directory()) fail(field, file_name + " is a directory, not a CSV or .npy file");
  if (!f.opened() || f.error() != 0)
    fail(field, "cannot read " + file_name + ": " + std::strerror(f.error()));
  const auto too_large = [&] {
    fail(field, "cannot read " + file_name + ": it holds more than " +
                    byte_count(kMaxSamplesBytes) + ", the limit for a samples file");
  };
  if (f.size() && *f.size() > kMaxSamplesBytes) too_large();
  SampleTable table;
  std::optional<CsvReader> csv;
  std::optional<NpyReader> npy;
  std::vector<char> buf(1 << 16);
  std::uint64_t total = 0;
  for (bool first = true;; first = false) {
    std::size_t n = f.read(buf.data(), buf.size());
    if (f.error() != 0) fail(field, "cannot read " + file_name + ": " + std::strerror(f.error()));
    if (n == 0) break;
    total += n;
    if (total > kMaxSamplesBytes) too_large();
    const char* p = buf.data();
    if (first) {
      // The format is the content's, not the name's: .npy starts with its magic bytes.
      if (n >= 6 && std::memcmp(p, "\x93NUMPY", 6) == 0) {
        npy.emplace(path, field, table.values);
      } else {
        csv.emplace(path, field, table.values);
        if (n >= 3 && std::memcmp(p, "\xEF\xBB\xBF", 3) == 0) p += 3, n -= 3;
      }
    }
    if (npy)
      npy->feed(p, n);
    else
      csv->feed(p, n);
  }
  if (!npy && !csv) fail(field, file_name + " is empty: it holds no samples");
  table.d = npy ? npy->finish() : csv->finish();
  return table;
}

}  // namespace detail
}  // namespace taep

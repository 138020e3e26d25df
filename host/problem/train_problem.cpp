// build_train_problem (train.hpp): the training config validated, its samples file read once.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "host/config/train_config.hpp"
#include "host/io/input_file.hpp"
#include "host/io/json_fields.hpp"
#include "taep/error.hpp"
#include "taep/physics/mixture.hpp"
#include "taep/train.hpp"

namespace taep {

struct TrainProblem::Data {
  TrainConfig config;
  int d = 0;
  std::vector<double> samples;  // row-major, d per sample
};

namespace {

using fields::fail;

constexpr std::uint64_t kMaxSamples = std::uint64_t(1) << 31;
constexpr double kMaxMagnitude = 1e30;  // keeps d * x^2 and the trainer's float casts finite
constexpr const char* kField = "data.samples";
constexpr std::size_t kMaxFieldBytes = 1024;  // a number is ~25 characters, a column name few more

bool is_separator(char c) { return c == ',' || c == ' ' || c == '\t' || c == '\v' || c == '\f'; }

// The samples of a CSV file (train.hpp, TrainDataConfig), streamed into their final row-major
// array: the text is read in pieces and each line's values go straight to `out`, so the peak memory
// is the array itself. Lines end at LF, CR or CRLF; '#' starts a comment; a UTF-8 byte-order mark
// at the start is skipped. The first line that is not blank or a comment is a header (column names)
// when none of its fields is a number; every other line must be a sample.
class SamplesReader {
 public:
  SamplesReader(const std::string& path, std::vector<double>& out) : path_(path), out_(out) {}

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
          fail(kField, where() + ": field " + std::to_string(fields_ + 1) + " is longer than " +
                           std::to_string(kMaxFieldBytes) + " bytes; a sample is numbers "
                           "separated by commas or spaces");
        token_ += c;
      }
    }
  }

  // The file ended: its last line need not end with a line break. Returns d.
  int finish() {
    if (!after_cr_) end_line();
    if (rows_ == 0) fail(kField, "the samples file \"" + path_ + "\" holds no samples");
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
      fail(kField, where() + ": field " + std::to_string(bad_->first) + " (" +
                       fields::show(bad_->second) +
                       ") is not a number; a sample is numbers separated by commas or spaces" +
                       (numbers_ > 0 && rows_ == 0
                            ? ", and only a first line with no number in it is a header"
                            : ""));
    if (numbers_ > std::size_t(physics::kMaxDim))
      fail(kField, where() + ": a sample must have d in [1, " + std::to_string(physics::kMaxDim) +
                       "] values (got " + std::to_string(numbers_) + ")");
    if (rows_ > 0 && numbers_ != d_)
      fail(kField, where() + ": has " + std::to_string(numbers_) + " values, the first sample " +
                       std::to_string(d_));
    for (std::size_t k = row_start; k < out_.size(); ++k)
      if (!(std::fabs(out_[k]) <= kMaxMagnitude))  // also false for nan
        fail(kField, where() + ": values must be finite with |x| <= 1e30 (got " +
                         fields::show(out_[k]) + ")");
    if (rows_ >= kMaxSamples)
      fail(kField, where() + ": a samples file holds at most " + std::to_string(kMaxSamples) +
                       " samples");
  }

  const std::string& path_;
  std::vector<double>& out_;
  std::size_t d_ = 0;
  std::uint64_t rows_ = 0, line_no_ = 1;
  std::string token_;
  std::size_t fields_ = 0, numbers_ = 0;                // of the current line
  std::optional<std::pair<std::size_t, std::string>> bad_;  // its first field that is no number
  bool in_comment_ = false, after_cr_ = false, first_content_ = true;
};

int read_samples(const std::string& path, std::vector<double>& out) {
  const std::string file_name = "the samples file \"" + path + "\"";
  detail::InputFile f(path);
  if (f.is_directory()) fail(kField, file_name + " is a directory, not a CSV file");
  if (!f.opened() || f.error() != 0)
    fail(kField, "cannot read " + file_name + ": " + std::strerror(f.error()));
  const auto too_large = [&] {
    fail(kField, "cannot read " + file_name + ": it holds more than " +
                     detail::byte_count(detail::kMaxSamplesBytes) +
                     ", the limit for a samples file");
  };
  if (f.size() && *f.size() > detail::kMaxSamplesBytes) too_large();
  SamplesReader reader(path, out);
  std::vector<char> buf(1 << 16);
  std::uint64_t total = 0;
  for (bool first = true;; first = false) {
    std::size_t n = f.read(buf.data(), buf.size());
    if (f.error() != 0) fail(kField, "cannot read " + file_name + ": " + std::strerror(f.error()));
    if (n == 0) break;
    total += n;
    if (total > detail::kMaxSamplesBytes) too_large();
    const char* p = buf.data();
    if (first && n >= 3 && std::memcmp(p, "\xEF\xBB\xBF", 3) == 0) p += 3, n -= 3;
    reader.feed(p, n);
  }
  return reader.finish();
}

}  // namespace

const TrainConfig& TrainProblem::config() const { return data_->config; }
int TrainProblem::dim() const { return data_->d; }
const std::vector<double>& TrainProblem::samples() const { return data_->samples; }
std::uint64_t TrainProblem::sample_count() const {
  return data_->d > 0 ? data_->samples.size() / std::size_t(data_->d) : 0;
}

TrainProblem build_train_problem(const TrainConfig& config) {
  validate(config);
  auto data = std::make_shared<TrainProblem::Data>();
  data->config = config;
  if (!config.data.samples.empty()) {
    data->d = read_samples(config.data.samples, data->samples);
    detail::check_network_size(config.network, data->d);
  } else {
    fields::resolve_preset(data->config.data.target);
    data->d = data->config.data.target.mixture.dim();
  }
  return TrainProblem(std::move(data));
}

}  // namespace taep

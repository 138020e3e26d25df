// build_train_problem (train.hpp): the training config validated, its samples file read once.
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
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

// Splits a line at commas and whitespace into numbers; false if a token is not a number.
bool parse_row(const std::string& line, std::vector<double>& row) {
  row.clear();
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ',' || std::isspace(static_cast<unsigned char>(line[i]))))
      ++i;
    if (i >= line.size()) break;
    std::size_t j = i;
    while (j < line.size() && line[j] != ',' && !std::isspace(static_cast<unsigned char>(line[j])))
      ++j;
    const std::string token = line.substr(i, j - i);
    char* end = nullptr;
    const double v = std::strtod(token.c_str(), &end);
    if (end != token.c_str() + token.size()) return false;
    row.push_back(v);
    i = j;
  }
  return true;
}

// The samples of a CSV file (train.hpp, TrainDataConfig), row-major into `out`; returns d.
int read_samples(const std::string& path, std::vector<double>& out) {
  const std::string field = "data.samples";
  detail::InputRead file = detail::read_input(path);
  if (!file.ok)
    fail(field, "cannot read the samples file \"" + path + "\": " + std::strerror(file.error));
  const std::string& text = file.bytes;
  std::size_t d = 0;
  std::uint64_t rows = 0, line_no = 0;
  std::vector<double> row;
  bool seen_data_line = false;
  for (std::size_t pos = 0; pos < text.size();) {  // lines as std::getline splits them
    std::size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) nl = text.size();
    std::string line = text.substr(pos, nl - pos);
    pos = nl + 1;
    ++line_no;
    const auto hash = line.find('#');
    if (hash != std::string::npos) line.resize(hash);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t,") == std::string::npos) continue;
    const std::string where = "\"" + path + "\" line " + std::to_string(line_no);
    if (!parse_row(line, row)) {
      if (!seen_data_line) {  // a header line (column names)
        seen_data_line = true;
        continue;
      }
      fail(field, where + ": expected numbers separated by commas or spaces");
    }
    seen_data_line = true;
    if (row.size() < 1 || row.size() > std::size_t(physics::kMaxDim))
      fail(field, where + ": a sample must have d in [1, " + std::to_string(physics::kMaxDim) +
                      "] values (got " + std::to_string(row.size()) + ")");
    if (rows > 0 && row.size() != d)
      fail(field, where + ": has " + std::to_string(row.size()) + " values, the first sample " +
                      std::to_string(d));
    for (double v : row)
      if (!std::isfinite(v) || std::fabs(v) > 1e30)
        fail(field, where + ": values must be finite floats (got " + fields::show(v) + ")");
    if (rows >= kMaxSamples) fail(field, "at most " + std::to_string(kMaxSamples) + " samples");
    d = row.size();
    out.insert(out.end(), row.begin(), row.end());
    ++rows;
  }
  if (rows == 0) fail(field, "the samples file \"" + path + "\" holds no samples");
  return int(d);
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

// build_train_problem (train.hpp): the training config validated, its samples file read once.
#include <cstdint>
#include <utility>
#include <vector>

#include "host/config/train_config.hpp"
#include "host/io/json_fields.hpp"
#include "host/io/samples_file.hpp"
#include "taep/train.hpp"

namespace taep {

struct TrainProblem::Data {
  TrainConfig config;
  int d = 0;
  std::vector<double> samples;  // row-major, d per sample
};

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
    detail::SampleTable table = detail::read_sample_file(config.data.samples, "data.samples");
    data->d = table.d;
    data->samples = std::move(table.values);
    detail::check_network_size(config.network, data->d);
  } else {
    fields::resolve_preset(data->config.data.target);
    data->d = data->config.data.target.mixture.dim();
  }
  return TrainProblem(std::move(data));
}

}  // namespace taep

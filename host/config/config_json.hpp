#pragma once
// The canonical JSON of a config as an ordered JSON value, for documents that embed it (result,
// training and experiment JSON); config_to_json and train_config_to_json dump these.
#include <nlohmann/json.hpp>

#include "taep/config.hpp"
#include "taep/train.hpp"

namespace taep {
namespace detail {

nlohmann::ordered_json config_json(const Config& config);
nlohmann::ordered_json train_config_json(const TrainConfig& config);

// The model's checks against the target's mixture (dimension, collapse's component count): made by
// validate for a mixture target and by build_problem once a samples target's rows are read.
void check_model_against_target(const ModelConfig& model, const MixtureSpec& target);

}  // namespace detail
}  // namespace taep

#pragma once
// Checks of the training config that build_train_problem (host/problem/train_problem.cpp) repeats
// once the data's dimension is known from the samples file.
#include "taep/train.hpp"

namespace taep {
namespace detail {

// ConfigError("network.hidden") when the network for d-dimensional data has too many parameters.
void check_network_size(const NetworkConfig& network, int d);

}  // namespace detail
}  // namespace taep

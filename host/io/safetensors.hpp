#pragma once
// Internals shared by the safetensors reader and the MLP weight-file code (host/io/safetensors.cpp,
// host/io/mlp_weights.cpp). The public API is in taep/mlp.hpp.
#include <string>

#include "taep/mlp.hpp"

namespace taep {
namespace detail {

// Writes `file` in the reference implementation's layout: "__metadata__" first, tensors as F32
// (whatever their dtype field says) in name order, header padded with spaces to a multiple of 8
// bytes so the data buffer is aligned.
std::string encode_safetensors(const SafetensorsFile& file);

// The bytes of the weight file of `model` after the checks load_mlp makes of a file (so no
// unreadable file is written); errors name `what`.
std::string mlp_file_bytes(const MlpModel& model, const std::string& what);

// The checks load_mlp makes of a file, made of a model in memory (layers chain, metadata in range,
// values finite); ConfigError(what, ...) naming the tensor or key.
void check_mlp(const MlpModel& model, const std::string& what);

// `s` as a JSON string literal (escaped, so one line whatever bytes it holds), shortened for error
// messages about names and values read from a file.
std::string quote_for_message(const std::string& s);

}  // namespace detail
}  // namespace taep

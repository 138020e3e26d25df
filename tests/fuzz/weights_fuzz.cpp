// Fuzz target: the weight-file reader (host/io/safetensors.cpp, host/io/mlp_weights.cpp). An input
// is read both ways a weight file can be: from bytes in memory (parse_safetensors) and as a file
// through the bounded reader (read_safetensors, load_mlp), which must agree; an accepted model is
// then evaluated once, so a layer whose shape and data disagree shows as an out-of-bounds read.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "taep/mlp.hpp"
#include "tests/fuzz/fuzz_support.hpp"

namespace {

bool same(const taep::SafetensorsFile& a, const taep::SafetensorsFile& b) {
  if (a.metadata != b.metadata || a.tensors.size() != b.tensors.size()) return false;
  for (auto i = a.tensors.begin(), j = b.tensors.begin(); i != a.tensors.end(); ++i, ++j) {
    if (i->first != j->first || i->second.dtype != j->second.dtype ||
        i->second.shape != j->second.shape || i->second.data.size() != j->second.data.size())
      return false;
    for (std::size_t k = 0; k < i->second.data.size(); ++k)  // bitwise, NaN payloads included
      if (std::memcmp(&i->second.data[k], &j->second.data[k], sizeof(float)) != 0) return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static taep_fuzz::InputAsFile file;

  taep::SafetensorsFile from_bytes, from_file;
  const bool bytes_ok =
      taep_fuzz::accepted([&] { from_bytes = taep::parse_safetensors(data, size, "fuzz input"); });
  const std::string& path = file.hold(data, size);
  const bool file_ok = taep_fuzz::accepted([&] { from_file = taep::read_safetensors(path); });
  TAEP_FUZZ_CHECK(bytes_ok == file_ok, bytes_ok ? "only the file reader refuses the input"
                                                : "only the bytes reader refuses the input");
  if (!bytes_ok) return 0;
  TAEP_FUZZ_CHECK(same(from_bytes, from_file), "the two readers read different tensors");

  taep::MlpModel model;
  const bool model_ok =
      taep_fuzz::accepted([&] { model = taep::mlp_from_safetensors(from_bytes, "fuzz input"); });
  taep::MlpModel loaded;
  TAEP_FUZZ_CHECK(model_ok == taep_fuzz::accepted([&] { loaded = taep::load_mlp(path); }),
                  "load_mlp and mlp_from_safetensors disagree");
  if (!model_ok) return 0;

  TAEP_FUZZ_CHECK(model.dim >= 1 && !model.layers.empty(), "an accepted model without layers");
  TAEP_FUZZ_CHECK(model.layers.back().out == model.dim, "the output layer is not d wide");
  for (const taep::MlpLayer& l : model.layers)
    TAEP_FUZZ_CHECK(l.weight.size() == std::size_t(l.in) * std::size_t(l.out) &&
                        l.bias.size() == std::size_t(l.out),
                    "a layer's arrays do not match its shape");
  // abar 0.5 is valid for both parameterizations; the divergence runs d tangents through every layer.
  const std::vector<double> x(std::size_t(model.dim), 0.5);
  const taep::MlpPointEval e = taep::mlp_evaluate_reference(model, x, 0.5, 0.5, true);
  TAEP_FUZZ_CHECK(e.score.size() == x.size(), "a score of another dimension");
  return 0;
}

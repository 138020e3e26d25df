// Fuzz target: the config readers (host/config): parse_config and parse_train_config (each
// validates), the canonical JSON of an accepted config read back, and the engine's tables built from
// an accepted run config (build_problem's work when no input file is named). One input is tried as
// both kinds of config, since both share the JSON toolkit (host/io/json_fields).
#include <cstddef>
#include <cstdint>
#include <string>

#include "host/problem/forward_problem.hpp"
#include "taep/config.hpp"
#include "taep/mlp.hpp"
#include "taep/train.hpp"
#include "tests/fuzz/fuzz_support.hpp"

namespace {

// Tables of steps x components are built only below this, so one input stays well under the
// fuzzer's per-input timeout (schedule.steps alone may be 10^7).
constexpr std::uint64_t kMaxTableEntries = 200000;

void run_config(const std::string& text) {
  taep::Config c;
  if (!taep_fuzz::accepted([&] { c = taep::parse_config(text); })) return;
  // README.md ("Result reference"): the canonical form is accepted back, and is a fixed point.
  const std::string canonical = taep::config_to_json(c);
  taep::Config again;
  TAEP_FUZZ_CHECK(taep_fuzz::accepted([&] { again = taep::parse_config(canonical); }),
                  "the canonical form of an accepted config is refused:\n" + canonical);
  TAEP_FUZZ_CHECK(taep::config_to_json(again) == canonical,
                  "the canonical form is not a fixed point:\n" + canonical);

  if (c.model.type == "mlp") return;  // its tables need the weight file (the weights target)
  const std::uint64_t K = std::uint64_t(c.target.mixture.components()) +
                          (c.model.mixture ? std::uint64_t(c.model.mixture->components()) : 0);
  if (std::uint64_t(c.schedule.steps) * (K + 1) > kMaxTableEntries) return;
  taep_fuzz::accepted([&] {
    const taep::detail::ForwardProblem p = taep::detail::build_forward_problem(c, taep::MlpModel{});
    TAEP_FUZZ_CHECK(p.steps == c.schedule.steps, "tables for another number of steps");
    TAEP_FUZZ_CHECK(p.d == c.target.mixture.dim(), "tables of another dimension");
  });
}

void run_train_config(const std::string& text) {
  taep::TrainConfig c;
  if (!taep_fuzz::accepted([&] { c = taep::parse_train_config(text); })) return;
  const std::string canonical = taep::train_config_to_json(c);
  taep::TrainConfig again;
  TAEP_FUZZ_CHECK(taep_fuzz::accepted([&] { again = taep::parse_train_config(canonical); }),
                  "the canonical form of an accepted training config is refused:\n" + canonical);
  TAEP_FUZZ_CHECK(taep::train_config_to_json(again) == canonical,
                  "the canonical training config is not a fixed point:\n" + canonical);
  // A named samples file would be opened (the samples target reads files); mixture data opens none.
  if (!c.data.samples.empty()) return;
  taep_fuzz::accepted([&] {
    const taep::TrainProblem p = taep::build_train_problem(c);
    TAEP_FUZZ_CHECK(p.dim() >= 1 && p.sample_count() == 0, "mixture data with samples");
  });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  run_config(text);
  run_train_config(text);
  return 0;
}

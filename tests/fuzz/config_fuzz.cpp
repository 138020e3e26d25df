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

// Parses text into c; an accepted config's canonical JSON must be accepted back and be a fixed
// point (README.md, "Result reference": the result's config is accepted by taep run).
template <class C, class Parse, class Dump>
bool parse_and_round_trip(const std::string& text, C& c, Parse parse, Dump dump, const char* kind) {
  if (!taep_fuzz::accepted([&] { c = parse(text); })) return false;
  const std::string canonical = dump(c);
  C again;
  TAEP_FUZZ_CHECK(taep_fuzz::accepted([&] { again = parse(canonical); }),
                  std::string("the canonical form of an accepted ") + kind + " is refused:\n" + canonical);
  TAEP_FUZZ_CHECK(dump(again) == canonical,
                  std::string("the canonical ") + kind + " is not a fixed point:\n" + canonical);
  return true;
}

void run_config(const std::string& text) {
  taep::Config c;
  if (!parse_and_round_trip(text, c, taep::parse_config,
                            [](const taep::Config& x) { return taep::config_to_json(x); }, "config"))
    return;
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
  if (!parse_and_round_trip(text, c, taep::parse_train_config,
                            [](const taep::TrainConfig& x) { return taep::train_config_to_json(x); },
                            "training config"))
    return;
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

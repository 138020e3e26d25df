// `taep sample [CONFIG] --count N --out SAMPLES.csv`: draws samples with the reverse process of the
// config's model (docs/physics.md section 8), writes them as CSV and, with --result, the nearest-mode
// occupancy as JSON (README "taep sample").
#include <cstdint>
#include <string>

#include "cli.hpp"
#include "host/io/npy.hpp"
#include "taep/physics/rng_streams.hpp"
#include "taep/sample.hpp"
#include "taep/taep.hpp"

namespace taep {
namespace cli {
namespace {

// Header x0,x1,...,x{d-1}, then one row per sample, each value %.9g (float round-trips).
std::string samples_csv(const SampleResult& r) {
  std::string out;
  out.reserve(std::size_t(r.count) * std::size_t(r.d) * 14 + 64);
  for (int i = 0; i < r.d; ++i) out += (i ? ",x" : "x") + std::to_string(i);
  out += '\n';
  char buf[32];
  for (std::uint64_t p = 0; p < r.count; ++p) {
    for (int i = 0; i < r.d; ++i) {
      if (i) out += ',';
      const int n = std::snprintf(buf, sizeof buf, "%.9g", double(r.samples[p * r.d + i]));
      out.append(buf, std::size_t(n));
    }
    out += '\n';
  }
  return out;
}

void print_summary(const SampleResult& r) {
  const ModeOccupancy& o = r.occupancy;
  std::fprintf(stderr, "taep: %llu samples in %d dimension%s (%llu non-finite)\n",
               static_cast<unsigned long long>(r.count), r.d, r.d == 1 ? "" : "s",
               static_cast<unsigned long long>(r.nonfinite));
  for (std::size_t k = 0; k < o.counts.size(); ++k) {
    std::fprintf(stderr, "taep: mode %zu: fraction %.5f +/- %.2g (target %.5f", k, o.fractions[k],
                 o.fraction_stderr[k], o.target_weights[k]);
    if (!o.model_weights.empty()) std::fprintf(stderr, ", model %.5f", o.model_weights[k]);
    std::fprintf(stderr, ")\n");
  }
  print_performance(r.performance);
}

class SampleCommand final : public RunConfigCommand {
 public:
  // No --paths: the number of samples is --count.
  SampleCommand()
      : RunConfigCommand("sample", "Draw samples with the reverse process of the config's model",
                         nullptr) {}

  void add_options(CLI::App& cmd) override {
    // Required unless --print-config (checked in run_loaded).
    count_option_ = cmd.add_option("--count", count_, "Number of samples (required)")
                        ->check(CLI::NonNegativeNumber);
    guard_number(count_option_);
    cmd.add_option("--out", out_path_,
                   "Write the samples to this file (required): .npy (float32, count x d) or CSV")
        ->check(nonempty_path());
    cmd.add_option("--result", result_path_, "Write the result JSON (occupancy) to this file")
        ->check(nonempty_path());
  }

  int run_loaded(const Problem& problem) override {
    if (count_option_->count() == 0) throw ConfigError("--count", "is required");
    if (out_path_.empty()) throw ConfigError("--out", "is required");
    if (count_ < 1 || count_ >= rng::kMaxPaths)
      throw ConfigError("--count", "must be an integer in [1, 2^40) (got " +
                                       std::to_string(count_) + ")");
    const auto out = optional_output(out_path_, "--out");
    const auto result_file = optional_output(result_path_, "--result");
    const SampleResult result = with_progress("samples", [&](const RunOptions& options) {
      try {
        return sample(problem, count_, options);
      } catch (const ConfigError& e) {
        if (e.field() != "count") throw;
        throw ConfigError("--count", std::string(e.what()).substr(e.field().size() + 2));
      }
    });
    if (!out) return 0;  // not rank 0
    if (result_file) result_file->commit(sample_result_to_json(result));
    const bool npy = out_path_.size() >= 4 && out_path_.compare(out_path_.size() - 4, 4, ".npy") == 0;
    out->commit(npy ? detail::npy_bytes({"samples", {result.count, std::uint64_t(result.d)},
                                        result.samples.data(), true})
                   : samples_csv(result));
    print_warnings(result.warnings);
    if (!quiet_) print_summary(result);
    return 0;
  }

 private:
  std::string result_path_;  // --out goes to the base's out_path_
  std::uint64_t count_ = 0;
  CLI::Option* count_option_ = nullptr;
};

}  // namespace

std::unique_ptr<Command> make_sample_command() { return std::make_unique<SampleCommand>(); }

}  // namespace cli
}  // namespace taep

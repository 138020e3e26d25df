#pragma once
// Counter-based random numbers keyed by identity, never by thread (docs/architecture.md principle 3).
// Every draw is addressed by (seed, stream, path id, draw index): cuRAND's Philox4_32_10 is started
// with curand_init(seed, subsequence(stream, path), 0) and consumed four numbers at a time, so the
// numbers a path sees do not depend on launch shape, chunk size, thread count or device.
#include <cstdint>

namespace taep {
namespace rng {

// One line per consumer. Never renumber: results are reproducible only while these stay fixed.
enum Stream : std::uint32_t {
  kInitialState = 1,  // x0 ~ p(x, t_min): one uint4 for the component, then normal4 blocks
  kForwardNoise = 2,  // dW of the forward Euler-Maruyama steps: normals k*d .. k*d+d-1 of step k
  kHutchinson = 3,    // Hutchinson probes (learned-score models): normals/words k*P*d .. of step k
  kReverseNoise = 4,  // xi of the reverse-process steps (docs/physics.md section 8), step order
  kTrainInit = 5,     // initial network weights (taep train); the "path" is the layer index
  kTrainExample = 6,  // training examples: the "path" is step * batch + example (taep train)
  kTrainEval = 7,     // fresh examples for evaluating the DSM loss (dsm_loss)
  kReverseStart = 8,  // x(t_max) ~ N(0, I) of a reverse-process path: normal4 blocks
  kNllProbe = 9,      // taep nll's Hutchinson probes: point i's P*d values, fixed for its whole solve
  kRatesDraw = 10,    // taep rates: draw i of grid point k (path k * draws + i): one uint4, then normals
  kRatesProbe = 11,   // taep rates's Hutchinson probes of draw (k, i): P*d values
};

constexpr int kPathIdBits = 40;  // paths per run < 2^40 (1.1e12)
constexpr std::uint64_t kMaxPaths = std::uint64_t(1) << kPathIdBits;

// cuRAND subsequence index of (stream, path): the stream sits above the path id.
constexpr std::uint64_t subsequence(std::uint32_t stream, std::uint64_t path) {
  return (std::uint64_t(stream) << kPathIdBits) | path;
}

}  // namespace rng
}  // namespace taep

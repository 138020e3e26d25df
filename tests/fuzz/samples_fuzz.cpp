// Fuzz target: the sample-file reader (host/io/samples_file.cpp), reached as training's data.samples
// (the same reader serves target.samples): the input goes through an in-memory file
// (fuzz_support.hpp). The reader takes a file that starts with the .npy magic bytes as .npy and
// anything else as CSV. A CSV input is read twice, once as it is and once after a comment line long
// enough that the input starts just before the reader's 64 KiB read boundary (where the first input
// byte says), so line ends, fields and CRLF pairs split across two reads are searched too. A comment
// line changes nothing but line numbers, so both reads must agree. Inputs read once: those that
// start with a byte-order mark (skipped at the start of a file only) and those that start with the
// .npy magic (after a comment line they are CSV, a different format, so the two reads need not
// agree).
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "taep/train.hpp"
#include "tests/fuzz/fuzz_support.hpp"

namespace {

constexpr std::size_t kReadChunk = std::size_t(1) << 16;  // read_samples' buffer

struct Outcome {
  bool ok = false;
  int d = 0;
  std::vector<double> samples;
};

Outcome read(taep_fuzz::InputAsFile& file, const std::string& bytes) {
  taep::TrainConfig c = taep::default_train_config();
  c.data.samples = file.hold(bytes.data(), bytes.size());
  Outcome o;
  o.ok = taep_fuzz::accepted([&] {
    const taep::TrainProblem p = taep::build_train_problem(c);
    o.d = p.dim();
    o.samples = p.samples();
    TAEP_FUZZ_CHECK(o.d >= 1 && p.sample_count() >= 1, "accepted without a sample");
    TAEP_FUZZ_CHECK(p.sample_count() * std::uint64_t(o.d) == o.samples.size(),
                    "the samples array is not sample_count x d");
    for (double v : o.samples) TAEP_FUZZ_CHECK(std::fabs(v) <= 1e30, "a value past the limit");
  });
  return o;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static taep_fuzz::InputAsFile file;
  const std::string text(reinterpret_cast<const char*>(data), size);
  const Outcome plain = read(file, text);
  if (size == 0 || (size >= 3 && std::memcmp(data, "\xEF\xBB\xBF", 3) == 0)) return 0;
  if (size >= 6 && std::memcmp(data, "\x93NUMPY", 6) == 0) return 0;

  const std::size_t before_boundary = 1 + data[0] % 32;  // input bytes in the first read
  std::string shifted(kReadChunk - before_boundary, ' ');
  shifted.front() = '#';
  shifted.back() = '\n';
  shifted += text;
  const Outcome moved = read(file, shifted);
  TAEP_FUZZ_CHECK(plain.ok == moved.ok, plain.ok ? "refused after a comment line"
                                                 : "accepted only after a comment line");
  // Accepted values are finite, so == compares them exactly.
  TAEP_FUZZ_CHECK(plain.d == moved.d && plain.samples == moved.samples,
                  "a comment line changed the samples");
  return 0;
}

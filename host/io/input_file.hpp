#pragma once
// The one reader of input files (config text, MLP weight files, sample CSVs): every input the
// library or the CLI opens goes through here, so "each input is opened once" is something a test
// can count (tests/load_once_test.cpp) rather than something a review has to trust.
#include <cstdint>
#include <string>

namespace taep {
namespace detail {

// The whole file, or why not; callers word the message for their field.
struct InputRead {
  bool opened = false;  // fopen succeeded (a directory opens, then fails to read: EISDIR)
  bool ok = false;      // opened and read to the end
  int error = 0;        // errno of the failure
  std::string bytes;
};
InputRead read_input(const std::string& path);

// The whole file; a ConfigError(field, "cannot read '<path>': <reason>") when it cannot be read.
std::string read_input_file(const std::string& path, const std::string& field);

// The counting hook (internal, for tests): how many times `path`, spelled as the caller gave it,
// was opened through read_input since the last reset. Thread-safe. A process the test cannot reach
// into (the CLI binary) reports the same when the environment variable TAEP_INPUT_LOG names a
// file: each open appends its path and a newline there.
std::uint64_t input_file_opens(const std::string& path);
void reset_input_file_opens();

}  // namespace detail
}  // namespace taep

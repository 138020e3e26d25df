#pragma once
// The one reader of input files (config text, MLP weight files, sample CSVs): every input the
// library or the CLI opens goes through here, so "each input is opened once" is something a test
// can count (tests/load_once_test.cpp) rather than something a review has to trust.
//
// Every read is bounded. A regular file larger than its bound is refused before a byte is read; any
// other file (a pipe, a device) is read up to the bound and refused when it holds more, so an
// endless input (/dev/zero) ends in an error naming the limit, not in bad_alloc. No read allocates
// more than its bound. The bounds are listed in README.md ("Limits of input files").
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>

namespace taep {
namespace detail {

// Config JSON text (taep run / taep train CONFIG, and JSON documents read back): a real one is a
// few kB.
constexpr std::uint64_t kMaxConfigBytes = std::uint64_t(64) << 20;
// A training samples CSV (data.samples): 1 GiB of text is ~10^8 one-column samples.
constexpr std::uint64_t kMaxSamplesBytes = std::uint64_t(1) << 30;
// A weight file has no bound of its own: its header is at most 100 MB (the safetensors limit) and
// its data is read only as far as the header's declared offsets, checked against the file's size
// first (host/io/safetensors.cpp).

// "64 MiB", "1 GiB" or "123 bytes": a limit as messages state it.
std::string byte_count(std::uint64_t bytes);

// An input opened for bounded reads. Opening counts as an open (input_file_opens), failed or not.
class InputFile {
 public:
  explicit InputFile(const std::string& path);
  ~InputFile();
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;

  bool opened() const { return file_ != nullptr; }
  // errno of the failed open or read; EISDIR for a directory (which fopen opens but no read reads).
  int error() const { return error_; }
  bool is_directory() const { return directory_; }
  // The size of a regular file; nothing for a pipe or device, whose end only reading finds.
  const std::optional<std::uint64_t>& size() const { return size_; }
  // Reads up to n bytes into buf; fewer only at the end of the file or on an error (error() != 0).
  std::size_t read(char* buf, std::size_t n);
  // Appends up to n more bytes to out, growing it by no more than it reads (so never past n).
  std::size_t append(std::string& out, std::size_t n);

 private:
  std::FILE* file_ = nullptr;
  int error_ = 0;
  bool directory_ = false;
  std::optional<std::uint64_t> size_;
};

// The whole file, or why not; callers word the message for their field.
struct InputRead {
  bool opened = false;     // fopen succeeded (a directory opens, then fails to read: EISDIR)
  bool ok = false;         // opened and read to the end
  bool too_large = false;  // holds more than the bound (then error is EFBIG)
  int error = 0;           // errno of the failure
  std::string bytes;
};
InputRead read_input(const std::string& path, std::uint64_t max_bytes);

// Why `r` failed, for "cannot read '<path>': <reason>": strerror, or that the file holds more than
// `max_bytes` and that this is the limit of `kind` ("a config file").
std::string input_failure(const InputRead& r, std::uint64_t max_bytes, const std::string& kind);

// The whole file of config text (at most kMaxConfigBytes); a ConfigError(field, "cannot read
// '<path>': <reason>") when it cannot be read or is larger.
std::string read_input_file(const std::string& path, const std::string& field);

// The counting hook (internal, for tests): how many times `path`, spelled as the caller gave it,
// was opened through InputFile (and so read_input) since the last reset. Thread-safe. A process the
// test cannot reach into (the CLI binary) reports the same when the environment variable
// TAEP_INPUT_LOG names a file: each open appends its path and a newline there.
std::uint64_t input_file_opens(const std::string& path);
void reset_input_file_opens();

}  // namespace detail
}  // namespace taep

#pragma once
// Shared by the fuzz targets (tests/fuzz/*_fuzz.cpp). Each target is built two ways: with libFuzzer
// under ASan/UBSan (TAEP_BUILD_FUZZERS, clang), and with replay_main.cpp into a plain program that
// runs every corpus file (the ctest tests fuzz_replay.*, any compiler). So nothing here may depend
// on libFuzzer.
//
// The contract a target checks: an input either is accepted or ends in a taep::Error (the family
// every reader throws for bad input, include/taep/error.hpp). Anything else is a finding: a
// sanitizer report, a crash, a std exception that is no taep::Error (bad_alloc included; it escapes
// the target and aborts), a hang, or an invariant check below that fails.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "taep/error.hpp"

namespace taep_fuzz {

// A broken invariant of an accepted input: print it and abort, which libFuzzer reports as a
// crash with the input saved, and which fails the replay test.
[[noreturn]] inline void finding(const std::string& what) {
  std::fprintf(stderr, "taep fuzz finding: %s\n", what.c_str());
  std::fflush(stderr);
  std::abort();
}
#define TAEP_FUZZ_CHECK(cond, what) \
  do {                              \
    if (!(cond)) ::taep_fuzz::finding(std::string(#cond ": ") + (what)); \
  } while (0)

// The longest error message a reader may print: values in messages are short excerpts (README.md,
// "Command line"), so a long one is an input echoed whole.
constexpr std::size_t kMaxMessageBytes = 1000;

// True for valid UTF-8 with no control characters: the CLI prints a message as one line of text.
inline bool printable_line(const std::string& s) {
  for (std::size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    std::size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    if (n == 1 && c < 0x20) return false;  // (DEL, 0x7F, is shown as it is, like JSON does)
    std::uint32_t cp = n == 1 ? c : c & (0x7F >> n);
    for (std::size_t k = 1; k < n; ++k) {
      const unsigned char t = static_cast<unsigned char>(s[i + k]);
      if ((t >> 6) != 0x2) return false;
      cp = (cp << 6) | (t & 0x3F);
    }
    const std::uint32_t least[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < least[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += n;
  }
  return true;
}

// Runs f; a taep::Error is an accepted outcome (returns false), anything else escapes. The error's
// message must be one bounded line of valid UTF-8 whatever bytes the input held.
template <class F>
bool accepted(F&& f) {
  try {
    f();
    return true;
  } catch (const taep::Error& e) {
    const std::string m = e.what();
    TAEP_FUZZ_CHECK(m.size() <= kMaxMessageBytes, "an error message of " +
                                                      std::to_string(m.size()) + " bytes: " +
                                                      m.substr(0, 300) + "...");
    TAEP_FUZZ_CHECK(printable_line(m), "an error message that is not one line of UTF-8: " + m);
    return false;
  }
}

// The readers whose only entry takes a path get the input through a file in memory: one memfd per
// process, rewritten for each input and named by its /proc/self/fd path (a regular file with a size,
// as a real input on disk). Falls back to an unlinked temporary file where memfd_create is missing.
class InputAsFile {
 public:
  InputAsFile() {
#ifdef MFD_CLOEXEC
    fd_ = ::memfd_create("taep-fuzz", MFD_CLOEXEC);
#endif
    if (fd_ < 0) {
      std::FILE* f = std::tmpfile();
      if (f) fd_ = ::dup(::fileno(f));
      if (f) std::fclose(f);
    }
    if (fd_ < 0) finding("cannot create the in-memory input file");
    path_ = "/proc/self/fd/" + std::to_string(fd_);
  }
  // Replaces the file's content with bytes; returns its path.
  const std::string& hold(const void* bytes, std::size_t size) {
    if (::ftruncate(fd_, 0) != 0) finding("cannot truncate the in-memory input file");
    const char* p = static_cast<const char*>(bytes);
    for (std::size_t done = 0; done < size;) {
      const ssize_t n = ::pwrite(fd_, p + done, size - done, off_t(done));
      if (n <= 0) finding("cannot write the in-memory input file");
      done += std::size_t(n);
    }
    return path_;
  }

 private:
  int fd_ = -1;
  std::string path_;
};

}  // namespace taep_fuzz

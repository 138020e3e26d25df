// The input-file reader and its open counter (input_file.hpp).
#include "host/io/input_file.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <mutex>
#include <utility>

#include "taep/error.hpp"

namespace taep {
namespace detail {
namespace {

std::mutex g_mutex;
std::map<std::string, std::uint64_t>& opens() {
  static std::map<std::string, std::uint64_t> m;
  return m;
}

void count_open(const std::string& path) {
  std::lock_guard<std::mutex> lock(g_mutex);
  ++opens()[path];  // attempts count: a failed open is still a trip to the file system
  if (const char* log = std::getenv("TAEP_INPUT_LOG"); log && *log)
    if (std::FILE* f = std::fopen(log, "a")) {
      std::fprintf(f, "%s\n", path.c_str());
      std::fclose(f);
    }
}

}  // namespace

std::string byte_count(std::uint64_t bytes) {
  constexpr std::uint64_t kMiB = std::uint64_t(1) << 20, kGiB = std::uint64_t(1) << 30;
  if (bytes >= kGiB && bytes % kGiB == 0) return std::to_string(bytes / kGiB) + " GiB";
  if (bytes >= kMiB && bytes % kMiB == 0) return std::to_string(bytes / kMiB) + " MiB";
  return std::to_string(bytes) + (bytes == 1 ? " byte" : " bytes");
}

InputFile::InputFile(const std::string& path) {
  count_open(path);
  file_ = std::fopen(path.c_str(), "rb");
  if (!file_) {
    error_ = errno;
    return;
  }
  struct stat st;
  if (::fstat(::fileno(file_), &st) != 0) {
    error_ = errno;
  } else if (S_ISDIR(st.st_mode)) {
    directory_ = true;
    error_ = EISDIR;
  } else if (S_ISREG(st.st_mode)) {
    size_ = std::uint64_t(st.st_size);
  }
}

InputFile::~InputFile() {
  if (file_) std::fclose(file_);
}

std::size_t InputFile::read(char* buf, std::size_t n) {
  if (!file_ || error_ != 0 || n == 0) return 0;
  const std::size_t got = std::fread(buf, 1, n, file_);
  if (got < n && std::ferror(file_)) error_ = errno ? errno : EIO;
  return got;
}

std::size_t InputFile::append(std::string& out, std::size_t n) {
  const std::size_t limit = n > std::numeric_limits<std::size_t>::max() - out.size()
                                ? std::numeric_limits<std::size_t>::max()
                                : out.size() + n;
  std::size_t total = 0;
  char buf[1 << 16];
  while (total < n) {
    const std::size_t want = std::min(sizeof buf, n - total);
    const std::size_t got = read(buf, want);
    if (out.size() + got > out.capacity()) {
      // std::string's own growth may double past the bound; a fresh string's reserve is exact.
      std::string grown;
      grown.reserve(std::min(std::max(2 * out.capacity(), out.size() + got), limit));
      grown.append(out);
      out.swap(grown);
    }
    out.append(buf, got);
    total += got;
    if (got < want) break;  // the end of the file, or an error
  }
  return total;
}

InputRead read_input(const std::string& path, std::uint64_t max_bytes) {
  InputFile f(path);
  InputRead r;
  r.opened = f.opened();
  if (!f.opened() || f.error() != 0) {
    r.error = f.error();
    return r;
  }
  const auto too_large = [&r] {
    r.too_large = true;
    r.error = EFBIG;
    r.bytes = std::string();
    return r;
  };
  if (f.size() && *f.size() > max_bytes) return too_large();
  if (f.size()) r.bytes.reserve(std::size_t(*f.size()));
  // One byte past the bound tells a file at the limit from one beyond it.
  const std::size_t n = max_bytes >= std::numeric_limits<std::size_t>::max()
                            ? std::numeric_limits<std::size_t>::max()
                            : std::size_t(max_bytes) + 1;
  f.append(r.bytes, n);
  if (f.error() != 0) {
    r.error = f.error();
    r.bytes = std::string();
    return r;
  }
  if (r.bytes.size() > max_bytes) return too_large();
  r.ok = true;
  return r;
}

std::string input_failure(const InputRead& r, std::uint64_t max_bytes, const std::string& kind) {
  if (r.too_large) return "it holds more than " + byte_count(max_bytes) + ", the limit for " + kind;
  return std::strerror(r.error);
}

std::string read_input_file(const std::string& path, const std::string& field) {
  InputRead r = read_input(path, kMaxConfigBytes);
  if (!r.ok)
    throw ConfigError(
        field, "cannot read '" + path + "': " + input_failure(r, kMaxConfigBytes, "a config file"));
  return std::move(r.bytes);
}

std::uint64_t input_file_opens(const std::string& path) {
  std::lock_guard<std::mutex> lock(g_mutex);
  const auto it = opens().find(path);
  return it == opens().end() ? 0 : it->second;
}

void reset_input_file_opens() {
  std::lock_guard<std::mutex> lock(g_mutex);
  opens().clear();
}

}  // namespace detail
}  // namespace taep

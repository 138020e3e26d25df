// The input-file reader and its open counter (input_file.hpp).
#include "host/io/input_file.hpp"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
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

struct CloseFile {
  void operator()(std::FILE* f) const { std::fclose(f); }
};

}  // namespace

InputRead read_input(const std::string& path) {
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    ++opens()[path];  // attempts count: a failed open is still a trip to the file system
    if (const char* log = std::getenv("TAEP_INPUT_LOG"); log && *log)
      if (std::unique_ptr<std::FILE, CloseFile> f{std::fopen(log, "a")})
        std::fprintf(f.get(), "%s\n", path.c_str());
  }
  InputRead r;
  std::unique_ptr<std::FILE, CloseFile> f(std::fopen(path.c_str(), "rb"));
  if (!f) {
    r.error = errno;
    return r;
  }
  r.opened = true;
  char buf[1 << 16];
  while (const std::size_t n = std::fread(buf, 1, sizeof buf, f.get())) r.bytes.append(buf, n);
  if (std::ferror(f.get())) {
    r.error = errno;
    r.bytes.clear();
    return r;
  }
  r.ok = true;
  return r;
}

std::string read_input_file(const std::string& path, const std::string& field) {
  InputRead r = read_input(path);
  if (!r.ok) throw ConfigError(field, "cannot read '" + path + "': " + std::strerror(r.error));
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

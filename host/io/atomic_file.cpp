// Output files written all at once (atomic_file.hpp).
#include "host/io/atomic_file.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <utility>
#include <vector>

#include "taep/error.hpp"

namespace taep {
namespace detail {

namespace {

// Named temp files that exist right now, for remove_pending_temps (fixed buffers: a signal handler
// may not allocate or lock).
constexpr int kSlots = 16;
char g_pending[kSlots][PATH_MAX];
std::mutex g_mutex;  // guards slot choice and g_targets

// The files open AtomicFiles will write (directory resolved, then the name) and the field of each.
std::vector<std::pair<std::string, std::string>> g_targets;

std::atomic<unsigned> g_counter{0};

constexpr const char kTempPrefix[] = ".taep-";
constexpr const char kTempSuffix[] = ".tmp";

std::string temp_name() {
  return kTempPrefix + std::to_string(::getpid()) + "-" + std::to_string(g_counter++) + kTempSuffix;
}

// The pid in a name of the form .taep-<pid>-<n>.tmp, or 0.
pid_t temp_owner(const char* name) {
  const std::size_t n = std::strlen(name), pre = sizeof kTempPrefix - 1, suf = sizeof kTempSuffix - 1;
  if (n <= pre + suf || std::strncmp(name, kTempPrefix, pre) != 0 ||
      std::strcmp(name + n - suf, kTempSuffix) != 0)
    return 0;
  long pid = 0;
  const char* p = name + pre;
  for (; *p >= '0' && *p <= '9' && pid < (1L << 30); ++p) pid = pid * 10 + (*p - '0');
  if (*p != '-' || p == name + pre) return 0;
  for (++p; *p >= '0' && *p <= '9'; ++p) {
  }
  return p == name + n - suf ? pid_t(pid) : 0;
}

// Removes the temp files of taep processes that no longer exist (killed before they could).
void sweep_stale_temps(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) return;
  while (const dirent* e = ::readdir(d)) {
    const pid_t pid = temp_owner(e->d_name);
    if (pid > 0 && pid != ::getpid() && ::kill(pid, 0) != 0 && errno == ESRCH)
      ::unlinkat(::dirfd(d), e->d_name, 0);
  }
  ::closedir(d);
}

std::string dir_of(const std::string& path) {
  const std::size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

std::string name_of(const std::string& path) {
  const std::size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// Follows symbolic links to the file they end at (which need not exist). Sets `proc` when a link
// leads into /proc (/dev/stdout and friends), whose targets are descriptors, not names to replace.
// Returns false on a loop.
bool follow_links(std::string& path, bool& proc) {
  for (int hops = 0; hops < 40; ++hops) {
    struct stat st;
    if (::lstat(path.c_str(), &st) != 0 || !S_ISLNK(st.st_mode)) return true;
    std::vector<char> buf(std::size_t(st.st_size > 0 ? st.st_size : PATH_MAX) + 1);
    const ssize_t n = ::readlink(path.c_str(), buf.data(), buf.size());
    if (n < 0 || std::size_t(n) >= buf.size()) return true;
    std::string to(buf.data(), std::size_t(n));
    path = to[0] == '/' ? to : dir_of(path) + "/" + to;
    if (path.compare(0, 6, "/proc/") == 0) proc = true;
  }
  return false;
}

bool write_all(int fd, const std::string& bytes) {
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += std::size_t(n);
  }
  return true;
}

int take_slot(const std::string& temp) {
  std::lock_guard<std::mutex> lock(g_mutex);
  for (int i = 0; i < kSlots; ++i)
    if (!g_pending[i][0] && temp.size() < sizeof g_pending[i]) {
      std::memcpy(g_pending[i], temp.c_str(), temp.size() + 1);
      return i;
    }
  return -1;
}

void free_slot(int& slot) {
  if (slot >= 0) g_pending[slot][0] = '\0';
  slot = -1;
}

}  // namespace

void remove_pending_temps() {
  for (auto& p : g_pending)
    if (p[0]) ::unlink(p);
}

void AtomicFile::fail(const std::string& message) const {
  if (field_.empty()) throw Error(path_ + ": " + message);
  throw ConfigError(field_, message);
}

AtomicFile::AtomicFile(std::string path, std::string field)
    : path_(std::move(path)), field_(std::move(field)), target_(path_) {
  if (path_.empty()) fail("must name a file (got an empty path)");
  const std::string shown = "'" + path_ + "'";
  struct stat st;
  // stat follows links as the kernel does, so /dev/stdout onto a pipe is seen as the pipe.
  if (::stat(path_.c_str(), &st) == 0) {
    if (S_ISCHR(st.st_mode) || S_ISFIFO(st.st_mode)) {
      atomic_ = false;
      if (::access(path_.c_str(), W_OK) != 0) fail("cannot write " + shown + ": " + std::strerror(errno));
      return;
    }
    if (S_ISDIR(st.st_mode)) fail(shown + " is a directory");
    if (!S_ISREG(st.st_mode)) fail(shown + " is not a regular file, a character device or a FIFO");
    keep_mode_ = true;
    mode_ = unsigned(st.st_mode & 07777);
  } else if (errno != ENOENT) {
    fail("cannot use " + shown + ": " + std::strerror(errno));
  }
  bool proc = false;
  if (!follow_links(target_, proc)) fail("cannot use " + shown + ": too many levels of symbolic links");
  if (proc) {  // a descriptor of this process (/dev/stdout onto a file): write through it
    atomic_ = false;
    target_ = path_;
    return;
  }
  dir_ = dir_of(target_);
  const std::string name = name_of(target_);
  struct stat dst;
  if (::stat(dir_.c_str(), &dst) != 0 || !S_ISDIR(dst.st_mode))
    fail("cannot create " + shown + ": directory '" + dir_ + "' does not exist");
  if (name.empty() || name == "." || name == "..") fail(shown + " names a directory, not a file");
  const long name_max = ::pathconf(dir_.c_str(), _PC_NAME_MAX);
  if (name_max > 0 && long(name.size()) > name_max)
    fail("cannot create " + shown + ": the file name has " + std::to_string(name.size()) +
         " bytes, more than the " + std::to_string(name_max) + " its file system allows");
  if (target_.size() + 40 >= PATH_MAX) fail("cannot create " + shown + ": the path is too long");

  char real_dir[PATH_MAX];
  const std::string id = (::realpath(dir_.c_str(), real_dir) ? std::string(real_dir) : dir_) + "/" + name;
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    for (const auto& [other, other_field] : g_targets)
      if (other == id)
        fail(shown + " is the same file as " + (other_field.empty() ? "another output" : other_field) +
             "; give each output its own file");
    g_targets.emplace_back(id, field_);
    id_ = id;
  }
  sweep_stale_temps(dir_);
#ifdef O_TMPFILE
  fd_ = ::open(dir_.c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0666);
  if (fd_ >= 0 || (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL && errno != ENOENT)) {
    if (fd_ < 0) {
      const std::string why = std::strerror(errno);
      release();
      fail("cannot create " + shown + ": " + why);
    }
    return;
  }
#endif
  // No O_TMPFILE here: a named temp file from the start, removed on failure or signal.
  named_ = true;
  temp_ = dir_ + "/" + temp_name();
  slot_ = take_slot(temp_);
  fd_ = ::open(temp_.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0666);
  if (fd_ < 0 || slot_ < 0) {
    const std::string why = slot_ < 0 ? "too many output files open at once" : std::strerror(errno);
    release();
    fail("cannot create " + shown + ": " + why);
  }
}

AtomicFile::~AtomicFile() { release(); }

void AtomicFile::release() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  if (named_ && !committed_) ::unlink(temp_.c_str());
  named_ = false;
  free_slot(slot_);
  if (!id_.empty()) {
    std::lock_guard<std::mutex> lock(g_mutex);
    for (auto it = g_targets.begin(); it != g_targets.end(); ++it)
      if (it->first == id_) {
        g_targets.erase(it);
        break;
      }
    id_.clear();
  }
}

void AtomicFile::commit(const std::string& bytes) {
  if (committed_) throw Error(path_ + ": written twice");
  const auto failed = [&](const std::string& what) {
    const std::string message = what + ": " + std::strerror(errno);
    throw Error((field_.empty() ? path_ : field_) + ": " + message);
  };
  if (!atomic_) {
    const int fd = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) failed("cannot open '" + path_ + "'");
    const bool ok = write_all(fd, bytes);
    const int err = errno;
    ::close(fd);
    errno = err;
    if (!ok) failed("cannot write '" + path_ + "'");
    committed_ = true;
    return;
  }
  if (!write_all(fd_, bytes) || ::fsync(fd_) != 0) failed("cannot write '" + path_ + "'");
  if (keep_mode_ && ::fchmod(fd_, mode_) != 0) failed("cannot set the mode of '" + path_ + "'");
  if (!named_) {  // give the unnamed file a name, just long enough to rename it
    temp_ = dir_ + "/" + temp_name();
    slot_ = take_slot(temp_);
    const std::string fd_path = "/proc/self/fd/" + std::to_string(fd_);
    if (::linkat(AT_FDCWD, fd_path.c_str(), AT_FDCWD, temp_.c_str(), AT_SYMLINK_FOLLOW) != 0 &&
        ::linkat(fd_, "", AT_FDCWD, temp_.c_str(), AT_EMPTY_PATH) != 0)
      failed("cannot create '" + temp_ + "'");
    named_ = true;
  }
  if (::rename(temp_.c_str(), target_.c_str()) != 0)
    failed("cannot rename '" + temp_ + "' to '" + target_ + "'");
  committed_ = true;
  free_slot(slot_);
  ::close(fd_);
  fd_ = -1;
  // The rename itself survives a crash only once the directory is on disk.
  const int dir_fd = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    ::fsync(dir_fd);
    ::close(dir_fd);
  }
}

void write_file_atomically(const std::string& path, const std::string& bytes, const std::string& field) {
  AtomicFile(path, field).commit(bytes);
}

}  // namespace detail
}  // namespace taep

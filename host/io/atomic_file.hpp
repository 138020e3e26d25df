#pragma once
// The one writer of output files (results, samples, weights, tables). A reader of the target never
// sees a partial file, a failed or interrupted command leaves the target as it was, and nothing of
// taep's own stays behind (docs/architecture.md, "Output files"). What it does by target:
// - a regular file or a name that does not exist yet: the bytes go to an unnamed temporary file in
//   the target's directory (O_TMPFILE), given a short name `.taep-<pid>-<n>.tmp` only at commit and
//   renamed over the target at once; where the file system has no O_TMPFILE the named temp file is
//   made up front. A replaced file keeps its permission bits. Named temps of dead taep processes
//   (SIGKILL) in the directory are removed when the next AtomicFile is made there.
// - a symbolic link: the file it points to (followed to the end) is replaced; the link stays.
// - a character device or a FIFO (/dev/null, /dev/stdout, a pipe): written through at commit, not
//   atomically, since such a target cannot be replaced.
// - anything else (a directory, a block device, a socket), a missing directory, a name longer than
//   the file system allows, or the final file of another AtomicFile still open: refused up front.
#include <cstdio>
#include <string>

namespace taep {
namespace detail {

class AtomicFile {
 public:
  // Checks `path` and creates the temporary file, so an unusable target fails before a long run.
  // Errors are ConfigError(field, ...) (the flag or config field that named the file), or plain
  // Errors starting with the path when `field` is empty (library callers).
  AtomicFile(std::string path, std::string field);
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  // Removes the temporary file unless committed.
  ~AtomicFile();
  // Writes `bytes` (fsync'd) and puts them in place. At most once.
  void commit(const std::string& bytes);
  // The path as given, and the file that commit() writes (symbolic links resolved).
  const std::string& path() const { return path_; }
  const std::string& target() const { return target_; }
  // False for write-through targets (character devices, FIFOs).
  bool atomic() const { return atomic_; }

 private:
  [[noreturn]] void fail(const std::string& message) const;
  void release();  // what the destructor does; also before a constructor throws
  std::string path_, field_, target_, dir_, temp_, id_;
  int fd_ = -1;
  bool atomic_ = true, named_ = false, committed_ = false, keep_mode_ = false;
  unsigned mode_ = 0;
  int slot_ = -1;
};

// Removes the named temp files of AtomicFiles not yet committed. Async-signal-safe: the CLI's
// SIGINT/SIGTERM/SIGHUP handler calls it before re-raising (the library installs no handlers).
void remove_pending_temps();

// AtomicFile(path, field).commit(bytes).
void write_file_atomically(const std::string& path, const std::string& bytes,
                           const std::string& field = "");

}  // namespace detail
}  // namespace taep

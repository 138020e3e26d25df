#pragma once
// Checkpoint files (docs/distributed.md, "Checkpoint and resume"): what a run, sample or dft has
// folded so far, written by rank 0 so that a resumed run ends bitwise equal to one that never
// stopped. A checkpoint names the command and carries the run's identity (the validated config
// without the fields that cannot change a result, plus the command's own parameters) and a hash of
// it; resuming under another identity is refused naming the first field that differs.
//
// Layout: "TAEPCKPT", u32 format version, u32 0, u64 header length, the header (JSON: kind,
// identity, identity_hash, taep version, and each section's name and byte count), the sections'
// bytes in that order, and the FNV-1a 64 hash of everything before it.
#include <cstdint>
#include <map>
#include <string>

#include "taep/config.hpp"
#include "taep/error.hpp"
#include "taep/train.hpp"

namespace taep {
namespace detail {

struct Checkpoint {
  std::string kind;      // "run", "sample", "dft"
  std::string identity;  // run_identity()
  std::map<std::string, std::string> sections;
};

// The identity of a run on `config` by `backend` (its name: CPU and CUDA agree to float tolerance,
// not bitwise) with the command's own parameters (`extra`, a JSON object's text: "{}" or
// {"count": 1000}): canonical JSON text.
std::string run_identity(const Config& config, const std::string& backend,
                         const std::string& extra = "{}");
// The same for `taep train` (its config without run.threads).
std::string train_identity(const TrainConfig& config, const std::string& backend);

// What a run stopped on request throws: "stopped after <done> of <total> <unit>" and where its
// state is (`checkpoint`, empty when none was asked for).
Interrupted stopped(std::uint64_t done, std::uint64_t total, const std::string& unit,
                    const std::string& checkpoint);

// Puts `c` at `path` atomically (temp file + rename); `field` names the flag in errors.
void write_checkpoint(const std::string& path, const Checkpoint& c, const std::string& field);
// Reads one back: ConfigError(field, ...) when it cannot be read or is not a whole checkpoint.
Checkpoint read_checkpoint(const std::string& path, const std::string& field);
// ConfigError when `saved` is not a checkpoint of this kind and identity: the field is the first
// config field (or command parameter) that differs, the message names the file and both values.
void check_resumable(const Checkpoint& saved, const std::string& kind, const std::string& identity,
                     const std::string& path);

// FNV-1a, 64 bits.
std::uint64_t fnv1a64(const std::string& bytes, std::uint64_t h = 0xcbf29ce484222325ull);

}  // namespace detail
}  // namespace taep

// Checkpoint files (checkpoint.hpp).
#include "host/engine/checkpoint.hpp"

#include <cstring>

#include "host/engine/byte_stream.hpp"
#include "host/io/atomic_file.hpp"
#include "host/io/input_file.hpp"
#include "host/io/json_fields.hpp"
#include "taep/error.hpp"
#include "taep/version.hpp"

namespace taep {
namespace detail {
namespace {

using json = fields::json;

constexpr char kMagic[8] = {'T', 'A', 'E', 'P', 'C', 'K', 'P', 'T'};
constexpr std::uint32_t kFormat = 1;
// A checkpoint holds the per-path arrays of --per-path and all of sample's draws so far: bounded
// only by what a run may keep in memory.
constexpr std::uint64_t kMaxCheckpointBytes = std::uint64_t(1) << 40;

std::string hex(std::uint64_t v) {
  char s[17];
  std::snprintf(s, sizeof s, "%016llx", static_cast<unsigned long long>(v));
  return s;
}

// The first leaf where a and b differ, as a dotted path ("" when equal), and both values.
bool first_difference(const json& a, const json& b, const std::string& at, std::string& where,
                      std::string& va, std::string& vb) {
  if (a.is_object() && b.is_object()) {
    json keys = json::object();
    for (auto it = a.begin(); it != a.end(); ++it) keys[it.key()] = true;
    for (auto it = b.begin(); it != b.end(); ++it) keys[it.key()] = true;
    for (auto it = keys.begin(); it != keys.end(); ++it) {
      const std::string k = it.key(), path = at.empty() ? k : at + "." + k;
      const json na = a.contains(k) ? a[k] : json(), nb = b.contains(k) ? b[k] : json();
      if (first_difference(na, nb, path, where, va, vb)) return true;
    }
    return false;
  }
  if (a == b) return false;
  where = at;
  va = a.is_null() ? "absent" : fields::show(a);
  vb = b.is_null() ? "absent" : fields::show(b);
  return true;
}

}  // namespace

std::uint64_t fnv1a64(const std::string& bytes, std::uint64_t h) {
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

namespace {
// A config's JSON without the `run` fields that change how it is carried out, never what it
// computes, and with the command's own parameters under "command".
std::string identity(const std::string& config_json, std::initializer_list<const char*> drop,
                     const std::string& backend, const std::string& extra) {
  json j = json::parse(config_json);
  for (const char* k : drop) j["run"].erase(k);
  json e = json::parse(extra);
  for (auto it = e.begin(); it != e.end(); ++it) j["command"][it.key()] = it.value();
  j["command"]["backend"] = backend;
  return j.dump();
}
}  // namespace

std::string run_identity(const Config& config, const std::string& backend,
                         const std::string& extra) {
  return identity(config_to_json(config, -1), {"threads", "devices", "chunk_paths", "allow_nonfinite"},
                  backend, extra);
}

std::string train_identity(const TrainConfig& config, const std::string& backend) {
  return identity(train_config_to_json(config, -1), {"threads"}, backend, "{}");
}

Interrupted stopped(std::uint64_t done, std::uint64_t total, const std::string& unit,
                    const std::string& checkpoint) {
  return Interrupted("stopped after " + std::to_string(done) + " of " + std::to_string(total) +
                     " " + unit +
                     (checkpoint.empty() ? std::string(" (no checkpoint: --checkpoint was not given)")
                                         : "; checkpoint '" + checkpoint +
                                               "' holds them (continue with --resume " +
                                               checkpoint + ")"));
}

void write_checkpoint(const std::string& path, const Checkpoint& c, const std::string& field) {
  json header = json::object();
  header["kind"] = c.kind;
  header["identity"] = json::parse(c.identity);
  header["identity_hash"] = hex(fnv1a64(c.identity));
  header["taep_version"] = kVersion;
  header["sections"] = json::array();
  for (const auto& s : c.sections)
    header["sections"].push_back({{"name", s.first}, {"bytes", s.second.size()}});
  const std::string head = header.dump();
  ByteWriter w;
  std::string bytes(kMagic, sizeof kMagic);
  w.put(kFormat);
  w.put(std::uint32_t(0));
  w.put(std::uint64_t(head.size()));
  bytes += w.take();
  bytes += head;
  for (const auto& s : c.sections) bytes += s.second;
  ByteWriter tail;
  tail.put(fnv1a64(bytes));
  bytes += tail.take();
  write_file_atomically(path, bytes, field);
}

Checkpoint read_checkpoint(const std::string& path, const std::string& field) {
  const InputRead in = read_input(path, kMaxCheckpointBytes);
  if (!in.ok)
    throw ConfigError(field, "cannot read '" + path + "': " +
                                 input_failure(in, kMaxCheckpointBytes, "a checkpoint"));
  const std::string& b = in.bytes;
  const auto bad = [&](const std::string& why) {
    return ConfigError(field, "'" + path + "' is not a taep checkpoint: " + why);
  };
  constexpr std::size_t kFixed = sizeof kMagic + 4 + 4 + 8;
  if (b.size() < kFixed + 8 || std::memcmp(b.data(), kMagic, sizeof kMagic) != 0)
    throw bad("it does not start with TAEPCKPT");
  const std::string fixed_bytes = b.substr(sizeof kMagic, 16), tail_bytes = b.substr(b.size() - 8);
  ByteReader fixed(fixed_bytes, path);
  if (fixed.get<std::uint32_t>() != kFormat) throw bad("a format version this build does not read");
  fixed.get<std::uint32_t>();
  const std::uint64_t head_len = fixed.get<std::uint64_t>();
  ByteReader tail(tail_bytes, path);
  if (tail.get<std::uint64_t>() != fnv1a64(b.substr(0, b.size() - 8)))
    throw bad("its checksum does not match (the file is truncated or damaged)");
  if (head_len > b.size() - kFixed - 8) throw bad("its header is longer than the file");
  Checkpoint c;
  std::size_t pos = kFixed + std::size_t(head_len);
  try {
    const json header = json::parse(b.substr(kFixed, std::size_t(head_len)));
    c.kind = header.at("kind").get<std::string>();
    c.identity = header.at("identity").dump();
    for (const json& s : header.at("sections")) {
      const std::uint64_t n = s.at("bytes").get<std::uint64_t>();
      if (n > b.size() - 8 - pos) throw bad("a section runs past the end of the file");
      c.sections[s.at("name").get<std::string>()] = b.substr(pos, std::size_t(n));
      pos += std::size_t(n);
    }
  } catch (const json::exception& e) {
    throw bad(std::string("its header cannot be read (") + e.what() + ")");
  }
  if (pos != b.size() - 8) throw bad("bytes after its last section");
  return c;
}

void check_resumable(const Checkpoint& saved, const std::string& kind, const std::string& identity,
                     const std::string& path) {
  if (saved.kind != kind)
    throw ConfigError("--resume", "'" + path + "' is a checkpoint of taep " + saved.kind +
                                      ", not of taep " + kind);
  std::string where, va, vb;
  if (!first_difference(json::parse(saved.identity), json::parse(identity), "", where, va, vb))
    return;
  throw ConfigError(where, "differs from the checkpoint '" + path + "' being resumed (" + va +
                               " there, " + vb + " here); resume with the config it was written for");
}

}  // namespace detail
}  // namespace taep

// Safetensors reader and writer (mlp.hpp, host/io/safetensors.hpp).
//
// Layout (huggingface/safetensors): a little-endian u64 N, N bytes of JSON header, then the data
// buffer that every tensor's data_offsets index. The input is untrusted: each size and offset is
// checked with overflow-free arithmetic before a byte of data is read, and each failure is one
// ConfigError naming the tensor or key.
#include "host/io/safetensors.hpp"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "host/io/input_file.hpp"
#include "host/io/json_fields.hpp"
#include "taep/error.hpp"

namespace taep {
namespace {

using nlohmann::json;

// The reference implementation's limit; a real header is a few kB.
constexpr std::uint64_t kMaxHeaderBytes = 100'000'000;
// A valid header nests three deep (header object, tensor entry, shape array). Rejecting deeper
// nesting early keeps nlohmann's recursive functions (dump, used in messages) off hostile input.
constexpr int kMaxNesting = 8;
constexpr const char* kMetadataKey = "__metadata__";
constexpr const char* kEntryKeys[] = {"dtype", "shape", "data_offsets"};

using fields::fail;
using fields::join;
using fields::shorten;

// A JSON value for a message, one line; names and values from a file get more room than a config's.
std::string show(const json& j) { return fields::show(j, 80); }

std::string tensor(const std::string& name) { return "tensor " + detail::quote_for_message(name); }

// ---- decoding -----------------------------------------------------------------------------------

std::uint64_t load_le(const std::uint8_t* p, int bytes) {
  std::uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

float float_from_bits(std::uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

float decode_f32(const std::uint8_t* p) { return float_from_bits(std::uint32_t(load_le(p, 4))); }

// BF16 is the upper half of an F32, so widening is a shift.
float decode_bf16(const std::uint8_t* p) {
  return float_from_bits(std::uint32_t(load_le(p, 2)) << 16);
}

// IEEE binary16: sign, 5 exponent bits (bias 15), 10 mantissa bits. Exponent 0 holds zero and the
// subnormals (mantissa * 2^-24), 31 holds inf and nan. Every F16 value is exact in F32.
float decode_f16(const std::uint8_t* p) {
  const auto h = unsigned(load_le(p, 2));
  const unsigned exponent = (h >> 10) & 0x1f, mantissa = h & 0x3ff;
  float magnitude;
  if (exponent == 0)
    magnitude = std::ldexp(float(mantissa), -24);
  else if (exponent == 31)
    magnitude =
        mantissa ? std::numeric_limits<float>::quiet_NaN() : std::numeric_limits<float>::infinity();
  else
    magnitude = std::ldexp(float(mantissa | 0x400), int(exponent) - 25);
  return (h & 0x8000) ? -magnitude : magnitude;
}

struct Dtype {
  const char* name;
  std::uint64_t bytes;
  float (*decode)(const std::uint8_t*);
};
constexpr Dtype kDtypes[] = {
    {"F32", 4, decode_f32}, {"F16", 2, decode_f16}, {"BF16", 2, decode_bf16}};

// ---- header -------------------------------------------------------------------------------------

// nlohmann keeps the last of duplicate keys silently, but its parser callback sees every key, so
// this tracks the keys of each open object. Errors are thrown from the callback, which the parser
// lets propagate.
json parse_header(const std::uint8_t* p, std::uint64_t n, const std::string& what) {
  struct OpenObject {
    std::string name;  // the key it is the value of; empty for the header itself
    std::set<std::string> keys;
  };
  std::vector<OpenObject> open;
  std::string last_key;
  auto callback = [&](int depth, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
      case json::parse_event_t::array_start:
        if (depth >= kMaxNesting)
          fail(what, "header must nest at most " + std::to_string(kMaxNesting) +
                         " levels deep (a safetensors header nests 3)");
        if (event == json::parse_event_t::object_start) open.push_back({last_key, {}});
        break;
      case json::parse_event_t::key:
        last_key = parsed.get<std::string>();
        if (!open.back().keys.insert(last_key).second)
          fail(what,
               "key " + detail::quote_for_message(last_key) + " appears twice in " +
                   (open.size() == 1 ? "the header" : detail::quote_for_message(open.back().name)));
        break;
      case json::parse_event_t::object_end:
        open.pop_back();
        break;
      default:
        break;
    }
    return true;
  };
  try {
    return json::parse(p, p + n, callback);
  } catch (const json::exception& e) {
    // A syntax error (parse_error) or a number too large for a double (out_of_range); e.what() is
    // "[json.exception.parse_error.101] parse error at line 1, column 9: ..."
    std::string reason = e.what();
    const std::size_t prefix_end = reason.find("] ");
    if (prefix_end != std::string::npos) reason.erase(0, prefix_end + 2);
    fail(what, "header must be valid JSON (" + shorten(reason, 200) + ")");
  }
}

void read_metadata(const json& j, const std::string& what,
                   std::map<std::string, std::string>& out) {
  if (!j.is_object())
    fail(what, std::string(kMetadataKey) + " must be an object of strings (got " + show(j) + ")");
  for (const auto& item : j.items()) {
    if (!item.value().is_string())
      fail(what, std::string(kMetadataKey) + " value of " + detail::quote_for_message(item.key()) +
                     " must be a string (got " + show(item.value()) + ")");
    out[item.key()] = item.value().get<std::string>();
  }
}

// Shapes and offsets are JSON integers; an integral float (2.0) is not accepted.
std::optional<std::uint64_t> as_uint64(const json& j) { return fields::as_uint64(j, false); }

// Where a tensor's bytes lie in the data buffer.
struct Span {
  std::uint64_t begin, end;
  const std::string* name;
};

const Dtype& read_dtype(const json& j, const std::string& name, const std::string& what) {
  if (j.is_string())
    for (const Dtype& d : kDtypes)
      if (j.get<std::string>() == d.name) return d;
  fail(what,
       tensor(name) + " dtype must be one of " + join(kDtypes) + " (got " + show(j) + ")");
}

// The shape, and its element count in *count.
std::vector<std::int64_t> read_shape(const json& j, const std::string& name,
                                     const std::string& what, std::uint64_t* count) {
  std::vector<std::int64_t> shape;
  *count = 1;
  bool overflow = false;
  if (j.is_array())
    for (const json& dim : j) {
      const auto v = as_uint64(dim);
      if (!v || *v > std::uint64_t(std::numeric_limits<std::int64_t>::max())) break;
      shape.push_back(std::int64_t(*v));
      overflow = overflow || (*v != 0 && *count > std::numeric_limits<std::uint64_t>::max() / *v);
      *count *= *v;
    }
  if (!j.is_array() || shape.size() != j.size())
    fail(what, tensor(name) + " shape must be an array of integers in [0, 2^63 - 1] (got " +
                   show(j) + ")");
  if (overflow)
    fail(what, tensor(name) + " shape must have fewer than 2^64 elements (got " + show(j) + ")");
  return shape;
}

Span read_offsets(const json& j, const std::string& name, std::uint64_t data_size,
                  const std::string& what) {
  if (j.is_array() && j.size() == 2) {
    const auto begin = as_uint64(j[0]), end = as_uint64(j[1]);
    if (begin && end && *begin <= *end && *end <= data_size) return {*begin, *end, nullptr};
  }
  fail(what, tensor(name) + " data_offsets must be [begin, end] with 0 <= begin <= end <= " +
                 std::to_string(data_size) + ", the data buffer's size (got " + show(j) + ")");
}

SafetensorsTensor read_tensor(const std::string& name, const json& entry, const std::uint8_t* data,
                              std::uint64_t data_size, const std::string& what, Span* span) {
  if (!entry.is_object())
    fail(what, tensor(name) + " must be an object with keys " + join(kEntryKeys) + " (got " +
                   show(entry) + ")");
  for (const auto& item : entry.items())
    if (std::find(std::begin(kEntryKeys), std::end(kEntryKeys), item.key()) == std::end(kEntryKeys))
      fail(what, tensor(name) + " has unknown key " + detail::quote_for_message(item.key()) +
                     "; allowed: " + join(kEntryKeys));
  for (const char* key : kEntryKeys)
    if (!entry.contains(key)) fail(what, tensor(name) + " is missing key \"" + key + "\"");

  const Dtype& dtype = read_dtype(entry["dtype"], name, what);
  SafetensorsTensor t;
  t.dtype = dtype.name;
  std::uint64_t count;
  t.shape = read_shape(entry["shape"], name, what, &count);
  *span = read_offsets(entry["data_offsets"], name, data_size, what);
  // count * dtype.bytes may overflow, so compare by division first; then the product fits in bytes.
  const std::uint64_t bytes = span->end - span->begin;
  if (count > bytes / dtype.bytes || count * dtype.bytes != bytes)
    fail(what, tensor(name) + " data_offsets must span " + std::to_string(count) + " x " +
                   std::to_string(dtype.bytes) + " bytes for shape " + show(entry["shape"]) +
                   " in " + dtype.name + " (got " + show(entry["data_offsets"]) + ")");

  t.data.resize(count);  // count <= data_size: bounded by the input
  const std::uint8_t* p = data + span->begin;
  for (std::uint64_t i = 0; i < count; ++i) t.data[i] = dtype.decode(p + i * dtype.bytes);
  return t;
}

void check_no_overlap(std::vector<Span> spans, const std::string& what) {
  std::sort(spans.begin(), spans.end(), [](const Span& a, const Span& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  const Span* reach = nullptr;  // the span reaching furthest so far
  for (const Span& s : spans) {
    if (s.begin == s.end) continue;  // an empty tensor occupies no bytes
    if (reach && s.begin < reach->end)
      fail(what, "tensors " + detail::quote_for_message(*reach->name) + " and " +
                     detail::quote_for_message(*s.name) +
                     " must not overlap in the data buffer (got [" + std::to_string(reach->begin) +
                     ", " + std::to_string(reach->end) + "] and [" + std::to_string(s.begin) +
                     ", " + std::to_string(s.end) + "])");
    if (!reach || s.end > reach->end) reach = &s;
  }
}

// ---- files --------------------------------------------------------------------------------------

struct CloseFile {
  void operator()(std::FILE* f) const { std::fclose(f); }
};
using FilePtr = std::unique_ptr<std::FILE, CloseFile>;

void append_le(std::string& out, std::uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out += char((v >> (8 * i)) & 0xff);
}

std::string encode(const SafetensorsFile& file) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!file.metadata.empty()) header[kMetadataKey] = file.metadata;
  std::string data;
  for (const auto& [name, t] : file.tensors) {
    std::uint64_t count = 1;
    for (std::int64_t n : t.shape) count *= std::uint64_t(n);
    TAEP_EXPECTS(count == t.data.size(), "tensor " + name + ": shape does not match its data");
    const std::uint64_t begin = data.size();
    for (float x : t.data) {
      std::uint32_t bits;
      std::memcpy(&bits, &x, sizeof bits);
      append_le(data, bits, 4);
    }
    header[name] = {{"dtype", "F32"}, {"shape", t.shape}, {"data_offsets", {begin, data.size()}}};
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  std::string out;
  append_le(out, text.size(), 8);
  return out + text + data;
}

}  // namespace

namespace detail {

std::string quote_for_message(const std::string& s) { return show(json(s)); }

void write_safetensors(const SafetensorsFile& file, const std::string& path) {
  const std::string bytes = encode(file);
  const std::string temp = path + ".tmp." + std::to_string(::getpid());
  FilePtr f(std::fopen(temp.c_str(), "wb"));
  if (!f) fail(path, "cannot create '" + temp + "': " + std::strerror(errno));
  const bool written = std::fwrite(bytes.data(), 1, bytes.size(), f.get()) == bytes.size() &&
                       std::fflush(f.get()) == 0 && ::fsync(::fileno(f.get())) == 0;
  const int closed = std::fclose(f.release());
  if (!written || closed != 0 || std::rename(temp.c_str(), path.c_str()) != 0) {
    const std::string why = std::strerror(errno);
    std::remove(temp.c_str());
    throw Error(path + ": cannot write (" + why + ")");
  }
}

}  // namespace detail

SafetensorsFile parse_safetensors(const std::uint8_t* bytes, std::size_t size,
                                  const std::string& what) {
  if (size < 8)
    fail(what, "must be a safetensors file, starting with an 8-byte header length (got " +
                   std::to_string(size) + " bytes)");
  const std::uint64_t n = load_le(bytes, 8), rest = size - 8;
  if (n > kMaxHeaderBytes)
    fail(what, "header length must be at most " + std::to_string(kMaxHeaderBytes) + " bytes (got " +
                   std::to_string(n) + ")");
  if (n > rest)
    fail(what, "header length must be at most " + std::to_string(rest) +
                   ", the number of bytes after it (got " + std::to_string(n) + ")");
  const json header = parse_header(bytes + 8, n, what);
  if (!header.is_object()) fail(what, "header must be a JSON object (got " + show(header) + ")");

  const std::uint8_t* data = bytes + 8 + n;
  const std::uint64_t data_size = rest - n;
  SafetensorsFile file;
  std::vector<Span> spans;
  for (const auto& item : header.items()) {
    if (item.key() == kMetadataKey) {
      read_metadata(item.value(), what, file.metadata);
      continue;
    }
    Span span;
    auto it = file.tensors.emplace(
        item.key(), read_tensor(item.key(), item.value(), data, data_size, what, &span));
    span.name = &it.first->first;
    spans.push_back(span);
  }
  check_no_overlap(std::move(spans), what);
  return file;
}

SafetensorsFile read_safetensors(const std::string& path) {
  const detail::InputRead file = detail::read_input(path);
  if (!file.ok)
    fail(path, std::string(file.opened ? "cannot read: " : "cannot open: ") +
                   std::strerror(file.error));
  return parse_safetensors(reinterpret_cast<const std::uint8_t*>(file.bytes.data()),
                           file.bytes.size(), path);
}

}  // namespace taep

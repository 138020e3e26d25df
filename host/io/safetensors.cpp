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

// nlohmann's DOM parser keeps the last of duplicate keys silently, and its parser-callback form
// rescans the enclosing object after each nested one ends (quadratic in the number of tensors), so
// the header is built by this SAX handler: each key is inserted once into its object's map, which
// both finds a duplicate and costs O(log n). Errors are thrown from the handler, which the parser
// lets propagate.
class HeaderBuilder {
 public:
  explicit HeaderBuilder(const std::string& what) : what_(what) {}
  json& result() { return root_; }

  bool null() { return put(json(nullptr)); }
  bool boolean(bool v) { return put(json(v)); }
  bool number_integer(json::number_integer_t v) { return put(json(v)); }
  bool number_unsigned(json::number_unsigned_t v) { return put(json(v)); }
  bool number_float(json::number_float_t v, const json::string_t&) { return put(json(v)); }
  bool string(json::string_t& v) { return put(json(std::move(v))); }
  bool binary(json::binary_t& v) { return put(json(std::move(v))); }  // not in JSON text
  bool start_object(std::size_t) {
    open(json::value_t::object);
    objects_.push_back(last_key_);
    return true;
  }
  bool key(json::string_t& k) {
    last_key_ = k;
    auto inserted = stack_.back()->get_ref<json::object_t&>().emplace(k, nullptr);
    if (!inserted.second)
      fail(what_, "key " + detail::quote_for_message(k) + " appears twice in " +
                      (objects_.size() == 1 ? "the header"
                                            : detail::quote_for_message(objects_.back())));
    slot_ = &inserted.first->second;
    return true;
  }
  bool end_object() {
    objects_.pop_back();
    stack_.pop_back();
    return true;
  }
  bool start_array(std::size_t) {
    open(json::value_t::array);
    return true;
  }
  bool end_array() {
    stack_.pop_back();
    return true;
  }
  // A syntax error (parse_error) or a number too large for a double (out_of_range); e.what() is
  // "[json.exception.parse_error.101] parse error at line 1, column 9: ..."
  bool parse_error(std::size_t, const std::string&, const json::exception& e) {
    std::string reason = e.what();
    const std::size_t prefix_end = reason.find("] ");
    if (prefix_end != std::string::npos) reason.erase(0, prefix_end + 2);
    // The reason quotes the bytes last read, which need not be UTF-8 (as parse_object does).
    fail(what_, "header must be valid JSON (" + shorten(fields::escape_bytes(reason), 200) + ")");
  }

 private:
  // Places a value where the parser is: the root, the end of the open array, or the slot of the
  // open object's last key. Returns where it lies (stable: map nodes do not move, and an array
  // only grows while no child of it is open).
  json* place(json v) {
    if (stack_.empty()) {
      root_ = std::move(v);
      return &root_;
    }
    json& top = *stack_.back();
    if (top.is_array()) {
      auto& items = top.get_ref<json::array_t&>();
      items.push_back(std::move(v));
      return &items.back();
    }
    *slot_ = std::move(v);
    return slot_;
  }
  bool put(json v) {
    place(std::move(v));
    return true;
  }
  void open(json::value_t type) {
    if (int(stack_.size()) >= kMaxNesting)
      fail(what_, "header must nest at most " + std::to_string(kMaxNesting) +
                      " levels deep (a safetensors header nests 3)");
    stack_.push_back(place(json(type)));
  }

  const std::string& what_;
  json root_;
  std::vector<json*> stack_;         // the open objects and arrays, outermost first
  std::vector<std::string> objects_;  // per open object, the key it is the value of
  std::string last_key_;
  json* slot_ = nullptr;  // the value of the open object's last key
};

json parse_header(const std::uint8_t* p, std::uint64_t n, const std::string& what) {
  HeaderBuilder builder(what);
  json::sax_parse(p, p + n, &builder);
  return std::move(builder.result());
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

// A tensor as its header entry describes it, checked against the data buffer's size; its values are
// decoded only once every entry has been checked (and, for a file, its data read).
struct Entry {
  const std::string* name;  // the header's key
  const Dtype* dtype;
  std::vector<std::int64_t> shape;
  std::uint64_t count;
  Span span;
};

Entry read_entry(const std::string& name, const json& entry, std::uint64_t data_size,
                 const std::string& what) {
  if (!entry.is_object())
    fail(what, tensor(name) + " must be an object with keys " + join(kEntryKeys) + " (got " +
                   show(entry) + ")");
  for (const auto& item : entry.items())
    if (std::find(std::begin(kEntryKeys), std::end(kEntryKeys), item.key()) == std::end(kEntryKeys))
      fail(what, tensor(name) + " has unknown key " + detail::quote_for_message(item.key()) +
                     "; allowed: " + join(kEntryKeys));
  for (const char* key : kEntryKeys)
    if (!entry.contains(key)) fail(what, tensor(name) + " is missing key \"" + key + "\"");

  Entry e;
  e.name = &name;
  e.dtype = &read_dtype(entry["dtype"], name, what);
  e.shape = read_shape(entry["shape"], name, what, &e.count);
  e.span = read_offsets(entry["data_offsets"], name, data_size, what);
  e.span.name = &name;
  // count * dtype.bytes may overflow, so compare by division first; then the product fits in bytes.
  const std::uint64_t bytes = e.span.end - e.span.begin, size = e.dtype->bytes;
  if (e.count > bytes / size || e.count * size != bytes)
    fail(what, tensor(name) + " data_offsets must span " + std::to_string(e.count) + " x " +
                   std::to_string(size) + " bytes for shape " + show(entry["shape"]) + " in " +
                   e.dtype->name + " (got " + show(entry["data_offsets"]) + ")");
  return e;
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

// Every entry of `header` checked against a data buffer of `data_size` bytes, in the header's
// (name) order; the metadata read; the tensors shown not to overlap.
struct Layout {
  std::map<std::string, std::string> metadata;
  std::vector<Entry> entries;
  std::uint64_t data_end = 0;  // the bytes of the data buffer that the tensors use
};

Layout read_layout(const json& header, std::uint64_t data_size, const std::string& what) {
  if (!header.is_object()) fail(what, "header must be a JSON object (got " + show(header) + ")");
  Layout layout;
  std::vector<Span> spans;
  for (const auto& [name, value] : header.get_ref<const json::object_t&>()) {
    if (name == kMetadataKey) {
      read_metadata(value, what, layout.metadata);
      continue;
    }
    layout.entries.push_back(read_entry(name, value, data_size, what));
    spans.push_back(layout.entries.back().span);
    layout.data_end = std::max(layout.data_end, spans.back().end);
  }
  check_no_overlap(std::move(spans), what);
  return layout;
}

// The tensors' values from `data`, which holds at least layout.data_end bytes.
SafetensorsFile decode(Layout layout, const std::uint8_t* data) {
  SafetensorsFile file;
  file.metadata = std::move(layout.metadata);
  for (Entry& e : layout.entries) {
    SafetensorsTensor t;
    t.dtype = e.dtype->name;
    t.shape = std::move(e.shape);
    t.data.resize(e.count);  // count <= data_end: bounded by the input
    const std::uint8_t* p = data + e.span.begin;
    for (std::uint64_t i = 0; i < e.count; ++i) t.data[i] = e.dtype->decode(p + i * e.dtype->bytes);
    // The entries are in name order, so each goes at the end: no search.
    file.tensors.emplace_hint(file.tensors.end(), *e.name, std::move(t));
  }
  return file;
}

// The 8-byte header length, checked against the limit and, when known, against the `rest` bytes
// that follow it.
void check_length_prefix(std::uint64_t size, const std::string& what) {
  if (size < 8)
    fail(what, "must be a safetensors file, starting with an 8-byte header length (got " +
                   std::to_string(size) + " bytes)");
}
void check_header_length(std::uint64_t n, std::optional<std::uint64_t> rest,
                         const std::string& what) {
  if (n > kMaxHeaderBytes)
    fail(what, "header length must be at most " + std::to_string(kMaxHeaderBytes) + " bytes (got " +
                   std::to_string(n) + ")");
  if (rest && n > *rest)
    fail(what, "header length must be at most " + std::to_string(*rest) +
                   ", the number of bytes after it (got " + std::to_string(n) + ")");
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

std::string encode_safetensors(const SafetensorsFile& file) { return encode(file); }

}  // namespace detail

SafetensorsFile parse_safetensors(const std::uint8_t* bytes, std::size_t size,
                                  const std::string& what) {
  check_length_prefix(size, what);
  const std::uint64_t n = load_le(bytes, 8), rest = size - 8;
  check_header_length(n, rest, what);
  const json header = parse_header(bytes + 8, n, what);
  return decode(read_layout(header, rest - n, what), bytes + 8 + n);
}

// Reads no further than the file's declared sizes: the header length is checked against the
// limit and the file's size before the header is read, and the offsets before the data is, so a
// huge, truncated or endless file (/dev/zero) fails with its reason instead of being read whole.
// A pipe has no size to check first; it is read up to what the header declares.
SafetensorsFile read_safetensors(const std::string& path) {
  detail::InputFile f(path);
  const auto read = [&](std::string& out, std::uint64_t n) {
    f.append(out, std::size_t(n));
    if (f.error() != 0) fail(path, std::string("cannot read: ") + std::strerror(f.error()));
    return out.size();
  };
  if (!f.opened()) fail(path, std::string("cannot open: ") + std::strerror(f.error()));
  if (f.error() != 0) fail(path, std::string("cannot read: ") + std::strerror(f.error()));
  std::optional<std::uint64_t> after_prefix;  // the bytes after the length, known for a file
  if (f.size()) after_prefix = *f.size() >= 8 ? *f.size() - 8 : 0;

  std::string prefix;
  check_length_prefix(read(prefix, 8), path);
  const std::uint64_t n = load_le(reinterpret_cast<const std::uint8_t*>(prefix.data()), 8);
  check_header_length(n, after_prefix, path);
  std::string text;
  check_header_length(n, read(text, n), path);  // a pipe that ends early
  const json header = parse_header(reinterpret_cast<const std::uint8_t*>(text.data()), n, path);
  text = std::string();

  const std::uint64_t data_size =
      after_prefix ? *after_prefix - n : std::numeric_limits<std::uint64_t>::max();
  Layout layout = read_layout(header, data_size, path);
  std::string data;
  const std::uint64_t got = read(data, layout.data_end);
  if (got < layout.data_end) read_layout(header, got, path);  // names the tensor past the end
  TAEP_EXPECTS(got >= layout.data_end, "the data buffer ends before its tensors");
  return decode(std::move(layout), reinterpret_cast<const std::uint8_t*>(data.data()));
}

}  // namespace taep

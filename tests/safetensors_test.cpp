// The safetensors reader: dtype decoding, one case per class of malformed input (each a ConfigError
// naming the tensor or key), and a seeded fuzz test that every mutated file either parses or throws
// ConfigError.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "support/safetensors_support.hpp"
#include "taep/error.hpp"
#include "taep/mlp.hpp"

namespace {

using taep_test::expect_config_error;
using taep_test::f32_bytes;
using taep_test::parse_bytes;
using taep_test::safetensors_bytes;
using taep_test::u16_bytes;

// One tensor's header text.
std::string entry(const std::string& dtype, const std::string& shape, const std::string& offsets) {
  return R"({"dtype": ")" + dtype + R"(", "shape": )" + shape + R"(, "data_offsets": )" + offsets +
         "}";
}

// A file holding one 16-bit tensor of `bits`, decoded.
std::vector<float> decode16(const char* dtype, const std::vector<std::uint16_t>& bits) {
  const std::string n = std::to_string(bits.size());
  const std::string header =
      R"({"t": )" + entry(dtype, "[" + n + "]", "[0, " + std::to_string(2 * bits.size()) + "]") +
      "}";
  return parse_bytes(safetensors_bytes(header, u16_bytes(bits))).tensors.at("t").data;
}

// ---- good input ---------------------------------------------------------------------------------

TEST(Safetensors, DecodesF16KnownValues) {
  const auto v = decode16("F16", {0x3C00, 0xC100, 0x7BFF, 0x0001, 0x03FF, 0x0400, 0x3555, 0x8000,
                                  0x7C00, 0xFC00, 0x7E00});
  EXPECT_EQ(v[0], 1.0f);
  EXPECT_EQ(v[1], -2.5f);
  EXPECT_EQ(v[2], 65504.0f);                  // largest finite
  EXPECT_EQ(v[3], std::ldexp(1.0f, -24));     // smallest subnormal
  EXPECT_EQ(v[4], std::ldexp(1023.0f, -24));  // largest subnormal
  EXPECT_EQ(v[5], std::ldexp(1.0f, -14));     // smallest normal
  EXPECT_EQ(v[6], 0.333251953125f);
  EXPECT_EQ(v[7], 0.0f);
  EXPECT_TRUE(std::signbit(v[7]));
  EXPECT_EQ(v[8], std::numeric_limits<float>::infinity());
  EXPECT_EQ(v[9], -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(v[10]));
}

#if defined(__FLT16_MAX__)
// Every one of the 65536 patterns against the compiler's own binary16 conversion.
TEST(Safetensors, DecodesEveryF16PatternLikeTheCompiler) {
  std::vector<std::uint16_t> bits(65536);
  for (std::size_t i = 0; i < bits.size(); ++i) bits[i] = std::uint16_t(i);
  const auto v = decode16("F16", bits);
  for (std::size_t i = 0; i < bits.size(); ++i) {
    _Float16 h;
    std::memcpy(&h, &bits[i], sizeof h);
    const float expected = float(h);
    if (std::isnan(expected))
      EXPECT_TRUE(std::isnan(v[i])) << std::hex << i;
    else
      EXPECT_TRUE(v[i] == expected && std::signbit(v[i]) == std::signbit(expected))
          << std::hex << i;
  }
}
#endif

TEST(Safetensors, DecodesBf16KnownValues) {
  const auto v =
      decode16("BF16", {0x3F80, 0xC020, 0x477F, 0x0001, 0x7F7F, 0x8000, 0x7F80, 0xFF80, 0x7FC0});
  EXPECT_EQ(v[0], 1.0f);
  EXPECT_EQ(v[1], -2.5f);
  EXPECT_EQ(v[2], 65280.0f);
  EXPECT_EQ(v[3], std::ldexp(1.0f, -133));   // smallest subnormal
  EXPECT_EQ(v[4], std::ldexp(255.0f, 120));  // largest finite, (2 - 2^-7) 2^127
  EXPECT_TRUE(v[5] == 0.0f && std::signbit(v[5]));
  EXPECT_EQ(v[6], std::numeric_limits<float>::infinity());
  EXPECT_EQ(v[7], -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(v[8]));
}

TEST(Safetensors, ReadsF32ShapesMetadataAndOffsets) {
  const std::vector<float> values = {1.5f, -0.0f, 3.4e38f, std::numeric_limits<float>::denorm_min(),
                                     7.0f, 8.0f};
  // Stored out of name order, with a gap and trailing bytes (both allowed), and header padding.
  const std::string header = R"({"__metadata__": {"k": "v", "empty": ""},
      "b": )" + entry("F32", "[2, 2]", "[0, 16]") +
                             R"(,
      "a": )" + entry("F32", "[]", "[20, 24]") +
                             R"(,
      "z": )" + entry("F32", "[0, 3]", "[24, 24]") +
                             "}    ";
  const auto f = parse_bytes(safetensors_bytes(header, f32_bytes(values) + "xyz"));
  EXPECT_EQ(f.metadata, (std::map<std::string, std::string>{{"k", "v"}, {"empty", ""}}));
  ASSERT_EQ(f.tensors.size(), 3u);
  const auto& b = f.tensors.at("b");
  EXPECT_EQ(b.dtype, "F32");
  EXPECT_EQ(b.shape, (std::vector<std::int64_t>{2, 2}));
  ASSERT_EQ(b.data.size(), 4u);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(b.data[i], values[i]) << i;
  EXPECT_TRUE(std::signbit(b.data[1]));
  EXPECT_EQ(f.tensors.at("a").shape, std::vector<std::int64_t>{});
  EXPECT_EQ(f.tensors.at("a").data, std::vector<float>{values[5]});
  EXPECT_EQ(f.tensors.at("z").shape, (std::vector<std::int64_t>{0, 3}));
  EXPECT_TRUE(f.tensors.at("z").data.empty());
}

TEST(Safetensors, EmptyHeaderIsAnEmptyFile) {
  const auto f = parse_bytes(safetensors_bytes("{}"));
  EXPECT_TRUE(f.metadata.empty());
  EXPECT_TRUE(f.tensors.empty());
}

TEST(Safetensors, ReadErrorsNameThePath) {
  const std::string missing = ::testing::TempDir() + "taep_no_such_file.safetensors";
  expect_config_error([&] { taep::read_safetensors(missing); }, missing, "cannot open");
  const std::string dir = ::testing::TempDir();
  expect_config_error([&] { taep::read_safetensors(dir); }, dir, "cannot read");
}

// ---- bad input ----------------------------------------------------------------------------------

struct BadFile {
  const char* name;
  std::string bytes;
  std::string fragment;  // expected in the message
};

std::string one(const std::string& e, const std::string& data = std::string(8, '\0')) {
  return safetensors_bytes(R"({"a": )" + e + "}", data);
}

const BadFile kBadFiles[] = {
    // framing
    {"Empty", "", "8-byte header length (got 0 bytes)"},
    {"ShorterThanTheLength", std::string("\x02\0\0\0\0\0", 6), "(got 6 bytes)"},
    {"HeaderLengthPastTheEnd", safetensors_bytes("{}", "", 3),
     "header length must be at most 2, the number"},
    {"HeaderLengthAbsurd", safetensors_bytes("{}", "", std::uint64_t(1) << 40),
     "at most 100000000 bytes"},
    {"HeaderLengthMax", safetensors_bytes("{}", "", ~std::uint64_t(0)), "at most 100000000 bytes"},
    // JSON
    {"HeaderEmpty", safetensors_bytes(""), "header must be valid JSON"},
    {"HeaderNotJson", safetensors_bytes("{nope"), "header must be valid JSON"},
    {"HeaderTrailingGarbage", safetensors_bytes("{} x"), "header must be valid JSON"},
    {"HeaderInvalidUtf8", safetensors_bytes("{\"a\xff\": 1}"), "header must be valid JSON"},
    {"HeaderNumberOverflow", safetensors_bytes(R"({"a": 1e400})"),
     "header must be valid JSON (number overflow"},
    {"HeaderNotObject", safetensors_bytes("[1, 2]"), "header must be a JSON object (got [1,2])"},
    {"HeaderNestedTooDeep", safetensors_bytes(R"({"a": [[[[[[[[[[1]]]]]]]]]]})"),
     "must nest at most 8"},
    {"DuplicateTensor", safetensors_bytes(R"({"a": 1, "b": 2, "a": 3})"),
     "key \"a\" appears twice in the header"},
    {"DuplicateEntryKey",
     one(R"({"dtype": "F32", "dtype": "F16", "shape": [2], "data_offsets": [0, 8]})"),
     "key \"dtype\" appears twice in \"a\""},
    {"DuplicateMetadataKey", safetensors_bytes(R"({"__metadata__": {"k": "1", "k": "2"}})"),
     "key \"k\" appears twice in \"__metadata__\""},
    // metadata
    {"MetadataNotObject", safetensors_bytes(R"({"__metadata__": ["k"]})"),
     "__metadata__ must be an object of strings"},
    {"MetadataValueNotString", safetensors_bytes(R"({"__metadata__": {"k": 1}})"),
     "__metadata__ value of \"k\" must be a string (got 1)"},
    // entries
    {"EntryNotObject", one("5"),
     "tensor \"a\" must be an object with keys \"dtype\", \"shape\", \"data_offsets\""},
    {"EntryMissingKey", one(R"({"dtype": "F32", "shape": [2]})"),
     "tensor \"a\" is missing key \"data_offsets\""},
    {"EntryUnknownKey", one(R"({"dtype": "F32", "shape": [2], "data_offsets": [0, 8], "x": 1})"),
     "tensor \"a\" has unknown key \"x\"; allowed: \"dtype\", \"shape\", \"data_offsets\""},
    {"NameWithControlCharacters", safetensors_bytes(R"({"a\nb": 5})"),
     "tensor \"a\\nb\" must be an object"},
    {"DtypeUnsupported", one(entry("I8", "[8]", "[0, 8]")),
     "tensor \"a\" dtype must be one of \"F32\", \"F16\", \"BF16\" (got \"I8\")"},
    {"DtypeNotString", one(R"({"dtype": 4, "shape": [2], "data_offsets": [0, 8]})"),
     "dtype must be one of"},
    {"ShapeNotArray", one(entry("F32", "2", "[0, 8]")),
     "tensor \"a\" shape must be an array of integers"},
    {"ShapeNegative", one(entry("F32", "[-2]", "[0, 8]")),
     "shape must be an array of integers in [0, 2^63 - 1] (got [-2])"},
    {"ShapeFraction", one(entry("F32", "[1.5]", "[0, 8]")), "shape must be an array of integers"},
    {"ShapeFloatInteger", one(entry("F32", "[2.0]", "[0, 8]")),
     "shape must be an array of integers"},
    {"ShapeNested", one(entry("F32", "[[2]]", "[0, 8]")), "shape must be an array of integers"},
    {"ShapeAboveInt64", one(entry("F32", "[9223372036854775808]", "[0, 8]")),
     "shape must be an array of integers"},
    {"ShapeElementOverflow", one(entry("F32", "[4294967296, 4294967296]", "[0, 8]")),
     "shape must have fewer than 2^64 elements"},
    {"OffsetsNotArray", one(entry("F32", "[2]", "8")),
     "tensor \"a\" data_offsets must be [begin, end]"},
    {"OffsetsOneNumber", one(entry("F32", "[2]", "[8]")), "data_offsets must be [begin, end]"},
    {"OffsetsThreeNumbers", one(entry("F32", "[2]", "[0, 8, 8]")),
     "data_offsets must be [begin, end]"},
    {"OffsetsNegative", one(entry("F32", "[2]", "[-8, 0]")), "data_offsets must be [begin, end]"},
    {"OffsetsFraction", one(entry("F32", "[1]", "[0, 4.0]")), "data_offsets must be [begin, end]"},
    {"OffsetsReversed", one(entry("F32", "[0]", "[8, 0]")), "data_offsets must be [begin, end]"},
    {"OffsetsPastTheData", one(entry("F32", "[4]", "[0, 16]")),
     "data_offsets must be [begin, end] with 0 <= begin <= end <= 8, the data buffer's size (got "
     "[0,16])"},
    {"OffsetsHuge", one(entry("F32", "[2]", "[18446744073709551608, 18446744073709551615]")),
     "data_offsets must be [begin, end]"},
    {"SizeMismatch", one(entry("F32", "[3]", "[0, 8]")),
     "tensor \"a\" data_offsets must span 3 x 4 bytes for shape [3] in F32 (got [0,8])"},
    {"SizeMismatchF16", one(entry("F16", "[2]", "[0, 8]")), "must span 2 x 2 bytes"},
    {"SizeProductOverflow", one(entry("F32", "[4611686018427387904]", "[0, 0]")),
     "must span 4611686018427387904 x 4"},
    {"Overlap",
     safetensors_bytes(R"({"a": )" + entry("F32", "[2]", "[0, 8]") + R"(, "b": )" +
                           entry("F32", "[2]", "[4, 12]") + "}",
                       std::string(12, '\0')),
     "tensors \"a\" and \"b\" must not overlap in the data buffer (got [0, 8] and [4, 12])"},
    {"OverlapContained",
     safetensors_bytes(R"({"a": )" + entry("F32", "[3]", "[0, 12]") + R"(, "b": )" +
                           entry("F32", "[1]", "[4, 8]") + R"(, "c": )" +
                           entry("F32", "[1]", "[8, 12]") + "}",
                       std::string(12, '\0')),
     "tensors \"a\" and \"b\" must not overlap"},
};

class BadFileTest : public ::testing::TestWithParam<BadFile> {};

TEST_P(BadFileTest, ThrowsConfigErrorNamingTheProblem) {
  const BadFile& b = GetParam();
  expect_config_error([&] { parse_bytes(b.bytes, "model.weights"); }, "model.weights", b.fragment);
}

INSTANTIATE_TEST_SUITE_P(Safetensors, BadFileTest, ::testing::ValuesIn(kBadFiles),
                         [](const auto& info) { return std::string(info.param.name); });

// ---- fuzz ---------------------------------------------------------------------------------------

// A valid MLP file mixing all three dtypes, so that surviving mutants also reach the MLP checks.
std::string fuzz_seed_file() {
  using nlohmann::json;
  json header = {{"__metadata__",
                  {{"taep.format", "mlp-score-v1"},
                   {"dim", "2"},
                   {"embedding_dim", "2"},
                   {"time_scale", "1000"},
                   {"max_period", "10000"},
                   {"parameterization", "eps"},
                   {"activation", "silu"}}}};
  std::string data;
  auto add = [&](const char* name, const char* dtype, std::vector<std::int64_t> shape,
                 const std::string& bytes) {
    header[name] = {{"dtype", dtype},
                    {"shape", shape},
                    {"data_offsets", {data.size(), data.size() + bytes.size()}}};
    data += bytes;
  };
  add("layers.0.weight", "F32", {3, 4},
      f32_bytes({.1f, -.2f, .3f, .4f, .5f, -.6f, .7f, .8f, .9f, 1, -1.1f, 1.2f}));
  add("layers.0.bias", "F16", {3}, u16_bytes({0x3C00, 0xC100, 0x0001}));
  add("layers.1.weight", "BF16", {2, 3},
      u16_bytes({0x3F80, 0xC020, 0x477F, 0x0001, 0x3F00, 0xBF00}));
  add("layers.1.bias", "F32", {2}, f32_bytes({.25f, -.75f}));
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  return safetensors_bytes(text, data);
}

// Mutates `f` once: random bytes, truncation, header-length edits, and JSON-aware edits that keep
// the length field consistent so they reach the parser.
void mutate(std::string& f, std::mt19937_64& rng) {
  auto below = [&](std::size_t n) { return n ? std::size_t(rng() % n) : 0; };
  auto header_size = [&] {
    std::uint64_t n = 0;
    for (int i = 7; i >= 0 && f.size() >= 8; --i) n = (n << 8) | std::uint8_t(f[i]);
    return f.size() >= 8 ? std::size_t(std::min<std::uint64_t>(n, f.size() - 8)) : 0;
  };
  auto set_length = [&](std::uint64_t n) {
    if (f.size() < 8) return;
    for (int i = 0; i < 8; ++i) f[i] = char((n >> (8 * i)) & 0xff);
  };
  // Replaces header bytes [pos, pos + len) with `with` and fixes the length field.
  auto edit_header = [&](std::size_t pos, std::size_t len, const std::string& with) {
    const std::size_t n = header_size();
    if (f.size() < 8 || pos > n) return;
    len = std::min(len, n - pos);
    f.replace(8 + pos, len, with);
    set_length(n - len + with.size());
  };
  static const char kJsonChars[] = "{}[]\":,0123456789-+.eE \\nu";
  static const char* const kTokens[] = {"0",
                                        "-1",
                                        "1e30",
                                        "2.0",
                                        "18446744073709551615",
                                        "18446744073709551616",
                                        "9223372036854775807",
                                        "null",
                                        "\"F16\"",
                                        "\"I8\"",
                                        "[]",
                                        "{}",
                                        "[0, 0]",
                                        "\"__metadata__\"",
                                        "\"layers.7.weight\"",
                                        "\"\\u0000\"",
                                        "\"\\ud800\""};
  switch (rng() % 8) {
    case 0:
      if (!f.empty()) f[below(f.size())] ^= char(1 << (rng() % 8));
      break;
    case 1:
      if (!f.empty()) f[below(f.size())] = char(rng());
      break;
    case 2:
      f.resize(below(f.size() + 1));
      break;
    case 3: {
      const std::uint64_t choices[] = {
          rng(),       below(f.size() + 1), header_size() + 1, header_size() - 1,
          100'000'000, 100'000'001,         f.size() - 8,      f.size() - 7};
      set_length(choices[rng() % 8]);
      break;
    }
    case 4:  // one JSON-significant character replaced, inserted or deleted
      edit_header(below(header_size() + 1), rng() % 2,
                  rng() % 3 ? std::string(1, kJsonChars[below(sizeof kJsonChars - 1)]) : "");
      break;
    case 5: {  // a number token replaced by a boundary value
      const std::size_t n = header_size();
      std::size_t pos = below(n), len = 0;
      while (pos < n && !std::isdigit(std::uint8_t(f[8 + pos]))) ++pos;
      while (pos + len < n && std::isdigit(std::uint8_t(f[8 + pos + len]))) ++len;
      edit_header(pos, len, kTokens[rng() % 7]);
      break;
    }
    case 6:  // any token spliced in
      edit_header(below(header_size() + 1), rng() % 4,
                  kTokens[rng() % (sizeof kTokens / sizeof *kTokens)]);
      break;
    default: {  // a slice of the header duplicated (duplicate keys, repeated entries)
      const std::size_t n = header_size(), pos = below(n), len = below(n - pos + 1);
      if (f.size() >= 8) edit_header(below(n + 1), 0, f.substr(8 + pos, len));
      break;
    }
  }
}

TEST(Safetensors, FuzzedFilesParseOrThrowConfigError) {
  const std::string seed = fuzz_seed_file();
  ASSERT_NO_THROW(taep::mlp_from_safetensors(parse_bytes(seed), "seed"));
  std::mt19937_64 rng(20240611);
  int parsed = 0, loaded = 0, rejected = 0;
  constexpr int kIterations = 20000;
  for (int it = 0; it < kIterations; ++it) {
    std::string f = seed;
    for (int m = 1 + int(rng() % 3); m > 0; --m) mutate(f, rng);
    try {
      const taep::SafetensorsFile file = parse_bytes(f);
      ++parsed;
      taep::mlp_from_safetensors(file, "weights");
      ++loaded;
    } catch (const taep::ConfigError&) {
      ++rejected;
    } catch (const std::exception& e) {
      ADD_FAILURE() << "iteration " << it << ": not a ConfigError: " << e.what();
    } catch (...) {
      ADD_FAILURE() << "iteration " << it << ": threw a non-std exception";
    }
  }
  RecordProperty("parsed", parsed);
  RecordProperty("loaded", loaded);
  RecordProperty("rejected", rejected);
  // Both outcomes must be common, or the mutations are not exercising the reader.
  EXPECT_GT(parsed, kIterations / 20)
      << "parsed " << parsed << ", loaded " << loaded << ", rejected " << rejected;
  EXPECT_GT(rejected, kIterations / 2);
  EXPECT_GT(loaded, 0);
}

}  // namespace

// Error messages of the readers stay one line of valid UTF-8 (regressions found by the fuzz targets,
// tests/fuzz; the inputs are also in tests/fuzz/corpus/). The CLI prints a message as it is.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "host/io/json_fields.hpp"
#include "taep/config.hpp"
#include "taep/error.hpp"
#include "taep/mlp.hpp"
#include "tests/fuzz/fuzz_support.hpp"

namespace {

template <class F>
taep::ConfigError config_error(F&& f) {
  try {
    f();
  } catch (const taep::ConfigError& e) {
    return e;
  }
  ADD_FAILURE() << "no ConfigError";
  return taep::ConfigError("", "");
}

std::string repeat(const std::string& s, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += s;
  return out;
}

TEST(ReaderMessages, ShortenNeverCutsACharacter) {
  const std::string e = "\xC3\xA9";  // é
  for (std::size_t max = 4; max < 40; ++max) {
    const std::string s = taep::fields::shorten(repeat(e, 50), max);
    EXPECT_TRUE(taep_fuzz::printable_line(s)) << "max " << max << ": " << s;
    EXPECT_LE(s.size(), max);
    EXPECT_EQ(s.substr(s.size() - 3), "...");
  }
  EXPECT_EQ(taep::fields::shorten("abc", 3), "abc");
}

TEST(ReaderMessages, LongNonAsciiValuesAndKeysStayUtf8) {
  const std::string e = "\xC3\xA9";
  for (const std::string& text :
       {"{\"run\": {\"backend\": \"x" + repeat(e, 100) + "\"}}",  // a value shown in the message
        "{\"" + repeat(e, 100) + "\": 1}",                          // a key, the field name
        "{\"target\": {\"preset\": \"" + repeat(e, 100) + "\"}}"}) {
    const taep::ConfigError err = config_error([&] { taep::parse_config(text); });
    EXPECT_TRUE(taep_fuzz::printable_line(err.what())) << err.what();
  }
}

TEST(ReaderMessages, ControlCharactersInKeysAreEscaped) {
  const taep::ConfigError err =
      config_error([] { taep::parse_config(R"({"run": {"a\nb\u001b[31m": 1}})"); });
  EXPECT_EQ(err.field(), "run.a\\x0Ab\\x1B[31m");
  EXPECT_TRUE(taep_fuzz::printable_line(err.what())) << err.what();
}

TEST(ReaderMessages, WeightHeaderSyntaxErrorEscapesItsBytes) {
  const std::string header = "{\"\xFF\":1}";
  std::vector<std::uint8_t> file(8, 0);
  file[0] = std::uint8_t(header.size());
  file.insert(file.end(), header.begin(), header.end());
  const taep::ConfigError err =
      config_error([&] { taep::parse_safetensors(file.data(), file.size(), "w.safetensors"); });
  EXPECT_TRUE(taep_fuzz::printable_line(err.what())) << err.what();
  EXPECT_NE(std::string(err.what()).find("\\xFF"), std::string::npos) << err.what();
}

}  // namespace

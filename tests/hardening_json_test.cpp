// Hostile config text: nesting depth, duplicate keys, invalid UTF-8 and huge values in messages.
// Each case is refused with a ConfigError whose message is short, valid UTF-8 and names the field.
#include <gtest/gtest.h>

#include <string>

#include "host/io/json_fields.hpp"
#include "support/cli_support.hpp"
#include "taep/config.hpp"
#include "taep/error.hpp"
#include "taep/train.hpp"

namespace {

using taep::ConfigError;

template <class F>
ConfigError config_error(F&& f) {
  try {
    f();
  } catch (const ConfigError& e) {
    return e;
  }
  ADD_FAILURE() << "no ConfigError";
  return ConfigError("", "");
}

bool valid_utf8_ascii(const std::string& s) {  // every message here is plain ASCII
  for (unsigned char c : s)
    if (c >= 0x80) return false;
  return true;
}

std::string deep(std::size_t levels) {
  return "{\"run\":{\"paths\":" + std::string(levels, '[') + std::string(levels, ']') + "}}";
}

TEST(HardeningJson, DeepNestingIsRefusedAtParseTime) {
  for (auto parse : {+[](const std::string& t) { taep::parse_config(t); },
                     +[](const std::string& t) { taep::parse_train_config(t); }}) {
    const ConfigError e = config_error([&] { parse(deep(100000)); });
    EXPECT_EQ(e.field(), "config");
    EXPECT_NE(std::string(e.what()).find("at most 32"), std::string::npos) << e.what();
    EXPECT_LT(std::string(e.what()).size(), 300u) << e.what();
  }
  // 30 levels parse, and the bad value is shown bounded.
  const ConfigError e = config_error([] { taep::parse_config(deep(29)); });
  EXPECT_EQ(e.field(), "run.paths");
  EXPECT_LT(std::string(e.what()).size(), 200u) << e.what();
}

TEST(HardeningJson, HugeValuesAreShownAsShortExcerpts) {
  const std::string big = "{\"run\":{\"paths\":\"" + std::string(1 << 20, 'x') + "\"}}";
  const ConfigError e = config_error([&] { taep::parse_config(big); });
  EXPECT_EQ(e.field(), "run.paths");
  EXPECT_LT(std::string(e.what()).size(), 200u);
  const std::string big_key = "{\"run\":{\"" + std::string(1 << 20, 'k') + "\":1}}";
  EXPECT_LT(std::string(config_error([&] { taep::parse_config(big_key); }).what()).size(), 300u);
}

TEST(HardeningJson, DuplicateKeysAreRefusedByTheirPath) {
  EXPECT_EQ(config_error([] { taep::parse_config(R"({"run":{"paths":10,"paths":20}})"); }).field(),
            "run.paths");
  EXPECT_EQ(config_error([] { taep::parse_config(R"({"run":{},"run":{}})"); }).field(), "run");
  EXPECT_EQ(config_error([] {
              taep::parse_config(R"({"target":{"weights":[1],"means":[[0,0]],"sigmas":[1],"sigmas":[1]}})");
            }).field(),
            "target.sigmas");
  EXPECT_EQ(config_error([] { taep::parse_train_config(R"({"run":{"seed":1,"seed":2}})"); }).field(),
            "run.seed");
  // The same key in different objects is fine.
  EXPECT_NO_THROW(taep::parse_config(R"({"run":{"seed":1},"schedule":{"steps":10}})"));
}

TEST(HardeningJson, InvalidUtf8IsEscapedInMessages) {
  // The JSON reader refuses ill-formed UTF-8 and quotes the bytes it last read: escaped.
  for (const char* text : {"{\"run\":{\"p\xff\xfe\":1}}", "{\"run\":{\"backend\":\"c\xc3\"}}"}) {
    const ConfigError e = config_error([&] { taep::parse_config(text); });
    EXPECT_EQ(e.field(), "config");
    EXPECT_TRUE(valid_utf8_ascii(e.what())) << e.what();
    EXPECT_NE(std::string(e.what()).find("\\x"), std::string::npos) << e.what();
  }
  EXPECT_EQ(taep::fields::escape_bytes("a\xff\xc3\xa9\xed\xa0\x80z"), "a\\xFF\xc3\xa9\\xED\\xA0\\x80z");
  // Valid UTF-8 stays as it is.
  const ConfigError ok = config_error([] { taep::parse_config("{\"run\":{\"backend\":\"\xc3\xa9\"}}"); });
  EXPECT_NE(std::string(ok.what()).find("\"\xc3\xa9\""), std::string::npos) << ok.what();
}

class HardeningJsonCli : public taep_test::CliSandbox {};

TEST_F(HardeningJsonCli, EveryCommandRefusesDeepNesting) {
  write("deep.json", deep(100000));
  for (const char* cmd : {"run deep.json", "sample deep.json --count 1 --out s.csv", "dft deep.json",
                          "train deep.json --out w.safetensors"}) {
    const Outcome o = run(cmd);
    EXPECT_EQ(o.exit_code, 2) << cmd << ": " << o.err;
    EXPECT_EQ(o.err.rfind("taep: error: config: ", 0), 0u) << cmd << ": " << o.err;
    EXPECT_LT(o.err.size(), 300u) << cmd;
  }
}

TEST_F(HardeningJsonCli, ErrorLinesCarryNoInvalidUtf8) {
  write("bad.json", "{\"run\":{\"backend\":\"\xff\"}}");
  const Outcome o = run("run bad.json");
  EXPECT_EQ(o.exit_code, 2);
  EXPECT_TRUE(valid_utf8_ascii(o.err)) << o.err;
  // A file name from the command line: the message built around it escapes it too.
  const Outcome f = run("run \"$(printf 'missing\\377.json')\"");
  EXPECT_EQ(f.exit_code, 2) << f.err;
  EXPECT_TRUE(valid_utf8_ascii(f.err)) << f.err;
}

}  // namespace

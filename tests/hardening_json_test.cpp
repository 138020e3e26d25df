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

namespace {

class HardeningFlags : public taep_test::CliSandbox {};

TEST_F(HardeningFlags, OutOfRangeNumbersAreErrorsNamingTheFlag) {
  const Outcome seed = run("run --seed 99999999999999999999999 --paths 100 -q");
  EXPECT_EQ(seed.exit_code, 2) << seed.out.substr(0, 100);
  EXPECT_EQ(seed.err.rfind("taep: error: --seed (run.seed): ", 0), 0u) << seed.err;
  const Outcome eps = run("train --collapse-eps 1e400 --out w.safetensors");
  EXPECT_EQ(eps.exit_code, 2);
  EXPECT_EQ(eps.err.rfind("taep: error: --collapse-eps (data.collapse.eps): ", 0), 0u) << eps.err;
  const Outcome neg = run("run --paths -5");
  EXPECT_EQ(neg.exit_code, 2);
  EXPECT_EQ(neg.err.rfind("taep: error: --paths: ", 0), 0u) << neg.err;
  EXPECT_LT(neg.err.size(), 120u) << "bounds in short form: " << neg.err;
}

TEST_F(HardeningFlags, EmptyOutputPathsAreErrors) {
  for (const char* cmd : {"run --out ''", "dft --out ''", "sample --count 1 --out ''",
                          "sample --count 1 --out s.csv --result ''", "train --out ''",
                          "train --out w.safetensors --result ''"}) {
    const Outcome o = run(cmd);
    EXPECT_EQ(o.exit_code, 2) << cmd;
    EXPECT_TRUE(o.out.empty()) << cmd;
    EXPECT_NE(o.err.find(std::string(cmd).find("--result") != std::string::npos ? "--result: " : "--out: "),
              std::string::npos) << cmd << ": " << o.err;
  }
}

TEST_F(HardeningFlags, Cli11ErrorsNameTheFlag) {
  const Outcome o = run("sample --count 3");
  EXPECT_EQ(o.exit_code, 2);
  EXPECT_EQ(o.err.rfind("taep: error: --out: ", 0), 0u) << o.err;
}

}  // namespace

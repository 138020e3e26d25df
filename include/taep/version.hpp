#pragma once
// The library's version, and the source it was built from (`taep --version`; every result JSON's
// "provenance"). The version numbers are the project's (CMakeLists.txt checks that they agree);
// the commit and build type are written into the build tree at build time.
namespace taep {

constexpr int kVersionMajor = 0;
constexpr int kVersionMinor = 1;
constexpr int kVersionPatch = 0;
constexpr const char* kVersion = "0.1.0";

// The short (12-digit) hash of the commit built, with "-dirty" when the tracked files had changes;
// "unknown" when built outside a git checkout. Never empty.
const char* git_commit();
// The CMake build type (configuration) of the library: "Release", "Debug", ...; "" when none.
const char* build_type();

}  // namespace taep

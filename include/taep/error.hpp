#pragma once
// One error family (docs/architecture.md principle 7). Library code throws; it never calls exit().
#include <cstdint>
#include <stdexcept>
#include <string>

namespace taep {

// Base of everything taep throws; what() carries "file:line: message" for internal failures.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Bad input: a config field, a CLI flag or a file. field() names it ("schedule.steps").
class ConfigError : public Error {
 public:
  ConfigError(std::string field, const std::string& message)
      : Error(field + ": " + message), field_(std::move(field)) {}
  const std::string& field() const { return field_; }

 private:
  std::string field_;
};

// Every path (or sample) of a run came out non-finite, so it has no statistics; thrown unless
// run.allow_nonfinite is set (then the result carries null statistics and a warning).
class NonFiniteResult : public Error {
 public:
  using Error::Error;
};

// Training produced a non-finite loss, gradient or weight (a learning rate or data too large for
// float): the step (the end of the first log interval where it showed) and the loss there.
class TrainingDiverged : public Error {
 public:
  TrainingDiverged(std::uint64_t step, double loss, const std::string& message)
      : Error(message), step_(step), loss_(loss) {}
  std::uint64_t step() const { return step_; }
  double loss() const { return loss_; }

 private:
  std::uint64_t step_;
  double loss_;
};

// A run stopped on request (RunOptions::stop_requested, the CLI's SIGINT or SIGTERM under
// --checkpoint) after its state was put in the checkpoint, when there is one.
class Interrupted : public Error {
 public:
  using Error::Error;
};

// The CUDA backend was asked for where it cannot run (built without CUDA, or no usable device).
class BackendUnavailable : public Error {
 public:
  using Error::Error;
};

// A CUDA runtime or library call failed; the message names the call, file:line and the status string.
class CudaError : public Error {
 public:
  using Error::Error;
};

namespace detail {
[[noreturn]] void throw_internal(const char* file, int line, const std::string& message);
}  // namespace detail

}  // namespace taep

#define TAEP_EXPECTS(cond, msg) \
  do {                          \
    if (!(cond)) ::taep::detail::throw_internal(__FILE__, __LINE__, (msg)); \
  } while (0)

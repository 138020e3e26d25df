#pragma once
// The backend of a problem whose score model is a function (ForwardProblem::callback;
// cpu_callback_backend.cpp). make_backend (host/engine/chunk_driver.cpp) hands such problems here
// whatever backend was asked for: "cuda" is refused with BackendUnavailable saying why, "auto" and
// "cpu" get the CPU, on the calling thread (run.threads does not apply).
#include <memory>

#include "host/engine/backend.hpp"
#include "taep/config.hpp"

namespace taep {
namespace detail {

std::unique_ptr<Backend> make_callback_backend(const ForwardProblem& problem,
                                               taep::Backend requested);

}  // namespace detail
}  // namespace taep

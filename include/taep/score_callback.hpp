#pragma once
// A score model computed outside taep: a function over a batch of states (a PyTorch module, numpy,
// any code) stands in for s_theta. taep keeps everything else: the random numbers (the streams of
// the built-in models, so path i is the same path as for an exact or MLP model with the same seed),
// the stepping, the TAEP sum, the target's score and every reduction (host/cpu/cpu_callback_backend.cpp,
// the physics of physics/mlp_path.hpp). The config says model.type "callback"; its
// model.divergence says where the model's divergence comes from ("exact": the callback fills it;
// "hutchinson": the callback gets model.probes probe vectors of taep's own probe stream per path and
// returns v.J v for each, as the MLP backends compute them), and model.probe_distribution which
// probes. The CUDA backend does not take callbacks yet (BackendUnavailable); "auto" picks the CPU.
#include <cstdint>
#include <functional>

#include "taep/config.hpp"
#include "taep/mlp.hpp"
#include "taep/problem.hpp"

namespace taep {

// One evaluation of the model over a batch of paths at one grid point. The pointers are taep's
// buffers, valid only during the call; rows are paths first_path .. first_path + n - 1.
struct ScoreRequest {
  int n = 0;
  int d = 0;
  int step = 0;      // grid index k, t = t_k
  double t = 0.0;
  std::uint64_t first_path = 0;
  // Where every pointer below points: -1 for host memory (the CPU backend, the only one that takes
  // callbacks so far), else the CUDA device of that id (a model may then answer in device memory,
  // e.g. through DLPack).
  int device = -1;
  const float* x = nullptr;  // (n, d), row-major
  // Out: the model's output at x, (n, d): s_theta, or the noise prediction eps for
  // Parameterization::eps (taep converts both it and its divergence with score = -eps / sqrt(1 -
  // abar(t)), physics::output_scale, as for an eps MLP).
  float* output = nullptr;
  // Out, model.divergence "exact": the divergence of the output in x, (n); null otherwise.
  float* divergence = nullptr;
  // model.divergence "hutchinson": P = probes vectors per row, probe q of row p at (p * P + q) * d
  // (in, (n, P, d)), and out the estimates v_q . J v_q of the output's Jacobian J, at p * P + q
  // ((n, P)). probes is 0 and the pointers null otherwise.
  int probes = 0;
  const float* probe_vectors = nullptr;
  float* probe_estimates = nullptr;
};

struct ScoreCallback {
  // Fills the request's outputs; may throw (the call stops and the exception propagates).
  std::function<void(const ScoreRequest&)> evaluate;
  Parameterization parameterization = Parameterization::score;
  // Paths per call, 1 .. 2^20 (else ConfigError("batch")). Batches tile each piece of paths the
  // engine simulates (chunks of whole reduce blocks, 2^16 paths at most) from its start. taep's
  // numbers never depend on the batching; a callback whose rows do not depend on each other gives
  // results bitwise independent of the batch and chunk sizes.
  int batch = 4096;
  // Optional: the target's score s* as a function too (a trained reference network standing in for
  // the optimal score), called right after `evaluate` with the same x, writing s* into `output` and
  // its divergence into `divergence` (always the exact trace; probes 0); converted like the model's
  // by reference_parameterization. Without it s* is the target mixture's analytic score. The paths
  // still start from the config's target.
  std::function<void(const ScoreRequest&)> reference;
  Parameterization reference_parameterization = Parameterization::score;
};

// Validates the config, whose model.type must be "callback" (else ConfigError("model.type")), and
// builds the problem with `callback` as its score model. ConfigError("model.type") for an empty
// evaluate, ("batch") for a batch out of range, ("schedule.scheme") for Milstein (its correction
// needs the model's Jacobian along dW, which a callback does not give). build_problem(config) of a
// "callback" config throws ConfigError("model.type") naming this overload.
Problem build_problem(const Config& config, ScoreCallback callback);

}  // namespace taep

// taep._taep: the extension under the Python package taep (python/taep/__init__.py, docs/python.md).
//
// The package does the Python-side work (config dicts, dotted overrides, json.loads of the result
// documents); this module takes config JSON text and does exactly what the CLI does with it:
// parse_config, build_problem, the engine call, and the same *_to_json writer. So a result
// document from taep.run is the text `taep run --out` writes, parsed.
//
// Long calls release the GIL. The engine calls its progress hook from the calling thread between
// chunks; the hook takes the GIL back, checks for signals (Ctrl-C) and calls the user's progress
// callback. A KeyboardInterrupt or an exception from the callback is kept, the engine is stopped by
// throwing Abort through it (it holds no state that outlives the call, and writes no file), and the
// kept Python exception is raised once the GIL is held again. A Python score callback
// (taep/score_callback.hpp) takes the GIL the same way, from the calling thread, through
// CallState::call: once per batch and grid point, with zero-copy numpy views of taep's buffers.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/map.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "host/io/atomic_file.hpp"
#include "host/io/input_file.hpp"
#include "host/io/safetensors.hpp"
#include "taep/config.hpp"
#include "taep/engine.hpp"
#include "taep/entropy.hpp"
#include "taep/error.hpp"
#include "taep/mlp.hpp"
#include "taep/problem.hpp"
#include "taep/result.hpp"
#include "taep/sample.hpp"
#include "taep/score_callback.hpp"
#include "taep/track.hpp"
#include "taep/train.hpp"
#include "taep/version.hpp"

namespace nb = nanobind;

namespace {

// Thrown through the engine from the progress hook to stop a call; carries nothing (the Python
// exception that caused it stays in CallState, touched only with the GIL held).
struct Abort {};

// One call's progress callback and the Python exception that stopped it, if any.
class CallState {
 public:
  explicit CallState(nb::object progress) : progress_(std::move(progress)) {}

  // Called by the engine between chunks, with the GIL released. `fill` writes the progress keys.
  template <class Fill>
  void hook(Fill&& fill) {
    nb::gil_scoped_acquire gil;
    if (PyErr_CheckSignals() != 0) stop();
    if (progress_.is_none()) return;
    try {
      nb::dict info;
      fill(info);
      progress_(info);
    } catch (nb::python_error& e) {
      error_.emplace(std::move(e));
      throw Abort{};
    }
  }

  // f() with the GIL taken back, from an engine call that released it (a score callback): Ctrl-C
  // and a Python exception stop the engine as in hook().
  template <class F>
  void call(F&& f) {
    nb::gil_scoped_acquire gil;
    if (PyErr_CheckSignals() != 0) stop();
    try {
      f();
    } catch (nb::python_error& e) {
      error_.emplace(std::move(e));
      throw Abort{};
    }
  }

  // f() with the GIL released; the kept Python exception raised if the hook stopped it.
  template <class F>
  auto released(F&& f) -> decltype(f()) {
    std::optional<decltype(f())> out;
    {
      nb::gil_scoped_release nogil;
      try {
        out.emplace(f());
      } catch (const Abort&) {
      }
    }
    if (!out) throw std::move(*error_);
    return std::move(*out);
  }

  taep::RunOptions run_options() {
    taep::RunOptions options;
    options.on_progress = [this](const taep::Progress& p) {
      hook([&](nb::dict& d) {
        d["done"] = p.paths_done;
        d["total"] = p.paths_total;
        d["seconds"] = p.seconds;
        d["path_steps_per_second"] = p.path_steps_per_second;
      });
    };
    return options;
  }

 private:
  // Keeps the pending Python exception (the error indicator is set) and stops the engine.
  [[noreturn]] void stop() {
    error_.emplace();
    throw Abort{};
  }

  nb::object progress_;
  std::optional<nb::python_error> error_;
};

// A numpy array over `v`'s buffer, owned by a capsule that deletes the vector: no copy.
template <class T>
nb::object to_numpy(std::vector<T>&& v, std::initializer_list<std::size_t> shape) {
  auto* owned = new std::vector<T>(std::move(v));
  nb::capsule owner(owned, [](void* p) noexcept { delete static_cast<std::vector<T>*>(p); });
  return nb::ndarray<nb::numpy, T>(owned->data(), shape, owner).cast();
}

taep::Problem problem_from(const std::string& config_json) {
  return taep::build_problem(taep::parse_config(config_json));
}

// ---- arrays between taep's buffers and a model function (DLPack) -------------------------------
//
// Two functions carry every array across: array_view makes the array a model function gets from a
// buffer of taep's (pointer, shape, device), and accept_array takes what it returns from any DLPack
// producer. A host request (the CPU callback backend: ScoreRequest::device < 0) and a device one run
// the same two; only where the memory is differs.

// Where a buffer is: DLPack's device type (nb::device::cpu or ::cuda) and device id.
struct Place {
  int type = nb::device::cpu::value;
  int id = 0;
  bool host() const { return type == nb::device::cpu::value; }
  std::string name() const {
    if (host()) return "cpu";
    return (type == nb::device::cuda::value ? "cuda:" : "DLPack device " + std::to_string(type) + ":") +
           std::to_string(id);
  }
};

Place place_of(const taep::ScoreRequest& r) {
  return r.device < 0 ? Place{} : Place{nb::device::cuda::value, r.device};
}

// The array over taep's buffer `data` that a model function gets: numpy for host memory (what
// numpy code expects; torch.from_numpy shares it), an object with __dlpack__ on the GPU otherwise
// (torch.from_dlpack, cupy.from_dlpack take it as it is). Read-only, no copy and no owner: valid
// only during the call.
nb::object array_view(const float* data, std::vector<std::size_t> shape, const Place& at) {
  if (at.host())
    return nb::ndarray<nb::numpy, const float>(data, shape.size(), shape.data(), nb::handle())
        .cast(nb::rv_policy::reference);
  return nb::ndarray<nb::array_api, const float>(data, shape.size(), shape.data(), nb::handle(),
                                                 nullptr, nb::dtype<float>(), at.type, at.id)
      .cast(nb::rv_policy::reference);
}

std::string shape_text(const std::vector<std::size_t>& s) {  // as Python prints a tuple
  std::string out = "(";
  for (std::size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + (s.size() == 1 ? ",)" : ")");
}

std::string dtype_text(nb::dlpack::dtype t) {
  using C = nb::dlpack::dtype_code;
  const C code = C(t.code);
  if (code == C::Bool) return "bool";
  const char* kind = code == C::Int ? "int" : code == C::UInt ? "uint" : code == C::Float ? "float"
                     : code == C::Bfloat ? "bfloat" : code == C::Complex ? "complex" : "dtype";
  return kind + std::to_string(t.bits);
}

// What a model function returned, as taep takes it: the producer's memory (kept alive by `array`),
// its place and whether it holds float64.
struct ModelArray {
  nb::ndarray<nb::ro> array;
  Place place;
  bool f64 = false;
};

// A model function's return value `value` for the output `name` at time t: any DLPack producer or
// buffer (numpy, torch tensors on the CPU or a GPU, cupy, ...), else what numpy.asarray makes of
// it (lists). Checked: the shape, float32 or float64, and the place, which must be `want` (the
// request's memory). Throws ConfigError(name) naming what it got.
ModelArray accept_array(nb::handle value, const std::string& name, const std::vector<std::size_t>& shape,
                        double t, const Place& want) {
  const std::string at = " at t = " + nb::cast<std::string>(nb::repr(nb::float_(t)));
  ModelArray a;
  if (!nb::try_cast(value, a.array)) {
    nb::object converted = nb::module_::import_("numpy").attr("asarray")(value);
    if (!nb::try_cast(converted, a.array))
      throw taep::ConfigError(name, "must return an array of numbers (got " +
                                        nb::cast<std::string>(nb::type_name(value.type())) + at + ")");
  }
  std::vector<std::size_t> got(a.array.ndim());
  for (std::size_t i = 0; i < got.size(); ++i) got[i] = a.array.shape(i);
  if (got != shape)
    throw taep::ConfigError(name, "must return an array of shape " + shape_text(shape) +
                                      " (got shape " + shape_text(got) + at + ")");
  const nb::dlpack::dtype dt = a.array.dtype();
  a.f64 = dt == nb::dtype<double>();
  if (!a.f64 && dt != nb::dtype<float>())
    throw taep::ConfigError(name, "must return float32 or float64 values (got " + dtype_text(dt) + at + ")");
  a.place = Place{a.array.device_type(), a.array.device_id()};
  if (a.place.type != want.type || a.place.id != want.id)
    throw taep::ConfigError(name, "must return an array on " + want.name() + ", where taep's buffers are (got one on " +
                                      a.place.name() + at + (want.host() ? "; move it with .cpu()" : "") + ")");
  return a;
}

// A host ModelArray of shape (rows, cols) or (rows,) into out, row-major, as float, strides
// respected; ConfigError(name) naming the rows that hold non-finite values.
void read_host(const ModelArray& a, const std::string& name, double t, float* out) {
  const std::size_t rows = a.array.shape(0), cols = a.array.ndim() > 1 ? a.array.shape(1) : 1;
  const std::int64_t s0 = a.array.stride(0), s1 = a.array.ndim() > 1 ? a.array.stride(1) : 0;
  std::vector<std::size_t> bad;
  for (std::size_t p = 0; p < rows; ++p) {
    bool finite = true;
    for (std::size_t j = 0; j < cols; ++j) {
      const std::int64_t at = std::int64_t(p) * s0 + std::int64_t(j) * s1;
      const double v = a.f64 ? static_cast<const double*>(a.array.data())[at]
                             : double(static_cast<const float*>(a.array.data())[at]);
      out[p * cols + j] = float(v);
      finite = finite && std::isfinite(v);
    }
    if (!finite) bad.push_back(p);
  }
  if (bad.empty()) return;
  std::string list = "[";
  for (std::size_t i = 0; i < std::min<std::size_t>(5, bad.size()); ++i)
    list += (i ? ", " : "") + std::to_string(bad[i]);
  throw taep::ConfigError(name, "returned non-finite values at t = " +
                                    nb::cast<std::string>(nb::repr(nb::float_(t))) + " (rows " + list +
                                    "] of the batch, " + std::to_string(bad.size()) + " in all)");
}

// A returned array into taep's buffer `out` (at the request's place): read on the host; on a
// device its pointer would go to the device backend, which this build does not have for callbacks
// (make_callback_backend refuses "cuda"), so a device request cannot reach here.
void deliver(nb::handle value, const std::string& name, const std::vector<std::size_t>& shape,
             const taep::ScoreRequest& r, float* out) {
  const Place want = place_of(r);
  const ModelArray a = accept_array(value, name, shape, r.t, want);
  if (!want.host())
    throw taep::BackendUnavailable("run.backend: a score callback's device arrays need the CUDA "
                                   "callback backend, which this build does not have");
  read_host(a, name, r.t, out);
}

// A score model in Python (taep/__init__.py, _ScoreCall): evaluate(x, t, step, probe_vectors,
// with_divergence) returns (output, divergence), or (output, estimates) when there are probes, or
// (output, None) without the divergence (a reverse step that reads no TAEP); its `names` are the
// arguments it came from, which errors name. The handle is not reference-counted here: the
// caller's argument keeps it alive, and copies of the callback are made with the GIL released.
struct PyScore {
  nb::handle evaluate;
  std::string parameterization = "score";
  int batch = 4096;
  nb::handle reference;  // the target's score the same way (exact divergence), or None
  std::string reference_parameterization = "score";
};

taep::Parameterization parameterization_of(const std::string& name) {
  return name == "eps" ? taep::Parameterization::eps : taep::Parameterization::score;
}

// The engine's side of a Python evaluate function (see PyScore).
std::function<void(const taep::ScoreRequest&)> python_call(nb::handle fn, CallState& state) {
  return [fn, &state](const taep::ScoreRequest& r) {
    const std::size_t n = std::size_t(r.n), d = std::size_t(r.d), P = std::size_t(r.probes);
    state.call([&] {
      const auto names = nb::cast<std::pair<std::string, std::string>>(fn.attr("names"));
      const Place at = place_of(r);
      nb::object vectors = r.probe_vectors ? array_view(r.probe_vectors, {n, P, d}, at) : nb::none();
      const bool with_divergence = r.probe_estimates || r.divergence;
      const nb::tuple got = nb::cast<nb::tuple>(
          fn(array_view(r.x, {n, d}, at), r.t, r.step, vectors, with_divergence));
      deliver(got[0], names.first, {n, d}, r, r.output);
      if (r.probe_estimates)
        deliver(got[1], names.first, {n, P}, r, r.probe_estimates);
      else if (r.divergence)
        deliver(got[1], names.second, {n}, r, r.divergence);
    });
  };
}

// The problem of a config, with the Python score model when one is given (then the config's model
// is "callback"; taep/__init__.py sets it).
taep::Problem problem_from(const std::string& config_json, const std::optional<PyScore>& score,
                           CallState& state) {
  if (!score) return problem_from(config_json);
  taep::ScoreCallback cb;
  cb.parameterization = parameterization_of(score->parameterization);
  cb.batch = score->batch;
  cb.evaluate = python_call(score->evaluate, state);
  if (!score->reference.is_none()) {
    cb.reference = python_call(score->reference, state);
    cb.reference_parameterization = parameterization_of(score->reference_parameterization);
  }
  return taep::build_problem(taep::parse_config(config_json), std::move(cb));
}

// The score model of a call: None, or the tuple (evaluate, parameterization, batch, reference,
// reference_parameterization) that taep/__init__.py's _score_model makes.
std::optional<PyScore> py_score(nb::handle model) {
  if (model.is_none()) return std::nullopt;
  const auto t = nb::cast<nb::tuple>(model);
  return PyScore{t[0], nb::cast<std::string>(t[1]), nb::cast<int>(t[2]), t[3],
                 nb::cast<std::string>(t[4])};
}

// One engine call from Python: its progress and interrupt state, and its score model.
struct ModelCall {
  CallState state;
  std::optional<PyScore> model;
  ModelCall(nb::object progress, nb::handle score) : state(std::move(progress)), model(py_score(score)) {}
  // The config's problem with the call's score model (with the GIL released).
  taep::Problem problem(const std::string& config_json) { return problem_from(config_json, model, state); }
};

// The Python exception classes live in taep.errors (plain Python, with .field and .message).
nb::object error_class(const char* name) {
  return nb::module_::import_("taep.errors").attr(name);
}

void translate_errors(const std::exception_ptr& p, void*) {
  try {
    std::rethrow_exception(p);
  } catch (const taep::ConfigError& e) {
    const std::string what = e.what();
    const std::string message =
        what.size() >= e.field().size() + 2 ? what.substr(e.field().size() + 2) : what;
    nb::object err = error_class("ConfigError")(e.field(), message);
    PyErr_SetObject(err.type().ptr(), err.ptr());
  } catch (const taep::BackendUnavailable& e) {
    PyErr_SetString(error_class("BackendUnavailable").ptr(), e.what());
  } catch (const taep::CudaError& e) {
    PyErr_SetString(error_class("CudaError").ptr(), e.what());
  } catch (const taep::NonFiniteResult& e) {
    PyErr_SetString(error_class("NonFiniteResult").ptr(), e.what());
  } catch (const taep::TrainingDiverged& e) {
    nb::object err = error_class("TrainingDiverged")(std::string(e.what()), e.step(), e.loss());
    PyErr_SetObject(err.type().ptr(), err.ptr());
  } catch (const taep::Error& e) {
    PyErr_SetString(error_class("Error").ptr(), e.what());
  }
}

// ---- the calls ----------------------------------------------------------------------------------

std::string run_json(const std::string& config_json, nb::object progress, nb::object score) {
  ModelCall call(std::move(progress), score);
  return call.state.released([&] {
    return taep::result_to_json(taep::run(call.problem(config_json), call.state.run_options()));
  });
}

// Paths [first, first + count) in pieces of the run's chunk size, so that progress and Ctrl-C are
// seen between pieces; a path's values depend only on its index, never on the piece it is in.
nb::dict paths(const std::string& config_json, std::uint64_t first, std::optional<std::uint64_t> count,
               nb::object progress, nb::object score) {
  ModelCall call(std::move(progress), score);
  CallState& state = call.state;
  taep::PathValues all = state.released([&] {
    const taep::Problem problem = call.problem(config_json);
    const taep::Config& c = problem.config();
    if (first >= c.run.paths && !count)
      throw taep::ConfigError("first", "must be below run.paths (" + std::to_string(c.run.paths) +
                                           ") when count is not given (got " +
                                           std::to_string(first) + ")");
    const std::uint64_t n = count ? *count : c.run.paths - first;
    if (n < 1 || n >= (std::uint64_t(1) << 40) || first >= (std::uint64_t(1) << 40) - n)
      throw taep::ConfigError("count", "first + count must be below 2^40 and count at least 1 (got " +
                                           std::to_string(n) + ")");
    const std::uint64_t piece = c.run.chunk_paths > 0 ? c.run.chunk_paths : std::uint64_t(1) << 20;
    taep::PathValues out;
    out.taep.reserve(n);
    const auto start = std::chrono::steady_clock::now();
    for (std::uint64_t done = 0; done < n;) {
      const std::uint64_t m = std::min(piece, n - done);
      taep::PathValues v = taep::simulate_paths(problem, c.run.backend, first + done, m);
      out.append(v.taep, v.reference, v.x0, v.xN);
      done += m;
      const double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      state.hook([&](nb::dict& d) {
        d["done"] = done;
        d["total"] = n;
        d["seconds"] = seconds;
        d["path_steps_per_second"] = seconds > 0 ? double(done) * c.schedule.steps / seconds : 0.0;
      });
    }
    return out;
  });
  nb::dict result;
  const std::size_t n = all.taep.size(), d = all.dim();
  std::vector<double> diff = all.errors();
  const bool exact = !all.reference.empty();
  result["S"] = to_numpy(std::move(all.taep), {n});
  if (exact) {
    result["R"] = to_numpy(std::move(all.reference), {n});
    result["S_minus_R"] = to_numpy(std::move(diff), {n});
  }
  result["x0"] = to_numpy(std::move(all.x0), {n, d});
  result["xN"] = to_numpy(std::move(all.xN), {n, d});
  return result;
}

nb::object sample(const std::string& config_json, std::uint64_t count, nb::object progress,
                  nb::object score) {
  ModelCall call(std::move(progress), score);
  taep::SampleResult r = call.state.released([&] {
    return taep::sample(call.problem(config_json), count, call.state.run_options());
  });
  return to_numpy(std::move(r.samples), {std::size_t(r.count), std::size_t(r.d)});
}

std::string detailed_ft_json(const std::string& config_json, std::uint64_t min_count,
                             nb::object progress, nb::object score) {
  ModelCall call(std::move(progress), score);
  return call.state.released([&] {
    return taep::detailed_ft_to_json(
        taep::detailed_ft(call.problem(config_json), call.state.run_options(), min_count));
  });
}

// taep::track over a snapshot directory (taep/track.hpp): run_json empty for the run config derived
// from the manifest; paths, steps, seed 0 for the derived value. Progress after every stage of
// every snapshot (done/total in snapshots); Ctrl-C stops it there.
std::string track_json(const std::string& snapshots, const std::string& run_json,
                       const std::string& against, const std::string& holdout,
                       std::uint64_t samples, int k, std::uint64_t paths, int steps,
                       std::uint64_t seed, nb::object progress) {
  CallState state(std::move(progress));
  return state.released([&] {
    taep::TrackConfig c;
    c.snapshots = snapshots;
    if (!run_json.empty()) c.run = taep::parse_config(run_json);
    if (against == "config") {
      c.reference = taep::TrackReference::config;
    } else if (against != "last") {
      throw taep::ConfigError("against", "must be \"last\" or \"config\" (got \"" + against + "\")");
    }
    c.holdout = holdout;
    c.samples = samples;
    c.k = k;
    if (paths) c.overrides.paths = paths;
    if (steps) c.overrides.steps = steps;
    if (seed) c.overrides.seed = seed;
    return taep::track_to_json(taep::track(c, [&](const taep::TrackProgress& p) {
      state.hook([&](nb::dict& d) {
        d["done"] = p.snapshot;
        d["total"] = p.snapshots;
        d["step"] = p.step;
        d["stage"] = p.stage;
      });
    }));
  });
}

// taep::entropy_rates (taep/entropy.hpp): the document `taep rates` writes. Progress after every
// grid point (done/total in grid points); Ctrl-C stops it there.
std::string rates_json(const std::string& config_json, int grid, std::uint64_t draws,
                       std::optional<double> data_entropy, std::uint64_t nll_points,
                       nb::object progress) {
  CallState state(std::move(progress));
  return state.released([&] {
    taep::RatesOptions o;
    o.grid_points = grid;
    o.draws = draws;
    o.data_entropy = data_entropy;
    o.nll_points = nll_points;
    o.on_progress = [&](std::uint64_t done, std::uint64_t total) {
      state.hook([&](nb::dict& d) {
        d["done"] = done;
        d["total"] = total;
      });
    };
    return taep::rates_result_to_json(taep::entropy_rates(taep::build_problem(taep::parse_config(config_json)), o));
  });
}

// The layers as the weight file names them (include/taep/mlp.hpp): layers.<i>.weight [out, in],
// layers.<i>.bias [out]; the vectors are moved into the arrays.
nb::dict weights_dict(taep::MlpModel&& model) {
  nb::dict out;
  for (std::size_t i = 0; i < model.layers.size(); ++i) {
    taep::MlpLayer& l = model.layers[i];
    const std::string prefix = "layers." + std::to_string(i) + ".";
    out[(prefix + "weight").c_str()] =
        to_numpy(std::move(l.weight), {std::size_t(l.out), std::size_t(l.in)});
    out[(prefix + "bias").c_str()] = to_numpy(std::move(l.bias), {std::size_t(l.out)});
  }
  return out;
}

std::pair<nb::dict, std::string> train(const std::string& config_json, nb::object progress,
                                       std::uint64_t snapshot_every, const std::string& snapshot_dir) {
  CallState state(std::move(progress));
  taep::TrainResult r = state.released([&] {
    taep::TrainOptions options;
    options.snapshot_every = snapshot_every;
    options.snapshot_dir = snapshot_dir;
    options.on_log = [&](const taep::TrainLogEntry& e, std::uint64_t total) {
      state.hook([&](nb::dict& d) {
        d["done"] = e.step;
        d["total"] = total;
        d["seconds"] = e.seconds;
        d["loss"] = e.loss;
        d["grad_norm"] = e.grad_norm;
      });
    };
    return taep::train(taep::build_train_problem(taep::parse_train_config(config_json)), options);
  });
  std::string summary = taep::train_result_to_json(r);
  return {weights_dict(std::move(r.model)), std::move(summary)};
}

std::pair<nb::dict, nb::dict> load_weights(const std::string& path) {
  taep::SafetensorsFile file;
  {
    nb::gil_scoped_release nogil;
    file = taep::read_safetensors(path);
    taep::mlp_from_safetensors(file, path);  // the documented layout, or ConfigError naming it
  }
  nb::dict tensors, metadata;
  for (auto& [name, t] : file.tensors) {
    std::vector<std::size_t> shape(t.shape.begin(), t.shape.end());
    auto* owned = new std::vector<float>(std::move(t.data));
    nb::capsule owner(owned, [](void* p) noexcept { delete static_cast<std::vector<float>*>(p); });
    tensors[name.c_str()] =
        nb::ndarray<nb::numpy, float>(owned->data(), shape.size(), shape.data(), owner).cast();
  }
  for (const auto& [k, v] : file.metadata) metadata[k.c_str()] = v;
  return {tensors, metadata};
}

using InTensor = nb::ndarray<const float, nb::c_contig, nb::device::cpu>;

void save_weights(const std::string& path, const std::map<std::string, InTensor>& tensors,
                  const std::map<std::string, std::string>& metadata) {
  taep::SafetensorsFile file;
  file.metadata = metadata;
  for (const auto& [name, a] : tensors) {
    taep::SafetensorsTensor t;
    t.dtype = "F32";
    for (std::size_t i = 0; i < a.ndim(); ++i) t.shape.push_back(std::int64_t(a.shape(i)));
    t.data.assign(a.data(), a.data() + a.size());
    file.tensors.emplace(name, std::move(t));
  }
  nb::gil_scoped_release nogil;
  taep::mlp_from_safetensors(file, path);  // no file taep could not read back is written
  taep::detail::write_file_atomically(path, taep::detail::encode_safetensors(file));
}

}  // namespace

NB_MODULE(_taep, m) {
  m.doc() = "The compiled core of the taep package (use the functions of `taep`, not these).";
  nb::register_exception_translator(translate_errors);

  m.attr("__version__") = taep::kVersion;
  m.def("git_commit", [] { return std::string(taep::git_commit()); });
  m.def("built_with_cuda", &taep::built_with_cuda);
  m.def("cuda_available", [] {
    std::string why;
    const bool ok = taep::cuda_available(&why);
    return std::make_pair(ok, why);
  });

  m.def("read_config_file", [](const std::string& path) {
    return taep::detail::read_input_file(path, "config");
  });
  m.def("check_config", [](const std::string& text) { taep::parse_config(text); });
  m.def("check_train_config", [](const std::string& text) { taep::parse_train_config(text); });

  // score: None, or (evaluate, parameterization, batch, reference, reference_parameterization).
  m.def("run", &run_json, nb::arg("config_json"), nb::arg("progress").none(),
        nb::arg("score").none() = nb::none());
  m.def("paths", &paths, nb::arg("config_json"), nb::arg("first"), nb::arg("count").none(),
        nb::arg("progress").none(), nb::arg("score").none() = nb::none());
  m.def("sample", &sample, nb::arg("config_json"), nb::arg("count"), nb::arg("progress").none(),
        nb::arg("score").none() = nb::none());
  m.def("track", &track_json, nb::arg("snapshots"), nb::arg("run_json"), nb::arg("against"),
        nb::arg("holdout"), nb::arg("samples"), nb::arg("k"), nb::arg("paths"), nb::arg("steps"),
        nb::arg("seed"), nb::arg("progress").none());
  m.def("detailed_ft", &detailed_ft_json, nb::arg("config_json"), nb::arg("min_count"),
        nb::arg("progress").none(), nb::arg("score").none() = nb::none());
  m.def("rates", &rates_json, nb::arg("config_json"), nb::arg("grid"), nb::arg("draws"),
        nb::arg("data_entropy").none(), nb::arg("nll_points"), nb::arg("progress").none());
  m.def("train", &train, nb::arg("config_json"), nb::arg("progress").none(),
        nb::arg("snapshot_every"), nb::arg("snapshot_dir"));
  m.def("load_weights", &load_weights, nb::arg("path"));
  m.def("save_weights", &save_weights, nb::arg("path"), nb::arg("tensors"), nb::arg("metadata"));

  // For tests/python/test_dlpack.py: the two array functions of a model call on their own. A view
  // of a small buffer (2, 3) = 0 .. 5 at (device_type, device_id); and what taep reads from `value`
  // as an output of `shape` taken on the host (a float32 copy).
  static const float kTestBuffer[6] = {0, 1, 2, 3, 4, 5};
  m.def("_array_view", [](int device_type, int device_id) {
    return array_view(kTestBuffer, {2, 3}, Place{device_type, device_id});
  });
  m.def("_accept_array", [](nb::handle value, const std::vector<std::size_t>& shape) {
    const ModelArray a = accept_array(value, "score", shape, 0.5, Place{});
    std::vector<float> out(a.array.size());
    read_host(a, "score", 0.5, out.data());
    return nb::ndarray<nb::numpy, float>(out.data(), shape.size(), shape.data()).cast(nb::rv_policy::copy);
  });
}

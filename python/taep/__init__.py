"""taep from Python: the stochastic thermodynamics (TAEP) of diffusion models.

The functions here run the same engine as the ``taep`` command, on the same configs, and return its
result documents as dicts and its per-path values as numpy arrays. docs/python.md describes every
function, argument and returned key.

A config is a dict (the JSON of README.md's "Config reference"), a path to a JSON file, or None for
the built-in default. Overrides set config fields by their dotted key, either as a mapping or as
keyword arguments with ``__`` for the dot::

    taep.run("ring.json", overrides={"run.paths": 1e6, "model.collapse.eps": 0.02})
    taep.run("ring.json", run__paths=1e6, model__collapse__eps=0.02)

Long calls release the GIL, call ``progress(info)`` (a dict: ``done``, ``total``, ``seconds``, ...)
after every chunk, and stop with KeyboardInterrupt on Ctrl-C at the next chunk boundary. Without a
progress callback they show a tqdm bar on stderr when tqdm is installed and stderr is a terminal.
"""

from __future__ import annotations

import copy
import json
import math
import os
import sys
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

from . import _taep
from .errors import (BackendUnavailable, ConfigError, CudaError, Error, NonFiniteResult,
                     TrainingDiverged)

__version__: str = _taep.__version__

__all__ = [
    "run",
    "paths",
    "sample",
    "detailed_ft",
    "rates",
    "track",
    "train",
    "load_weights",
    "save_weights",
    "built_with_cuda",
    "cuda_available",
    "git_commit",
    "Error",
    "ConfigError",
    "BackendUnavailable",
    "CudaError",
    "NonFiniteResult",
    "TrainingDiverged",
    "__version__",
]

ProgressCallback = Callable[[Dict[str, Any]], None]


# ---- configs and overrides -------------------------------------------------------------------


def _merge_overrides(overrides: Optional[Mapping[str, Any]], dotted: Mapping[str, Any]) -> Dict[str, Any]:
    merged: Dict[str, Any] = {}
    if overrides is not None:
        if not isinstance(overrides, Mapping):
            raise TypeError(f"overrides must be a mapping of dotted keys to values, not {type(overrides).__name__}")
        for key in overrides:
            if not isinstance(key, str):
                raise TypeError(f"override keys are dotted config keys (str), not {key!r}")
        merged.update(overrides)
    for name, value in dotted.items():
        if "__" not in name:
            raise TypeError(
                f"unexpected keyword argument {name!r}; config overrides are spelled with '__' for "
                f"the dot (run__paths=1e6) or given as overrides={{'run.paths': 1e6}}"
            )
        merged[name.replace("__", ".")] = value
    return merged


def _set_dotted(doc: Dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    if len(parts) < 2 or any(not p for p in parts):
        raise ConfigError(key, "an override key is a dotted config key such as run.paths")
    node = doc
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        elif not isinstance(child, dict):
            raise ConfigError(".".join(parts[: i + 1]), f"is not an object, so {key} cannot be set")
        node = child
    node[parts[-1]] = value


def _check_json_value(value: Any, path: str) -> Any:
    """The value as json.dumps takes it (numpy scalars and arrays as Python numbers and lists);
    ConfigError naming the field for what JSON cannot hold."""
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise ConfigError(path or "config", f"keys must be strings (got {k!r})")
            out[k] = _check_json_value(v, f"{path}.{k}" if path else k)
        return out
    if isinstance(value, (list, tuple)):
        return [_check_json_value(v, f"{path}[{i}]") for i, v in enumerate(value)]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):  # numpy scalars and arrays
        return _check_json_value(value.tolist(), path)
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(path, f"must be a finite number (got {value!r})")
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    raise ConfigError(path, f"is not a JSON value (got {type(value).__name__})")


def _config_text(config: Any, overrides: Optional[Mapping[str, Any]], dotted: Mapping[str, Any],
                 check: Callable[[str], None], model: Optional[Dict[str, Any]] = None) -> str:
    """The JSON text the engine parses: a file's own text when there are no overrides (the text
    `taep run FILE` reads), else the document with the overrides set by dotted key. `model`, when
    given, replaces the model section afterwards (a score callback's {"type": "callback", ...})."""
    changes = _merge_overrides(overrides, dotted)
    if config is None:
        doc: Any = {}
    elif isinstance(config, Mapping):
        doc = copy.deepcopy(dict(config))
    elif isinstance(config, (str, os.PathLike)):
        text = _taep.read_config_file(os.fspath(config))
        if not changes and model is None:
            return text
        check(text)  # the reader's own rules (duplicate keys, depth) before Python's json reads it
        doc = json.loads(text)
        if not isinstance(doc, dict):
            raise ConfigError("config", "must be a JSON object")
    else:
        raise TypeError(f"config must be a dict, a path or None, not {type(config).__name__}")
    for key, value in changes.items():
        _set_dotted(doc, key, value)
    if model is not None:
        doc["model"] = model
    return json.dumps(_check_json_value(doc, ""))


def _run_config(config: Any, overrides: Optional[Mapping[str, Any]], dotted: Mapping[str, Any],
                model: Optional[Dict[str, Any]] = None) -> str:
    return _config_text(config, overrides, dotted, _taep.check_config, model)


# ---- score models given as functions ---------------------------------------------------------

ScoreFunction = Callable[[Any, float], Any]


class _ScoreCall:
    """The one function the engine calls per batch and grid point (python/src/taep_module.cpp,
    python_call): the user's score (and divergence) functions, or a score object's taep_evaluate.
    It returns (output, divergence), or (output, estimates) with probes, or (output, None) where the
    engine needs no divergence (reverse steps without TAEP); the extension checks them
    (shape, float32/float64, device, finite; errors naming `names`, the arguments they came from)
    and reads them from any DLPack producer (numpy, torch) into taep's buffers."""

    def __init__(self, score: Any, divergence: Optional[Callable[[Any, float], Any]],
                 names: Tuple[str, str] = ("score", "divergence")):
        self.score = score
        self.divergence = divergence
        self.evaluate = getattr(score, "taep_evaluate", None)
        self.names = names

    def __call__(self, x, t, step, vectors, with_divergence):
        if not with_divergence:  # a reverse step that reads no TAEP needs the output alone
            return self.score(x, t), None
        if self.evaluate is not None:
            return tuple(self.evaluate(x, t, vectors))
        return self.score(x, t), self.divergence(x, t)


def _function_model(score: Any, divergence: Any, parameterization: Any, names: Tuple[str, str]):
    """(the config's model section, the engine's callable, the parameterization) of a score
    function and its divergence function, or of a score object (taep.torch.ScoreModule)."""
    name, div_name = names
    if not callable(score):
        raise TypeError(f"{name} must be a function (x, t) -> (n, d) or a taep.torch.ScoreModule, not "
                        f"{type(score).__name__}")
    model_section = getattr(score, "taep_model", None)
    if model_section is not None:  # a score object: its own divergence and parameterization
        if divergence is not None:
            raise ConfigError(div_name, f"a ScoreModule computes its own divergence (got {div_name}= too)")
        model = dict(model_section)
        own = getattr(score, "parameterization", "score")
        if parameterization not in ("score", own):
            raise ConfigError("parameterization", f"is the ScoreModule's own ({own!r}; got {parameterization!r})")
        parameterization = own
    else:
        if divergence is None:
            raise ConfigError(div_name, f"a score function needs its divergence: pass {div_name}=fn "
                                        "(x, t) -> (n,), or use taep.torch.ScoreModule, which "
                                        "computes it by forward-mode autodiff")
        if not callable(divergence):
            raise TypeError(f"{div_name} must be a function (x, t) -> (n,), not {type(divergence).__name__}")
        model = {"type": "callback", "divergence": "exact"}
    if parameterization not in ("score", "eps"):
        raise ConfigError("parameterization", f'must be "score" or "eps" (got {parameterization!r})')
    return model, _ScoreCall(score, divergence, names), parameterization


def _score_model(score: Any, divergence: Any, parameterization: Any, batch: Any,
                 reference: Any = None, reference_divergence: Any = None):
    """(the config's model section or None, the extension's score argument: None or the tuple
    (score, parameterization, batch, reference, reference_parameterization)) of the score
    arguments of run(), paths(), sample() and detailed_ft()."""
    if score is None:
        for name, value in (("divergence", divergence), ("reference", reference),
                            ("reference_divergence", reference_divergence)):
            if value is not None:
                raise ConfigError(name, "is for a score model given as a function: give score= too")
        return None, None
    model, call, parameterization = _function_model(score, divergence, parameterization,
                                                    ("score", "divergence"))
    if isinstance(batch, bool) or not isinstance(batch, int) or not 1 <= batch <= 2**20:
        raise ConfigError("batch", f"must be an integer 1 .. 1048576 (paths per call; got {batch!r})")
    ref_call, ref_param = None, "score"
    if reference is not None:
        section, ref_call, ref_param = _function_model(reference, reference_divergence, "score",
                                                       ("reference", "reference_divergence"))
        if section["divergence"] != "exact":
            raise ConfigError("reference", "the target's score needs the exact divergence "
                                           "(a ScoreModule with divergence=\"exact\")")
    elif reference_divergence is not None:
        raise ConfigError("reference_divergence", "is the divergence of reference=: give reference= too")
    return model, (call, parameterization, batch, ref_call, ref_param)


class _Progress:
    """The progress callback of a long call: the caller's, or else a tqdm bar on stderr when tqdm
    is installed and stderr is a terminal, or none. A context manager: the bar closes on exit."""

    def __init__(self, progress: Optional[ProgressCallback], unit: str):
        self.callback, self.unit, self.bar = progress, unit, None
        if progress is None and sys.stderr is not None and sys.stderr.isatty():
            try:
                from tqdm import tqdm
            except ImportError:
                return
            self.tqdm = tqdm
            self.callback = self._update

    def _update(self, info: Dict[str, Any]) -> None:
        if self.bar is None:
            self.bar = self.tqdm(total=info.get("total"), unit=self.unit, file=sys.stderr,
                                 leave=False)
        self.bar.update(info["done"] - self.bar.n)

    def __enter__(self) -> Optional[ProgressCallback]:
        return self.callback

    def __exit__(self, *exc: Any) -> bool:
        if self.bar is not None:
            self.bar.close()
        return False


def run(config: Any = None, *, score: Any = None, divergence: Optional[ScoreFunction] = None,
        parameterization: str = "score", batch: int = 4096, reference: Any = None,
        reference_divergence: Optional[ScoreFunction] = None,
        overrides: Optional[Mapping[str, Any]] = None,
        progress: Optional[ProgressCallback] = None, **dotted: Any) -> Dict[str, Any]:
    """Run a config's forward paths and return the result document.

    The document is the JSON that ``taep run --out`` writes (README.md, "Result reference"),
    parsed: ``taep``, ``ift``, ``histogram``, ``reference``, ``theory``, ``hutchinson``,
    ``performance``, ``provenance``, ``config``. For the same config and seed its statistics are
    bitwise those of the command.

    Args:
        config: a config dict, a path to a JSON config file, or None for the built-in default.
        score: the score model as a function score(x, t) -> (n, d) of x, an (n, d) float32 array
            (a read-only view of taep's buffer, valid during the call), and the time t; or a
            taep.torch.ScoreModule. It replaces the config's model section by
            {"type": "callback", ...} (docs/python.md, "Score models as functions").
        divergence: with a score function, divergence(x, t) -> (n,), the divergence of its output.
        parameterization: "score", or "eps" when score returns the noise prediction (taep
            converts it, and the divergence, with score = -eps / sqrt(1 - abar(t))).
        batch: paths per call of score, 1 .. 2^20.
        reference, reference_divergence: with score, the target's score s* as a function (and its
            divergence) or a ScoreModule with the exact divergence, in place of the target
            mixture's analytic score (the paths still start from the config's target).
        overrides: config fields to set, by dotted key ({"run.paths": 1e6}).
        progress: called as progress(info) after every chunk, info having the keys done and total
            (paths), seconds and path_steps_per_second.
        **dotted: more overrides, "__" standing for the dot (run__paths=1e6).

    Raises:
        ConfigError: a bad config or override (its field names it).
        BackendUnavailable: run.backend "cuda" where CUDA cannot run.
        KeyboardInterrupt: Ctrl-C (at the next chunk boundary).
    """
    model, engine = _score_model(score, divergence, parameterization, batch, reference,
                                  reference_divergence)
    with _Progress(progress, "path") as callback:
        return json.loads(_taep.run(_run_config(config, overrides, dotted, model), callback, engine))


def paths(config: Any = None, first: int = 0, count: Optional[int] = None, *, score: Any = None,
          divergence: Optional[ScoreFunction] = None, parameterization: str = "score",
          batch: int = 4096, reference: Any = None, reference_divergence: Optional[ScoreFunction] = None,
          overrides: Optional[Mapping[str, Any]] = None,
          progress: Optional[ProgressCallback] = None, **dotted: Any) -> Dict[str, Any]:
    """Per-path values of forward paths first .. first + count - 1, as numpy arrays.

    Path i is the path of index i in ``taep run`` of the same config and seed: its values depend
    only on (seed, i), so any (first, count) gives the same values for the paths it covers.

    Returns a dict of float64 arrays of length count, owned by taep's buffers (no copy):
        S: the TAEP of each path (the value ``taep run`` reduces into its statistics; a non-finite
            S is kept here, where the run counts it in taep.nonfinite).
        R: exact-score models only: the closed form R = log(p/q)(x_0, t_min) - log(p/q)(x_N, t_max)
            of the same path (docs/physics.md eq. 36, 39).
        S_minus_R: exact-score models only: S - R, the per-path integration error.

    Args:
        config, score, divergence, parameterization, batch, reference, reference_divergence,
            overrides, progress, **dotted: as for run(). With a score model only S is returned (there is no closed form).
        first: the first path index.
        count: the number of paths; None means the rest of the run, run.paths - first.
    """
    model, engine = _score_model(score, divergence, parameterization, batch, reference,
                                  reference_divergence)
    with _Progress(progress, "path") as callback:
        return _taep.paths(_run_config(config, overrides, dotted, model), int(first),
                           None if count is None else int(count), callback, engine)


def sample(config: Any, n: int, *, score: Any = None, divergence: Optional[ScoreFunction] = None,
           parameterization: str = "score", batch: int = 4096, reference: Any = None,
           reference_divergence: Optional[ScoreFunction] = None,
           overrides: Optional[Mapping[str, Any]] = None,
           progress: Optional[ProgressCallback] = None, **dotted: Any):
    """Draw n samples with the reverse (generative) process of the config's model.

    Returns a float32 array of shape (n, d): row i is x(t_min) of reverse path i, exactly the row
    ``taep sample --count n`` writes (README.md, "taep sample"). run.paths is ignored.

    Args:
        config, score, divergence, parameterization, batch, reference, reference_divergence,
            overrides, progress, **dotted: as for run(). A score model given as a function is
            called at every grid point without its divergence (sampling reads no TAEP); a
            divergence function is still needed, as for run().
        n: the number of samples, 1 <= n < 2^40 (else ConfigError("count")).
    """
    model, engine = _score_model(score, divergence, parameterization, batch, reference,
                                  reference_divergence)
    with _Progress(progress, "sample") as callback:
        return _taep.sample(_run_config(config, overrides, dotted, model), int(n), callback, engine)


def detailed_ft(config: Any = None, *, min_count: int = 20, score: Any = None,
                divergence: Optional[ScoreFunction] = None, parameterization: str = "score",
                batch: int = 4096, reference: Any = None,
                reference_divergence: Optional[ScoreFunction] = None,
                overrides: Optional[Mapping[str, Any]] = None,
                progress: Optional[ProgressCallback] = None, **dotted: Any) -> Dict[str, Any]:
    """Check the detailed fluctuation theorem (docs/physics.md section 9) and return its document.

    The document is the JSON ``taep dft --out`` writes (README.md, "taep dft"), parsed.

    Args:
        config, score, divergence, parameterization, batch, reference, reference_divergence,
            overrides, progress, **dotted: as for run(); a score model runs both the forward and
            the reverse paths.
        min_count: the least count per side of a merged bin in the fit (``--min-count``), >= 1.
    """
    model, engine = _score_model(score, divergence, parameterization, batch, reference,
                                  reference_divergence)
    with _Progress(progress, "path") as callback:
        return json.loads(_taep.detailed_ft(_run_config(config, overrides, dotted, model),
                                            int(min_count), callback, engine))


def rates(config: Any = None, *, grid: int = 65, draws: int = 4096,
          data_entropy: Optional[float] = None, nll_points: int = 0,
          overrides: Optional[Mapping[str, Any]] = None,
          progress: Optional[ProgressCallback] = None, **dotted: Any) -> Dict[str, Any]:
    """Entropy rates of the diffusion and the thermodynamic NLL bound (README.md, "taep rates";
    docs/entropy-rates.md); returns the document ``taep rates --out`` writes, parsed.

    Args:
        config, overrides, **dotted: as for run() (built-in score models only).
        grid: time-grid points from t_min to t_max, uniform in log SNR (``--grid``), >= 3.
        draws: exact draws of p(x, t) per grid point (``--draws``), >= 2.
        data_entropy: S0 in nats, replacing its estimate (``--data-entropy``).
        nll_points: also the PF-ODE NLL of this many points drawn at t_min (``--nll-points``).
        progress: called after every grid point, info having done and total (grid points).
    """
    for name, value, least in (("grid", grid, 3), ("draws", draws, 2), ("nll_points", nll_points, 0)):
        if not isinstance(value, int) or isinstance(value, bool) or value < least:
            raise ConfigError(name, f"must be an integer >= {least} (got {value!r})")
    if data_entropy is not None and not isinstance(data_entropy, (int, float)):
        raise ConfigError("data_entropy", f"must be a number of nats (got {data_entropy!r})")
    with _Progress(progress, "grid point") as callback:
        return json.loads(_taep.rates(_run_config(config, overrides, dotted, None), grid, draws,
                                      None if data_entropy is None else float(data_entropy),
                                      nll_points, callback))


def track(snapshots: "str | os.PathLike[str]", *, holdout: "Optional[str | os.PathLike[str]]" = None,
          config: Any = None, against: str = "last", samples: int = 2000, k: int = 5,
          paths: Optional[int] = None, steps: Optional[int] = None, seed: Optional[int] = None,
          progress: Optional[ProgressCallback] = None) -> Dict[str, Any]:
    """TAEP and sample quality for every snapshot of a training (README.md, "Real data and taep
    track"); returns the document ``taep track`` writes as track.json, parsed.

    Args:
        snapshots: the directory of ``train(..., snapshot_every=K, snapshot_dir=DIR)`` or of
            ``taep train --snapshot-every K``.
        holdout: held-out real samples (.npy or CSV) for precision, recall, density and coverage
            of each snapshot's ``samples`` reverse-process samples (k nearest neighbours).
        config: the run config of the TAEP paths (dict or path); None derives it from the
            manifest's training config.
        against: "last" (the last snapshot is s*) or "config" (the run config's reference).
        paths, steps, seed: override the run config's run.paths, schedule.steps, run.seed.
        progress: called after every stage of every snapshot, info having done and total
            (snapshots), step and stage.
    """
    run_json = "" if config is None else _config_text(config, None, {}, _taep.check_config)
    for name, value in (("samples", samples), ("k", k), ("paths", paths or 0), ("steps", steps or 0),
                        ("seed", seed or 0)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ConfigError(name, f"must be a non-negative integer (got {value!r})")
    with _Progress(progress, "snapshot") as callback:
        return json.loads(_taep.track(os.fspath(snapshots), run_json, against,
                                      "" if holdout is None else os.fspath(holdout), samples, k,
                                      paths or 0, steps or 0, seed or 0, callback))


def train(config: Any = None, *, overrides: Optional[Mapping[str, Any]] = None,
          progress: Optional[ProgressCallback] = None, snapshot_every: int = 0,
          snapshot_dir: "Optional[str | os.PathLike[str]]" = None,
          **dotted: Any) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """Train the learned-score MLP of a training config (README.md, "taep train").

    Returns (weights, summary):
        weights: the EMA model ``taep train --out`` writes, as float32 arrays by tensor name
            ("layers.<i>.weight" of shape [out, in], "layers.<i>.bias" of shape [out]).
        summary: the document ``taep train --result`` writes, parsed. Its "model" section holds
            the weight file's metadata: save_weights(path, weights, summary["model"]) writes the
            model.

    Args:
        config: a training config dict, a path to one, or None for the default.
        overrides, **dotted: as for run(), on the training config's keys ("optimizer.steps").
        progress: called after every log window, info having done and total (steps), seconds,
            loss and grad_norm.
        snapshot_every, snapshot_dir: with K >= 1, the EMA weights after every K-th step and the
            last go to snapshot_dir (a new or empty directory) with a manifest.json, as
            ``taep train --snapshot-every K --snapshot-dir DIR`` (docs/snapshots.md); ``taep
            track DIR`` reads them. The training's numbers are the same with or without.
    """
    text = _config_text(config, overrides, dotted, _taep.check_train_config)
    if not isinstance(snapshot_every, int) or isinstance(snapshot_every, bool) or snapshot_every < 0:
        raise ConfigError("snapshot_every", f"must be an integer >= 0 (got {snapshot_every!r})")
    directory = "" if snapshot_dir is None else os.fspath(snapshot_dir)
    with _Progress(progress, "step") as callback:
        weights, summary = _taep.train(text, callback, snapshot_every, directory)
    return weights, json.loads(summary)


# ---- weight files ----------------------------------------------------------------------------


def load_weights(path: "str | os.PathLike[str]") -> Tuple[Dict[str, Any], Dict[str, str]]:
    """Read a learned-score weight file (README.md, "Learned score models").

    Returns (weights, metadata): float32 arrays by tensor name (F16 and BF16 tensors converted),
    and the metadata strings ("taep.format", "dim", "embedding_dim", ...). The file must hold a
    valid MLP of the documented layout, else ConfigError naming the file.
    """
    return _taep.load_weights(os.fspath(path))


def _metadata_string(key: str, value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None:
        raise ConfigError(key, f"metadata values are strings or numbers (got {value!r})")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    return json.dumps(_check_json_value(value, key))


def save_weights(path: "str | os.PathLike[str]", weights: Mapping[str, Any], metadata: Mapping[str, Any]) -> None:
    """Write a learned-score weight file in the documented safetensors layout.

    Args:
        path: the file; written atomically (a temp file beside it, then renamed).
        weights: arrays by tensor name ("layers.<i>.weight", "layers.<i>.bias"), stored as F32.
        metadata: the model's metadata ("dim", "embedding_dim", "time_scale", "max_period",
            "parameterization", "activation"); numbers are written as their text and
            "taep.format" defaults to "mlp-score-v1". Other keys are kept as given.

    The model is checked as ``taep run`` would load it first (ConfigError naming the path), so no
    file taep cannot read is written. The file is readable by the safetensors package.
    """
    import numpy as np

    tensors = {}
    for name, array in weights.items():
        if not isinstance(name, str):
            raise TypeError(f"tensor names are strings, not {name!r}")
        tensors[name] = np.ascontiguousarray(array, dtype=np.float32)
    meta = {"taep.format": "mlp-score-v1"}
    for key, value in metadata.items():
        meta[str(key)] = _metadata_string(str(key), value)
    _taep.save_weights(os.fspath(path), tensors, meta)


# ---- the build -------------------------------------------------------------------------------


def built_with_cuda() -> bool:
    """Whether this build contains the CUDA backend."""
    return _taep.built_with_cuda()


def cuda_available() -> bool:
    """Whether the CUDA backend can run here (a CUDA build and a usable device)."""
    return _taep.cuda_available()[0]


def git_commit() -> str:
    """The source's 12-digit commit, "-dirty" with local changes, as ``taep --version`` prints it."""
    return _taep.git_commit()

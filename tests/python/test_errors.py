"""Bad input raises taep.ConfigError naming the field; other failures map to taep.Error."""

import pytest

import taep
from conftest import SMALL, TINY_TRAIN


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"schedule.steps": 0}, "schedule.steps"),
        ({"schedule.steps": 2.5}, "schedule.steps"),
        ({"run.paths": -1}, "run.paths"),
        ({"run.backend": "gpu"}, "run.backend"),
        ({"run.pathz": 1}, "run.pathz"),
        ({"model.collapse.eps": 2.0}, "model.collapse.eps"),
        ({"histogram.bins": 0}, "histogram.bins"),
        ({"histogram.range": [1, 0]}, "histogram.range"),
        ({"schedule.beta_min": float("nan")}, "schedule.beta_min"),
        ({"target.sigmas": [1.0]}, "target"),
        ({"schedule.steps.deeper": 1}, "schedule.steps"),
        ({"paths": 1}, "paths"),
    ],
)
def test_config_error_names_the_field(overrides, field):
    with pytest.raises(taep.ConfigError) as e:
        taep.run(SMALL, overrides=overrides)
    assert e.value.field.startswith(field), (e.value.field, e.value.message)
    assert str(e.value) == f"{e.value.field}: {e.value.message}"
    assert isinstance(e.value, taep.Error) and isinstance(e.value, ValueError)


def test_errors_from_each_call(tmp_path):
    with pytest.raises(taep.ConfigError) as e:
        taep.sample(SMALL, 0)
    assert e.value.field == "count"
    with pytest.raises(taep.ConfigError) as e:
        taep.detailed_ft(SMALL, min_count=0)
    assert e.value.field == "min_count"
    with pytest.raises(taep.ConfigError) as e:
        taep.train(TINY_TRAIN, optimizer__batch=0)
    assert e.value.field == "optimizer.batch"
    with pytest.raises(taep.ConfigError) as e:
        taep.run(tmp_path / "missing.json")
    assert e.value.field == "config" and "missing.json" in e.value.message
    (tmp_path / "dup.json").write_text('{"run": {"paths": 10, "paths": 20}}')
    with pytest.raises(taep.ConfigError) as e:  # the reader's rules hold with overrides too
        taep.run(tmp_path / "dup.json", run__seed=3)
    assert e.value.field == "run.paths"
    with pytest.raises(taep.ConfigError) as e:
        taep.run({"model": {"type": "mlp", "weights": str(tmp_path / "none.safetensors")}})
    assert e.value.field == "model.weights"


def test_backend_unavailable():
    if taep.cuda_available():
        pytest.skip("CUDA can run here")
    with pytest.raises(taep.BackendUnavailable):
        taep.run(SMALL, run__backend="cuda")


def test_argument_errors():
    with pytest.raises(TypeError, match="run__paths"):
        taep.run(SMALL, paths=10)
    with pytest.raises(TypeError):
        taep.run(42)
    with pytest.raises(TypeError):
        taep.run(SMALL, overrides=[("run.paths", 1)])


def test_config_error_pickles():
    import pickle

    e = pickle.loads(pickle.dumps(taep.ConfigError("run.paths", "too many")))
    assert (e.field, e.message) == ("run.paths", "too many")


def test_training_divergence_raises_with_step_and_loss():
    with pytest.raises(taep.TrainingDiverged) as e:
        taep.train(TINY_TRAIN, optimizer__steps=20, optimizer__lr=1e30, run__log_every=5)
    assert isinstance(e.value, taep.Error)
    assert e.value.step in (5, 10, 15, 20)
    assert e.value.loss != e.value.loss  # nan
    assert str(e.value).startswith("training diverged: steps ")


def test_all_paths_non_finite_raises_unless_allowed(tmp_path):
    weights, summary = taep.train(TINY_TRAIN, optimizer__steps=10)
    huge = {k: (v * 1e30 if k.endswith(".weight") else v) for k, v in weights.items()}
    path = tmp_path / "huge.safetensors"
    taep.save_weights(path, huge, summary["model"])
    config = {"model": {"type": "mlp", "weights": str(path)}, "run": {"paths": 300},
              "schedule": {"steps": 10}}
    with pytest.raises(taep.NonFiniteResult, match="all 300 of 300 paths are non-finite"):
        taep.run(config)
    result = taep.run(config, run__allow_nonfinite=True)
    assert result["taep"]["mean"] is None and result["taep"]["count"] == 0
    assert result["warnings"][0].startswith("all 300 of 300 paths")

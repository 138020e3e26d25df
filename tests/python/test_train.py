"""taep.train and the weight files: the same model as `taep train`, saved and loaded losslessly."""

import numpy as np
import pytest

import taep
from conftest import FIXTURES, MLP, TINY_TRAIN, statistics, write_json


@pytest.fixture(scope="module")
def trained():
    return taep.train(TINY_TRAIN)


def test_weights_and_summary(trained):
    weights, summary = trained
    assert sorted(weights) == ["layers.0.bias", "layers.0.weight", "layers.1.bias", "layers.1.weight",
                               "layers.2.bias", "layers.2.weight"]
    assert weights["layers.0.weight"].shape == (32, 2 + 16)
    assert weights["layers.2.weight"].shape == (2, 32)
    assert all(a.dtype == np.float32 and not a.flags.owndata for a in weights.values())
    assert summary["training"]["steps"] == 200
    assert summary["model"]["hidden"] == [32, 32]
    assert len(summary["log"]) >= 1


def test_same_model_as_cli(cli, tmp_path, trained):
    weights, summary = trained
    out, result = tmp_path / "m.safetensors", tmp_path / "r.json"
    cli("train", write_json(tmp_path / "t.json", TINY_TRAIN), "--quiet", "--out", out, "--result", result)
    from_cli, metadata = taep.load_weights(out)
    assert sorted(from_cli) == sorted(weights)
    for name in weights:
        assert np.array_equal(from_cli[name], weights[name]), name
    assert metadata["taep.format"] == "mlp-score-v1" and metadata["dim"] == "2"
    import json

    assert statistics(json.loads(result.read_text()))["training"] == summary["training"]


def test_save_load_roundtrip_and_run(tmp_path, trained):
    weights, summary = trained
    path = tmp_path / "model.safetensors"
    taep.save_weights(path, weights, summary["model"])
    loaded, metadata = taep.load_weights(path)
    assert sorted(loaded) == sorted(weights)
    for name in weights:
        assert np.array_equal(loaded[name], weights[name])
    assert metadata["dim"] == "2" and metadata["parameterization"] == "score"
    assert float(metadata["time_scale"]) == summary["model"]["time_scale"]
    result = taep.run(MLP, model__weights=str(path), run__paths=500)
    assert result["taep"]["count"] + result["taep"]["nonfinite"] == 500


def test_fixture_file_roundtrip(tmp_path):
    weights, metadata = taep.load_weights(FIXTURES / "ring8_trained.safetensors")
    path = tmp_path / "copy.safetensors"
    taep.save_weights(path, weights, metadata)
    original = taep.run(MLP, run__paths=1000)
    copied = taep.run(MLP, model__weights=str(path), run__paths=1000)
    assert copied["taep"] == original["taep"]


def test_bf16_file_loads_as_float32():
    weights, metadata = taep.load_weights(FIXTURES / "mlp_d2_eps_bf16.safetensors")
    assert metadata["parameterization"] == "eps"
    assert all(a.dtype == np.float32 for a in weights.values())


def test_readable_by_safetensors_package(tmp_path, trained):
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    weights, summary = trained
    path = tmp_path / "model.safetensors"
    taep.save_weights(path, weights, summary["model"])
    read = safetensors_numpy.load_file(str(path))
    assert sorted(read) == sorted(weights)
    for name in weights:
        assert read[name].dtype == np.float32 and np.array_equal(read[name], weights[name])
    # and the other way: a file the safetensors package writes is read by taep
    other = tmp_path / "other.safetensors"
    meta = {k: str(v) for k, v in taep.load_weights(path)[1].items()}
    safetensors_numpy.save_file(weights, str(other), metadata=meta)
    back, _ = taep.load_weights(other)
    assert all(np.array_equal(back[n], weights[n]) for n in weights)


def test_bad_weights_are_refused(tmp_path, trained):
    weights, summary = trained
    path = tmp_path / "bad.safetensors"
    broken = dict(weights)
    del broken["layers.1.bias"]
    with pytest.raises(taep.ConfigError) as e:
        taep.save_weights(path, broken, summary["model"])
    assert e.value.field == str(path) and "layers.1.bias" in e.value.message
    assert not path.exists()
    with pytest.raises(taep.ConfigError) as e:
        taep.save_weights(path, weights, dict(summary["model"], dim=3))
    assert not path.exists()
    with pytest.raises(taep.ConfigError) as e:
        taep.load_weights(tmp_path / "missing.safetensors")
    assert "missing.safetensors" in e.value.field


def test_snapshots_and_a_data_file_target(trained, tmp_path):
    """snapshot_every writes the manifest `taep track` reads; the last snapshot is the model; a
    run on a .npy data-file target takes the same path as any other config."""
    import json

    weights, _ = trained
    snaps = tmp_path / "snaps"
    again, _ = taep.train(TINY_TRAIN, snapshot_every=100, snapshot_dir=snaps)
    for name in weights:
        assert np.array_equal(again[name], weights[name]), name  # snapshots change nothing
    manifest = json.loads((snaps / "manifest.json").read_text())
    assert [s["step"] for s in manifest["snapshots"]] == [100, 200]
    last, _ = taep.load_weights(snaps / manifest["snapshots"][-1]["file"])
    for name in weights:
        assert np.array_equal(last[name], weights[name]), name
    with pytest.raises(taep.ConfigError) as e:
        taep.train(TINY_TRAIN, snapshot_every=-1)
    assert e.value.field == "snapshot_every"

    rows = np.random.default_rng(0).normal(size=(50, 2)).astype(np.float32)
    np.save(tmp_path / "rows.npy", rows)
    config = {"target": {"samples": str(tmp_path / "rows.npy")},
              "model": {"collapse": {"modes": 1, "eps": 0.1}},
              "run": {"paths": 2000}, "schedule": {"steps": 50}}
    r = taep.run(config)
    assert r["config"]["reference"]["type"] == "empirical"
    assert r["taep"]["count"] == 2000 and np.isfinite(r["taep"]["mean"])
    bad = dict(config, target={"samples": str(tmp_path / "missing.npy")})
    with pytest.raises(taep.ConfigError) as e:
        taep.run(bad)
    assert e.value.field == "target.samples"


def test_track_along_the_snapshots(tmp_path):
    """taep.track is `taep track`: a row per snapshot, the last the reference, coverage where a
    held-out set is given; bad arguments name themselves."""
    snaps = tmp_path / "snaps"
    taep.train(TINY_TRAIN, snapshot_every=100, snapshot_dir=snaps)
    holdout = taep.sample({"schedule": {"steps": 50}}, 200)
    np.save(tmp_path / "holdout.npy", holdout)
    doc = taep.track(snaps, holdout=tmp_path / "holdout.npy", samples=200, paths=300, steps=30)
    rows = doc["rows"]
    assert [r["step"] for r in rows] == [100, 200]
    assert rows[-1]["is_reference"] and rows[-1]["taep"] is None
    assert rows[0]["taep"]["count"] == 300 and 0 <= rows[0]["coverage"]["coverage"] <= 1
    assert doc["reference"].startswith("snapshot ")
    with pytest.raises(taep.ConfigError) as e:
        taep.track(snaps, against="nowhere")
    assert e.value.field == "against"
    with pytest.raises(taep.ConfigError) as e:
        taep.track(tmp_path / "none")
    assert e.value.field == "snapshots"

"""taep.paths: the per-path values the run reduces (engine.hpp simulate_paths), as numpy arrays."""

import json
import math

import numpy as np
import pytest

import taep
from conftest import MLP, SMALL


@pytest.fixture(scope="module")
def small():
    return taep.paths(SMALL), taep.run(SMALL)


def test_keys_types_and_no_copy(small):
    values, _ = small
    assert set(values) == {"S", "R", "S_minus_R", "x0", "xN"}
    for key in ("S", "R", "S_minus_R"):
        assert values[key].dtype == np.float64 and values[key].shape == (20000,)
    for key in ("x0", "xN"):
        assert values[key].dtype == np.float32 and values[key].shape == (20000, 2)
    for a in values.values():
        assert not a.flags.owndata  # a view of taep's own buffer
    assert np.array_equal(values["S_minus_R"], values["S"] - values["R"])


def test_start_and_end_points(small):
    values, _ = small
    x0, xn = values["x0"], values["xN"]
    # x0 ~ p(x, t_min): the ring8 target (means at radius 4, sd 0.25) barely diffused.
    radius = np.linalg.norm(x0, axis=1)
    assert abs(radius.mean() - 4.0) < 0.02 and radius.std() < 0.3
    # xN ~ N(0, I) (abar(t_max) = exp(-10.05)), up to Euler's own stationary variance at the last
    # steps, beta h / (1 - (1 - beta h / 2)^2) = 1.053 for beta = 20, h = 0.01: sd 1.026.
    assert np.abs(xn.mean(axis=0)).max() < 0.03
    assert np.abs(xn.std(axis=0) - 1.026).max() < 0.03
    # The start depends only on the seed, the target and the path: not on the steps or the model.
    fewer = taep.paths(SMALL, 0, 1000, schedule__steps=10)
    assert np.array_equal(fewer["x0"], x0[:1000])
    assert not np.array_equal(fewer["xN"], xn[:1000])
    learned = taep.paths(MLP, 0, 1000, run__seed=SMALL["run"]["seed"])
    assert np.array_equal(learned["x0"], x0[:1000])
    # ... and xN only on x0 and the noise: the learned model ends where the exact one does.
    exact = taep.paths(SMALL, 0, 1000, schedule__steps=MLP["schedule"]["steps"])
    assert np.abs(learned["xN"] - exact["xN"]).max() < 1e-5


def test_points_equal_the_clis_per_path_archive(cli, tmp_path):
    cfg = {**SMALL, "run": {**SMALL["run"], "paths": 5000}}
    (tmp_path / "c.json").write_text(json.dumps(cfg))
    cli("run", tmp_path / "c.json", "-q", "--out", tmp_path / "r.json", "--per-path",
        tmp_path / "pp.npz")
    archive = np.load(tmp_path / "pp.npz")
    mine = taep.paths(cfg)
    assert sorted(archive.files) == sorted(mine)
    for key in mine:
        assert archive[key].dtype == mine[key].dtype and np.array_equal(archive[key], mine[key])


def test_statistics_are_the_runs(small):
    # The run merges per-path moments block by block (docs/architecture.md principle 9), numpy sums
    # pairwise: the same numbers up to rounding in the last digits.
    values, result = small
    s, r = values["S"], values["R"]
    assert np.isfinite(s).all() and result["taep"]["nonfinite"] == 0
    assert result["taep"]["count"] == s.size
    assert math.isclose(s.mean(), result["taep"]["mean"], rel_tol=1e-12)
    assert math.isclose(s.var(ddof=1), result["taep"]["variance"], rel_tol=1e-10)
    ref = result["reference"]
    assert math.isclose(r.mean(), ref["mean"], rel_tol=1e-12)
    assert math.isclose(r.var(ddof=1), ref["variance"], rel_tol=1e-10)
    assert math.isclose(np.sqrt(np.mean((s - r) ** 2)), ref["rms_path_error"], rel_tol=1e-10)
    w = np.exp(-s)
    assert math.isclose(w.mean(), result["ift"]["estimate"], rel_tol=1e-10)
    counts, _ = np.histogram(s, bins=np.asarray(result["histogram"]["edges"]))
    # Only a value within rounding of an edge could land on the other side of it.
    assert np.abs(counts - np.asarray(result["histogram"]["counts"])).sum() <= 2


def test_a_path_depends_only_on_its_index(small):
    values, _ = small
    part = taep.paths(SMALL, 4000, 300)
    assert np.array_equal(part["S"], values["S"][4000:4300])
    assert np.array_equal(part["R"], values["R"][4000:4300])
    chunked = taep.paths(SMALL, 100, 9000, run__chunk_paths=4096)
    assert np.array_equal(chunked["S"], values["S"][100:9100])
    rest = taep.paths(SMALL, first=19990)
    assert np.array_equal(rest["S"], values["S"][19990:])


def test_beyond_run_paths_with_count():
    # count given: any paths, also past run.paths (the run's paths are a prefix of one sequence).
    longer = taep.paths(SMALL, 0, 20010, run__paths=30000)
    assert longer["S"].shape == (20010,)
    again = taep.paths(SMALL, 20000, 10)
    assert np.array_equal(again["S"], longer["S"][20000:])


def test_learned_model_has_no_reference():
    values = taep.paths(MLP, 0, 500)
    assert set(values) == {"S", "x0", "xN"}
    result = taep.run(MLP, run__paths=500)
    assert math.isclose(values["S"].mean(), result["taep"]["mean"], rel_tol=1e-12)


def test_bad_ranges():
    with pytest.raises(taep.ConfigError) as e:
        taep.paths(SMALL, first=20000)
    assert e.value.field == "first"
    with pytest.raises(taep.ConfigError) as e:
        taep.paths(SMALL, 0, 0)
    assert e.value.field == "count"
    with pytest.raises(taep.ConfigError) as e:
        taep.paths(SMALL, 2**40 - 5, 10)
    assert e.value.field == "count"

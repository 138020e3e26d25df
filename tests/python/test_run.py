"""taep.run gives the document `taep run --out` writes, bitwise in every statistic."""

import json

import pytest

import taep
from conftest import MLP, SMALL, statistics, write_json


def cli_run(cli, tmp_path, config, *flags):
    out = tmp_path / "cli.json"
    if config is None:
        cli("run", "--quiet", "--out", out, *flags)
    else:
        cli("run", write_json(tmp_path / "config.json", config), "--quiet", "--out", out, *flags)
    return json.loads(out.read_text())


def test_dict_config_equals_cli(cli, tmp_path):
    expected = cli_run(cli, tmp_path, SMALL)
    got = taep.run(SMALL)
    assert statistics(got) == statistics(expected)
    assert got["taep"]["count"] == 20000
    assert list(got) == list(expected)  # the same sections, in the documented order


def test_path_config_equals_cli(cli, tmp_path):
    path = write_json(tmp_path / "small.json", SMALL)
    assert statistics(taep.run(path)) == statistics(cli_run(cli, tmp_path, SMALL))
    assert statistics(taep.run(str(path))) == statistics(taep.run(SMALL))


def test_overrides_equal_cli_flags(cli, tmp_path):
    expected = cli_run(cli, tmp_path, SMALL, "--paths", 9000, "--seed", 11, "--steps", 60)
    path = write_json(tmp_path / "small.json", SMALL)
    by_mapping = taep.run(path, overrides={"run.paths": 9e3, "run.seed": 11, "schedule.steps": 60})
    by_keywords = taep.run(SMALL, run__paths=9000, run__seed=11, schedule__steps=60)
    assert statistics(by_mapping) == statistics(expected)
    assert statistics(by_keywords) == statistics(expected)
    assert by_keywords["config"]["run"]["paths"] == 9000


def test_override_of_a_nested_key(cli, tmp_path):
    changed = dict(SMALL, model={"type": "exact", "collapse": {"modes": 2, "eps": 0.05}})
    expected = cli_run(cli, tmp_path, changed)
    got = taep.run(SMALL, overrides={"model.collapse.modes": 2, "model.collapse.eps": 0.05})
    assert statistics(got) == statistics(expected)


def test_default_config_equals_cli_default(cli, tmp_path):
    expected = cli_run(cli, tmp_path, None, "--paths", 5000, "--steps", 40, "--backend", "cpu")
    got = taep.run(None, run__paths=5000, schedule__steps=40, run__backend="cpu")
    assert statistics(got) == statistics(expected)


def test_mlp_model_equals_cli(cli, tmp_path):
    assert statistics(taep.run(MLP)) == statistics(cli_run(cli, tmp_path, MLP))


def test_dict_is_not_changed_by_overrides():
    config = json.loads(json.dumps(SMALL))
    taep.run(config, run__paths=5000)
    assert config == SMALL


def test_detailed_ft_equals_cli(cli, tmp_path):
    config = dict(SMALL, run=dict(SMALL["run"], paths=8000))
    out = tmp_path / "dft.json"
    cli("dft", write_json(tmp_path / "config.json", config), "--quiet", "--out", out, "--min-count", 10)
    got = taep.detailed_ft(config, min_count=10)
    assert statistics(got) == statistics(json.loads(out.read_text()))
    assert set(got["fit"]) >= {"slope", "intercept", "bins_used"}


def test_progress_is_called_per_chunk():
    seen = []
    config = dict(SMALL, run=dict(SMALL["run"], chunk_paths=4096))
    taep.run(config, progress=seen.append)
    assert len(seen) >= 2
    assert seen[-1]["done"] == seen[-1]["total"] == 20000
    assert all(set(p) >= {"done", "total", "seconds", "path_steps_per_second"} for p in seen)
    assert [p["done"] for p in seen] == sorted(p["done"] for p in seen)


def test_exception_in_progress_stops_the_run():
    def fail(_):
        raise ValueError("stop here")

    with pytest.raises(ValueError, match="stop here"):
        taep.run(SMALL, progress=fail)


def test_build_info():
    assert taep.__version__.count(".") == 2
    assert len(taep.git_commit()) >= 7
    assert isinstance(taep.built_with_cuda(), bool)
    assert isinstance(taep.cuda_available(), bool)
    assert taep.cuda_available() <= taep.built_with_cuda()


def test_progress_of_every_call():
    from conftest import TINY_TRAIN

    config = dict(SMALL, run=dict(SMALL["run"], paths=8192, chunk_paths=4096))
    for call, total in [
        (lambda p: taep.paths(config, progress=p), 8192),
        (lambda p: taep.sample(config, 5000, progress=p), 5000),
        (lambda p: taep.detailed_ft(config, progress=p), None),
        (lambda p: taep.train(TINY_TRAIN, optimizer__steps=100, run__log_every=50, progress=p), 100),
    ]:
        seen = []
        call(seen.append)
        assert seen and seen[-1]["done"] == seen[-1]["total"]
        if total is not None:
            assert seen[-1]["total"] == total
        assert all(isinstance(p["seconds"], float) for p in seen)


def test_tqdm_bar_without_a_callback_on_a_terminal(monkeypatch):
    """No progress callback, tqdm importable and stderr a terminal: a bar that reaches the total
    and is closed; with a callback, or off a terminal, no bar."""
    import sys
    import types

    bars = []

    class FakeBar:
        def __init__(self, total=None, unit=None, file=None, leave=None):
            self.total, self.unit, self.n, self.closed = total, unit, 0, False
            bars.append(self)

        def update(self, k):
            self.n += k

        def close(self):
            self.closed = True

    monkeypatch.setitem(sys.modules, "tqdm", types.SimpleNamespace(tqdm=FakeBar))
    config = dict(SMALL, run=dict(SMALL["run"], chunk_paths=4096))
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    taep.run(config)
    assert len(bars) == 1 and bars[0].n == bars[0].total == 20000 and bars[0].closed
    assert bars[0].unit == "path"
    taep.run(config, progress=lambda info: None)
    assert len(bars) == 1, "a callback replaces the bar"
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    taep.run(config)
    assert len(bars) == 1, "no bar off a terminal"

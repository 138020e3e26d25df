"""taep.sample: the reverse process's samples, as `taep sample` writes them."""

import numpy as np

import taep
from conftest import SMALL, write_json


def test_shape_determinism_and_cli(cli, tmp_path):
    x = taep.sample(SMALL, 300)
    assert x.shape == (300, 2) and x.dtype == np.float32
    assert not x.flags.owndata
    assert np.array_equal(x, taep.sample(SMALL, 300))
    assert np.array_equal(taep.sample(SMALL, 120), x[:120])  # sample i is reverse path i
    assert not np.array_equal(taep.sample(SMALL, 300, run__seed=6), x)
    out = tmp_path / "s.csv"
    cli("sample", write_json(tmp_path / "c.json", SMALL), "--count", 300, "--quiet", "--out", out)
    from_cli = np.loadtxt(out, delimiter=",", skiprows=1, dtype=np.float64).astype(np.float32)
    assert np.array_equal(from_cli, x)  # %.9g round-trips a float


def test_samples_sit_on_the_ring():
    x = taep.sample(SMALL, 2000).astype(np.float64)
    radius = np.hypot(x[:, 0], x[:, 1])
    assert abs(np.median(radius) - 4.0) < 0.2

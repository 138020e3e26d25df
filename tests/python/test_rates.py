"""taep.rates: the entropy rates and the NLL bound, the document `taep rates` writes."""

import json
import math

import pytest

import taep
from conftest import write_json

# Data N(0, 1), its exact score, VE with g(t) = 10^t: int Sdot_G = ln(v1 / v0) / 2 in closed form.
VE_GAUSS = {
    "target": {"weights": [1], "means": [[0.0]], "sigmas": [1.0]},
    "model": {"mixture": {"weights": [1], "means": [[0.0]], "sigmas": [1.0]}},
    "schedule": {"type": "ve", "sigma": 10, "t_min": 1e-6},
    "run": {"backend": "cpu", "threads": 2},
}


def test_ve_gaussian_matches_the_closed_form_and_the_cli(cli, tmp_path):
    r = taep.rates(VE_GAUSS, grid=33, draws=20000)
    assert len(r["grid"]) == 33
    n1 = 99 / (2 * math.log(10))
    g = r["integrals"]["rate_G"]
    assert abs(g["mean"] - 0.5 * math.log(1 + n1)) < 4 * g["stderr"] + 5e-4
    assert abs(r["entropies"]["prior_entropy"] - 2.95291) < 1e-5
    assert r["config"]["schedule"]["type"] == "ve"
    out = tmp_path / "r.json"
    cli("rates", write_json(tmp_path / "c.json", VE_GAUSS), "--grid", 33, "--draws", 20000, "--quiet",
        "--out", out)
    from_cli = json.loads(out.read_text())
    assert from_cli["integrals"] == r["integrals"]  # the same draws, bit for bit


def test_bad_options_name_the_field():
    with pytest.raises(taep.ConfigError) as e:
        taep.rates(VE_GAUSS, grid=2)
    assert e.value.field == "grid"
    with pytest.raises(taep.ConfigError) as e:
        taep.rates(VE_GAUSS, draws=-1)
    assert e.value.field == "draws"
    with pytest.raises(taep.ConfigError) as e:
        taep.rates(VE_GAUSS, schedule__sigma=0.5)
    assert e.value.field == "schedule.sigma"

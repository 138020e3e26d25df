"""taep.torch.ScoreModule: a torch network as the score model. The PyTorch twin of taep's MLP
(tools/taep_mlp.py) with the weights of tests/fixtures/ring8_trained.safetensors gives the native
MLP's per-path S, with the exact divergence and with Hutchinson probes (the same probes: taep draws
them from its own stream for both). Skipped without torch (Debian: python3-torch); then
test_torch_elsewhere.py runs this module under an interpreter that has it."""

import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import taep  # noqa: E402
import taep.torch  # noqa: E402
from conftest import FIXTURES, MLP  # noqa: E402

sys.path.insert(0, str(FIXTURES.parents[1] / "tools"))
from taep_mlp import load_safetensors  # noqa: E402

# Both compute the network in float32 with different summation orders (OpenBLAS or taep's vector
# kernels against torch's), and torch gets t rounded to float32 for its time embedding: the score
# differs by ~1e-6 relative per step; over 40 steps S differed by at most 9e-6 (3000 paths, exact
# and Hutchinson), against a spread of S of 0.4.
PATH_TOL = 2e-4


@pytest.fixture(scope="module")
def net():
    return load_safetensors(FIXTURES / "ring8_trained.safetensors").eval()


def test_exact_divergence_matches_the_native_mlp(net):
    native = taep.paths(MLP, 0, 500)["S"]
    model = taep.torch.ScoreModule(net)
    mine = taep.paths(MLP, 0, 500, score=model, batch=256)["S"]
    err = np.abs(mine - native)
    assert err.max() < PATH_TOL, err.max()
    doc = taep.run(MLP, score=model, run__paths=500)
    assert doc["config"]["model"]["type"] == "callback"
    assert abs(doc["taep"]["mean"] - native.mean()) < PATH_TOL


def test_hutchinson_uses_taeps_probes(net):
    native = taep.paths(MLP, 0, 300, model__divergence="hutchinson", model__probes=2)["S"]
    model = taep.torch.ScoreModule(net, divergence="hutchinson", probes=2)
    mine = taep.paths(MLP, 0, 300, score=model)["S"]
    assert np.abs(mine - native).max() < PATH_TOL
    exact = taep.paths(MLP, 0, 300)["S"]
    assert np.abs(exact - native).max() > 10 * PATH_TOL  # the probes matter, and are the same


def test_a_module_as_the_reference(net):
    model = taep.torch.ScoreModule(net)
    same = taep.paths(MLP, 0, 50, score=model, reference=model)["S"]
    assert np.array_equal(same, np.zeros(50))  # s_theta = s*: every increment is exactly zero
    with pytest.raises(taep.ConfigError) as e:
        taep.paths(MLP, 0, 10, score=model,
                   reference=taep.torch.ScoreModule(net, divergence="hutchinson"))
    assert e.value.field == "reference"


def test_bad_arguments():
    for kw, field in [({"divergence": "trace"}, "divergence"), ({"probes": 0}, "probes"),
                      ({"parameterization": "x0"}, "parameterization")]:
        with pytest.raises(taep.ConfigError) as e:
            taep.torch.ScoreModule(torch.nn.Linear(2, 2), **kw)
        assert e.value.field == field
    with pytest.raises(taep.ConfigError) as e:
        taep.paths(MLP, 0, 10, score=taep.torch.ScoreModule(torch.nn.Linear(2, 2)),
                   divergence=lambda x, t: np.zeros(len(x)))
    assert e.value.field == "divergence"
    with pytest.raises(taep.ConfigError) as e:
        taep.paths(MLP, 0, 10, score=taep.torch.ScoreModule(torch.nn.Linear(2, 2)),
                   parameterization="eps")
    assert e.value.field == "parameterization"

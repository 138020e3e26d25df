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


def test_torch_tensors_pass_both_ways_through_dlpack():
    from taep import _taep
    import warnings

    view = _taep._array_view(1, 0)  # what a function gets on the host: a read-only numpy view
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns that the view is not writable
        t = torch.from_numpy(view)
    assert t.dtype == torch.float32 and t.data_ptr() == view.ctypes.data  # shared, no copy
    want = np.arange(6, dtype=np.float32).reshape(2, 3)
    for value in [torch.arange(6.0).reshape(2, 3),
                  torch.arange(6.0, dtype=torch.float64).reshape(2, 3)]:
        assert np.array_equal(_taep._accept_array(value, [2, 3]), want)
    transposed = torch.arange(6.0).reshape(3, 2).t()  # column-major strides
    assert np.array_equal(_taep._accept_array(transposed, [2, 3]), transposed.numpy())
    strided = torch.zeros(2, 6, dtype=torch.float64)
    strided[:, 1::2] = torch.arange(6.0).reshape(2, 3)
    assert np.array_equal(_taep._accept_array(strided[:, 1::2], [2, 3]), want)  # read in place
    with pytest.raises(taep.ConfigError) as e:
        _taep._accept_array(torch.zeros(2, 3, dtype=torch.int64), [2, 3])
    assert "got int64" in e.value.message


def test_a_function_returning_torch_tensors(net):
    """score and divergence as plain functions of torch CPU tensors: the same S as numpy ones."""
    def score(x, t):
        return -torch.from_numpy(np.array(x))

    def div(x, t):
        return torch.full((len(x),), -2.0, dtype=torch.float64)

    a = taep.paths(MLP, 0, 200, score=score, divergence=div)["S"]
    b = taep.paths(MLP, 0, 200, score=lambda x, t: -np.array(x),
                   divergence=lambda x, t: np.full(len(x), -2.0))["S"]
    assert np.array_equal(a, b)


def test_sample_with_a_module(net):
    """The reverse process with the torch twin gives the native MLP's samples (float rounding)."""
    native = taep.sample(MLP, 500)
    mine = taep.sample(MLP, 500, score=taep.torch.ScoreModule(net), batch=250)
    assert np.median(np.abs(mine - native)) < 1e-4 and np.abs(mine - native).max() < 1e-2

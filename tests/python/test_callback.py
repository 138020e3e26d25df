"""Score models as functions (taep.run / taep.paths with score=, docs/python.md): a numpy function
that returns the exact mixture score of the config's model gives the built-in exact model's paths."""

import math
import signal
import threading

import numpy as np
import pytest

import taep
from conftest import SMALL

D = 2


def ring8():
    k = np.arange(8)
    return 4.0 * np.stack([np.cos(2 * np.pi * k / 8), np.sin(2 * np.pi * k / 8)], axis=1)


def collapse_weights(modes, eps, K=8):
    w = np.full(K, (1.0 - modes * eps) / (K - modes))
    w[:modes] = eps
    return w


class MixtureScore:
    """The score and divergence of q_t, the VP diffusion of the mixture q = sum_k w_k N(m_k,
    sigma^2 I) (docs/physics.md section 2), in float64: q_t's components are N(sqrt(abar) m_k,
    (abar sigma^2 + 1 - abar) I), abar(t) = exp(-(beta_min t + (beta_max - beta_min) t^2 / 2))."""

    def __init__(self, weights, means, sigma=0.25, beta_min=0.1, beta_max=20.0, eps=False):
        self.log_w = np.log(np.asarray(weights) / np.sum(weights))
        self.means = np.asarray(means, dtype=np.float64)
        self.sigma2 = sigma**2
        self.beta = (beta_min, beta_max)
        self.eps = eps
        self.calls = 0

    def abar(self, t):
        b0, b1 = self.beta
        return math.exp(-(b0 * t + 0.5 * (b1 - b0) * t * t))

    def parts(self, x, t):
        a = self.abar(t)
        v = a * self.sigma2 + 1.0 - a
        g = (math.sqrt(a) * self.means[None, :, :] - x.astype(np.float64)[:, None, :]) / v  # (n, K, d)
        logp = self.log_w[None, :] - 0.5 * v * np.sum(g * g, axis=2)
        r = np.exp(logp - logp.max(axis=1, keepdims=True))
        r /= r.sum(axis=1, keepdims=True)
        s = np.einsum("nk,nkd->nd", r, g)
        # trace of the Hessian of log q_t: sum_k r_k (|g_k|^2 - d / v) - |s|^2
        div = np.sum(r * (np.sum(g * g, axis=2) - D / v), axis=1) - np.sum(s * s, axis=1)
        f = -math.sqrt(1.0 - a) if self.eps else 1.0
        return f * s, f * div

    def score(self, x, t):
        self.calls += 1
        assert x.dtype == np.float32 and x.shape[1] == D and not x.flags.writeable
        return self.parts(x, t)[0]

    def divergence(self, x, t):
        return self.parts(x, t)[1]


def model_of(config, **kw):
    c = config["model"]["collapse"]
    return MixtureScore(collapse_weights(c["modes"], c["eps"]), ring8(), **kw)


# Per path, the built-in model rounds its score to float inside every increment while the numpy
# function rounds the float64 score once; over 100 steps the two S differ by a few 1e-6 (measured
# worst 1e-5 of 20000 paths); 2e-4 leaves room and is still far below the spread of S (~1).
PATH_TOL = 2e-4


@pytest.fixture(scope="module")
def built_in():
    return taep.paths(SMALL), taep.run(SMALL)


def test_exact_score_function_gives_the_built_in_paths(built_in):
    values, result = built_in
    m = model_of(SMALL)
    mine = taep.paths(SMALL, score=m.score, divergence=m.divergence)
    assert set(mine) == {"S", "x0", "xN"}
    assert mine["S"].dtype == np.float64 and mine["S"].shape == (20000,)
    # The same random numbers: the same start, and (the step does not use the score) the same end,
    # to the rounding of the built-in model's vector loop.
    assert np.abs(mine["x0"] - values["x0"]).max() < 2e-6
    assert np.abs(mine["xN"] - values["xN"]).max() < 1e-5
    err = np.abs(mine["S"] - values["S"])
    assert err.max() < PATH_TOL and err.max() > 0
    assert m.calls == 5 * SMALL["schedule"]["steps"]  # batches of 4096 over 20000 paths

    doc = taep.run(SMALL, score=m.score, divergence=m.divergence)
    assert doc["config"]["model"] == {"type": "callback", "divergence": "exact", "probes": 1,
                                      "probe_distribution": "rademacher"}
    assert doc["reference"] is None
    assert doc["taep"]["count"] == 20000
    assert math.isclose(doc["taep"]["mean"], result["taep"]["mean"], abs_tol=PATH_TOL)
    assert math.isclose(doc["taep"]["variance"], result["taep"]["variance"], rel_tol=1e-3)
    assert math.isclose(doc["ift"]["estimate"], result["ift"]["estimate"], rel_tol=1e-3)
    assert math.isclose(doc["taep"]["mean"], mine["S"].mean(), rel_tol=1e-12)


def test_batch_and_chunk_do_not_change_a_path():
    m = model_of(SMALL)
    a = taep.paths(SMALL, 0, 9000, score=m.score, divergence=m.divergence)
    b = taep.paths(SMALL, 100, 8900, score=m.score, divergence=m.divergence, batch=1000,
                   run__chunk_paths=4096)
    assert np.array_equal(a["S"][100:], b["S"])


def test_eps_parameterization():
    m, e = model_of(SMALL), model_of(SMALL, eps=True)
    a = taep.paths(SMALL, 0, 3000, score=m.score, divergence=m.divergence)
    b = taep.paths(SMALL, 0, 3000, score=e.score, divergence=e.divergence, parameterization="eps")
    assert np.abs(a["S"] - b["S"]).max() < PATH_TOL


def test_reference_function_stands_in_for_the_targets_score():
    m = model_of(SMALL)
    target = MixtureScore(np.ones(8), ring8())
    plain = taep.paths(SMALL, 0, 2000, score=m.score, divergence=m.divergence)["S"]
    mine = taep.paths(SMALL, 0, 2000, score=m.score, divergence=m.divergence,
                      reference=target.score, reference_divergence=target.divergence)["S"]
    assert 0 < np.abs(mine - plain).max() < PATH_TOL
    # the model as its own reference: every TAEP increment is exactly zero
    same = taep.paths(SMALL, 0, 100, score=m.score, divergence=m.divergence, reference=m.score,
                      reference_divergence=m.divergence)["S"]
    assert np.array_equal(same, np.zeros(100))
    for field, kw in [("reference_divergence", dict(reference=m.score)),
                      ("reference_divergence", dict(reference_divergence=m.divergence)),
                      ("reference", dict(reference=lambda x, t: x[:, :1], reference_divergence=m.divergence))]:
        with pytest.raises(taep.ConfigError) as e:
            taep.paths(SMALL, 0, 10, score=m.score, divergence=m.divergence, **kw)
        assert e.value.field == field
    with pytest.raises(taep.ConfigError) as e:
        taep.paths(SMALL, 0, 10, reference=m.score, reference_divergence=m.divergence)
    assert e.value.field == "reference"


def test_bad_outputs_raise_config_error():
    m = model_of(SMALL)
    cases = [
        ("score", dict(score=lambda x, t: m.score(x, t)[:, :1], divergence=m.divergence)),
        ("score", dict(score=lambda x, t: m.score(x, t)[:-1], divergence=m.divergence)),
        ("score", dict(score=lambda x, t: m.score(x, t).astype(np.int32), divergence=m.divergence)),
        ("score", dict(score=lambda x, t: np.full(x.shape, np.nan), divergence=m.divergence)),
        ("divergence", dict(score=m.score, divergence=lambda x, t: np.zeros((len(x), 1)))),
        ("divergence", dict(score=m.score)),
        ("divergence", dict(divergence=m.divergence)),
        ("parameterization", dict(score=m.score, divergence=m.divergence, parameterization="x0")),
        ("batch", dict(score=m.score, divergence=m.divergence, batch=0)),
    ]
    for field, kw in cases:
        with pytest.raises(taep.ConfigError) as e:
            taep.paths(SMALL, 0, 100, **kw)
        assert e.value.field == field, (field, str(e.value))


def test_callback_config_errors():
    with pytest.raises(taep.ConfigError) as e:  # a callback config without the function
        taep.run(dict(SMALL, model={"type": "callback"}))
    assert e.value.field == "model.type"
    m = model_of(SMALL)
    with pytest.raises(taep.ConfigError) as e:
        taep.paths(SMALL, 0, 10, score=m.score, divergence=m.divergence, schedule__scheme="milstein")
    assert e.value.field == "schedule.scheme"
    with pytest.raises(taep.BackendUnavailable):
        taep.paths(SMALL, 0, 10, score=m.score, divergence=m.divergence, run__backend="cuda")


def test_exceptions_from_the_function_propagate():
    class Boom(Exception):
        pass

    calls = []

    def score(x, t):
        calls.append(t)
        if len(calls) == 3:
            raise Boom("model failed")
        return np.zeros_like(x)

    with pytest.raises(Boom):
        taep.paths(SMALL, 0, 100, score=score, divergence=lambda x, t: np.zeros(len(x)))
    assert len(calls) == 3


def test_ctrl_c_stops_inside_a_long_call():
    m = model_of(SMALL)
    calls = []

    def score(x, t):
        calls.append(t)
        if len(calls) == 5:
            signal.raise_signal(signal.SIGINT)
        return m.score(x, t)

    assert threading.current_thread() is threading.main_thread()
    with pytest.raises(KeyboardInterrupt):
        taep.paths(SMALL, score=score, divergence=m.divergence)
    assert len(calls) == 5  # stopped at the next call, not at the end of the chunk


def test_sample_and_detailed_ft_take_the_function():
    # Reverse paths of the exact score as a function: the built-in model's samples and S, to float
    # rounding (a reverse path moves with the score, so rare paths between modes amplify it).
    small = dict(SMALL, schedule={"steps": 40})
    m = model_of(small)
    divergences = []

    def divergence(x, t):
        divergences.append(t)
        return m.divergence(x, t)

    want = taep.sample(small, 3000)
    mine = taep.sample(small, 3000, score=m.score, divergence=divergence)
    assert mine.shape == (3000, 2) and mine.dtype == np.float32
    assert np.abs(mine - want).max() < 1e-3 and np.median(np.abs(mine - want)) < 1e-5
    assert m.calls == 40 and divergences == []  # t_N .. t_1, and sampling reads no TAEP
    assert np.array_equal(taep.sample(small, 3000, score=m.score, divergence=m.divergence,
                                      batch=700), mine)

    doc = taep.detailed_ft(small, score=m.score, divergence=m.divergence, run__paths=3000)
    built_in = taep.detailed_ft(small, run__paths=3000)
    assert doc["config"]["model"]["type"] == "callback"
    for side in ("forward", "reverse"):
        assert abs(doc[side]["taep"]["mean"] - built_in[side]["taep"]["mean"]) < 1e-4, side
    with pytest.raises(taep.BackendUnavailable):
        taep.sample(small, 10, score=m.score, divergence=m.divergence, run__backend="cuda")
    with pytest.raises(taep.ConfigError) as e:
        taep.sample(small, 10, score=m.score)
    assert e.value.field == "divergence"

"""Any PyTorch score network as taep's score model (docs/python.md, "taep.torch.ScoreModule").

    import taep, taep.torch
    model = taep.torch.ScoreModule(net)                      # exact divergence, d tangents
    result = taep.run(cfg, score=model)
    model = taep.torch.ScoreModule(net, divergence="hutchinson", probes=4)   # high d

taep owns the paths, the random numbers, the TAEP sum and the statistics; the module is called once
per batch of paths and grid point as module(x, t) with x an (n, d) tensor and t an (n,) tensor of
the time, and returns the score (or, with parameterization="eps", the noise prediction). The
divergence of its output comes from forward-mode autodiff (torch.func.jvp, or
torch.autograd.forward_ad on a torch without torch.func): the trace from the d unit tangents
(divergence="exact"), or the Hutchinson estimates v.J v for the probe vectors v that taep draws
from its own probe stream (divergence="hutchinson", the probes an MLP model of taep would use).
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import numpy as np
import torch

__all__ = ["ScoreModule"]


def _jvp(f, x, v):
    """(f(x), J v) by forward-mode autodiff."""
    func = getattr(torch, "func", None)
    if func is not None and hasattr(func, "jvp"):
        return func.jvp(f, (x,), (v,))
    import torch.autograd.forward_ad as fwad

    with fwad.dual_level():
        out = fwad.unpack_dual(f(fwad.make_dual(x, v)))
        return out.primal, out.tangent


class ScoreModule:
    """A torch.nn.Module (any callable module(x, t) -> (n, d)) as a score model for taep.run and
    taep.paths (score=ScoreModule(...)).

    Args:
        module: the network; called as module(x, t), x (n, d) and t (n,), on the device and in the
            dtype of its parameters (CPU float32 when it has none).
        parameterization: "score", or "eps" when the module predicts the noise (taep converts it
            and its divergence with score = -eps / sqrt(1 - abar(t)) of the run's schedule).
        divergence: "exact" (the trace of the Jacobian from d tangents; low d) or "hutchinson"
            (v.J v for `probes` probe vectors per path and step from taep's probe stream).
        probes: Hutchinson probes per step, 1 .. 64 (>= 2 also gives the probe-noise estimate).
        probe_distribution: "rademacher" (+-1) or "gaussian" probe entries.
    """

    def __init__(self, module: Any, parameterization: str = "score", divergence: str = "exact",
                 probes: int = 1, probe_distribution: str = "rademacher"):
        from .errors import ConfigError

        if parameterization not in ("score", "eps"):
            raise ConfigError("parameterization", f'must be "score" or "eps" (got {parameterization!r})')
        if divergence not in ("exact", "hutchinson"):
            raise ConfigError("divergence", f'must be "exact" or "hutchinson" (got {divergence!r})')
        if probe_distribution not in ("rademacher", "gaussian"):
            raise ConfigError("probe_distribution",
                              f'must be "rademacher" or "gaussian" (got {probe_distribution!r})')
        if isinstance(probes, bool) or not isinstance(probes, int) or not 1 <= probes <= 64:
            raise ConfigError("probes", f"must be an integer 1 .. 64 (got {probes!r})")
        self.module = module
        self.parameterization = parameterization
        self.divergence = divergence
        self.probes = probes
        self.probe_distribution = probe_distribution
        params = list(module.parameters()) if hasattr(module, "parameters") else []
        self.device = params[0].device if params else torch.device("cpu")
        self.dtype = params[0].dtype if params else torch.float32

    @property
    def taep_model(self) -> Dict[str, Any]:
        """The config's model section for this model (taep.run puts it in place of the config's)."""
        return {"type": "callback", "divergence": self.divergence, "probes": self.probes,
                "probe_distribution": self.probe_distribution}

    def __call__(self, x, t):
        """The module's output at x (an (n, d) array) and time t, as a numpy array."""
        with torch.no_grad():
            xt = self._tensor(x)
            return self._numpy(self.module(xt, self._time(t, xt)))

    def taep_evaluate(self, x, t: float, probe_vectors: Optional[np.ndarray]) -> Tuple[np.ndarray, np.ndarray]:
        """(output (n, d), divergence (n,)) with the exact trace, or (output, estimates (n, P)) of
        v.J v for probe_vectors (n, P, d). Called by the engine (taep/__init__.py, _ScoreCall)."""
        xt = self._tensor(x)
        n, d = xt.shape
        tt = self._time(t, xt)

        def f(z):
            return self.module(z, tt)

        with torch.no_grad():
            if probe_vectors is None:
                out, trace = None, torch.zeros(n, dtype=xt.dtype, device=xt.device)
                for i in range(d):
                    e = torch.zeros_like(xt)
                    e[:, i] = 1
                    y, jv = _jvp(f, xt, e)
                    out = y if out is None else out
                    trace = trace + jv[:, i]
                return self._numpy(out), self._numpy(trace)
            v = self._tensor(probe_vectors)
            est = []
            out = None
            for q in range(v.shape[1]):
                y, jv = _jvp(f, xt, v[:, q, :].contiguous())
                out = y if out is None else out
                est.append(torch.sum(v[:, q, :] * jv, dim=1))
            return self._numpy(out), self._numpy(torch.stack(est, dim=1))

    def _tensor(self, a) -> "torch.Tensor":
        # A copy: taep's buffers are read-only views that change after the call.
        return torch.tensor(np.asarray(a), dtype=self.dtype, device=self.device)

    def _time(self, t: float, x: "torch.Tensor") -> "torch.Tensor":
        return torch.full((x.shape[0],), float(t), dtype=x.dtype, device=x.device)

    @staticmethod
    def _numpy(y: "torch.Tensor") -> np.ndarray:
        return y.detach().to("cpu", torch.float32).numpy()

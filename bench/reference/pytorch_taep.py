#!/usr/bin/python3
"""PyTorch baseline of taep's TAEP integrator for a learned score model (docs/physics.md 2, 4, 7).

Forward VP-SDE paths, x_0 ~ p(x, t_min) exactly, then per Euler-Maruyama step (Ito: everything at
the start of the step, the same dW that moves x):
  S      += beta_k/2 [l_theta - l_*](x_k) h + sqrt(beta_k) (s_theta - s*)(x_k) . dW_k,   l = |s|^2 + 2 div s
  x_{k+1} = x_k - 1/2 beta_k x_k h + sqrt(beta_k) dW_k,        dW_k ~ N(0, h I)
on the grid t_k = t_min + k h, h = (t_max - t_min)/N (the grid of bench/reference/numpy_taep.py).
s* and div s* are the closed forms of the Gaussian-mixture target; s_theta is the MLP of a
safetensors file (tools/taep_mlp.py convention) with its divergence either exact (d tangents) or a
Hutchinson estimate v^T J v with fresh Rademacher probes each step (--probes N). State, scores and
network in --dtype, S in float64. Also accumulated per path: the integral of beta/2 |s_theta - s*|^2
(its mean is eq. 33's score-matching loss on the same paths, so mean S should match it).

Targets: --dim 2 (default): the paper's 8-mode ring with tests/fixtures/ring8_trained.safetensors.
--dim D != 2: 8 equal components, sigma 0.5, means 4 u_k with u_k random unit vectors (seed 64),
and by default a randomly initialized TaepScoreMLP(D) (seed 64; an untrained model, so S is large
and the IFT check is meaningless there: it is a throughput case) or --weights FILE of that dim.

Divergence methods (--div):
  tangent   (default) forward-mode by hand: the d tangent vectors e_j (or the probes) are pushed
            through the layers alongside the values, T <- silu'(h) * (T W^T), one extra GEMM per
            tangent per layer, then div = sum_j (T_L W_out^T)_jj. Fastest here.
  functorch vmap(jacfwd) of the per-point score (torch 1.13 ships functorch; torch.func is 2.x).
  autograd  the score with x.requires_grad and d reverse passes. Slowest.
All three agree to rounding (--check-div compares them on the first step).

Output: one JSON line (path_steps_per_second = paths * steps / wall time of the stepping loop).
Run with /usr/bin/python3 (Debian python3-torch + numpy), e.g.
  /usr/bin/python3 bench/reference/pytorch_taep.py --paths 16384 --steps 200
  /usr/bin/python3 bench/reference/pytorch_taep.py --dim 64 --probes 1 --paths 16384 --steps 200
"""
import argparse
import json
import math
import os
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import taep_mlp as tm  # noqa: E402

DEFAULT_WEIGHTS = os.path.join(ROOT, "tests", "fixtures", "ring8_trained.safetensors")


_silu = torch.nn.functional.silu
_silu_backward = torch.ops.aten.silu_backward   # (g, h) -> g * silu'(h), one fused kernel


class MlpStepper:
    """The MLP at one time t with the embedding folded into the first layer's bias
    (layer 1 = W_x x + (W_t emb(t) + b_1), docs/physics.md section 7)."""

    def __init__(self, model, dtype, device):
        self.model = model.to(device=device, dtype=dtype)
        self.d = model.dim
        self.Ws = [l.weight.detach() for l in self.model.layers]
        self.bs = [l.bias.detach() for l in self.model.layers]
        self.Wx = self.Ws[0][:, : self.d]                 # (H0, d)
        self.Wt = self.Ws[0][:, self.d:]                  # (H0, E)
        # Exact-divergence fold of layers 1-2: M = [diag(W_x e_j) W_2^T]_j, (H0, d H1).
        self.M = torch.cat([self.Wx[:, j, None] * self.Ws[1].T for j in range(self.d)], dim=1) \
            if len(self.Ws) >= 3 else None
        self.dtype, self.device = dtype, device

    def at(self, t):
        emb = self.model.embed(t, 1, self.dtype, self.device)[0]
        self.c0 = self.Wt @ emb + self.bs[0]
        self.factor = float(self.model.output_to_score_factor(t)) \
            if self.model.parameterization == "eps" else 1.0

    def forward(self, x):
        h = x @ self.Wx.T + self.c0
        for W, b in zip(self.Ws[1:], self.bs[1:]):
            h = torch.nn.functional.silu(h) @ W.T + b
        return h * self.factor

    def with_tangents(self, x, probes=None, per_probe=False):
        """Score and divergence by forward-mode tangents pushed through the layers by hand: exact
        (probes None: the d tangents e_1..e_d) or Hutchinson with probes (P, n, d): the mean over
        probes of v . J v. G holds the tangents of the pre-activations, T = silu'(h) * G those of the
        activations (one fused aten.silu_backward), and the next G = T W^T is one GEMM for all
        tangents. For the exact case the first two layers fold into one GEMM,
        G_2 = silu'(h_1) @ [diag(W_x e_j) W_2^T]_j, precomputed in at()."""
        P, Ws, bs = x.shape[0], self.Ws, self.bs
        h = x @ self.Wx.T + self.c0
        if len(Ws) == 1:  # no hidden layer: the score is affine in x
            div = torch.full((P,), float(self.Wx.diagonal().sum()), dtype=x.dtype, device=x.device)
            return h * self.factor, div * self.factor
        if probes is None:
            G = self.Wx.T[None].expand(P, self.d, -1)          # (P, d, H0)
        else:
            G = probes @ self.Wx.T                             # (P, n, H0)
        for i in range(1, len(Ws) - 1):
            a = _silu(h)
            if i == 1 and probes is None:
                G = (_silu_backward(torch.ones_like(h), h) @ self.M).view(P, self.d, -1)
            else:
                T = _silu_backward(G, h[:, None, :].expand_as(G))
                G = (T.reshape(-1, T.shape[2]) @ Ws[i].T).view(P, G.shape[1], -1)
            h = a @ Ws[i].T + bs[i]
        Wo, bo = Ws[-1], bs[-1]
        s = (_silu(h) @ Wo.T + bo) * self.factor
        T = _silu_backward(G, h[:, None, :].expand_as(G))
        if probes is None:
            div = (T * Wo[None, :, :]).sum((1, 2))            # sum_j (T_L W_out^T)_jj
        else:
            Jv = (T.reshape(-1, T.shape[2]) @ Wo.T).view(P, -1, self.d)   # (P, n, d)
            div = (probes * Jv).sum(2)
            div = div if per_probe else div.mean(1)
        return s, div * self.factor

    def with_functorch(self, x):
        import functorch
        fn = lambda xi: self.forward(xi[None])[0]  # noqa: E731
        J = functorch.vmap(functorch.jacfwd(fn))(x)      # (P, d, d)
        return self.forward(x), J.diagonal(dim1=1, dim2=2).sum(1)

    def with_autograd(self, x):
        with torch.enable_grad():
            xr = x.detach().requires_grad_(True)
            s = self.forward(xr)
            div = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
            for j in range(self.d):
                (g,) = torch.autograd.grad(s[:, j].sum(), xr, retain_graph=j < self.d - 1)
                div += g[:, j]
        return s.detach(), div


def make_target(dim, dtype, device):
    if dim == 2:
        means, s2, lw = tm.ring_mixture()
        name = "ring8"
    else:
        g = torch.Generator().manual_seed(64)
        u = torch.randn(8, dim, generator=g, dtype=torch.float64)
        means = 4.0 * u / u.norm(dim=1, keepdim=True)
        s2 = torch.full((8,), 0.25, dtype=torch.float64)
        lw = torch.full((8,), -math.log(8), dtype=torch.float64)
        name = f"mix8_d{dim}"
    return name, means, s2, lw, tuple(a.to(device=device, dtype=dtype) for a in (means, s2, lw))


def run_chunk(a, stepper, target, n, gen, dtype, device):
    name, means64, s264, lw64, (means, s2, lw) = target
    d = stepper.d
    h = (a.t_max - a.t_min) / a.steps
    # x0 ~ p(x, t_min) exactly (float64 on the CPU generator, then cast).
    x = tm.mixture_sample(n, tm.abar(a.t_min), means64, s264, lw64, generator=gen).to(device, dtype)
    S = torch.zeros(n, dtype=torch.float64, device=device)
    L = torch.zeros(n, dtype=torch.float64, device=device)
    dgen = gen if device.type == "cpu" else torch.Generator(device=device).manual_seed(
        int(torch.randint(0, 2**62, (1,), generator=gen)))
    sqrt_h = math.sqrt(h)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for k in range(a.steps):
        t = a.t_min + k * h
        b = tm.beta(t)
        ab = tm.abar(t)
        stepper.at(t)
        if a.probes > 0:
            v = torch.randint(0, 2, (n, a.probes, d), generator=dgen, device=device).to(dtype) * 2 - 1
            s_th, div_th = stepper.with_tangents(x, v)
        elif a.div == "tangent":
            s_th, div_th = stepper.with_tangents(x)
        elif a.div == "functorch":
            s_th, div_th = stepper.with_functorch(x)
        else:
            s_th, div_th = stepper.with_autograd(x)
        s_st, div_st = tm.mixture_score(x, ab, means, s2, lw)
        dw = torch.randn(n, d, generator=dgen, device=device, dtype=dtype) * sqrt_h
        diff = s_th - s_st
        l_diff = (s_th * s_th).sum(1) - (s_st * s_st).sum(1) + 2 * (div_th - div_st)
        S += (0.5 * b * h * l_diff + math.sqrt(b) * (diff * dw).sum(1)).double()
        L += (0.5 * b * h * (diff * diff).sum(1)).double()
        x = (1 - 0.5 * b * h) * x + math.sqrt(b) * dw
    if device.type == "cuda":
        torch.cuda.synchronize()
    return S, L, time.perf_counter() - start


def check_div(stepper, target, dim, dtype, device, t):
    """Compares the divergence methods on a few points of p(x, t)."""
    _, means64, s264, lw64, _ = target
    x = tm.mixture_sample(256, tm.abar(t), means64, s264, lw64,
                          generator=torch.Generator().manual_seed(7)).to(device, dtype)
    stepper.at(t)
    s0, d0 = stepper.with_tangents(x)
    out = {}
    for name, fn in (("functorch", stepper.with_functorch), ("autograd", stepper.with_autograd)):
        try:
            s1, d1 = fn(x)
            out[name] = float((d1 - d0).abs().max() / d0.abs().max().clamp_min(1e-30))
            out[name + "_score"] = float((s1 - s0).abs().max() / s0.abs().max().clamp_min(1e-30))
        except Exception as e:  # functorch may be missing in some builds
            out[name] = f"unavailable: {e}"
    # Hutchinson (Rademacher) with 4096 probes on the first 16 points: unbiased, so the error in
    # units of its own standard error should look like N(0, 1) draws (max |z| of 16 below ~3).
    g = torch.Generator().manual_seed(8)
    v = (torch.randint(0, 2, (16, 4096, dim), generator=g) * 2 - 1).to(device, dtype)
    _, dh = stepper.with_tangents(x[:16], v, per_probe=True)
    z = (dh.mean(1) - d0[:16]) / (dh.std(1) / math.sqrt(4096)).clamp_min(1e-30)
    out["hutchinson_4096_probes_max_abs_z"] = float(z.abs().max())
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default=None,
                    help="safetensors MLP (default: ring8_trained for --dim 2, random for others)")
    ap.add_argument("--dim", type=int, default=2)
    ap.add_argument("--paths", type=int, default=16384)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--chunk", type=int, default=16384)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--t-min", type=float, default=1e-3)
    ap.add_argument("--t-max", type=float, default=1.0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    ap.add_argument("--div", choices=["tangent", "functorch", "autograd"], default="tangent")
    ap.add_argument("--probes", type=int, default=0,
                    help="Hutchinson Rademacher probes per step (0: exact divergence)")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: all cores)")
    ap.add_argument("--check-div", action="store_true",
                    help="also compare the divergence methods at t = 0.1 and report it")
    a = ap.parse_args()
    torch.set_num_threads(a.threads or os.cpu_count() or 1)
    device = torch.device(a.device)
    dtype = getattr(torch, a.dtype)
    if a.weights is None and a.dim == 2:
        a.weights = DEFAULT_WEIGHTS
    if a.weights and a.weights != "random":
        model = tm.load_safetensors(a.weights)
        if model.dim != a.dim:
            ap.error(f"{a.weights} has dim {model.dim}, not --dim {a.dim}")
    else:
        torch.manual_seed(64)
        model = tm.TaepScoreMLP(a.dim)
        a.weights = "random"
    stepper = MlpStepper(model, dtype, device)
    target = make_target(a.dim, dtype, device)
    extra = {}
    if a.check_div:
        extra["div_check_rel_max"] = check_div(stepper, target, a.dim, dtype, device, 0.1)

    gen = torch.Generator().manual_seed(a.seed)
    S, L, wall = [], [], 0.0
    for first in range(0, a.paths, a.chunk):
        s, l, w = run_chunk(a, stepper, target, min(a.chunk, a.paths - first), gen, dtype, device)
        S.append(s.cpu()), L.append(l.cpu())
        wall += w
    S, L = torch.cat(S), torch.cat(L)
    ok = torch.isfinite(S)
    n_bad = int((~ok).sum())
    S, L = S[ok], L[ok]
    n = S.numel()
    m = float((-S).max())
    w = torch.exp(-S - m)
    ift = math.exp(m) * float(w.mean())
    ift_se = math.exp(m) * float(w.std()) / math.sqrt(n)
    print(json.dumps({
        "target": target[0], "weights": os.path.relpath(a.weights, ROOT) if a.weights != "random"
        else "random", "dim": a.dim, "paths": n, "nonfinite_paths": n_bad, "steps": a.steps,
        "device": str(device), "dtype": a.dtype, "threads": torch.get_num_threads(),
        "divergence": f"hutchinson_rademacher_{a.probes}" if a.probes else f"exact_{a.div}",
        "seed": a.seed, "wall_seconds": wall, "path_steps_per_second": n * a.steps / wall,
        "mean": float(S.mean()), "variance": float(S.var()),
        "mean_stderr": float(S.std()) / math.sqrt(n),
        "score_matching_loss_on_paths": float(L.mean()),
        "ift_estimate": ift, "ift_stderr": ift_se,
        "ift_ess": float(w.sum() ** 2 / (w * w).sum()),
        **extra,
    }))


if __name__ == "__main__":
    main()

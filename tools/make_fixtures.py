#!/usr/bin/python3
"""Regenerates the learned-score test fixtures in tests/fixtures/ (docs/physics.md section 7).

    /usr/bin/python3 tools/make_fixtures.py                 # everything (~3-5 min of CPU training)
    /usr/bin/python3 tools/make_fixtures.py --only random   # the random-init fixtures only (seconds)

Needs torch + numpy only (Debian: apt-get install python3-torch; use /usr/bin/python3).

Random-init models (weights N(0, gain^2 / fan_in) with gain 1.5 so the SiLUs see O(1) inputs and
their curvature matters, biases U(-0.3, 0.3), output layer rescaled so the output RMS over the
fixture points is 1), each with a JSON file of 32 reference points:
  mlp_d2_score.safetensors     d=2,  hidden (32, 32), E=8,  score, F32,  time_scale 100, seed 1
  mlp_d2_eps_bf16.safetensors  d=2,  hidden (32, 32), E=8,  eps,   BF16, time_scale 50,
                               max_period 1000 (non-default values, so a loader that ignores the
                               metadata fails), seed 2
  mlp_d16.safetensors          d=16, hidden (64, 64), E=16, score, F32,  time_scale 100, seed 3
Trained model:
  ring8_trained.safetensors    d=2, hidden (128, 128, 128), E=16, score, F32, time_scale 100:
                               the paper's network trained by denoising score matching on the
                               8-mode ring (weight lambda(t) = 1 - abar(t), t ~ U[1e-3, 1], Adam lr
                               1e-3, batch 2048, gradient-norm clipping 1.0, a fixed number of
                               steps), a decent but not perfect fit; its JSON also records the
                               score-matching loss of docs/physics.md eq. 33 against the analytic score.

<name>.json = {"weights", "dim", "parameterization", "beta_min", "beta_max", "storage_dtype",
"points": [{"x": [...], "t", "abar", "score": [...], "divergence"}], ...}. x and t are float32-
representable values (stored exactly as doubles). The reference values come from the model as
stored in the file (BF16/F32 weights widened to float64), evaluated in float64 with PyTorch
autograd: score = s_theta(x, t) (for eps models -eps / sqrt(1 - abar(t))), divergence = the exact
trace of the Jacobian from d backward passes. abar(t) = exp(-(0.1 t + 9.95 t^2)).

Sanity checks printed: the autograd values against an independent numpy forward pass written from
the file's raw tensors and metadata, and against central finite differences of that numpy forward.
Determinism: torch.manual_seed everywhere; the random-init files are bit-reproducible, the trained
one is reproducible on the same machine and torch build (CPU BLAS reductions can differ elsewhere).
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import taep_mlp as tm  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
T_MIN, T_MAX = 1e-3, 1.0
N_POINTS = 32


# ---------------------------------------------------------------------------------------------
# Reference values


def f32(a):
    """Rounds to float32-representable values, returned as float64."""
    return np.asarray(a, dtype=np.float32).astype(np.float64)


def reference_autograd(model64, x, t):
    """float64 score (n, d) and exact divergence (n,) via d backward passes."""
    x = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    tt = torch.tensor(t, dtype=torch.float64)
    s = model64.score(x, tt)
    div = torch.zeros(x.shape[0], dtype=torch.float64)
    for j in range(x.shape[1]):
        (g,) = torch.autograd.grad(s[:, j].sum(), x, retain_graph=True)
        div += g[:, j]
    return s.detach().numpy(), div.numpy()


def numpy_forward(path, x, t):
    """Independent float64 forward pass written from the file's raw tensors and metadata (the
    convention of include/taep/mlp.hpp), returning the score. x (n, d), t (n,)."""
    meta, tensors = tm.read_safetensors(path)
    E, ts, mp = int(meta["embedding_dim"]), float(meta["time_scale"]), float(meta["max_period"])
    half = E // 2
    f = np.exp(-np.log(mp) * np.arange(half) / half)
    a = ts * t[:, None] * f[None, :]
    h = np.concatenate([x, np.sin(a), np.cos(a)], axis=1)
    n_layers = sum(1 for k in tensors if k.endswith(".weight"))
    for i in range(n_layers):
        W = tensors[f"layers.{i}.weight"][1].numpy().astype(np.float64)
        b = tensors[f"layers.{i}.bias"][1].numpy().astype(np.float64)
        h = h @ W.T + b
        if i < n_layers - 1:
            h = h / (1.0 + np.exp(-h))
    if meta["parameterization"] == "eps":
        ab = np.exp(-(tm.BETA_MIN * t + 0.5 * (tm.BETA_MAX - tm.BETA_MIN) * t * t))
        h = -h / np.sqrt(1.0 - ab)[:, None]
    return h


def check_reference(path, x, t, score, div):
    """Prints max relative deviations of autograd vs numpy forward and vs finite differences."""
    s_np = numpy_forward(path, x, t)
    scale = np.maximum(1.0, np.abs(score))
    e_fwd = np.max(np.abs(s_np - score) / scale)
    h = 1e-5
    div_fd = np.zeros(x.shape[0])
    for j in range(x.shape[1]):
        e = np.zeros_like(x)
        e[:, j] = h
        div_fd += (numpy_forward(path, x + e, t)[:, j] - numpy_forward(path, x - e, t)[:, j]) / (2 * h)
    e_fd = np.max(np.abs(div_fd - div) / np.maximum(1.0, np.abs(div)))
    ok = e_fwd < 1e-12 and e_fd < 1e-6
    print(f"  check {os.path.basename(path)}: score vs numpy forward {e_fwd:.1e}, "
          f"divergence vs finite differences {e_fd:.1e} -> {'ok' if ok else 'MISMATCH'}")
    if not ok:
        raise SystemExit("fixture reference check failed")


def write_points(model, path, x, t, extra=None):
    """Reloads the model from `path` (so storage rounding applies), computes the float64 reference
    values at (x, t) and writes <path without .safetensors>.json."""
    m64 = tm.load_safetensors(path).double()
    score, div = reference_autograd(m64, x, t)
    check_reference(path, x, t, score, div)
    ab = np.exp(-(tm.BETA_MIN * t + 0.5 * (tm.BETA_MAX - tm.BETA_MIN) * t * t))
    doc = {
        "weights": os.path.basename(path),
        "dim": m64.dim,
        "hidden": list(m64.hidden),
        "embedding_dim": m64.embedding_dim,
        "time_scale": m64.time_scale,
        "max_period": m64.max_period,
        "parameterization": m64.parameterization,
        "storage_dtype": tm.storage_dtype(path),
        "beta_min": tm.BETA_MIN,
        "beta_max": tm.BETA_MAX,
        "generated_by": "/usr/bin/python3 tools/make_fixtures.py (float64 PyTorch autograd)",
    }
    doc.update(extra or {})
    doc["points"] = [{"x": x[i].tolist(), "t": float(t[i]), "abar": float(ab[i]),
                      "score": score[i].tolist(), "divergence": float(div[i])}
                     for i in range(x.shape[0])]
    jpath = path[: -len(".safetensors")] + ".json"
    with open(jpath, "w") as fh:
        json.dump(doc, fh, indent=1)
        fh.write("\n")
    smax = float(np.abs(score).max())
    print(f"  wrote {jpath}: {x.shape[0]} points, max |score| {smax:.3g}, "
          f"divergence in [{div.min():.3g}, {div.max():.3g}]")


def fixture_times(gen):
    """32 times spread over [1e-3, 1]: both ends plus log-uniform draws, float32-rounded."""
    u = torch.rand(N_POINTS - 2, generator=gen, dtype=torch.float64).numpy()
    t = np.concatenate([[T_MIN, T_MAX], 10.0 ** (-3.0 * u)])
    return f32(t)


def ring_points(gen, t):
    """x ~ p(x, t) of the 8-mode ring: near the (shrinking, blurring) ring at each t."""
    means, s2, lw = tm.ring_mixture()
    x = torch.cat([tm.mixture_sample(1, tm.abar(float(ti)), means, s2, lw, generator=gen)
                   for ti in t])
    return f32(x.numpy())


# ---------------------------------------------------------------------------------------------
# Random-init fixtures


def random_model(seed, dim, hidden, E, parameterization, time_scale, max_period, x, t, gain=1.5):
    torch.manual_seed(seed)
    model = tm.TaepScoreMLP(dim, hidden, E, time_scale, max_period, parameterization)
    with torch.no_grad():
        for layer in model.layers:
            layer.weight.normal_(0.0, gain / math.sqrt(layer.in_features))
            layer.bias.uniform_(-0.3, 0.3)
        out = model(torch.tensor(x, dtype=torch.float32), torch.tensor(t, dtype=torch.float64))
        rms = float(out.pow(2).mean().sqrt())
        model.layers[-1].weight /= rms
        model.layers[-1].bias /= rms
    return model


def make_random(outdir):
    print("random-init fixtures")
    specs = [
        # name, seed, dim, hidden, E, parameterization, storage, time_scale, max_period
        ("mlp_d2_score", 1, 2, (32, 32), 8, "score", "F32", 100.0, 10000.0),
        ("mlp_d2_eps_bf16", 2, 2, (32, 32), 8, "eps", "BF16", 50.0, 1000.0),
        ("mlp_d16", 3, 16, (64, 64), 16, "score", "F32", 100.0, 10000.0),
    ]
    for name, seed, dim, hidden, E, par, dt, ts, mp in specs:
        gen = torch.Generator().manual_seed(1000 + seed)
        t = fixture_times(gen)
        if dim == 2:
            x = ring_points(gen, t)
        else:
            x = f32(math.sqrt(2.0) * torch.randn(N_POINTS, dim, generator=gen,
                                                 dtype=torch.float64).numpy())
        model = random_model(seed, dim, hidden, E, par, ts, mp, x, t)
        path = os.path.join(outdir, name + ".safetensors")
        tm.export_safetensors(model, path, dt)
        print(f"  wrote {path} ({os.path.getsize(path)} bytes, {dt})")
        write_points(model, path, x, t)


# ---------------------------------------------------------------------------------------------
# Trained ring model


def score_matching_loss(model, n=400000, seed=123, chunk=100000):
    """docs/physics.md eq. 33: int_{t_min}^{t_max} beta/2 <|s_theta - s*|^2>_{p(x,t)} dt by Monte Carlo
    (t ~ U[t_min, t_max], x ~ p(x, t) exactly, analytic s* of the ring, float64); (mean, stderr)."""
    g = torch.Generator().manual_seed(seed)
    means, s2, lw = tm.ring_mixture()
    vals = []
    for first in range(0, n, chunk):
        m = min(chunk, n - first)
        t = T_MIN + (T_MAX - T_MIN) * torch.rand(m, generator=g, dtype=torch.float64)
        ab = tm.abar(t)
        k = torch.randint(0, means.shape[0], (m,), generator=g)
        x0 = means[k] + torch.sqrt(s2[k])[:, None] * torch.randn(m, 2, generator=g, dtype=torch.float64)
        x = torch.sqrt(ab)[:, None] * x0 + torch.sqrt(1 - ab)[:, None] * torch.randn(
            m, 2, generator=g, dtype=torch.float64)
        s_star, _ = tm.mixture_score(x, ab, means, s2, lw, with_div=False)
        with torch.no_grad():
            s_theta = model.score(x.float(), t).double()
        vals.append((T_MAX - T_MIN) * tm.beta(t) / 2 * ((s_theta - s_star) ** 2).sum(1))
    v = torch.cat(vals)
    return float(v.mean()), float(v.std() / math.sqrt(n))


def train_ring(steps, seed=0, batch=2048, lr=1e-3, log_every=1000):
    """Denoising score matching on the 8-mode ring with lambda(t) = 1 - abar(t):
    loss = |sqrt(1 - abar) s_theta(x_t, t) + z|^2, x_t = sqrt(abar) x_0 + sqrt(1 - abar) z."""
    torch.manual_seed(seed)
    means, s2, lw = tm.ring_mixture(dtype=torch.float32)
    model = tm.TaepScoreMLP(2, (128, 128, 128), 16, 100.0, 10000.0, "score")
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    start, running = time.perf_counter(), None
    for it in range(1, steps + 1):
        t = T_MIN + (T_MAX - T_MIN) * torch.rand(batch, dtype=torch.float64)
        ab = tm.abar(t).float()
        k = torch.randint(0, means.shape[0], (batch,))
        x0 = means[k] + torch.sqrt(s2[k])[:, None] * torch.randn(batch, 2)
        z = torch.randn(batch, 2)
        sq = torch.sqrt(1 - ab)[:, None]
        x = torch.sqrt(ab)[:, None] * x0 + sq * z
        loss = ((sq * model.score(x, t) + z) ** 2).sum(1).mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        running = loss.item() if running is None else 0.99 * running + 0.01 * loss.item()
        if it % log_every == 0 or it == steps:
            print(f"  step {it:6d}  {time.perf_counter() - start:6.1f}s  DSM loss (EMA) {running:.4f}",
                  flush=True)
    return model, time.perf_counter() - start, running


def make_trained(outdir, steps):
    print(f"trained ring model ({steps} Adam steps)")
    model, wall, dsm = train_ring(steps)
    loss, err = score_matching_loss(model)
    print(f"  training {wall:.1f}s; score-matching loss (eq. 33) {loss:.4f} +- {err:.4f}")
    path = os.path.join(outdir, "ring8_trained.safetensors")
    tm.export_safetensors(model, path, "F32")
    print(f"  wrote {path} ({os.path.getsize(path)} bytes, F32)")
    gen = torch.Generator().manual_seed(1004)
    t = fixture_times(gen)
    x = ring_points(gen, t)
    write_points(model, path, x, t, extra={
        "training": {"target": "8-mode ring, radius 4, sigma 0.25, equal weights",
                     "objective": "DSM, lambda(t) = 1 - abar(t), t ~ U[1e-3, 1]",
                     "optimizer": "Adam lr 1e-3, batch 2048, grad-norm clip 1.0, seed 0",
                     "steps": steps, "final_dsm_loss_ema": dsm,
                     "cpu_seconds_wall": round(wall, 1)},
        # <Delta s_ta> over forward paths equals this (eq. 33) up to time discretization.
        "score_matching_loss": loss, "score_matching_loss_stderr": err,
    })


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=["all", "random", "trained"], default="all")
    ap.add_argument("--steps", type=int, default=8000, help="training steps of the ring model")
    ap.add_argument("--out-dir", default=os.path.join(ROOT, "tests", "fixtures"))
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    os.makedirs(a.out_dir, exist_ok=True)
    if a.only in ("all", "random"):
        make_random(a.out_dir)
    if a.only in ("all", "trained"):
        make_trained(a.out_dir, a.steps)


if __name__ == "__main__":
    main()

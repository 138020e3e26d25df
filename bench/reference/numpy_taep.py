#!/usr/bin/python3
"""Plain numpy reference of taep's forward-path integrator (docs/physics.md sections 2 and 4).

Target p: the 8-mode ring (K = 8, m_k = 4 (cos 2 pi k/8, sin 2 pi k/8), sigma = 0.25, d = 2, equal
weights). Model: the exact score of the m-mode collapse q of the same components (weights eps for the
first m, (1 - m eps)/(K - m) for the rest). Every path is integrated at once, one numpy pass per step:

  S      += beta_k/2 [l_q - l_p](x_k) h + sqrt(beta_k) (s_q - s_p)(x_k) . dW_k,   l = |s|^2 + 2 div s
  (milstein) += beta_k/2 [dW.(grad s_q - grad s_p).dW - h (div s_q - div s_p)]
  x_{k+1} = x_k - 1/2 beta_k x_k h + sqrt(beta_k) dW_k,                       dW_k ~ N(0, h I)

Ito (everything at the start of the step, the same dW). State and scores in --dtype, S in float64,
the closed form R = log(p/q)(x_0, t_min) - log(p/q)(x_N, t_max) in float64. It is the baseline of the
throughput benchmark and an independent cross-check; numpy's RNG cannot reproduce the engine's Philox
stream, so results agree with the engine statistically only. Run with /usr/bin/python3 (numpy).
"""
import argparse
import json
import time

import numpy as np

K, D, RADIUS, SIGMA = 8, 2, 4.0, 0.25
BETA_MIN, BETA_MAX, T_MIN, T_MAX = 0.1, 20.0, 1e-3, 1.0

ANGLES = 2 * np.pi * np.arange(K) / K
MEANS = RADIUS * np.stack([np.cos(ANGLES), np.sin(ANGLES)], axis=1)  # (K, 2), float64
SIGMA2 = np.full(K, SIGMA**2)


def beta(t):
    return BETA_MIN + t * (BETA_MAX - BETA_MIN)


def abar(t):
    return np.exp(-(BETA_MIN * t + 0.5 * (BETA_MAX - BETA_MIN) * t * t))


def log_density(x, log_w, ab):
    """log of the diffused mixture at abar = ab, float64, log-sum-exp over components."""
    v = ab * SIGMA2 + 1 - ab                                            # (K,)
    u = np.sqrt(ab) * MEANS[None] - x[:, None, :].astype(np.float64)   # (P, K, 2)
    logit = log_w - 0.5 * (u * u).sum(2) / v - 0.5 * D * np.log(2 * np.pi * v)
    top = logit.max(1)
    return top + np.log(np.exp(logit - top[:, None]).sum(1))


def score(base, log_norm, rv_scale, ux, uy, c_div, c_quad):
    """Score, divergence and quadratic form of one mixture from the shared per-component terms.

    base = -|u_k|^2/(2 v_k), log_norm = log w_k - d/2 log(2 pi v_k); c_div = |u|^2/v^2 - d/v and
    c_quad = (u.a)^2/v^2 - |a|^2/v are pre-multiplied by v so that rv = r_k / v_k serves all sums."""
    logit = base + log_norm
    r = np.exp(logit - logit.max(1, keepdims=True))   # log-space softmax: modes are ~12 sigma apart
    r /= r.sum(1, keepdims=True)
    rv = r * rv_scale                                  # r_k / v_k
    sx, sy = (rv * ux).sum(1), (rv * uy).sum(1)
    div = (rv * c_div).sum(1) - (sx * sx + sy * sy)
    quad = None if c_quad is None else (rv * c_quad).sum(1)  # minus (s.a)^2, added by the caller
    return sx, sy, div, quad


def run_chunk(rng, n, steps, dtype, milstein, log_wp, log_wq):
    f = lambda a: np.asarray(a, dtype=dtype)
    # Per-step scalars computed in float64 and rounded to the working precision, like the engine.
    h = (T_MAX - T_MIN) / steps
    t = T_MIN + h * np.arange(steps)
    half_beta, sqrt_beta, sqrt_abar = f(beta(t) / 2), f(np.sqrt(beta(t))), f(np.sqrt(abar(t)))
    decay = f(1 - beta(t) * h / 2)
    v = abar(t)[:, None] * SIGMA2 + 1 - abar(t)[:, None]                         # (steps, K)
    inv_v, lnorm_v = f(1 / v), -0.5 * D * np.log(2 * np.pi * v)
    lnorm_p, lnorm_q = f(log_wp + lnorm_v), f(log_wq + lnorm_v)                # (steps, K)
    hf, sqrt_h = f(h), f(np.sqrt(h))
    mx, my = f(MEANS[:, 0]), f(MEANS[:, 1])

    # x0 ~ p(x, t_min) exactly: pick a component by weight, then sqrt(abar) m_k + sqrt(v_k) z.
    a0 = abar(T_MIN)
    comp = rng.choice(K, size=n, p=np.exp(log_wp))
    x = (np.sqrt(a0) * MEANS[comp] + np.sqrt(a0 * SIGMA2[comp] + 1 - a0)[:, None]
         * rng.standard_normal((n, D))).astype(dtype)
    R = log_density(x, log_wp, a0) - log_density(x, log_wq, a0)

    S = np.zeros(n)
    start = time.perf_counter()
    for k in range(steps):
        dw = rng.standard_normal((n, D), dtype=dtype) * sqrt_h
        # u_k = sqrt(abar) m_k - x, (paths, K) per coordinate; target and model share the components.
        ux = sqrt_abar[k] * mx - x[:, 0:1]
        uy = sqrt_abar[k] * my - x[:, 1:2]
        uu = ux * ux + uy * uy
        iv = inv_v[k]
        base = -0.5 * iv * uu
        c_div = uu * iv - D
        c_quad = None
        if milstein:
            ua = ux * dw[:, 0:1] + uy * dw[:, 1:2]
            c_quad = ua * ua * iv - (dw * dw).sum(1, keepdims=True)
        px, py, pdiv, pq = score(base, lnorm_p[k], iv, ux, uy, c_div, c_quad)
        qx, qy, qdiv, qq = score(base, lnorm_q[k], iv, ux, uy, c_div, c_quad)
        noise = (qx - px) * dw[:, 0] + (qy - py) * dw[:, 1]
        div_diff = qdiv - pdiv
        l_diff = (qx * qx + qy * qy) - (px * px + py * py) + 2 * div_diff
        inc = half_beta[k] * hf * l_diff + sqrt_beta[k] * noise
        if milstein:
            sa_p = px * dw[:, 0] + py * dw[:, 1]
            sa_q = qx * dw[:, 0] + qy * dw[:, 1]
            quad_diff = (qq - sa_q * sa_q) - (pq - sa_p * sa_p)
            inc += half_beta[k] * (quad_diff - hf * div_diff)
        S += inc                                       # float64 accumulator
        x = decay[k] * x + sqrt_beta[k] * dw
    wall = time.perf_counter() - start

    R -= log_density(x, log_wp, abar(T_MAX)) - log_density(x, log_wq, abar(T_MAX))
    return S, R, wall


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--paths", type=int, default=100000)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--chunk", type=int, default=100000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    ap.add_argument("--scheme", choices=["euler", "milstein"], default="euler")
    ap.add_argument("--modes", type=int, default=1)
    ap.add_argument("--eps", type=float, default=0.01)
    a = ap.parse_args()
    m, eps = a.modes, a.eps
    if not (1 <= m < K and 0 < eps < 1.0 / m):
        ap.error("need 1 <= modes < 8 and 0 < eps < 1/modes")

    log_wp = np.full(K, -np.log(K))
    log_wq = np.log(np.r_[np.full(m, eps), np.full(K - m, (1 - m * eps) / (K - m))])
    rng = np.random.default_rng(a.seed)
    S, R, wall = [], [], 0.0
    for first in range(0, a.paths, a.chunk):
        s, r, w = run_chunk(rng, min(a.chunk, a.paths - first), a.steps, np.dtype(a.dtype),
                            a.scheme == "milstein", log_wp, log_wq)
        S.append(s), R.append(r)
        wall += w
    S, R = np.concatenate(S), np.concatenate(R)

    w = np.exp(-S)
    n = S.size
    print(json.dumps({
        "paths": n, "steps": a.steps, "dtype": a.dtype, "scheme": a.scheme,
        "modes": m, "eps": eps, "seed": a.seed,
        "wall_seconds": wall,
        "path_steps_per_second": n * a.steps / wall,
        "mean": S.mean(), "variance": S.var(ddof=1),
        "ift_estimate": w.mean(), "ift_stderr": w.std(ddof=1) / np.sqrt(n),
        "reference_mean": R.mean(), "reference_variance": R.var(ddof=1),
        "rms_path_error": float(np.sqrt(np.mean((S - R) ** 2))),
        "eq55_variance": m * (K - m) / K**2 * np.log((1 - m * eps) / ((K - m) * eps)) ** 2,
    }, indent=2))


if __name__ == "__main__":
    main()

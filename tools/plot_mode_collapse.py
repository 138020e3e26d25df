#!/usr/bin/env python3
"""Figures of `taep experiment mode-collapse` (README, "taep experiment mode-collapse").

    plot_mode_collapse.py OUT_DIR

Reads OUT_DIR/mode_collapse.json and OUT_DIR/samples/<model>.csv and writes PNGs to OUT_DIR/figures:
  samples.png         reverse-process samples of every model, ring means marked
  taep_densities.png  density of S on forward paths (and on reverse paths, dashed) per model
  variance_vs_eps.png Var(S) against eps (one collapsed mode) with eq. 55 and eq. 53 (measured weights)
  variance_vs_m.png   Var(S) against the number of collapsed modes m (eps = 0.01), the same curves
  ift.png             <exp(-S)> per model with its standard error (4 SE band)
  dft.png             log(P_f / P_r) against sigma per model with the line of slope 1 (eq. 31)
  same_mean_pair.png  the paper's Fig. 2c: samples of the collapsed and the mediocre (widened) network,
                      and the densities of S of both, exact-score and network (when the JSON has
                      "same_mean_pair")
Needs numpy and matplotlib; exits with status 3 (and a message) when they are missing.
"""
import json
import math
import os
import sys

try:
    import numpy as np
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError as e:  # pragma: no cover
    print(f"plot_mode_collapse.py: {e}; install numpy and matplotlib", file=sys.stderr)
    sys.exit(3)

K = 8


def eq55(m, eps):
    if m == 0:
        return 0.0
    l = math.log((1.0 - m * eps) / ((K - m) * eps))
    return m * (K - m) / K**2 * l * l


def ring_means():
    return np.array([[4 * math.cos(2 * math.pi * k / K), 4 * math.sin(2 * math.pi * k / K)] for k in range(K)])


def load(out_dir):
    with open(os.path.join(out_dir, "mode_collapse.json")) as f:
        return json.load(f)


def read_samples(out_dir, name):
    path = os.path.join(out_dir, "samples", name + ".csv")
    if not os.path.exists(path):
        return None
    return np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)


def model_panels(models, width, height):
    """One panel per model (width x height inches each) on a grid of at most 5 columns; the grid's
    panels beyond the last model are hidden."""
    cols = min(5, len(models))
    rows = (len(models) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    for ax in list(axes.flat)[len(models):]:
        ax.set_visible(False)
    return fig, axes


def plot_samples(out_dir, data, fig_dir):
    models = data["models"]
    fig, axes = model_panels(models, 3.0, 3.0)
    means = ring_means()
    for ax, m in zip(axes.flat, models):
        xy = read_samples(out_dir, m["name"])
        if xy is not None and len(xy):
            ax.scatter(xy[:, 0], xy[:, 1], s=1.5, alpha=0.35, color="tab:blue", rasterized=True)
        collapsed = means[: m["modes"]]
        ax.scatter(means[:, 0], means[:, 1], marker="+", color="black", s=40)
        if len(collapsed):
            ax.scatter(collapsed[:, 0], collapsed[:, 1], marker="o", facecolors="none", edgecolors="red", s=120)
        ax.set_xlim(-6, 6)
        ax.set_ylim(-6, 6)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(m["name"], fontsize=9)
    fig.suptitle("Reverse-process samples (red circles: collapsed modes)")
    fig.tight_layout()
    fig.savefig(os.path.join(fig_dir, "samples.png"), dpi=120)
    plt.close(fig)


def densities(m):
    h = m["histograms"]
    edges = np.array(h["edges"], dtype=float)
    width = np.diff(edges)
    centres = 0.5 * (edges[1:] + edges[:-1])
    out = []
    for key in ("forward", "reverse"):
        counts = np.array(h[key], dtype=float)
        # counts: [underflow, bins..., overflow] or bins only
        if len(counts) == len(width) + 2:
            counts = counts[1:-1]
        total = m["taep"]["count"] if key == "forward" else m["reverse_taep"]["count"]
        out.append(counts / (max(total, 1.0) * width))
    return centres, out[0], out[1]


def plot_densities(data, fig_dir):
    models = data["models"]
    fig, axes = model_panels(models, 3.2, 2.6)
    for ax, m in zip(axes.flat, models):
        c, pf, pr = densities(m)
        ax.semilogy(c, np.where(pf > 0, pf, np.nan), color="tab:blue", lw=1, label="forward")
        ax.semilogy(c, np.where(pr > 0, pr, np.nan), color="tab:orange", lw=1, ls="--", label="reverse")
        ax.set_title(f"{m['name']}  Var(S)={m['taep']['variance']:.3f}", fontsize=8)
        ax.set_xlabel("S", fontsize=8)
        ax.tick_params(labelsize=7)
    axes.flat[0].legend(fontsize=7)
    fig.suptitle("Density of TAEP S per model")
    fig.tight_layout()
    fig.savefig(os.path.join(fig_dir, "taep_densities.png"), dpi=120)
    plt.close(fig)


def variance_points(models):
    var = np.array([m["taep"]["variance"] for m in models])
    # SE of the sample variance: sqrt((mu4 - sigma^4 (n-3)/(n-1)) / n) with mu4 from the excess kurtosis
    se = []
    for m in models:
        t = m["taep"]
        n = max(t["count"], 2)
        mu4 = (t["excess_kurtosis"] + 3.0) * t["variance"] ** 2
        se.append(math.sqrt(max(mu4 - t["variance"] ** 2 * (n - 3) / (n - 1), 0.0) / n))
    eq53 = np.array([np.nan if m["theory"]["variance_eq53_measured"] is None else m["theory"]["variance_eq53_measured"] for m in models])
    eq53_se = np.array([np.nan if m["theory"]["variance_eq53_measured_stderr"] is None else m["theory"]["variance_eq53_measured_stderr"] for m in models])
    return var, np.array(se), eq53, eq53_se


def finish_variance_plot(fig, ax, models, at, beside, xlabel, title, path, log_x=False):
    """Adds Var(S) of `models` at abscissae `at` and eq. 53 at their measured weights at `beside`
    (shifted, so that both error bars show) to a figure that already holds the eq. 55 curve; labels
    it and writes it to `path`."""
    if models:
        var, se, eq53, eq53_se = variance_points(models)
        ax.errorbar(at, var, yerr=se, fmt="o", color="tab:blue", label="Var(S), trained models")
        ax.errorbar(beside, eq53, yerr=eq53_se, fmt="s", mfc="none", color="tab:red",
                    label="eq. 53, measured weights")
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("Var(S)")
    ax.legend(fontsize=8)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_variance_vs_eps(data, fig_dir):
    models = sorted([m for m in data["models"] if m["modes"] == 1], key=lambda m: m["eps"])
    fig, ax = plt.subplots(figsize=(5, 3.8))
    e = np.logspace(math.log10(0.003), math.log10(0.12), 200)
    ax.plot(e, [eq55(1, x) for x in e], color="black", lw=1, label="eq. 55 (nominal eps)")
    eps = np.array([m["eps"] for m in models])
    finish_variance_plot(fig, ax, models, eps, eps * 1.04, "eps (weight of the collapsed mode)",
                         "One collapsed mode", os.path.join(fig_dir, "variance_vs_eps.png"), log_x=True)


def plot_variance_vs_m(data, fig_dir):
    models = sorted([m for m in data["models"] if m["modes"] >= 1 and abs(m["eps"] - 0.01) < 1e-12],
                    key=lambda m: m["modes"])
    fig, ax = plt.subplots(figsize=(5, 3.8))
    ms = np.arange(1, 6)
    ax.plot(ms, [eq55(int(m), 0.01) for m in ms], color="black", lw=1, marker=".", label="eq. 55 (eps = 0.01)")
    mm = np.array([m["modes"] for m in models])
    finish_variance_plot(fig, ax, models, mm, mm + 0.08, "m (collapsed modes)",
                         "m collapsed modes at eps = 0.01", os.path.join(fig_dir, "variance_vs_m.png"))


def plot_ift(data, fig_dir):
    models = data["models"]
    fig, ax = plt.subplots(figsize=(max(5, 0.6 * len(models) + 2), 3.6))
    x = np.arange(len(models))
    est = np.array([m["ift"]["estimate"] for m in models])
    se = np.array([m["ift"]["stderr"] for m in models])
    ax.axhline(1.0, color="black", lw=1)
    ax.errorbar(x, est, yerr=4 * se, fmt="none", ecolor="lightgray", elinewidth=6, label="4 SE")
    ax.errorbar(x, est, yerr=se, fmt="o", color="tab:blue", capsize=3, label="<exp(-S)> ± 1 SE")
    ax.set_xticks(x)
    ax.set_xticklabels([m["name"] for m in models], rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("<exp(-S)>")
    ax.set_title("Integral fluctuation theorem per model")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(fig_dir, "ift.png"), dpi=120)
    plt.close(fig)


def plot_dft(data, fig_dir):
    models = data["models"]
    fig, axes = model_panels(models, 3.2, 2.8)
    for ax, m in zip(axes.flat, models):
        h = m["histograms"]
        edges = np.array(h["edges"], dtype=float)
        c = 0.5 * (edges[1:] + edges[:-1])
        cf = np.array(h["forward"], dtype=float)
        cr = np.array(h["reverse"], dtype=float)
        if len(cf) == len(c) + 2:
            cf, cr = cf[1:-1], cr[1:-1]
        fit = m["dft_fit"]
        min_count = fit.get("min_count", 1) or 1
        ok = (cf >= min_count) & (cr >= min_count)
        nf, nr = max(cf.sum(), 1), max(cr.sum(), 1)
        if ok.any():
            y = np.log(cf[ok] / nf) - np.log(cr[ok] / nr)
            yerr = np.sqrt(1 / cf[ok] + 1 / cr[ok])
            ax.errorbar(c[ok], y, yerr=yerr, fmt=".", ms=3, color="tab:blue")
            lo, hi = c[ok].min(), c[ok].max()
            s = np.linspace(lo, hi, 2)
            ax.plot(s, s, color="black", lw=1, label="slope 1")
            if fit["slope"] is not None:
                ax.plot(s, fit["slope"] * s + fit["intercept"], color="tab:red", lw=1, ls="--", label="fit")
        slope = fit["slope"]
        title = m["name"] if slope is None else f"{m['name']}  slope {slope:.3f}±{fit['slope_stderr']:.3f}"
        ax.set_title(title, fontsize=8)
        ax.set_xlabel("sigma", fontsize=8)
        ax.tick_params(labelsize=7)
    axes.flat[0].set_ylabel("log P_f/P_r", fontsize=8)
    fig.suptitle("Detailed fluctuation theorem (eq. 31)")
    fig.tight_layout()
    fig.savefig(os.path.join(fig_dir, "dft.png"), dpi=120)
    plt.close(fig)


def histogram_density(h, total):
    """Bin centres and density of a histogram {"edges", "counts"} of `total` finite paths."""
    edges = np.array(h["edges"], dtype=float)
    counts = np.array(h["counts"], dtype=float)
    if len(counts) == len(edges) + 1:
        counts = counts[1:-1]
    return 0.5 * (edges[1:] + edges[:-1]), counts / (max(total, 1.0) * np.diff(edges))


def plot_same_mean_pair(out_dir, data, fig_dir):
    pair = data.get("same_mean_pair")
    if not pair:
        return
    collapse_name = pair["collapse"]["model"]
    rows = {m["name"]: m for m in data["models"]}
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.0), gridspec_kw={"width_ratios": [1, 1, 1.6]})
    means = ring_means()
    for ax, name, title in ((axes[0], collapse_name, f"{collapse_name} (collapsed)"),
                            (axes[1], "mediocre", f"mediocre (sigma x {pair['width_factor']:.3f})")):
        xy = read_samples(out_dir, name)
        if xy is not None and len(xy):
            ax.scatter(xy[:, 0], xy[:, 1], s=1.5, alpha=0.35, color="tab:blue", rasterized=True)
        ax.scatter(means[:, 0], means[:, 1], marker="+", color="black", s=40)
        ax.set_xlim(-6, 6)
        ax.set_ylim(-6, 6)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"{title}: network samples", fontsize=9)
    ax = axes[2]
    curves = [("exact", "collapse", pair["exact"]["collapse"]["histogram"], pair["exact"]["collapse"]["taep"], "tab:red", "-"),
              ("exact", "mediocre", pair["exact"]["mediocre"]["histogram"], pair["exact"]["mediocre"]["taep"], "tab:blue", "-")]
    net = pair["network"]
    if collapse_name in rows:
        m = rows[collapse_name]
        h = {"edges": m["histograms"]["edges"], "counts": m["histograms"]["forward"]}
        curves.append(("network", "collapse", h, m["taep"], "tab:red", "--"))
    curves.append(("network", "mediocre", net["mediocre"]["histogram"], net["mediocre"]["taep"], "tab:blue", "--"))
    for score, side, h, t, color, ls in curves:
        c, dens = histogram_density(h, t["count"])
        ax.semilogy(c, np.where(dens > 0, dens, np.nan), color=color, ls=ls, lw=1,
                    label=f"{side}, {score}: <S>={t['mean']:.3f}, Var={t['variance']:.3f}")
    ax.axvline(pair["exact"]["collapse"]["mean_theory"], color="gray", lw=0.8, ls=":", label="exact <S> (both)")
    ax.set_xlabel("S")
    ax.set_ylabel("density")
    ax.legend(fontsize=7)
    ax.set_title("Same mean TAEP, different variance", fontsize=9)
    fig.suptitle("Fig. 2c: one-mode collapse (eps = %g) against a uniformly widened ring" % pair["collapse"]["eps"])
    fig.tight_layout()
    fig.savefig(os.path.join(fig_dir, "same_mean_pair.png"), dpi=120)
    plt.close(fig)


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    out_dir = sys.argv[1]
    data = load(out_dir)
    fig_dir = os.path.join(out_dir, "figures")
    os.makedirs(fig_dir, exist_ok=True)
    plot_samples(out_dir, data, fig_dir)
    plot_densities(data, fig_dir)
    plot_variance_vs_eps(data, fig_dir)
    plot_variance_vs_m(data, fig_dir)
    plot_ift(data, fig_dir)
    plot_dft(data, fig_dir)
    plot_same_mean_pair(out_dir, data, fig_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Figures of a `taep track` result directory (the paper's Fig. 3), from its track.json.

usage: plot_track.py DIR        (writes DIR/figures/*.png)

  taep_densities.png       the TAEP density of every snapshot along training (Fig. 3a)
  coverage_vs_variance.png coverage of the snapshot's samples against Var(S) (Fig. 3b; needs
                           coverage, i.e. `taep track --holdout`)
  variance_vs_mean.png     Var(S) against <S> along training, with standard errors (Fig. 3c)

`taep track` and `taep experiment digits` run this script themselves when a Python with
matplotlib and numpy is found (README.md, "taep track").
"""
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def main(argv):
    if len(argv) != 2 or argv[1] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if len(argv) == 2 else 2
    out = argv[1]
    with open(os.path.join(out, "track.json")) as f:
        doc = json.load(f)
    rows = [r for r in doc["rows"] if r["taep"] is not None]
    figs = os.path.join(out, "figures")
    os.makedirs(figs, exist_ok=True)
    ref = doc["reference"]
    cmap = plt.get_cmap("viridis")
    steps = [r["step"] for r in rows]
    last = max(steps) if steps else 1

    fig, ax = plt.subplots(figsize=(5.5, 4))
    for r in rows:
        h = r["histogram"]
        edges = np.asarray(h["edges"])
        counts = np.asarray(h["counts"], dtype=float)
        n = counts.sum() + h["underflow"] + h["overflow"]
        density = counts / (n * np.diff(edges)) if n else counts
        ax.plot(0.5 * (edges[1:] + edges[:-1]), density, color=cmap(r["step"] / last),
                label=f"step {r['step']}")
    ax.set_xlabel("TAEP S")
    ax.set_ylabel("density")
    ax.set_title(f"TAEP along training (against {ref})", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(figs, "taep_densities.png"), dpi=150)
    plt.close(fig)

    cov = [r for r in rows if r.get("coverage")]
    if cov:
        fig, ax = plt.subplots(figsize=(4.5, 4))
        v = [r["taep"]["variance"] for r in cov]
        ve = [r["taep"]["stderr_variance"] for r in cov]
        c = [r["coverage"]["coverage"] for r in cov]
        ax.errorbar(v, c, xerr=ve, fmt="o", color="k", ms=3)
        for r, x, y in zip(cov, v, c):
            ax.annotate(str(r["step"]), (x, y), fontsize=6)
        ax.set_xlabel("Var(S)")
        ax.set_ylabel(f"coverage (k = {cov[0]['coverage']['k']})")
        fig.tight_layout()
        fig.savefig(os.path.join(figs, "coverage_vs_variance.png"), dpi=150)
        plt.close(fig)

    if rows:
        fig, ax = plt.subplots(figsize=(4.5, 4))
        m = [r["taep"]["mean"] for r in rows]
        me = [r["taep"]["stderr_mean"] for r in rows]
        v = [r["taep"]["variance"] for r in rows]
        ve = [r["taep"]["stderr_variance"] for r in rows]
        ax.errorbar(m, v, xerr=me, yerr=ve, fmt="-o", color="k", ms=3)
        for r, x, y in zip(rows, m, v):
            ax.annotate(str(r["step"]), (x, y), fontsize=6)
        ax.set_xlabel("<S>")
        ax.set_ylabel("Var(S)")
        fig.tight_layout()
        fig.savefig(os.path.join(figs, "variance_vs_mean.png"), dpi=150)
        plt.close(fig)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

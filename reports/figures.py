"""Figures people would rather look at than read: KM overlays, love plots.

Each function takes plain arrays / DataFrames and writes a PNG (matplotlib, Agg backend,
no display needed); it returns the path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def km_overlay(grid: np.ndarray, km_real: np.ndarray, band: tuple[np.ndarray, np.ndarray],
               km_synthetic: np.ndarray, out: str | Path, *, time_label: str = "time",
               title: str = "Kaplan-Meier: real vs virtual patients") -> Path:
    """Real KM curve over the virtual cohort's KM and its 95% simultaneous predictive band."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    ax.fill_between(grid, band[0], band[1], step="post", color="tab:blue", alpha=0.2,
                    label="virtual cohorts: 95% predictive band")
    ax.step(grid, km_synthetic, where="post", color="tab:blue", lw=1.5, label="virtual cohort (pooled)")
    ax.step(grid, km_real, where="post", color="black", lw=1.8, label="real patients")
    ax.set(xlabel=time_label, ylabel="survival probability", ylim=(0, 1.02), title=title)
    ax.legend(loc="lower left", frameon=False, fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, out)


def love_plot(balance: pd.DataFrame, out: str | Path, *, threshold: float = 0.1, tolerated: float = 0.25,
              title: str = "Covariate balance: virtual vs real") -> Path:
    """Standardised mean differences per covariate (level), with the 0.1 / 0.25 guides."""
    plt = _plt()
    smd = balance["smd"].iloc[::-1]
    fig, ax = plt.subplots(figsize=(6.4, 0.35 * len(smd) + 1.2), dpi=120)
    colors = ["tab:green" if abs(v) < threshold else "tab:orange" if abs(v) < tolerated else "tab:red" for v in smd]
    ax.scatter(smd.to_numpy(), np.arange(len(smd)), c=colors, zorder=3)
    for x, style in ((threshold, "--"), (tolerated, ":")):
        ax.axvline(x, color="grey", ls=style, lw=1)
        ax.axvline(-x, color="grey", ls=style, lw=1)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(np.arange(len(smd)), smd.index)
    lim = max(0.3, float(np.abs(smd).max()) * 1.1)
    ax.set(xlim=(-lim, lim), xlabel="standardised mean difference (virtual - real)", title=title)
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, out)


def _save(fig, out: str | Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out)
    _plt().close(fig)
    return out

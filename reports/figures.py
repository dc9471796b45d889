"""Figures people would rather look at than read.

Each function takes plain arrays / DataFrames, writes one PNG (matplotlib, Agg backend, no
display needed, 150 dpi) and returns its path. All figures share one style: the
Okabe-Ito colour-blind-safe palette (Okabe & Ito 2008, "Color Universal Design"), with
marker shapes or line styles as a second cue so no reading depends on colour alone;
every figure has axis labels and a title.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

DPI = 150

# Okabe-Ito, ordered for series: blue, vermillion, bluish green, orange, reddish purple,
# sky blue, yellow (poor on white: last), black.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#E69F00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
BLUE, VERMILLION, GREEN, ORANGE, PURPLE, SKY = PALETTE[:6]
GUIDE = "#595959"  # reference lines (identity, thresholds): dark grey, dashed

_RC = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "savefig.dpi": DPI,
}


class _Canvas:
    """What the figure functions need of pyplot, without pyplot: each figure is a
    `matplotlib.figure.Figure` rendered by the Agg canvas on ``savefig``, so figures render
    headless whatever the session's backend and never enter pyplot's figure manager (a
    notebook's inline backend and its open figures are left alone)."""

    @staticmethod
    def subplots(nrows: int = 1, ncols: int = 1, *, figsize=None, **kwargs):
        from matplotlib.figure import Figure

        fig = Figure(figsize=figsize)
        return fig, fig.subplots(nrows, ncols, **kwargs)

    @staticmethod
    def rc_context(rc: dict):
        import matplotlib

        return matplotlib.rc_context(rc)


@contextmanager
def _style() -> Iterator:
    """pyplot inside the report style (an rc_context: the caller's settings are untouched)."""
    plt = _Canvas()
    from cycler import cycler

    with plt.rc_context({**_RC, "axes.prop_cycle": cycler(color=PALETTE)}):
        yield plt


def km_overlay(grid: np.ndarray, km_real: np.ndarray, band: tuple[np.ndarray, np.ndarray],
               km_synthetic: np.ndarray, out: str | Path, *, time_label: str = "time",
               title: str = "Kaplan-Meier: real vs virtual patients") -> Path:
    """Real KM curve over the virtual cohort's KM and its 95% simultaneous predictive band."""
    with _style() as plt:
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        ax.fill_between(grid, band[0], band[1], step="post", color=SKY, alpha=0.35, lw=0,
                        label="virtual cohorts: 95% predictive band")
        ax.step(grid, km_synthetic, where="post", color=BLUE, lw=1.5, ls="--", label="virtual cohort (pooled)")
        ax.step(grid, km_real, where="post", color="black", lw=1.8, label="real patients")
        ax.set(xlabel=time_label, ylabel="survival probability", ylim=(0, 1.02), title=title)
        ax.legend(loc="lower left", frameon=False)
        return _save(fig, out)


def love_plot(balance: pd.DataFrame, out: str | Path, *, threshold: float = 0.1, tolerated: float = 0.25,
              title: str = "Covariate balance: virtual vs real",
              xlabel: str = "standardised mean difference (virtual − real)") -> Path:
    """Standardised mean differences per covariate (level), with the 0.1 / 0.25 guides.

    Within ``threshold``: green circles; within ``tolerated``: orange squares; beyond:
    vermillion triangles (shape repeats the colour's message). An optional
    ``smd_before`` column (e.g. before propensity weighting) is drawn as hollow grey
    circles joined to the current value.
    """
    _require_columns(balance, ["smd"], "balance")
    smd = balance["smd"].iloc[::-1]
    before = balance["smd_before"].iloc[::-1].to_numpy() if "smd_before" in balance else None
    with _style() as plt:
        fig, ax = plt.subplots(figsize=(6.4, 0.3 * len(smd) + 1.4))
        y = np.arange(len(smd))
        if before is not None:
            ax.hlines(y, before, smd.to_numpy(), color=GUIDE, lw=0.8, zorder=1)
            ax.scatter(before, y, facecolors="none", edgecolors="grey", marker="o", zorder=2, label="before weighting")
        a = np.abs(smd.to_numpy())
        for mask, color, marker, label in (
                (a < threshold, GREEN, "o", f"|SMD| < {threshold:g}"),
                ((a >= threshold) & (a < tolerated), ORANGE, "s", f"{threshold:g} ≤ |SMD| < {tolerated:g}"),
                (a >= tolerated, VERMILLION, "^", f"|SMD| ≥ {tolerated:g}")):
            if mask.any():
                ax.scatter(smd.to_numpy()[mask], y[mask], c=color, marker=marker, zorder=3, label=label)
        for x, style in ((threshold, "--"), (tolerated, ":")):
            ax.axvline(x, color=GUIDE, ls=style, lw=1)
            ax.axvline(-x, color=GUIDE, ls=style, lw=1)
        ax.axvline(0, color="black", lw=0.8)
        ax.set_yticks(y, smd.index)
        lim = max(0.3, float(np.nanmax(np.abs(np.r_[smd.to_numpy(), [] if before is None else before]))) * 1.1)
        ax.set(xlim=(-lim, lim), xlabel=xlabel, ylabel="covariate", title=title)
        ax.grid(axis="y", visible=False)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12 - 0.4 / max(len(smd), 1)), ncol=3, frameon=False)
        return _save(fig, out)


def calibration_plot(table: pd.DataFrame, out: str | Path, *, title: str = "Calibration: predicted vs observed",
                     xlabel: str = "mean predicted (per bin)", ylabel: str = "mean observed (per bin)") -> Path:
    """Binned mean predicted vs mean observed, with the identity line (perfect calibration).

    ``table`` has one row per bin: ``predicted`` and ``observed`` (bin means); optional
    ``lower``/``upper`` (an interval for the observed mean, drawn as error bars) and ``n``
    (patients in the bin, written beside each point).
    """
    _require_columns(table, ["predicted", "observed"], "table")
    if len(table) == 0:
        raise ValueError("table: no bins to plot (0 rows)")
    pred = _finite(table["predicted"], "table['predicted']")
    obs = _finite(table["observed"], "table['observed']")
    has_ci = "lower" in table and "upper" in table
    with _style() as plt:
        fig, ax = plt.subplots(figsize=(5.2, 4.6))
        values = [pred, obs] + ([table["lower"].to_numpy(float), table["upper"].to_numpy(float)] if has_ci else [])
        lo = float(np.nanmin(np.concatenate(values)))
        hi = float(np.nanmax(np.concatenate(values)))
        pad = 0.05 * (hi - lo or 1.0)
        ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color=GUIDE, ls="--", lw=1, label="identity (perfect calibration)")
        if has_ci:
            yerr = np.vstack([obs - table["lower"].to_numpy(float), table["upper"].to_numpy(float) - obs])
            ax.errorbar(pred, obs, yerr=yerr, fmt="o", color=BLUE, ecolor=BLUE, capsize=3, ms=5,
                        label="bin mean (observed interval)")
        else:
            ax.plot(pred, obs, "o-", color=BLUE, ms=5, lw=1, label="bin mean")
        if "n" in table:
            for x, y, n in zip(pred, obs, table["n"].to_numpy()):
                ax.annotate(f"n={int(n)}", (x, y), textcoords="offset points", xytext=(5, -10), fontsize=7, color=GUIDE)
        ax.set(xlim=(lo - pad, hi + pad), ylim=(lo - pad, hi + pad), xlabel=xlabel, ylabel=ylabel, title=title)
        ax.set_aspect("equal", adjustable="box")
        ax.legend(loc="upper left", frameon=False)
        return _save(fig, out)


def mahalanobis_qq(theoretical: np.ndarray, observed: np.ndarray, out: str | Path,
                   reference: np.ndarray | tuple[np.ndarray, np.ndarray] | None = None, *,
                   title: str = "Mahalanobis distance vs χ² (QQ)",
                   label: str = "comparator (real)", reference_label: str = "virtual cohort (own)") -> Path:
    """QQ plot of ordered squared Mahalanobis distances against χ² quantiles.

    Under multivariate normality d² ~ χ²_p, so points on the identity line mean the
    covariates are as elliptical as assumed (the check in SIMCor). ``reference`` is the
    virtual cohort's own ordered d² at the same quantiles (a line), or a ``(lower, upper)``
    band from repeated virtual cohorts: the comparator should deviate no more than it.
    """
    t = _finite(theoretical, "theoretical")
    o = _finite(observed, "observed")
    if t.shape != o.shape or t.ndim != 1:
        raise ValueError(f"theoretical and observed must be 1-D of equal length; got {t.shape} and {o.shape}")
    with _style() as plt:
        fig, ax = plt.subplots(figsize=(5.2, 4.6))
        if reference is not None:
            if isinstance(reference, tuple):
                if len(reference) != 2:
                    raise ValueError("reference: give one array (a line) or a (lower, upper) tuple (a band)")
                lo_b, hi_b = (_finite(r, "reference") for r in reference)
                if lo_b.shape != t.shape or hi_b.shape != t.shape:
                    raise ValueError(f"reference band arrays must have length {t.size}")
                ax.fill_between(t, lo_b, hi_b, color=SKY, alpha=0.35, lw=0, label=f"{reference_label}: band")
            else:
                r = _finite(reference, "reference")
                if r.shape != t.shape:
                    raise ValueError(f"reference must have length {t.size}; got {r.size}")
                ax.plot(t, r, color=ORANGE, marker="s", ms=3, lw=0.8, ls=":", label=reference_label)
        top = float(max(t.max(), o.max()))
        ax.plot([0, top], [0, top], color=GUIDE, ls="--", lw=1, label="identity (χ² fits)")
        ax.plot(t, o, "o", color=BLUE, ms=3.5, label=label)
        ax.set(xlabel="theoretical χ² quantile", ylabel="ordered squared Mahalanobis distance", title=title)
        ax.legend(loc="upper left", frameon=False)
        return _save(fig, out)


def sbc_rank_band(n: int, L: int, bins: int, level: float = 0.99) -> pd.DataFrame:
    """Expected rank-histogram counts per bin and their binomial ``level`` interval.

    SBC (Talts et al. 2018): with ``L`` posterior draws the rank of the true parameter is
    uniform on 0..L, so over ``n`` replicates the count in a bin holding ``w`` of the
    ``L + 1`` rank values is Binomial(n, w / (L + 1)). Ranks go to bin
    ``floor(rank * bins / (L + 1))``; bins hold equal numbers of rank values when ``bins``
    divides ``L + 1``.
    """
    from scipy import stats

    if n < 1 or L < 1 or bins < 1:
        raise ValueError(f"n, L and bins must be positive; got n={n}, L={L}, bins={bins}")
    if bins > L + 1:
        raise ValueError(f"bins={bins} exceeds the {L + 1} possible ranks (L={L})")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1); got {level}")
    width = np.bincount(_rank_bin(np.arange(L + 1), L, bins), minlength=bins)
    p = width / (L + 1)
    tail = (1 - level) / 2
    return pd.DataFrame({"width": width, "p": p, "expected": n * p,
                         "lower": stats.binom.ppf(tail, n, p), "upper": stats.binom.ppf(1 - tail, n, p)})


def _rank_bin(ranks: np.ndarray, L: int, bins: int) -> np.ndarray:
    return (np.asarray(ranks, dtype=np.int64) * bins) // (L + 1)


def rank_histograms(ranks: pd.DataFrame, L: int, bins: int, out: str | Path, *, level: float = 0.99,
                    title: str = "Simulation-based calibration: rank histograms", ncols: int = 4) -> Path:
    """SBC rank histograms, one small panel per parameter (column of ``ranks``).

    Each panel shows the bin counts over the replicates (rows) with the uniform
    expectation and its binomial ``level`` band (:func:`sbc_rank_band`); bars outside the
    band are hatched and vermillion.
    """
    if not isinstance(ranks, pd.DataFrame) or ranks.shape[1] == 0 or len(ranks) == 0:
        raise ValueError("ranks: expected a DataFrame with one column per parameter and one row per replicate")
    values = ranks.to_numpy()
    if not np.all(np.isfinite(values.astype(float))) or np.any(values != np.round(values)):
        raise ValueError("ranks: every rank must be a finite integer")
    if values.min() < 0 or values.max() > L:
        raise ValueError(f"ranks: values must lie in 0..L={L}; got {values.min()}..{values.max()}")
    band = sbc_rank_band(len(ranks), L, bins, level)
    edges = np.concatenate([[0], np.cumsum(band["width"].to_numpy())])  # bin edges in rank units
    k = ranks.shape[1]
    ncols = min(ncols, k)
    nrows = -(-k // ncols)
    with _style() as plt:
        fig, axes = plt.subplots(nrows, ncols, figsize=(2.3 * ncols + 0.4, 1.9 * nrows + 0.8), squeeze=False,
                                 sharey=True)
        step_x = np.repeat(edges, 2)[1:-1]
        ymax = max(band["upper"].max(), 1)
        for ax, name in zip(axes.flat, ranks.columns):
            counts = np.bincount(_rank_bin(ranks[name].to_numpy(), L, bins), minlength=bins)
            outside = (counts < band["lower"].to_numpy()) | (counts > band["upper"].to_numpy())
            ax.fill_between(step_x, np.repeat(band["lower"], 2), np.repeat(band["upper"], 2), color="#BBBBBB",
                            alpha=0.5, lw=0, label=f"uniform: {level:.0%} band")
            ax.bar(edges[:-1], counts, width=np.diff(edges), align="edge", color=np.where(outside, VERMILLION, BLUE),
                   edgecolor="white", lw=0.4, label="rank count")
            for x0, w, c, o in zip(edges[:-1], np.diff(edges), counts, outside):
                if o:
                    ax.bar(x0, c, width=w, align="edge", fill=False, hatch="///", edgecolor="black", lw=0)
            ax.plot(step_x, np.repeat(band["expected"], 2), color="black", lw=0.8, ls="--", label="expected")
            ymax = max(ymax, counts.max())
            ax.set_title(str(name), fontsize=9)
            ax.set_xlim(0, L + 1)
            ax.grid(axis="x", visible=False)
        for ax in axes.flat[k:]:
            ax.set_visible(False)
        for ax in axes[-1]:
            ax.set_xlabel(f"rank (0–{L})")
        for ax in axes[:, 0]:
            ax.set_ylabel("replicates")
        axes[0, 0].set_ylim(0, ymax * 1.1)
        handles, labels = axes[0, 0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncol=3, frameon=False, bbox_to_anchor=(0.5, 0))
        fig.suptitle(f"{title} ({len(ranks)} replicates, {bins} bins)", fontsize=10, fontweight="bold")
        fig.tight_layout(rect=(0, 0.07, 1, 1))
        return _save(fig, out, tight=False)


def oc_curves(df: pd.DataFrame, x: str, y: str, hue: str, out: str | Path, ylabel: str,
              hline: float | None = None, err: str | None = None, *, title: str | None = None,
              xlabel: str | None = None, hline_label: str | None = None) -> Path:
    """Operating-characteristic curves: ``y`` against ``x``, one line per ``hue`` value.

    For power curves (rejection rate vs effect) or type I error vs drift. ``err`` names
    the column holding each point's Monte Carlo standard error; error bars are ±1.96 MCSE
    (a normal 95% interval for the simulated rate). ``hline`` draws a reference such as
    the nominal one-sided α = 0.025.
    """
    _require_columns(df, [x, y, hue] + ([err] if err else []), "df")
    if len(df) == 0:
        raise ValueError("df: no rows to plot")
    _finite(df[x], f"df[{x!r}]")
    _finite(df[y], f"df[{y!r}]")
    with _style() as plt:
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        for i, (name, g) in enumerate(df.groupby(hue, sort=False)):
            g = g.sort_values(x)
            color, marker = PALETTE[i % len(PALETTE)], MARKERS[i % len(MARKERS)]
            yerr = 1.96 * g[err].to_numpy(float) if err else None
            ax.errorbar(g[x], g[y], yerr=yerr, color=color, marker=marker, ms=4.5, lw=1.4, capsize=2.5,
                        label=str(name))
        if hline is not None:
            ax.axhline(hline, color=GUIDE, ls="--", lw=1)
            ax.annotate(hline_label or f"{hline:g}", (0.0, hline), xycoords=("axes fraction", "data"),
                        xytext=(4, 3), textcoords="offset points", ha="left", va="bottom", fontsize=7, color=GUIDE)
        ax.set(xlabel=xlabel or x, ylabel=ylabel, title=title or f"{ylabel} by {xlabel or x}")
        legend_title = hue + (" (bars: ±1.96 MCSE)" if err else "")
        ax.legend(title=legend_title, title_fontsize=8, frameon=False, loc="best")
        return _save(fig, out)


def bland_altman(mean: np.ndarray, diff: np.ndarray, bias: float, loa: tuple[float, float], out: str | Path, *,
                 title: str = "Bland-Altman: agreement of predicted and observed",
                 xlabel: str = "mean of predicted and observed", ylabel: str = "predicted − observed") -> Path:
    """Bland-Altman plot (Bland & Altman 1986): differences against means, with the bias
    and the limits of agreement ``loa = (lower, upper)`` (usually bias ± 1.96 sd)."""
    m = _finite(mean, "mean")
    d = _finite(diff, "diff")
    if m.shape != d.shape:
        raise ValueError(f"mean and diff must have equal length; got {m.size} and {d.size}")
    if len(loa) != 2 or not loa[0] <= loa[1]:
        raise ValueError(f"loa must be (lower, upper) with lower <= upper; got {loa!r}")
    with _style() as plt:
        fig, ax = plt.subplots(figsize=(6.4, 4.5))
        ax.scatter(m, d, s=12, color=BLUE, alpha=0.6, lw=0, label="patient")
        ax.axhline(0, color=GUIDE, lw=0.8)
        ax.axhline(bias, color=VERMILLION, lw=1.4, label=f"bias {bias:.3g}")
        for v, name in zip(loa, ("lower", "upper")):
            ax.axhline(v, color=ORANGE, lw=1.2, ls="--", label=f"limits of agreement {loa[0]:.3g}, {loa[1]:.3g}"
                       if name == "lower" else None)
        ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=3, frameon=False)
        return _save(fig, out)


def _require_columns(df: pd.DataFrame, cols: list[str], name: str) -> None:
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"{name}: expected a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ValueError(f"{name}: missing column(s) {missing}; has {list(df.columns)}")


def _finite(x, name: str) -> np.ndarray:
    try:
        a = np.asarray(x, dtype=float)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name}: expected numbers") from err
    if a.size == 0:
        raise ValueError(f"{name}: empty")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name}: contains NaN or infinite values")
    return a


def _save(fig, out: str | Path, *, tight: bool = True) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if tight:
        fig.tight_layout()
    fig.savefig(out, dpi=DPI)
    return out


def chain_rank_plot(draws: dict[str, np.ndarray], out: str | Path, *, bins: int = 20,
                    title: str = "MCMC rank plots (parameters with the largest R-hat)") -> Path:
    """Rank histograms per chain (Vehtari et al. 2021): for each parameter, the draws of
    all chains are ranked together and each chain's ranks binned. Chains that mixed give
    flat, overlapping histograms; a chain stuck elsewhere piles up at one end.

    ``draws`` maps a parameter label to a (chains, draws) array.
    """
    if not draws:
        raise ValueError("draws: no parameters to plot")
    names = list(draws)
    cols = min(3, len(names))
    rows = int(np.ceil(len(names) / cols))
    with _style() as plt:
        fig, axes = plt.subplots(rows, cols, figsize=(3.3 * cols, 2.3 * rows + 0.6), squeeze=False)
        for ax, name in zip(axes.ravel(), names, strict=False):
            x = np.asarray(draws[name], dtype=float)
            if x.ndim != 2:
                raise ValueError(f"draws[{name!r}]: expected a (chains, draws) array, got shape {x.shape}")
            ranks = x.ravel().argsort().argsort().reshape(x.shape)
            edges = np.linspace(0, x.size, bins + 1)
            for c in range(x.shape[0]):
                counts, _ = np.histogram(ranks[c], edges)
                ax.stairs(counts, edges, baseline=None, color=PALETTE[c % len(PALETTE)], lw=1.2, label=f"chain {c + 1}")
            ax.axhline(x.shape[1] / bins, color=GUIDE, ls="--", lw=1)
            ax.set(title=name, xlabel="rank (all chains)", ylabel="draws per bin")
        for ax in axes.ravel()[len(names):]:
            ax.set_visible(False)
        axes[0, 0].legend(frameon=False, fontsize=7)
        fig.suptitle(title)
        return _save(fig, out)


def predictive_ecdf(observed: np.ndarray, replicated: np.ndarray, out: str | Path, *, xlabel: str,
                    title: str = "Posterior predictive check: observed vs replicated cohorts",
                    level: float = 0.95) -> Path:
    """ECDF of the observed outcome against the pointwise ``level`` band of replicated
    cohorts' ECDFs (each row of ``replicated`` one virtual cohort of the same size)."""
    y = _finite(observed, "observed")
    rep = np.asarray(replicated, dtype=float)
    if rep.ndim != 2 or rep.shape[1] == 0:
        raise ValueError("replicated: expected a (cohorts, patients) array")
    grid = np.quantile(np.r_[y, rep.ravel()], np.linspace(0.001, 0.999, 200))
    ecdf = lambda v: np.searchsorted(np.sort(v), grid, side="right") / len(v)  # noqa: E731
    curves = np.array([ecdf(r) for r in rep])
    lo, hi = np.quantile(curves, [(1 - level) / 2, (1 + level) / 2], axis=0)
    with _style() as plt:
        fig, ax = plt.subplots(figsize=(5.6, 4.0))
        ax.fill_between(grid, lo, hi, step="post", color=PALETTE[5], alpha=0.35, lw=0,
                        label=f"virtual cohorts: {level:.0%} band")
        ax.step(grid, np.median(curves, axis=0), where="post", color=PALETTE[0], lw=1, ls=":",
                label="virtual cohorts: median")
        ax.step(grid, ecdf(y), where="post", color=PALETTE[1], lw=1.6, label="observed (held out)")
        ax.set(xlabel=xlabel, ylabel="cumulative proportion", title=title, ylim=(0, 1))
        ax.legend(loc="lower right", frameon=False)
        return _save(fig, out)

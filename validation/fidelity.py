"""Fidelity of virtual patients to real ones: covariate balance, dependence, outcomes.

Plain pandas/numpy functions on two tables (real comparator, synthetic cohort), so they
serve held-out validation of any generator. Thresholds (REGULATORY.md): |SMD| < 0.1
(0.25 tolerated), variance ratio 0.5-2.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from insilico.common.files import sha256_bytes
from insilico.common.tables import level_key


def numeric_view(df: pd.DataFrame, columns: dict[str, str], levels: dict[str, list] | None = None) -> pd.DataFrame:
    """Covariates as numbers: continuous/count as they are, one 0/1 column per level otherwise.

    ``columns`` maps name -> type (continuous | count | binary | categorical); ``levels``
    fixes the levels of binary/categorical columns (so two tables get the same columns).
    """
    out = {}
    for name, kind in columns.items():
        if kind in ("continuous", "count"):
            out[name] = pd.to_numeric(df[name], errors="coerce").to_numpy(dtype=float)
            continue
        vals = df[name].map(level_key)  # 1, 1.0 and "1" are one level (CSV round trips make floats)
        lv = [level_key(v) for v in (levels or {}).get(name, sorted(vals.unique()))]
        # a binary covariate needs one indicator; a categorical one per level
        for lvl in lv[1:] if kind == "binary" else lv:
            out[f"{name}={lvl}"] = (vals == lvl).to_numpy(dtype=float)
    return pd.DataFrame(out)


def numeric_pair(real: pd.DataFrame, synth: pd.DataFrame, columns: dict[str, str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    levels = {n: sorted(set(real[n].map(level_key)) | set(synth[n].map(level_key)))
              for n, k in columns.items() if k in ("binary", "categorical")}
    return numeric_view(real, columns, levels), numeric_view(synth, columns, levels)


def balance_table(real: pd.DataFrame, synth: pd.DataFrame, columns: dict[str, str]) -> pd.DataFrame:
    """Per covariate (and level): means, standardised mean difference, variance ratio.

    SMD = (mean_synth - mean_real) / sqrt((var_real + var_synth) / 2).
    """
    r, s = numeric_pair(real, synth, columns)
    mr, ms = r.mean(), s.mean()
    vr, vs = r.var(ddof=1), s.var(ddof=1)
    pooled = np.sqrt((vr + vs) / 2)
    smd = (ms - mr) / pooled.replace(0, np.nan)
    return pd.DataFrame({"mean_real": mr, "mean_synthetic": ms, "smd": smd.fillna(0.0),
                         "variance_ratio": vs / vr.replace(0, np.nan)})


def correlation_difference(real: pd.DataFrame, synth: pd.DataFrame, columns: dict[str, str]) -> float:
    """Largest absolute difference between the two Spearman correlation matrices.

    Rank correlation, as SIMCor uses: Pearson correlations of heavy-tailed lab values
    hinge on a few extreme patients and would measure those, not the dependence.
    """
    r, s = numeric_pair(real, synth, columns)
    keep = [c for c in r.columns if r[c].std() > 0 and s[c].std() > 0]
    diff = (r[keep].corr(method="spearman") - s[keep].corr(method="spearman")).abs().to_numpy()
    return float(np.nanmax(diff))


# ---------------------------------------------------------------------- survival
def km_steps(time: np.ndarray, event: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Kaplan-Meier product-limit steps: distinct times, deaths and number at risk at each,
    and the survival just after each."""
    time, event = np.asarray(time, dtype=float), np.asarray(event, dtype=int)
    order = np.argsort(time, kind="stable")
    t, e = time[order], event[order]
    uniq, first = np.unique(t, return_index=True)
    deaths = np.add.reduceat(e, first)
    at_risk = len(t) - first
    return uniq, deaths, at_risk, np.cumprod(1.0 - deaths / at_risk)


def kaplan_meier(time: np.ndarray, event: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Kaplan-Meier survival estimate evaluated at each grid time."""
    uniq, _, _, surv = km_steps(time, event)
    idx = np.searchsorted(uniq, np.asarray(grid, dtype=float), side="right") - 1
    return np.where(idx >= 0, surv[np.clip(idx, 0, None)], 1.0)


def resample_censoring(time: np.ndarray, event: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Censoring times drawn from the reverse Kaplan-Meier of a real cohort.

    Lets a synthetic cohort be censored as the comparator was, so that their KM curves
    have the same precision. Beyond the last censoring time, censoring is at infinity.
    """
    time = np.asarray(time, dtype=float)
    grid = np.unique(time)
    s = kaplan_meier(time, 1 - np.asarray(event, dtype=int), grid)  # P(C > t)
    u = rng.random(n)
    # C = first grid time where P(C > t) <= u
    idx = np.searchsorted(-s, -u, side="left")
    return np.where(idx < len(grid), grid[np.clip(idx, 0, len(grid) - 1)], np.inf)


def predictive_band(curves: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Simultaneous band holding `level` of the simulated curves entirely (rows = curves).

    The band is the pointwise median +/- the `level` quantile of the curves' largest
    distance from it (the Kaplan-Meier distance), so a real curve inside the band is one
    whose KM distance is within its predictive range: one judgement, not one per time.
    """
    curves = np.asarray(curves, dtype=float)
    center = np.median(curves, axis=0)
    c = np.quantile(np.max(np.abs(curves - center), axis=1), level)
    return np.clip(center - c, 0, 1), np.clip(center + c, 0, 1)


def pit_coverage(pit: np.ndarray, event: np.ndarray | None = None, level: float = 0.9) -> float:
    """Share of outcomes inside their central `level` predictive interval.

    ``pit`` holds each patient's predictive CDF at the observed outcome. For censored
    outcomes (``event`` given) the PIT is itself right-censored, and the share is
    estimated by Kaplan-Meier on the PIT scale.
    """
    lo, hi = (1 - level) / 2, 1 - (1 - level) / 2
    pit = np.asarray(pit, dtype=float)
    if event is None:
        return float(np.mean((pit >= lo) & (pit <= hi)))
    s = kaplan_meier(pit, event, np.array([lo, hi]))
    return float(s[0] - s[1])


# ---------------------------------------------------------------------- held-out splits
def holdout_split(df: pd.DataFrame, fraction: float, seed: int, strata: list[str] | None = None,
                  time: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Row positions of a random (stratified) fit / held-out split.

    Stratifying on the outcome (event indicator and time quartile for survival, or the
    outcome for binary data) and study keeps sampling noise between the two parts out
    of the comparison, so what remains is model error. Returns (fit_rows, held_out_rows).
    """
    rng = np.random.default_rng(seed)
    keys = pd.Series(np.zeros(len(df), dtype=int), index=df.index).astype(str)
    for s in strata or []:
        keys = keys + "|" + df[s].astype(str)
    if time is not None:
        keys = keys + "|" + pd.qcut(df[time].rank(method="first"), 4, labels=False).astype(str)
    fit_rows, held = [], []
    for _, pos in sorted(pd.Series(np.arange(len(df))).groupby(keys.to_numpy()).groups.items()):
        pos = rng.permutation(np.asarray(pos))
        k = int(round(fraction * len(pos)))
        fit_rows.append(pos[:k])
        held.append(pos[k:])
    return np.sort(np.concatenate(fit_rows)), np.sort(np.concatenate(held))


def id_digest(ids) -> str:
    """SHA-256 of a sorted id list: proves which patients were in a set without listing them."""
    return sha256_bytes("\n".join(sorted(map(str, ids))).encode())


def km_band_check(sample, real: pd.DataFrame, time: str, event: str, *, n_cohorts: int = 200,
                  seed: int = 0, level: float = 0.95, grid_points: int = 40) -> dict:
    """Is the real Kaplan-Meier curve inside the virtual cohorts' predictive band?

    ``sample(n, seed)`` draws a virtual cohort of the real cohort's size (one posterior
    draw each, so parameter uncertainty widens the band); each is censored like the real
    cohort (`resample_censoring`) before its KM is taken. The grid runs to the real
    data's 90th time percentile, where the real KM is still well estimated.
    """
    t_real, e_real = real[time].to_numpy(dtype=float), real[event].to_numpy(dtype=int)
    grid = np.linspace(0.0, float(np.quantile(t_real, 0.9)), grid_points)
    rng = np.random.default_rng(seed)
    curves = np.empty((n_cohorts, grid_points))
    for r in range(n_cohorts):
        c = sample(len(real), int(rng.integers(2**31)))
        cens = resample_censoring(t_real, e_real, len(c), rng)
        tt = c[time].to_numpy(dtype=float)
        curves[r] = kaplan_meier(np.minimum(tt, cens), c[event].to_numpy(dtype=int) * (tt <= cens), grid)
    lo, hi = predictive_band(curves, level)
    km_real = kaplan_meier(t_real, e_real, grid)
    outside = (km_real < lo) | (km_real > hi)
    return {"grid": grid, "km_real": km_real, "km_virtual": np.median(curves, axis=0), "lower": lo, "upper": hi,
            "inside": bool(not outside.any()), "share_outside": float(outside.mean()),
            "max_distance": float(np.max(np.abs(km_real - np.median(curves, axis=0))))}

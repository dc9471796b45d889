"""Privacy of released synthetic cohorts: distance to closest record, membership inference,
exact copies, and the release gate that refuses to write a cohort that fails them.

Metrics as SDMetrics / synthcity / SynthEval define them (REGULATORY.md §3): a generator
that has not memorised its training patients places synthetic records no closer to them
than to new patients from the same population (DCR ratio ≈ 1, share closer to train
≈ 0.5), and a distance-based membership-inference attacker does no better than chance
(AUC ≈ 0.5). Our own code; numpy kernels, pandas wrappers, then the API.

Distances live on one scale fixed by the training data: continuous and count covariates
standardised by the training mean and sd, binary covariates as one 0/1 indicator, and
categorical ones as one indicator per level weighted 1/√2, so that a mismatch on any
binary or categorical covariate adds 1 to the squared distance, as one training sd does.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import Field
from scipy.spatial import cKDTree
from sklearn.metrics import roc_auc_score

from insilico.common.files import write_csv
from insilico.common.specfile import Strict
from insilico.common.tables import level_key
from insilico.validation.fidelity import numeric_view

NUMERIC = ("continuous", "count")
LEVELLED = ("binary", "categorical")
MAX_DECIMALS = 12  # beyond this a float has no recorded resolution; compare it as stored


class PrivacyGateError(ValueError):
    """A synthetic cohort failed the release gate; ``reasons`` lists every failed limit."""

    def __init__(self, reasons: list[str], path: str | os.PathLike | None = None):
        self.reasons = list(reasons)
        where = f" to {path}" if path is not None else ""
        super().__init__(f"synthetic cohort not exported{where}; it fails the privacy gate: "
                         + "; ".join(self.reasons))


class ReleaseLimits(Strict):
    """Pre-set privacy limits a synthetic cohort must meet before it leaves the analysis."""

    # Real patients coincide with one another on low-resolution data (ages in years,
    # scores in half points, binary flags): the gate limits copies *beyond* the rate at
    # which held-out real patients match a training record. An absolute cap is optional.
    max_exact_copy_excess: float = Field(0.0, ge=0, le=1)
    max_exact_copies: int | None = Field(None, ge=0)
    max_share_closer_to_train: float = Field(0.6, ge=0, le=1)
    max_membership_auc: float = Field(0.6, ge=0, le=1)
    min_dcr_ratio: float = Field(0.8, ge=0)


# ---------------------------------------------------------------------- input checks
def check_columns(columns: dict[str, str]) -> None:
    if not columns:
        raise ValueError("columns is empty: name at least one covariate")
    for name, kind in columns.items():
        if kind not in NUMERIC + LEVELLED:
            raise ValueError(f"column {name!r} has type {kind!r}; expected one of "
                             f"{', '.join(NUMERIC + LEVELLED)}")


def check_table(df: pd.DataFrame, columns: dict[str, str], what: str) -> None:
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"{what} must be a pandas DataFrame, got {type(df).__name__}")
    if len(df) == 0:
        raise ValueError(f"{what} has no rows")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{what} lacks column(s) {missing}")
    for name, kind in columns.items():
        if kind in NUMERIC:
            x = pd.to_numeric(df[name], errors="coerce")
            bad = int(x.isna().sum())
            if bad:
                raise ValueError(f"{what} column {name!r} has {bad} missing or non-numeric value(s); "
                                 "distances need complete numeric covariates")
            if not np.isfinite(x.to_numpy(dtype=float)).all():
                raise ValueError(f"{what} column {name!r} has infinite values")


def canonical_levels(df: pd.DataFrame, columns: dict[str, str]) -> pd.DataFrame:
    """Covariates with levels as canonical strings (1, 1.0, "1" and True are one level)."""
    out = {}
    for name, kind in columns.items():
        if kind in NUMERIC:
            out[name] = pd.to_numeric(df[name], errors="coerce").to_numpy(dtype=float)
        else:
            out[name] = [level_key(v) for v in df[name].to_numpy()]
    return pd.DataFrame(out)


def shared_levels(columns: dict[str, str], *tables: pd.DataFrame) -> dict[str, list[str]]:
    """Sorted union of each binary/categorical covariate's levels over all tables."""
    levels = {}
    for name, kind in columns.items():
        if kind in LEVELLED:
            lv = sorted(set().union(*(set(canonical_levels(t[[name]], {name: kind})[name]) for t in tables)))
            if kind == "binary" and len(lv) > 2:
                raise ValueError(f"binary column {name!r} has {len(lv)} levels {lv}; declare it categorical")
            levels[name] = lv
    return levels


# ---------------------------------------------------------------------- common scale
@dataclass(frozen=True)
class Scaler:
    """The common distance scale: training mean/sd per numeric column, shared levels.

    Build it with :func:`fit_scaler`; ``transform`` maps any table to the same features.
    """

    columns: dict[str, str]
    levels: dict[str, list[str]]
    features: list[str]
    center: np.ndarray
    scale: np.ndarray

    def transform(self, df: pd.DataFrame, what: str = "table") -> np.ndarray:
        check_table(df, self.columns, what)
        canon = canonical_levels(df, self.columns)
        for name, lv in self.levels.items():
            unseen = sorted(set(canon[name]) - set(lv))
            if unseen:
                raise ValueError(f"{what} column {name!r} has level(s) {unseen} the scaler was not "
                                 "fitted with; pass that table to fit_scaler too")
        x = numeric_view(canon, self.columns, self.levels)[self.features].to_numpy(dtype=float)
        return (x - self.center) / self.scale


def fit_scaler(train: pd.DataFrame, columns: dict[str, str], *others: pd.DataFrame) -> Scaler:
    """Scale fixed by the training table; levels shared with ``others`` (synthetic, holdout).

    Zero, undefined (one row) or non-finite sd falls back to 1, so a constant training
    column adds raw differences rather than dividing by zero.
    """
    check_columns(columns)
    check_table(train, columns, "train")
    for i, o in enumerate(others):
        check_table(o, columns, f"table {i + 1}")
    levels = shared_levels(columns, train, *others)
    view = numeric_view(canonical_levels(train, columns), columns, levels)
    features = list(view.columns)
    center = np.zeros(len(features))
    scale = np.ones(len(features))
    for j, f in enumerate(features):
        if f in columns and columns[f] in NUMERIC:
            x = view[f].to_numpy(dtype=float)
            sd = float(np.std(x, ddof=1)) if len(x) > 1 else np.nan
            center[j] = float(np.mean(x))
            scale[j] = sd if np.isfinite(sd) and sd > 1e-12 * max(1.0, abs(center[j])) else 1.0
        else:
            name = f.split("=", 1)[0]
            # one mismatch on a categorical flips two indicators: weight 1/sqrt(2) each
            scale[j] = np.sqrt(2.0) if columns.get(name) == "categorical" else 1.0
    return Scaler(dict(columns), levels, features, center, scale)


# ---------------------------------------------------------------------- numpy kernels
def _nearest(query: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Euclidean distance from each query row to its nearest reference row (exact, k-d tree)."""
    if query.shape[1] == 0:
        return np.zeros(len(query))
    d, _ = cKDTree(reference).query(query, k=1)
    return np.asarray(d, dtype=float)


def _resolution(x: np.ndarray) -> int:
    """Fewest decimals that represent every value of ``x`` (its recording resolution)."""
    for d in range(MAX_DECIMALS + 1):
        y = x * 10.0**d
        if np.all(np.abs(y - np.round(y)) <= 1e-9 * np.maximum(1.0, np.abs(y))):
            return d
    return MAX_DECIMALS


def _row_keys(df: pd.DataFrame, columns: dict[str, str], decimals: dict[str, int]) -> list[tuple]:
    cols = []
    for name, kind in columns.items():
        if kind in NUMERIC:
            # + 0.0 turns -0.0 into 0.0 so the two compare and hash alike
            cols.append((np.round(df[name].to_numpy(dtype=float), decimals[name]) + 0.0).tolist())
        else:
            cols.append(list(df[name]))
    return list(zip(*cols, strict=True))


# ---------------------------------------------------------------------- API
def distance_to_closest_record(query: pd.DataFrame, reference: pd.DataFrame, columns: dict[str, str],
                               scaler: Scaler | None = None) -> np.ndarray:
    """Distance from each query row to its closest reference row (DCR) on the common scale.

    ``scaler`` should be fitted on the training data (:func:`fit_scaler`); without one the
    reference fixes the scale, with levels shared between the two tables.
    """
    if scaler is None:
        scaler = fit_scaler(reference, columns, query)
    elif dict(columns) != scaler.columns:
        raise ValueError("columns differ from those the scaler was fitted with")
    return _nearest(scaler.transform(query, "query"), scaler.transform(reference, "reference"))


def exact_copies(synthetic: pd.DataFrame, train: pd.DataFrame, columns: dict[str, str]) -> np.ndarray:
    """Boolean per synthetic row: identical to some training row on every covariate.

    Original values, not standardised; each numeric column is first rounded to the
    training data's recording resolution (e.g. whole years, one decimal of a lab value),
    so a generator that emits 54.000001 for a recorded 54 is still caught.
    """
    check_columns(columns)
    check_table(synthetic, columns, "synthetic")
    check_table(train, columns, "train")
    s, t = canonical_levels(synthetic, columns), canonical_levels(train, columns)
    decimals = {n: _resolution(t[n].to_numpy(dtype=float)) for n, k in columns.items() if k in NUMERIC}
    seen = set(_row_keys(t, columns, decimals))
    return np.array([k in seen for k in _row_keys(s, columns, decimals)], dtype=bool)


def privacy_metrics(synthetic: pd.DataFrame, train: pd.DataFrame, holdout: pd.DataFrame,
                    columns: dict[str, str], seed: int) -> dict:
    """DCR medians and ratio, share closer to train, exact copies, membership-inference AUC.

    - ``dcr_ratio`` = median DCR(synthetic→train) / median DCR(holdout→train): the holdout
      shows how close a new patient of the same population comes to the training set by
      chance; ≥ 1 means synthetic records are no closer than that. 0/0 (all-discrete data
      with duplicates) counts as 1.
    - ``share_closer_to_train``: share of synthetic rows nearer to the training set than
      to a holdout set of equal size (the larger of the two subsampled, seeded), ties
      counted ½; 0.5 when the generator has not seen the training patients.
    - ``exact_copies`` / ``exact_copy_share``: synthetic rows equal to a training row at
      the data's resolution; ``holdout_copy_share`` the same for held-out real patients
      (chance coincidences on low-resolution data); ``exact_copy_excess`` the difference.
    - ``membership_inference_auc``: attacker scores a candidate by −DCR(candidate→synthetic);
      members = training rows, non-members = holdout rows (same equal-sized samples); ROC
      AUC, 0.5 = no leakage (the DCR attack of synthcity / SynthEval).
    """
    check_columns(columns)
    scaler = fit_scaler(train, columns, synthetic, holdout)
    xs = scaler.transform(synthetic, "synthetic")
    xt = scaler.transform(train, "train")
    xh = scaler.transform(holdout, "holdout")

    dcr_st, dcr_ht = _nearest(xs, xt), _nearest(xh, xt)
    med_s, med_h = float(np.median(dcr_st)), float(np.median(dcr_ht))
    if med_h > 0:
        ratio = med_s / med_h
    else:
        ratio = 1.0 if med_s == 0 else float("inf")

    rng = np.random.default_rng(seed)
    n = min(len(xt), len(xh))
    it = np.sort(rng.choice(len(xt), n, replace=False)) if len(xt) > n else np.arange(n)
    ih = np.sort(rng.choice(len(xh), n, replace=False)) if len(xh) > n else np.arange(n)
    d_train, d_hold = _nearest(xs, xt[it]), _nearest(xs, xh[ih])
    closer = float(np.mean((d_train < d_hold) + 0.5 * (d_train == d_hold)))

    score = -np.concatenate([_nearest(xt[it], xs), _nearest(xh[ih], xs)])
    labels = np.r_[np.ones(n), np.zeros(n)]
    auc = float(roc_auc_score(labels, score))

    copies = int(exact_copies(synthetic, train, columns).sum())
    holdout_copies = int(exact_copies(holdout, train, columns).sum())
    return {
        "dcr_synthetic_train_median": med_s,
        "dcr_holdout_train_median": med_h,
        "dcr_ratio": float(ratio),
        "share_closer_to_train": closer,
        "exact_copies": copies,
        "exact_copy_share": copies / len(xs),
        "holdout_exact_copies": holdout_copies,
        "holdout_copy_share": holdout_copies / len(xh),
        "exact_copy_excess": copies / len(xs) - holdout_copies / len(xh),
        "membership_inference_auc": auc,
        "n_synthetic": len(xs),
        "n_train": len(xt),
        "n_holdout": len(xh),
        "n_compared": n,
        "seed": int(seed),
    }


_GATE_KEYS = ("exact_copies", "exact_copy_excess", "exact_copy_share", "holdout_copy_share",
              "share_closer_to_train", "membership_inference_auc", "dcr_ratio")


def release_gate(metrics: dict, limits: ReleaseLimits | None = None) -> list[str]:
    """Every reason the cohort may not be released (empty list = it may).

    A metric that is not a number (NaN) cannot show the limit is met, so it fails.
    """
    limits = limits or ReleaseLimits()
    missing = [k for k in _GATE_KEYS if k not in metrics]
    if missing:
        raise ValueError(f"metrics lack {missing}; compute them with privacy_metrics")
    v = {k: float(metrics[k]) for k in _GATE_KEYS}
    reasons = [f"{k} is not a number, so the limit cannot be shown to hold" for k in _GATE_KEYS if np.isnan(v[k])]
    if v["exact_copy_excess"] > limits.max_exact_copy_excess:
        reasons.append(f"exact copies of training records: {int(v['exact_copies'])} synthetic rows "
                       f"({v['exact_copy_share']:.1%}), {v['exact_copy_excess']:.1%} beyond the rate at which held-out "
                       f"real patients match one ({v['holdout_copy_share']:.1%}); limit {limits.max_exact_copy_excess:.1%}")
    if limits.max_exact_copies is not None and v["exact_copies"] > limits.max_exact_copies:
        reasons.append(f"exact_copies = {int(v['exact_copies'])} > max_exact_copies = {limits.max_exact_copies}: "
                       "synthetic rows reproduce training patients' records")
    if v["share_closer_to_train"] > limits.max_share_closer_to_train:
        reasons.append(f"share_closer_to_train = {v['share_closer_to_train']:.3f} > "
                       f"{limits.max_share_closer_to_train}: synthetic rows sit closer to training patients "
                       "than to new ones")
    if v["membership_inference_auc"] > limits.max_membership_auc:
        reasons.append(f"membership_inference_auc = {v['membership_inference_auc']:.3f} > "
                       f"{limits.max_membership_auc}: an attacker can tell who was in the training data")
    if v["dcr_ratio"] < limits.min_dcr_ratio:
        reasons.append(f"dcr_ratio = {v['dcr_ratio']:.3f} < min_dcr_ratio = {limits.min_dcr_ratio}: "
                       "synthetic rows are closer to training patients than new patients are")
    return reasons


def export_cohort(cohort: pd.DataFrame, path: str | os.PathLike, metrics: dict,
                  limits: ReleaseLimits | None = None) -> Path:
    """Write ``cohort`` as CSV only if it passes the release gate; otherwise write nothing.

    Raises :class:`PrivacyGateError` listing every failed limit (also when the metrics
    were computed on a cohort of another size). The CSV goes to a temporary file in the
    target folder and is renamed into place, so a reader never sees a partial file
    (the file is created owner-readable only, as patient-derived data should be).
    """
    if not isinstance(cohort, pd.DataFrame):
        raise ValueError(f"cohort must be a pandas DataFrame, got {type(cohort).__name__}")
    path = Path(path)
    reasons = release_gate(metrics, limits)
    if "n_synthetic" in metrics and int(metrics["n_synthetic"]) != len(cohort):
        reasons.append(f"metrics were computed on {int(metrics['n_synthetic'])} synthetic rows, "
                       f"the cohort has {len(cohort)}: they describe another cohort")
    if reasons:
        raise PrivacyGateError(reasons, path)
    return write_csv(cohort, path, private=True)

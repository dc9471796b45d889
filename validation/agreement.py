"""Patient-level agreement of a digital twin's predictions with observed outcomes.

For a device maker validating their own twin (in vivo validation, output comparison in
ASME V&V 40): one prediction and one observation per subject. Continuous outcomes get
Bland-Altman limits of agreement and calibration; binary outcomes get discrimination,
Brier score, calibration and threshold metrics with Wilson intervals. The figures are
drawn by ``reports``; these functions return the data behind them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from insilico.common.errors import InputError
from insilico.validation.metrics import as_vector, calibration, concordance, same_length


def _pairs(observed, predicted, min_n: int = 3) -> tuple[np.ndarray, np.ndarray]:
    y, p = as_vector(observed, "observed"), as_vector(predicted, "predicted")
    same_length(observed=y, predicted=p)
    if len(y) < min_n:
        raise InputError(f"observed: at least {min_n} subjects needed, got {len(y)}")
    return y, p


def continuous_agreement(observed, predicted, level: float = 0.95) -> dict:
    """Bland-Altman agreement, error and calibration of continuous predictions.

    d = predicted - observed; bias = mean(d), sd = SD(d) (ddof 1); limits of agreement
    bias +/- z sd (z = 1.96 for 95%). Confidence intervals use t_{n-1}: for the bias
    se = sd/sqrt(n), for each limit se ~= sd sqrt(3/n) (Bland & Altman 1999, Stat Methods
    Med Res 8:135, sec. 2.3). ``plot`` holds per-subject mean and difference for the
    Bland-Altman figure; calibration is :func:`validation.metrics.calibration`.
    """
    y, p = _pairs(observed, predicted)
    if not 0 < level < 1:
        raise InputError(f"level: expected 0 < level < 1, got {level}")
    n = len(y)
    d = p - y
    bias, sd = float(d.mean()), float(d.std(ddof=1))
    z = stats.norm.ppf(0.5 + level / 2)
    t = stats.t.ppf(0.5 + level / 2, n - 1)
    lo, hi = bias - z * sd, bias + z * sd
    se_bias, se_limit = sd / np.sqrt(n), sd * np.sqrt(3 / n)
    r = float(stats.pearsonr(y, p).statistic) if np.ptp(y) > 0 and np.ptp(p) > 0 else np.nan
    return {
        "n": n, "bias": bias, "sd_difference": sd,
        "bias_ci": (bias - t * se_bias, bias + t * se_bias),
        "loa_lower": lo, "loa_upper": hi,
        "loa_lower_ci": (lo - t * se_limit, lo + t * se_limit),
        "loa_upper_ci": (hi - t * se_limit, hi + t * se_limit),
        "level": level,
        "mae": float(np.mean(np.abs(d))), "rmse": float(np.sqrt(np.mean(d**2))), "pearson_r": r,
        "calibration": calibration(y, p, "continuous"),
        "plot": pd.DataFrame({"mean": (y + p) / 2, "difference": d}),
    }


def wilson_interval(successes: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (Wilson 1927); (nan, nan) when n = 0."""
    if n == 0:
        return (np.nan, np.nan)
    z = stats.norm.ppf(0.5 + level / 2)
    phat = successes / n
    centre = (phat + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z / (1 + z**2 / n) * np.sqrt(phat * (1 - phat) / n + z**2 / (4 * n**2))
    return (float(centre - half), float(centre + half))


def _rate(k: int, n: int, level: float) -> dict:
    lo, hi = wilson_interval(k, n, level)
    return {"value": k / n if n else np.nan, "ci_lower": lo, "ci_upper": hi, "k": k, "n": n}


def binary_agreement(observed, predicted_probability, thresholds=(0.5,), level: float = 0.95) -> dict:
    """Discrimination, accuracy and calibration of predicted probabilities of a 0/1 outcome.

    AUC (Mann-Whitney, ties 1/2), Brier score mean((p - y)^2), logistic calibration
    (:func:`validation.metrics.calibration`), and per threshold (positive = p >= threshold)
    sensitivity, specificity, PPV and NPV with Wilson score intervals. ``thresholds`` is a
    long table: one row per threshold and measure.
    """
    y, p = _pairs(observed, predicted_probability)
    if not np.all((y == 0) | (y == 1)):
        raise InputError("observed: expected 0/1 outcomes")
    if np.any((p < 0) | (p > 1)):
        raise InputError("predicted_probability: expected probabilities in [0, 1]")
    rows = []
    for thr in np.atleast_1d(np.asarray(thresholds, dtype=float)):
        if not 0 <= thr <= 1:
            raise InputError(f"thresholds: {thr} is not a probability")
        pos = p >= thr
        tp, fp = int(np.sum(pos & (y == 1))), int(np.sum(pos & (y == 0)))
        fn, tn = int(np.sum(~pos & (y == 1))), int(np.sum(~pos & (y == 0)))
        for name, k, n in (("sensitivity", tp, tp + fn), ("specificity", tn, tn + fp),
                           ("ppv", tp, tp + fp), ("npv", tn, tn + fn)):
            rows.append({"threshold": float(thr), "measure": name, **_rate(k, n, level)})
    return {"n": len(y), "events": int(y.sum()), "auc": concordance(y, p),
            "brier": float(np.mean((p - y) ** 2)), "calibration": calibration(y, p, "binary"),
            "thresholds": pd.DataFrame(rows), "level": level}


def _read(path, role: str, id_column: str) -> pd.DataFrame:
    try:
        df = pd.read_csv(path, dtype=str, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise InputError(f"{role} file {Path(path).name}: empty file") from None
    if df.empty:
        raise InputError(f"{role} file {Path(path).name}: header but no rows")
    if id_column not in df.columns:
        raise InputError(f"{role} file {Path(path).name}: no id column {id_column!r} "
                         f"(columns: {', '.join(df.columns)})")
    ids = df[id_column].str.strip()
    if ids.isna().any():
        raise InputError(f"{role} file {Path(path).name}: {int(ids.isna().sum())} row(s) without an id")
    dup = ids[ids.duplicated()].unique()
    if len(dup):
        raise InputError(f"{role} file {Path(path).name}: {len(dup)} duplicated id(s), e.g. "
                         f"{', '.join(map(repr, dup[:5]))}")
    return df.assign(**{id_column: ids})


def _value(df: pd.DataFrame, column: str | None, role: str, path, id_column: str) -> pd.Series:
    name = Path(path).name
    if column is None:
        others = [c for c in df.columns if c != id_column]
        if len(others) != 1:
            raise InputError(f"{role} file {name}: expected one value column besides {id_column!r}, found "
                             f"{len(others)} ({', '.join(others) or 'none'}); pass value_column")
        column = others[0]
    if column not in df.columns:
        raise InputError(f"{role} file {name}: no value column {column!r} (columns: {', '.join(df.columns)})")
    raw = df[column]
    vals = pd.to_numeric(raw.str.strip(), errors="coerce")
    bad = vals.isna()
    if bad.any():
        ids = df.loc[bad, id_column].tolist()
        raise InputError(f"{role} file {name}: column {column!r} has {int(bad.sum())} missing or non-numeric "
                         f"value(s), e.g. id(s) {', '.join(map(repr, ids[:5]))}")
    return pd.Series(vals.to_numpy(dtype=float), index=df[id_column].to_numpy())


def read_twin_pair(predictions_csv, observed_csv, id_column: str = "id", value_column=None) -> pd.DataFrame:
    """Join a twin's predictions with observed outcomes by subject id.

    Each CSV has ``id_column`` and one value column: ``value_column`` names it (one name
    for both files, or a (predictions, observed) pair); None takes the only other column.
    Ids are compared as trimmed strings, so "007" and "7" differ. Returns columns
    ``id_column``, ``predicted``, ``observed`` in the predictions file's order. Every id
    must be in both files: a twin validated on a subset of subjects would hide the ones
    it could not predict.
    """
    if isinstance(value_column, (tuple, list)):
        if len(value_column) != 2:
            raise InputError("value_column: expected a name or a (predictions, observed) pair")
        col_p, col_o = value_column
    else:
        col_p = col_o = value_column
    pred = _read(predictions_csv, "predictions", id_column)
    obs = _read(observed_csv, "observed", id_column)
    vp = _value(pred, col_p, "predictions", predictions_csv, id_column)
    vo = _value(obs, col_o, "observed", observed_csv, id_column)
    only_p = vp.index.difference(vo.index)
    only_o = vo.index.difference(vp.index)
    if len(only_p) or len(only_o):
        parts = []
        if len(only_p):
            parts.append(f"{len(only_p)} id(s) only in the predictions (e.g. {', '.join(map(repr, only_p[:5]))})")
        if len(only_o):
            parts.append(f"{len(only_o)} id(s) only in the observations (e.g. {', '.join(map(repr, only_o[:5]))})")
        raise InputError(f"{id_column}: unmatched ids: " + "; ".join(parts))
    return pd.DataFrame({id_column: vp.index, "predicted": vp.to_numpy(),
                         "observed": vo.reindex(vp.index).to_numpy()})

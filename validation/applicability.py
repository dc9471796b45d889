"""Applicability: is the context-of-use population inside the covariate support on which
the generator was validated?

ASME V&V 40 "Relevance of the validation activities to the COU" (REGULATORY.md §1): a
generator validated on one population says little about patients outside it. Three
views of the support, from coarse to joint: per-covariate ranges and seen levels, the
reference's Mahalanobis depth region, and propensity-score overlap (the positivity
check of the causal-inference literature, e.g. Crump et al. 2009; Stuart 2010), plus
flags for the subgroups a simulation would extrapolate to.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from insilico.validation.fidelity import numeric_view
from insilico.validation.privacy import (
    NUMERIC,
    canonical_levels,
    check_columns,
    check_table,
    shared_levels,
)

PROPENSITY_RANGE = (1.0, 99.0)  # percentiles of the reference propensities taken as its support


def _prepare(target: pd.DataFrame, reference: pd.DataFrame, columns: dict[str, str]):
    check_columns(columns)
    check_table(target, columns, "target")
    check_table(reference, columns, "reference")
    return canonical_levels(target, columns), canonical_levels(reference, columns)


def _standardised(target: pd.DataFrame, reference: pd.DataFrame, columns: dict[str, str]):
    """numeric_view of both tables (shared levels), standardised by the reference mean/sd."""
    levels = shared_levels(columns, target, reference)
    xt = numeric_view(target, columns, levels).to_numpy(dtype=float)
    xr = numeric_view(reference, columns, levels).to_numpy(dtype=float)
    mu = xr.mean(axis=0)
    sd = xr.std(axis=0, ddof=1) if len(xr) > 1 else np.zeros(xr.shape[1])
    sd = np.where(np.isfinite(sd) & (sd > 1e-12), sd, 1.0)
    return (xt - mu) / sd, (xr - mu) / sd


# ---------------------------------------------------------------------- numpy kernels
def mahalanobis_sq(x: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Squared Mahalanobis distance of rows of ``x`` from the reference mean and covariance.

    (x − μ)ᵀ S⁺ (x − μ) with S⁺ the Moore–Penrose pseudo-inverse, so collinear columns
    (the one-hot levels of a covariate sum to 1) and constant ones are dropped rather than
    divided by ~0; eigenvalues below 1e-10 × the largest count as zero.
    """
    mu = reference.mean(axis=0)
    cov = np.atleast_2d(np.cov(reference, rowvar=False))
    w, v = np.linalg.eigh(cov)
    keep = w > 1e-10 * w.max() if w.max() > 0 else np.zeros(w.shape, dtype=bool)
    z = (x - mu) @ v[:, keep] / np.sqrt(w[keep])
    return np.sum(z * z, axis=1)


def _in_range(x: np.ndarray, ref: np.ndarray) -> np.ndarray:
    return (x >= ref.min()) & (x <= ref.max())


# ---------------------------------------------------------------------- API
def covariate_support(target: pd.DataFrame, reference: pd.DataFrame, columns: dict[str, str]) -> pd.DataFrame:
    """Per covariate: reference range, share of the target below / above it, unseen levels.

    ``share_outside`` is the share outside the range (numeric) or in a level the reference
    never had (binary / categorical).
    """
    t, r = _prepare(target, reference, columns)
    rows = {}
    for name, kind in columns.items():
        if kind in NUMERIC:
            xt, xr = t[name].to_numpy(dtype=float), r[name].to_numpy(dtype=float)
            below, above = float(np.mean(xt < xr.min())), float(np.mean(xt > xr.max()))
            rows[name] = {"kind": kind, "reference_min": float(xr.min()), "reference_max": float(xr.max()),
                          "share_below_min": below, "share_above_max": above,
                          "share_outside_range": below + above, "unseen_levels": "",
                          "share_unseen_levels": np.nan, "share_outside": below + above}
        else:
            seen = set(r[name])
            unseen = ~t[name].isin(seen)
            share = float(unseen.mean())
            rows[name] = {"kind": kind, "reference_min": np.nan, "reference_max": np.nan,
                          "share_below_min": np.nan, "share_above_max": np.nan, "share_outside_range": np.nan,
                          "unseen_levels": ", ".join(sorted(set(t[name][unseen]))),
                          "share_unseen_levels": share, "share_outside": share}
    return pd.DataFrame.from_dict(rows, orient="index")


def applicability(target: pd.DataFrame, reference: pd.DataFrame, columns: dict[str, str], seed: int,
                  depth_quantile: float = 0.99) -> dict:
    """How much of the target (COU) population lies inside the reference's covariate support.

    - ``share_in_ranges``: target rows with every numeric covariate inside the reference
      [min, max] and every level seen in the reference.
    - ``share_in_mahalanobis_support``: target rows whose squared Mahalanobis distance from
      the reference mean/covariance is at most the reference's own ``depth_quantile``
      quantile of that distance (≈ ``depth_quantile`` for a target drawn like the reference).
    - ``propensity_overlap``: a logistic model (L2, class-balanced) of target vs reference
      on the standardised covariates; share of target rows whose propensity lies within
      the 1st–99th percentile of the reference rows' propensities.
    - ``per_covariate``: :func:`covariate_support`.

    The computations are deterministic (lbfgs); ``seed`` is recorded and passed to the
    solver so the call stays reproducible should a stochastic solver be configured.
    """
    if not 0 < depth_quantile < 1:
        raise ValueError(f"depth_quantile must lie in (0, 1), got {depth_quantile}")
    t, r = _prepare(target, reference, columns)
    per = covariate_support(target, reference, columns)

    inside = np.ones(len(t), dtype=bool)
    for name, kind in columns.items():
        if kind in NUMERIC:
            inside &= _in_range(t[name].to_numpy(dtype=float), r[name].to_numpy(dtype=float))
        else:
            inside &= t[name].isin(set(r[name])).to_numpy()

    zt, zr = _standardised(t, r, columns)
    d_ref = mahalanobis_sq(zr, zr)
    threshold = float(np.quantile(d_ref, depth_quantile))
    d_t = mahalanobis_sq(zt, zr)

    x = np.vstack([zr, zt])
    y = np.r_[np.zeros(len(zr)), np.ones(len(zt))]
    model = LogisticRegression(max_iter=10_000, class_weight="balanced", random_state=seed)
    ps = model.fit(x, y).predict_proba(x)[:, 1]
    lo, hi = np.percentile(ps[: len(zr)], PROPENSITY_RANGE)
    ps_t = ps[len(zr):]

    return {
        "share_in_ranges": float(inside.mean()),
        "share_in_mahalanobis_support": float(np.mean(d_t <= threshold)),
        "propensity_overlap": float(np.mean((ps_t >= lo) & (ps_t <= hi))),
        "mahalanobis_threshold": threshold,
        "depth_quantile": float(depth_quantile),
        "propensity_range": (float(lo), float(hi)),
        "per_covariate": per,
        "n_target": len(t),
        "n_reference": len(r),
        "seed": int(seed),
    }


def extrapolated_subgroups(target: pd.DataFrame, reference: pd.DataFrame, columns: dict[str, str],
                           min_share: float = 0.05, rare_share: float = 0.01) -> list[dict]:
    """Subgroups of the target the reference does not (or barely) cover.

    Flags (dicts with covariate, kind, level, share, reference_share, message):
    ``unseen_level`` / ``rare_level`` — a level present in the target but absent from the
    reference or below ``rare_share`` of it; ``outside_range`` — a numeric covariate with
    at least ``min_share`` of the target outside the reference [min, max].
    """
    if not 0 <= min_share <= 1:
        raise ValueError(f"min_share must lie in [0, 1], got {min_share}")
    if not 0 <= rare_share <= 1:
        raise ValueError(f"rare_share must lie in [0, 1], got {rare_share}")
    t, r = _prepare(target, reference, columns)
    flags = []
    for name, kind in columns.items():
        if kind in NUMERIC:
            xt, xr = t[name].to_numpy(dtype=float), r[name].to_numpy(dtype=float)
            share = float(np.mean(~_in_range(xt, xr)))
            if share >= min_share and share > 0:
                flags.append({"covariate": name, "kind": "outside_range", "level": None, "share": share,
                              "reference_share": None,
                              "message": f"{share:.1%} of the target has {name} outside the validated range "
                                         f"[{xr.min():g}, {xr.max():g}]"})
            continue
        t_share = t[name].value_counts(normalize=True)
        r_share = r[name].value_counts(normalize=True)
        for level in sorted(t_share.index):
            ref = float(r_share.get(level, 0.0))
            if ref >= rare_share:
                continue
            share = float(t_share[level])
            if ref == 0:
                msg = f"{name} = {level} ({share:.1%} of the target) never occurs in the validation data"
            else:
                msg = (f"{name} = {level} ({share:.1%} of the target) is {ref:.2%} of the validation data, "
                       f"below {rare_share:.0%}")
            flags.append({"covariate": name, "kind": "unseen_level" if ref == 0 else "rare_level",
                          "level": level, "share": share, "reference_share": ref, "message": msg})
    return flags

"""Fitting a generator: the rows a spec models, missing values, the model's inputs, the PyMC fit
(NUTS via nutpie), PSIS-LOO of the outcome model and what the generator keeps beside its
posterior (summaries and hashes, never patient rows)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from insilico.common.compilation import reproducible_compilation
from insilico.common.environment import package_versions
from insilico.common.errors import InputError

from .encoding import (
    Encoder,
    design_matrix,
    design_names,
    design_offsets,
    distributional_scores,
    learn_encoders,
)
from .generator import Generator
from .model import OutcomeData, build_model
from .spec import GeneratorSpec, MissingPolicy


@dataclass(frozen=True)
class MissingReport:
    """Rows dropped for missing values, per column (reported, never silent)."""

    n_input: int
    n_used: int
    missing_by_column: dict[str, int] = field(default_factory=dict)

    @property
    def n_dropped(self) -> int:
        return self.n_input - self.n_used

    def describe(self) -> str:
        if not self.n_dropped:
            return f"{self.n_used} patients, no missing values"
        cols = ", ".join(f"{c}: {k}" for c, k in self.missing_by_column.items() if k)
        return (f"{self.n_used} of {self.n_input} patients used; {self.n_dropped} dropped for missing "
                f"values ({cols})")


# ---------------------------------------------------------------------- preparing data
def select_rows(df: pd.DataFrame, spec: GeneratorSpec) -> pd.DataFrame:
    """Apply the spec's `subset` query (e.g. the control arm of a trial)."""
    if spec.subset is None:
        return df
    try:
        out = df.query(spec.subset, engine="python")
    except Exception as err:  # pandas raises many types for a bad query
        raise InputError(f"subset query {spec.subset!r} failed on the data: {err}") from err
    return out


def drop_missing(df: pd.DataFrame, spec: GeneratorSpec) -> tuple[pd.DataFrame, MissingReport]:
    """Complete cases on the spec's columns; the count per column is reported."""
    cols = [c for c in spec.columns if c in df.columns]
    missing = {c: int(df[c].isna().sum()) for c in cols}
    keep = ~df[cols].isna().any(axis=1)
    if spec.missing is MissingPolicy.error and not keep.all():
        bad = {c: k for c, k in missing.items() if k}
        raise InputError(f"missing values in {bad} and the spec says missing: error")
    return df.loc[keep].reset_index(drop=True), MissingReport(len(df), int(keep.sum()), missing)


def _outcome_internal(df: pd.DataFrame, spec: GeneratorSpec) -> tuple[OutcomeData, dict]:
    """The outcome on the model's scale and the constants that map it back."""
    o = spec.outcome
    fam = o.family.value
    if o.survival:
        t = df[o.time].to_numpy(dtype=float)
        event = df[o.event].to_numpy(dtype=np.int64)
        unit = float(np.median(t))
        admin = o.censoring.administrative if o.censoring.administrative is not None else float(t.max())
        scale = {"time_unit": unit, "administrative": float(admin), "dropout_rate": o.censoring.dropout_rate}
        cuts = None
        if fam == "piecewise_exponential":
            event_times = t[event == 1] / unit
            if len(event_times) < 2 * o.intervals:
                raise InputError(f"{len(event_times)} events are too few for {o.intervals} baseline-hazard "
                                 "intervals; lower outcome.intervals")
            cuts = np.unique(np.quantile(event_times, np.arange(1, o.intervals) / o.intervals))
            scale["cuts"] = cuts.tolist()
        return OutcomeData(fam, t / unit, event, cuts), scale
    y = df[o.column]
    if fam == "normal":
        yv = y.to_numpy(dtype=float)
        scale = {"y_mean": float(yv.mean()), "y_sd": float(yv.std(ddof=1))}
        return OutcomeData(fam, (yv - scale["y_mean"]) / scale["y_sd"]), scale
    if fam == "bernoulli":
        levels = [str(v) for v in o.levels] if o.levels is not None else ["0", "1"]
        enc = Encoder(o.column, "binary", levels=levels)
        return OutcomeData(fam, enc.codes(y)), {"levels": levels}
    return OutcomeData(fam, y.to_numpy(dtype=np.int64)), {}


def _covariate_observed(df: pd.DataFrame, encoders: list[Encoder], D: np.ndarray) -> dict[str, np.ndarray]:
    offsets = design_offsets(encoders)
    obs = {}
    for j, enc in enumerate(encoders):
        if enc.transform == "quantile":
            obs[enc.name] = distributional_scores(df[enc.name].to_numpy(dtype=float), enc, seed=j)
        elif enc.type == "continuous":
            obs[enc.name] = D[:, offsets[j]]
        elif enc.type == "count":
            obs[enc.name] = df[enc.name].to_numpy(dtype=np.int64)
        else:
            obs[enc.name] = enc.codes(df[enc.name])
    return obs


# ---------------------------------------------------------------------- fitting
@dataclass(frozen=True)
class ModelInputs:
    """Complete patients encoded for the PyMC model: encoders, design matrix, observed
    covariates, outcome (internal scale) and its scale, study names and codes."""

    encoders: list
    D: np.ndarray
    covariates: dict
    outcome: object
    scale: dict
    studies: list[str]
    codes: np.ndarray


def model_inputs(df: pd.DataFrame, spec: GeneratorSpec) -> ModelInputs:
    """What `build_model` needs from complete rows (shared by the fit and by SBC)."""
    encoders = learn_encoders(df, spec)
    D = design_matrix(df, encoders)
    outcome, scale = _outcome_internal(df, spec)
    studies = sorted(df[spec.study].astype(str).unique()) if spec.study else []
    codes = (df[spec.study].astype(str).map({s: i for i, s in enumerate(studies)}).to_numpy()
             if spec.study else np.zeros(len(df), dtype=np.int64))
    return ModelInputs(encoders, D, _covariate_observed(df, encoders, D), outcome, scale, studies, codes)


def fit(
    df: pd.DataFrame,
    spec: GeneratorSpec,
    seed: int = 0,
    *,
    progress: bool = True,
    data_sha256: str | None = None,
) -> Generator:
    """Fit a generator to patient-level data with PyMC (NUTS via nutpie).

    Check the data against their contract first (`insilico.validation.contract.enforce`
    with the spec; ``insilico fit`` and `insilico.stages.fit.fit_generator` do). Rows with
    missing values are dropped and reported in ``generator.meta["missing"]`` (spec
    ``missing: drop``).
    """
    import pymc as pm

    df = select_rows(df, spec)
    df, missing = drop_missing(df, spec)
    if len(df) < 10:
        raise InputError(f"only {len(df)} complete patients after dropping missing values; need at least 10")
    m = model_inputs(df, spec)
    model = build_model(m.D, m.covariates, m.encoders, m.outcome, m.codes, len(m.studies), spec)
    encoders, scale = m.encoders, m.scale
    s = spec.sampler
    start = time.perf_counter()
    with model, reproducible_compilation():
        idata = pm.sample(
            draws=s.draws, tune=s.tune, chains=s.chains, target_accept=s.target_accept,
            nuts_sampler="nutpie", random_seed=seed, progressbar=progress,
        )
        elapsed = time.perf_counter() - start
        loo = _outcome_loo(idata, model)
    # keep only the posterior and sampler statistics: observed_data would copy patient rows
    keep = {g: idata[g].to_dataset() for g in ("posterior", "sample_stats") if g in idata.children}
    import xarray as xr

    posterior = xr.DataTree.from_dict(keep)
    posterior.attrs["spec_hash"] = spec.hash()
    meta = generator_meta(df, spec, encoders, scale, missing, seed=seed, data_sha256=data_sha256)
    meta.update(sampling_seconds=elapsed, versions=package_versions(), loo=loo)
    return Generator(spec, posterior, meta)


def _outcome_loo(idata, model) -> dict | None:
    """PSIS-LOO of the outcome model (model form): elpd and the largest Pareto k.

    Only for outcomes with an observed likelihood (normal, bernoulli, poisson); survival
    outcomes enter the model as a Potential, which has no pointwise log-likelihood. The
    pointwise values are summarised, not stored (they are per patient).
    """
    import warnings

    import arviz as az
    import pymc as pm

    if "y_obs" not in {v.name for v in model.observed_RVs}:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ArviZ warns when some k > 0.7: that is the finding, reported
        ll = pm.compute_log_likelihood(idata, var_names=["y_obs"], model=model, progressbar=False,
                                       extend_inferencedata=False)
        idata_ll = idata.copy()
        idata_ll["log_likelihood"] = ll["log_likelihood"] if "log_likelihood" in getattr(ll, "children", {}) else ll
        res = az.loo(idata_ll, pointwise=True, var_name="y_obs")
    k = np.asarray(res.pareto_k)
    return {"elpd_loo": float(res.elpd), "max_pareto_k": float(np.nanmax(k)),
            "share_k_above_0_7": float(np.mean(k > 0.7)), "n": int(k.size)}


def generator_meta(df: pd.DataFrame, spec: GeneratorSpec, encoders: list[Encoder], outcome_scale: dict,
                   missing: MissingReport, *, seed: int, data_sha256: str | None) -> dict:
    """What a generator keeps beside its posterior: encoders, design summaries, outcome
    scale, studies, lineage (summaries and hashes only — no patient rows)."""
    D = design_matrix(df, encoders)
    return {
        "spec_hash": spec.hash(),
        "seed": int(seed),
        "data_sha256": data_sha256,
        "n_patients": len(df),
        "missing": {"n_input": missing.n_input, "n_used": missing.n_used,
                    "by_column": missing.missing_by_column},
        "studies": sorted(df[spec.study].astype(str).unique()) if spec.study else [],
        "encoders": [e.to_dict() for e in encoders],
        "design_names": design_names(encoders),
        "design_mean": D.mean(axis=0).tolist(),
        "raw_means": {e.name: float(df[e.name].astype(float).mean()) for e in encoders
                      if e.type in ("continuous", "count")},
        "outcome_scale": outcome_scale,
        "sampling_seconds": 0.0,
        "versions": {},
    }

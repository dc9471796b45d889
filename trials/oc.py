"""Operating characteristics from replicate-level results, each with its Monte Carlo
standard error (MCSE).

For R replicates: rejection rate p (power, or type I error under a null scenario; with
an effect design prior, the probability of success — assurance) with
MCSE sqrt(p(1-p)/R); bias = mean(estimate - truth) with MCSE sd/sqrt(R); RMSE with the
delta-method MCSE sd((est - truth)^2) / (2 RMSE sqrt(R)); interval coverage (binomial
MCSE); mean interval width and expected sample size (MCSE sd/sqrt(R)).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import xarray as xr


def operating_characteristics(results: xr.Dataset) -> xr.Dataset:
    """Dataset with dims (scenario, analysis): each OC and its `<name>_mcse`, computed.

    ``results`` may be lazy (`engine.run` with a results store): every OC is then one pass of
    reductions over the store, chunk by chunk. An OC undefined for an analysis (e.g. the bias
    of one with no closed-form truth) is NaN; Dask's reductions warn about the empty slices
    behind it where NumPy's do not, so those warnings are silenced here.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return _characteristics(results).compute()


def _characteristics(results: xr.Dataset) -> xr.Dataset:
    R = results.sizes["replicate"]
    dim = "replicate"
    truth = results["true_effect"]
    err = results["estimate"] - truth
    sq = err**2
    # no closed-form truth (NaN): coverage is not defined either
    covered = ((results["lower"] <= truth) & (truth <= results["upper"])).astype(float).where(truth.notnull())
    width = results["upper"] - results["lower"]
    rej = results["decision"].astype(float).mean(dim)
    mse = sq.mean(dim)
    rmse = np.sqrt(mse)
    cov = covered.mean(dim)
    out = xr.Dataset({
        "rejection_rate": rej,
        "rejection_rate_mcse": np.sqrt(rej * (1 - rej) / R),
        "bias": err.mean(dim),
        "bias_mcse": err.std(dim, ddof=1) / np.sqrt(R),
        "rmse": rmse,
        "rmse_mcse": sq.std(dim, ddof=1) / (2 * rmse * np.sqrt(R)),
        "coverage": cov,
        "coverage_mcse": np.sqrt(cov * (1 - cov) / R),
        "mean_width": width.mean(dim),
        "mean_width_mcse": width.std(dim, ddof=1) / np.sqrt(R),
        "expected_n": results["n_patients"].mean(dim),
        "expected_n_mcse": results["n_patients"].std(dim, ddof=1) / np.sqrt(R),
    })
    events = results["n_events"]
    out["expected_events"] = events.mean(dim)
    out["expected_events_mcse"] = events.std(dim, ddof=1) / np.sqrt(R)
    stage = results["stop_stage"]
    K = int(stage.max())
    if K > 1:  # group-sequential: where trials stop, and with what decision
        ks = xr.DataArray(np.arange(1, K + 1), dims="stage", name="stage")
        stops = (stage == ks).astype(float)
        rej_k = (stops * results["decision"]).mean(dim)
        out["rejection_by_stage"] = rej_k
        out["rejection_by_stage_mcse"] = np.sqrt(rej_k * (1 - rej_k) / R)
        early = (stage < K).astype(float).mean(dim)
        out["early_stop"] = early
        out["early_stop_mcse"] = np.sqrt(early * (1 - early) / R)
    if "threshold" in results:
        out["threshold"] = results["threshold"]
        out["threshold_mcse"] = results["threshold_mcse"]
    out["prior_ess"] = results["prior_ess"].mean(dim)
    labels = [str(a) for a in results.analysis.values]
    if any(":" in a for a in labels):  # several treatment arms: family-wise decisions
        families = sorted({a.split(":")[0] for a in labels})
        fw = np.stack([(results["decision"].sel(analysis=[a for a in labels if a.split(":")[0] == f]) > 0)
                       .any("analysis").mean(dim).values for f in families], axis=-1)
        out["familywise_rejection"] = (("scenario", "family"), fw)
        out["familywise_rejection_mcse"] = (("scenario", "family"), np.sqrt(fw * (1 - fw) / R))
        out = out.assign_coords(family=families)
    out["n_replicates"] = xr.full_like(out["rejection_rate"], R, dtype=np.int64)
    out["true_effect"] = truth.mean(dim)  # the fixed effect, or the design prior's mean (assurance)
    out.attrs.update({k: v for k, v in results.attrs.items()})
    return out


def oc_table(oc: xr.Dataset) -> pd.DataFrame:
    """A tidy table: one row per (scenario, analysis), each OC beside its MCSE.

    ``kind`` (null / drift / alternative, `insilico.trials.scales`) says what a row's
    rejection rate is: a type I error (null, drift) or power (alternative; assurance under
    a design prior on the effect).
    """
    names = ["rejection_rate", "bias", "rmse", "coverage", "mean_width", "expected_n"]
    names += [n for n in ("expected_events", "early_stop") if n in oc and bool(np.isfinite(oc[n]).any())]
    df = oc[[*names, *(f"{n}_mcse" for n in names), "n_replicates", "true_effect"]].to_dataframe()
    kind = ["kind"] if "scenario_kind" in oc.coords else []
    if kind:
        df["kind"] = oc["scenario_kind"].to_series().reindex(df.index.get_level_values("scenario")).to_numpy()
    order = [*kind, "true_effect"] + [c for n in names for c in (n, f"{n}_mcse")] + ["n_replicates"]
    return pd.DataFrame(df)[order]

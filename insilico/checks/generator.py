"""Checks of a fitted generator: convergence, held-out fidelity, test samples, applicability, privacy."""

from __future__ import annotations

import warnings
from pathlib import Path

import arviz as az
import numpy as np
import pandas as pd
from scipy.stats import ks_2samp

from insilico.reports import figures as fig
from insilico.validation import metrics as vm
from insilico.validation.applicability import applicability, extrapolated_subgroups
from insilico.validation.fidelity import (
    balance_table,
    correlation_difference,
    id_digest,
    km_band_check,
    pit_coverage,
    resample_censoring,
)
from insilico.validation.privacy import privacy_metrics, release_gate
from insilico.virtual_patients.spec import SURVIVAL_FAMILIES

from .metrics import Metrics, metric, summary


def check_convergence(diag: dict, loo: dict | None, posterior=None, figures: Path | None = None) -> Metrics:
    """MCMC diagnostics of the fit (with rank plots of the worst-mixing parameters), and
    PSIS-LOO Pareto k of the outcome model when it has one."""
    out = {k: metric("mcmc_diagnostics", diag[k]) for k in ("max_rhat", "min_ess_bulk", "min_ess_tail", "divergences")}
    if posterior is not None and figures is not None:
        out["max_rhat"]["artifact"] = rank_plot(posterior, figures / "mcmc_rank_plots.png")
    if loo is not None:  # survival outcomes (a Potential) have no pointwise likelihood: a goal shows "no evidence"
        out["max_pareto_k"] = metric("psis_loo", loo["max_pareto_k"], detail=loo)
    return out


def rank_plot(posterior, out: Path, n: int = 6) -> Path:
    """Chain rank plots of the n scalar parameters with the largest R-hat."""
    post = posterior["posterior"].to_dataset()
    draws = {}
    for name, da in post.data_vars.items():
        flat = da.values.reshape(da.shape[0], da.shape[1], -1)
        for j in range(flat.shape[2]):
            if np.std(flat[:, :, j]) > 0:
                draws[f"{name}[{j}]" if flat.shape[2] > 1 else name] = flat[:, :, j]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        rhat = {k: float(az.rhat(v)) for k, v in draws.items()}
    worst = sorted(rhat, key=rhat.get, reverse=True)[:n]
    return fig.chain_rank_plot({f"{k} (R-hat {rhat[k]:.3f})": draws[k] for k in worst}, out)


def check_holdout(gen, train: pd.DataFrame, comp: pd.DataFrame, plan, seed: int, figures: Path) -> Metrics:
    """Held-out comparator vs the generator's posterior predictive population."""
    spec = gen.spec
    cols = {c.name: c.type.value for c in spec.covariates}
    big = gen.sample_cohort(max(20 * len(comp), 5000), seed=seed, parameter_draws=200)
    out: Metrics = {}
    bal = balance_table(comp, big, cols)
    love = fig.love_plot(bal, figures / "balance.png")
    out["max_abs_smd"] = metric("covariate_balance", bal["smd"].abs().max(), artifact=love, table=bal)
    out["min_variance_ratio"] = metric("covariate_balance", bal["variance_ratio"].min())
    out["max_variance_ratio"] = metric("covariate_balance", bal["variance_ratio"].max())
    ks = vm.ks_wasserstein(comp, big, cols)
    out["max_ks"] = metric("distributions", ks["ks_statistic"].max(), table=ks)
    out["max_wasserstein_sd"] = metric("distributions", ks["wasserstein_std"].max())
    out["correlation_difference"] = metric("dependence", correlation_difference(comp, big, cols))
    virt = big.sample(n=min(len(big), max(len(comp), 500)), random_state=seed)
    prop = vm.propensity_metrics(comp, virt, cols, seed=seed)
    out["pmse_ratio"] = metric("propensity", prop["pmse_ratio"], detail=summary(prop))
    out["detection_auc"] = metric("propensity", prop["detection_auc"])
    qq = vm.mahalanobis_qq(comp, virt, cols)
    n_q = len(qq["distances"])
    own = np.quantile(qq["distances_synthetic"], (np.arange(1, n_q + 1) - 0.5) / n_q)  # at the same quantiles
    qq_png = fig.mahalanobis_qq(qq["quantiles"], qq["distances"], figures / "mahalanobis_qq.png", reference=own)
    out["mahalanobis_excess_ks"] = metric("mahalanobis_qq", qq["ks_excess"], artifact=qq_png, detail=summary(qq))

    o = spec.outcome
    if spec.outcome.survival:
        t_r, e_r = comp[o.time].to_numpy(float), comp[o.event].to_numpy(int)
        band = km_band_check(lambda n, s: gen.sample_cohort(n, s), comp, o.time, o.event, n_cohorts=200, seed=seed)
        km_png = fig.km_overlay(band["grid"], band["km_real"], (band["lower"], band["upper"]), band["km_virtual"],
                            figures / "km_overlay.png", time_label=f"{o.time} (data units)",
                            title="held-out comparator vs virtual patients")
        out["km_inside_band"] = metric("kaplan_meier", float(band["inside"]), artifact=km_png)
        rng = np.random.default_rng(seed)
        cens = resample_censoring(t_r, e_r, len(big), rng)
        t_v = big[o.time].to_numpy(float)
        e_v = big[o.event].to_numpy(int) * (t_v <= cens)
        t_v = np.minimum(t_v, cens)
        out["km_distance"] = metric("kaplan_meier", vm.km_distance(t_r, e_r, t_v, e_v))
        eq = plan.equivalence
        tau = eq.rmst_tau or float(np.quantile(t_r, 0.75))
        if eq.rmst_margin is not None:
            tost = vm.rmst_tost(t_r, e_r, t_v, e_v, tau=tau, margin=eq.rmst_margin, alpha=eq.alpha)
            out["rmst_difference"] = metric("rmst_tost", tost["difference"], detail=summary(tost))
            out["rmst_tost_p"] = metric("rmst_tost", tost["p_value"])
        score = gen.prognostic_score(comp)
        out["c_index"] = metric("discrimination", vm.concordance(t_r, score, event=e_r))
    else:
        y_r = numeric_outcome(comp, gen)
        y_v = numeric_outcome(big, gen)
        score = gen.prognostic_score(comp)
        if spec.outcome.family.value == "bernoulli":
            cal = vm.calibration(y_r, score, "binary")
            out["c_index"] = metric("discrimination", vm.concordance(y_r, score))
        else:
            cal = vm.calibration(y_r, score, "continuous")
            reps = np.array([numeric_outcome(gen.sample_cohort(len(comp), seed=seed + 1000 + i), gen)
                             for i in range(100)])
            ppc = fig.predictive_ecdf(y_r, reps, figures / "posterior_predictive.png",
                                      xlabel=f"{spec.outcome.column} (held-out comparator)")
            out["outcome_ks"] = metric("outcome_distribution", outcome_ks(y_r, y_v), artifact=ppc)
        cal_png = fig.calibration_plot(calibration_table(cal["table"]), figures / "calibration.png",
                                       title="held-out comparator: twin prediction vs observed outcome")
        out["calibration_slope"] = metric("calibration", cal["slope"], artifact=cal_png, detail=summary(cal))
        out["calibration_intercept"] = metric("calibration", cal["calibration_in_the_large"])
        out["outcome_mean_difference_sd"] = metric("outcome_distribution",
                                               (y_v.mean() - y_r.mean()) / max(y_r.std(ddof=1), 1e-12))
    if spec.outcome.family.value != "bernoulli":
        pit = gen.predictive_cdf(comp, seed=seed)
        ev = comp[o.event].to_numpy(int) if spec.outcome.survival else None
        out["pi90_coverage"] = metric("predictive_intervals", pit_coverage(pit, ev, 0.9))
        pit_t = gen.predictive_cdf(train, seed=seed)
        ev_t = train[o.event].to_numpy(int) if spec.outcome.survival else None
        out["calibration_pi90_coverage"] = metric("calibration_fit", pit_coverage(pit_t, ev_t, 0.9))
    return out


def calibration_table(table: pd.DataFrame) -> pd.DataFrame:
    """The metrics' binned table in the figure's terms (95% interval of each observed mean)."""
    return pd.DataFrame({"predicted": table["mean_predicted"], "observed": table["observed"],
                         "lower": table["observed"] - 1.96 * table["observed_se"],
                         "upper": table["observed"] + 1.96 * table["observed_se"], "n": table["n"]})


def outcome_ks(a: np.ndarray, b: np.ndarray) -> float:
    return float(ks_2samp(a, b).statistic)


def numeric_outcome(df: pd.DataFrame, gen) -> np.ndarray:
    o = gen.spec.outcome
    col = df[o.column]
    if o.family.value == "bernoulli":
        levels = [str(v) for v in gen.meta["outcome_scale"]["levels"]]
        return (col.astype(str) == levels[1]).to_numpy(dtype=float)
    return col.to_numpy(dtype=float)


def check_test_samples(train: pd.DataFrame, comp: pd.DataFrame, spec) -> Metrics:
    out = {"comparator_size": metric("comparator", len(comp))}
    if spec.id:
        overlap = len(set(train[spec.id].astype(str)) & set(comp[spec.id].astype(str)))
        out["comparator_overlap"] = metric("comparator", overlap, detail={
            "training_ids_sha256": id_digest(train[spec.id]), "comparator_ids_sha256": id_digest(comp[spec.id])})
    if spec.outcome.survival:
        t = spec.outcome.time
        out["comparator_followup_ratio"] = metric("comparator", comp[t].median() / train[t].median())
    return out


def check_applicability(target: pd.DataFrame, train: pd.DataFrame, spec, seed: int) -> Metrics:
    cols = {c.name: c.type.value for c in spec.covariates}
    a = applicability(target, train, cols, seed=seed)
    flags = extrapolated_subgroups(target, train, cols)
    sm = "virtual_patient_generation"
    return {"share_in_ranges": metric("applicability", a["share_in_ranges"], sm, detail=summary(a)),
            "share_in_mahalanobis_support": metric("applicability", a["share_in_mahalanobis_support"], sm),
            "propensity_overlap": metric("applicability", a["propensity_overlap"], sm),
            "extrapolated_subgroups": metric("applicability", len(flags), sm, detail={"flags": flags})}


#: how each outcome family's column enters the privacy distances
OUTCOME_KINDS = {"normal": "continuous", "poisson": "count", "bernoulli": "binary"}


def released_columns(spec, *tables: pd.DataFrame) -> tuple[dict[str, str], list[str]]:
    """The columns of a released cohort the privacy checks measure: every covariate and the
    outcome (survival: time and event), since the cohort releases both. An outcome column
    absent from one of ``tables`` (a comparator without outcomes) is left out and named."""
    cols = {c.name: c.type.value for c in spec.covariates}
    o = spec.outcome
    if o.family in SURVIVAL_FAMILIES:
        outcome = {o.time: "continuous", o.event: "binary"}
    else:
        outcome = {o.column: OUTCOME_KINDS[o.family.value]}
    left_out = [c for c in outcome if any(c not in t.columns for t in tables)]
    cols.update({c: k for c, k in outcome.items() if c not in left_out})
    return cols, left_out


def check_privacy(gen, train: pd.DataFrame, holdout: pd.DataFrame, spec, seed: int,
                  limits) -> tuple[Metrics, pd.DataFrame, dict, list]:
    cohort = gen.sample_cohort(len(train), seed=seed + 17)
    cols, left_out = released_columns(spec, train, holdout)
    p = privacy_metrics(cohort, train, holdout, cols, seed=seed)
    reasons = release_gate(p, limits)
    measured = {"columns": sorted(cols), "outcome_columns_left_out": left_out}
    return ({k: metric("privacy", p[k], detail={**measured, **summary(p)} if k == "exact_copies" else measured)
             for k in ("exact_copies", "exact_copy_excess", "share_closer_to_train", "membership_inference_auc",
                       "dcr_ratio")},
            cohort, p, reasons)

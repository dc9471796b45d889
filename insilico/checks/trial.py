"""Checks of the treatment-effect and trial/decision sub-models: a real trial replicated with
synthetic or external controls, and the plan's design simulated (OCs, their Monte Carlo
error, stability, bit-identity across workers)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from scipy.stats import norm

from insilico.common.errors import InputError
from insilico.common.files import write_text
from insilico.common.specfile import read_yaml
from insilico.reports import figures as fig
from insilico.stages.simulate import LOCAL, Compute, load_design, read_results, simulate_design
from insilico.trials.design import TrialDesign
from insilico.trials.engine import run
from insilico.trials.external import att_weights, balance, propensity_scores
from insilico.trials.map_priors import resolve_map_priors
from insilico.trials.oc import operating_characteristics
from insilico.trials.scales import UNRESOLVED
from insilico.trials.survival import cox_score
from insilico.validation.fidelity import numeric_pair, resample_censoring
from insilico.validation.results_suite import check_results
from insilico.virtual_patients.effects import TreatmentEffect

from .generator import numeric_outcome
from .metrics import Metrics, metric


def check_replication(gen, rep_df: pd.DataFrame, rep, seed: int) -> Metrics:
    """Re-estimate a real trial's effect with synthetic (twin) controls for its treated arm.

    Real estimate: treated vs real control. Synthetic estimate: the same treated patients vs
    their control twins from the generator (fitted on other data), censored like the real
    control arm; repeated over posterior draws, the estimates form a predictive
    distribution. The real estimate is inside when it lies within
    mean +- z * sqrt(var_synthetic + se_real^2) (its own sampling error included).
    """
    spec = gen.spec
    arm = rep_df[rep.arm]
    treated = rep_df[arm == rep.treated].reset_index(drop=True)
    control = rep_df[arm == rep.control].reset_index(drop=True)
    if len(treated) < 10 or len(control) < 10:
        raise InputError(f"replication: fewer than 10 treated or control patients ({len(treated)}, {len(control)})")
    real_est, real_se = unadjusted_effect(spec, gen, treated, control)
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
        ests.append(unadjusted_effect(spec, gen, treated, synth)[0])
    ests = np.asarray(ests)
    z = norm.ppf(0.5 + rep.level / 2)
    sd = float(np.sqrt(ests.var(ddof=1) + real_se ** 2))
    lo, hi = ests.mean() - z * sd, ests.mean() + z * sd
    detail = {"real_estimate": real_est, "real_se": real_se, "synthetic_mean": float(ests.mean()),
              "synthetic_sd": float(ests.std(ddof=1)), "interval": [lo, hi], "level": rep.level,
              "scale": "log hazard ratio" if spec.outcome.survival else "difference",
              "n_treated": len(treated), "n_control": len(control), "cohorts": rep.cohorts}
    sm = "treatment_effect_model"
    return {"replication_inside_pi": metric("trial_replication", float(lo <= real_est <= hi), sm, detail=detail),
            "replication_z": metric("trial_replication", (real_est - ests.mean()) / sd, sm)}


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
    o = spec.outcome
    cols = {c.name: c.type.value for c in spec.covariates}
    arm = trial[rep.arm]
    treated = trial[arm == rep.treated].reset_index(drop=True)
    control = trial[arm == rep.control].reset_index(drop=True)
    xt, xe = (v.to_numpy(float) for v in numeric_pair(treated, external, cols))
    names = list(numeric_pair(treated, external, cols)[0].columns)

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
    png = fig.love_plot(table, figures / "external_balance.png", title="External controls vs treated arm: ATT weighting",
                    xlabel="standardised mean difference (external − trial treated)")
    rct, rct_se = unadjusted_effect(spec, None, treated, control)
    z = (est - rct) / np.hypot(se, rct_se)
    ess = float(w.sum() ** 2 / np.sum(w**2))
    detail = {"weighted_log_hr": est, "bootstrap_se": se, "rct_log_hr": rct, "rct_se": rct_se,
              "n_treated": len(treated), "n_external": len(external), "kish_ess_external": ess,
              "max_abs_smd_before": float(np.abs(before["smd"]).max()), "bootstrap": bootstrap,
              "agree_at": "two-sided 95%: |z| < 1.96"}
    sm = "treatment_effect_model"
    return {"weighted_max_abs_smd": metric("external_control_balance", float(np.abs(after["smd"]).max()), sm,
                                       artifact=png, table=table),
            "external_replication_z": metric("external_control_replication", z, sm, detail=detail),
            "external_replication_agrees": metric("external_control_replication",
                                              float(abs(z) < norm.ppf(0.975)), sm)}


def unadjusted_effect(spec, gen, treated: pd.DataFrame, control: pd.DataFrame) -> tuple[float, float]:
    """Unadjusted treatment effect and its se: Cox log HR, difference in means/proportions."""
    o = spec.outcome
    if o.survival:
        t = np.concatenate([control[o.time], treated[o.time]]).astype(float)[None, :]
        e = np.concatenate([control[o.event], treated[o.event]]).astype(int)[None, :]
        a = np.concatenate([np.zeros(len(control)), np.ones(len(treated))]).astype(int)
        res = cox_score(t, e, a, alpha=0.05, sided="two", direction="greater", level=0.95)
        return float(np.ravel(res["estimate"])[0]), float(np.ravel(res["std_error"])[0])
    y_t, y_c = numeric_outcome(treated, gen), numeric_outcome(control, gen)
    return float(y_t.mean() - y_c.mean()), float(np.sqrt(y_t.var(ddof=1) / len(y_t) + y_c.var(ddof=1) / len(y_c)))


def resolve_generator(design_path: Path, generator_dir: Path, out_dir: Path) -> Path:
    """A design drawing patients from ``@validated`` gets the generator just fitted and checked.

    The resolved copy is written beside the results (``<out>/design.yaml``) so what ran is on disk.
    """
    data = read_yaml(design_path)
    patients = data.get("patients") if isinstance(data, dict) else None
    if not (isinstance(patients, dict) and patients.get("generator") == UNRESOLVED):
        return Path(design_path)
    data["patients"]["generator"] = str(Path(generator_dir).resolve())
    resolved = Path(out_dir) / f"{Path(design_path).stem}.resolved.yaml"
    write_text(resolved, yaml.safe_dump(data, sort_keys=False))
    return resolved


def check_design(design_path: Path, out_dir: Path, *, progress=None, analyses: list[str] | None = None,
                 compute: Compute = LOCAL) -> tuple[Metrics, dict]:
    """Simulate the plan's design; OCs, their MCSE, stability, and bit-identity across workers.

    Type I error is read on the null scenarios, type I error under drift on the drift
    scenarios and power on the alternatives, as the engine recorded their kinds
    (`insilico.trials.scales`)."""
    sim = simulate_design(design_path, out_dir / "simulation.nc", workers=compute.workers,
                          scheduler=compute.scheduler, progress=progress)
    results, oc = read_results(sim.results_path)
    design = load_design(design_path)
    sm = "trial_decision_model"
    if analyses:
        unknown = sorted(set(analyses) - set(map(str, oc.analysis.values)))
        if unknown:
            raise InputError(f"plan: analyses {unknown} are not in the design {design_path.name} "
                             f"(it has {', '.join(map(str, oc.analysis.values))})")
    graded = oc.sel(analysis=analyses) if analyses else oc
    rej, mcse = graded["rejection_rate"], graded["rejection_rate_mcse"]
    kinds = dict(zip(map(str, oc.scenario.values), map(str, oc.scenario_kind.values), strict=True))
    null, drift, target = ([s for s, k in kinds.items() if k == kind] for kind in ("null", "drift", "alternative"))
    out: Metrics = {"max_oc_mcse": metric("oc_mcse", float(mcse.max()), sm)}
    if null:
        out["type_i_error"] = metric("operating_characteristics", float(rej.sel(scenario=null).max()), sm)
    if drift:
        out["type_i_error_drift"] = metric("operating_characteristics", float(rej.sel(scenario=drift).max()), sm,
                                       detail={"by_scenario": {s: rej.sel(scenario=s).values.tolist() for s in drift}})
    if target:
        out["power"] = metric("operating_characteristics", float(rej.sel(scenario=target).min()), sm)
    # stability: the two halves of the replicates are independent simulations of the same OCs
    R = results.sizes["replicate"]
    halves = [operating_characteristics(results.isel(replicate=slice(a, b)))
              for a, b in ((0, R // 2), (R // 2, R))]
    diff = np.abs(halves[0]["rejection_rate"] - halves[1]["rejection_rate"])
    se = np.sqrt(halves[0]["rejection_rate_mcse"] ** 2 + halves[1]["rejection_rate_mcse"] ** 2)
    z = (diff / se.where(se > 0)).fillna(0.0)
    out["oc_stability_max_z"] = metric("oc_stability", float(z.max()), sm)
    # bit-identity: a shortened run, serial vs Dask (at least two workers), must agree exactly
    small = TrialDesign.from_dict({**design.model_dump(mode="json"),
                                   "replicates": min(design.replicates, 2 * design.chunk_size)})
    small, _ = resolve_map_priors(small)
    a, b = run(small, executor="serial"), run(small, workers=max(2, compute.workers or 2), scheduler=compute.scheduler)
    same = all(np.array_equal(a[v].values, b[v].values, equal_nan=True) for v in a.data_vars)
    out["chunking_identical"] = metric("reproducibility", float(same), sm,
                                   detail={"replicates": small.replicates, "chunk_size": small.chunk_size})
    integrity = check_results(results, oc, replicates=design.replicates)
    out["results_integrity_failures"] = metric("results_integrity", len(integrity.failures), sm,
                                           detail={"failures": integrity.failures})
    context = {"design": design, "oc": oc, "results_path": str(sim.results_path), "run_id": sim.run_id}
    return out, context

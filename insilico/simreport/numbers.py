"""The simulation report's numbers: prior ESS, sample size saved, calibrated thresholds, OC rows.

Every number comes from the results (or the OC dataset computed from them) or from a
named closed form applied to them:

* prior ESS: the value the engine recorded per replicate (``prior_ess``), else what the
  method states from the design (ELIR, Neuenschwander et al. 2020, of the control prior;
  ``a0 n_h`` for a fixed power prior);
* PROCOVA / ANCOVA savings: the unadjusted sample size with the same power, by the
  noncentral-t search of ``trials.analyses.procova_sample_size`` at the correlation
  estimated from the simulation (EMA 2022 PROCOVA opinion: n falls by about 1 - rho^2);
* borrowing savings: the prior ESS counted as control patients saved.
"""

from __future__ import annotations

import math

import numpy as np
import xarray as xr
from scipy import stats

from insilico.trials import scales
from insilico.trials.analyses import procova_sample_size
from insilico.trials.design import TrialDesign
from insilico.trials.methods import method_of
from insilico.trials.methods.bayesian import ELIR
from insilico.trials.oc import oc_table

from .words import direction_symbol, fmt, label_map, plain


def prior_ess_rows(design: TrialDesign, oc: xr.Dataset | None = None,
                   results: xr.Dataset | None = None) -> list[dict]:
    """Prior effective sample size of every borrowing analysis: the value the simulation
    recorded (``prior_ess``, mean over scenarios and replicates) when there is one, else
    what the method states from the design (ELIR of the control prior mixture, ``a0 n_h``
    for a fixed power prior)."""
    family = design.scale.family
    rows = []
    for label, (a, _) in label_map(design).items():
        m = method_of(a)
        if not m.borrows:
            continue
        _, ess, method = m.prior_ess(a, design, family) or (None, None, None)
        recorded = None
        for src in (results, oc):
            if src is not None and "prior_ess" in src and label in src.analysis.values:
                v = src["prior_ess"].sel(analysis=label).values
                if np.isfinite(v).any():
                    recorded = float(np.nanmean(v))
                    break
        prior = m.prior_text(a, design, family)
        if recorded is not None:
            ess = recorded
            method = (method or ELIR) + ", as recorded by the simulation"
        if ess is None:
            continue
        rows.append({"analysis": label, "prior": prior, "ess": ess, "method": method,
                     "source": m.prior_source(a, design)})
    return rows


def _target_scenario(design: TrialDesign, j: int, null: float):
    """The design alternative for arm j: the scenario named 'target', else the first with a
    fixed non-null effect and no drift."""
    arm = design.arms[j].name
    ok = [s for s in design.scenarios if s.effect_prior is None and s.control_shift == 0
          and scales.arm_effect(s, arm) != null]
    named = [s for s in ok if s.name.lower() == "target"]
    return (named or ok or [None])[0]


def _mean_se2(label: str, oc: xr.Dataset, results: xr.Dataset | None, df: int, level: float) -> tuple[float, str]:
    """Mean squared standard error of an analysis over all scenarios and replicates: from
    the replicates when given, else from the mean interval width (width = 2 t_df se)."""
    if results is not None and "std_error" in results:
        se = results["std_error"].sel(analysis=label).values
        return float(np.nanmean(se**2)), "simulated standard errors"
    q = stats.t.ppf(0.5 + level / 2, df)
    w = oc["mean_width"].sel(analysis=label).values
    return float(np.nanmean((w / (2 * q)) ** 2)), "mean interval widths"


def sample_size_rows(design: TrialDesign, oc: xr.Dataset, results: xr.Dataset | None = None,
                     prior_ess: list[dict] | None = None) -> list[dict]:
    """Patients saved against the unadjusted design.

    PROCOVA / ANCOVA (needs an unadjusted difference-in-means analysis in the design to
    estimate from): with ``s_u``, ``s_a`` the mean squared standard errors of the
    unadjusted and adjusted estimates, ``sigma^2 = s_u / (1/n_c + 1/n_t)`` and
    ``1 - rho^2 = (s_a / s_u) (n - 3 - p) / (n - 3)`` — the factor removes the expected
    variance inflation 1 / (1 - R^2) from chance imbalance of p covariates between the arms
    (R^2 of the arm on the covariates ~ Beta(p/2, (n-1-p)/2), E[1/(1-R^2)] = (n-3)/(n-3-p)).
    The adjusted design's power at the target effect is the noncentral-t power with
    variance sigma^2 (1 - rho^2) and n - 2 - p df; the unadjusted n with that power is the
    noncentral-t search of ``procova_sample_size`` (n_unadjusted ≈ n / (1 - rho^2)).

    Borrowing: the prior ESS is counted as control patients saved (n_unadjusted = n + ESS);
    it is realised only while current controls agree with history (see the drift rows).
    """
    null = design.scale.null
    labels = label_map(design)
    sizes = design.arm_sizes()
    alpha = design.comparison_alpha / (2 if design.decision.sided == "two" else 1)
    level = design.decision.interval
    rows = []
    for label, (a, j) in labels.items():
        m = method_of(a)
        if not m.needs_covariates:
            continue
        ref = next((lab for lab, (b, jj) in labels.items() if jj == j and method_of(b).name == "difference_in_means"),
                   None)
        sc = _target_scenario(design, j, null)
        if ref is None or sc is None or design.scale.ratio:
            continue
        n_c, n_t = sizes[0], sizes[j]
        n = n_c + n_t
        p = m.n_covariates(a)
        s_u, how = _mean_se2(ref, oc, results, n - 2, level)
        s_a, _ = _mean_se2(label, oc, results, n - 2 - p, level)
        inv = 1 / n_c + 1 / n_t
        sigma = math.sqrt(s_u / inv)
        rho2 = float(np.clip(1 - (s_a / s_u) * (n - 3 - p) / (n - 3), 0.0, 0.999))
        delta = abs(scales.arm_effect(sc, design.arms[j].name))
        df = n - 2 - p
        ncp = delta / (sigma * math.sqrt((1 - rho2) * inv))
        power = float(stats.nct.sf(stats.t.ppf(1 - alpha, df), df, ncp))
        power = min(power, 1 - 1e-9)  # the z quantile of the Guenther-Schouten step must stay finite
        need = procova_sample_size(delta, sigma, math.sqrt(rho2), alpha, power, allocation=n_t / n_c)
        n_unadj = int(need["unadjusted_noncentral_t"])
        sim = oc.sel(scenario=sc.name, analysis=label)
        rows.append({
            "analysis": label, "n": n, "n_unadjusted": n_unadj, "rho2": rho2, "sigma": sigma, "effect": delta,
            "power": power, "closed_form_saved": n_unadj * rho2,
            "basis": (f"unadjusted n with the same power ({power:.3f}, noncentral t) as {a.method.value.upper()} "
                      f"at N = {n} for the {design.scale.natural} {fmt(delta)} of scenario '{sc.name}', one-sided "
                      f"α = {alpha:g}; ρ² = {rho2:.3f} and σ = {sigma:.4g} estimated from the {how} of "
                      f"'{label}' vs '{ref}'; closed form: saved ≈ N_unadjusted · ρ² = {n_unadj * rho2:.1f}; "
                      f"simulated power {float(sim.rejection_rate):.3f} ± {float(sim.rejection_rate_mcse):.3f}"
                      + ("; fixed-design formula at the maximum N of a group-sequential design"
                         if design.sample_size.stages is not None else "")),
        })
    for r in prior_ess or []:
        ess = round(float(r["ess"]), 1)
        rows.append({"analysis": r["analysis"], "n": design.n_total, "n_unadjusted": design.n_total + ess,
                     "basis": ("prior ESS counted as control patients saved: the information the prior adds while "
                               "current controls agree with history; it shrinks under prior–data conflict (see the "
                               f"drift scenarios). ESS method: {r['method']}")})
    return rows


def threshold_rows(design: TrialDesign, oc: xr.Dataset, results: xr.Dataset | None = None) -> list[dict]:
    """Calibrated thresholds (``threshold`` / ``threshold_mcse`` that ``trials.engine.calibrate``
    stores per analysis) with the type I error they achieve on the calibration scenario
    (the same replicates that calibrated them: by construction close to the target)."""
    dec = design.decision
    if dec.calibrate_to_alpha is None:
        return []
    src = oc if "threshold" in oc else results
    if src is None or "threshold" not in src:
        raise ValueError("oc: the design calibrates thresholds to alpha but the results carry no 'threshold' "
                         "(re-run the simulation with this design)")
    target = design.calibration_alpha
    scen = str(oc.attrs.get("calibrated_on") or (results.attrs.get("calibrated_on") if results is not None else None)
               or design.calibration_scenario)
    sym = direction_symbol(design)
    rows = []
    for label in label_map(design):
        t = float(src["threshold"].sel(analysis=label))
        if not math.isfinite(t):
            continue
        cell = oc.sel(scenario=scen, analysis=label)
        mcse = float(src["threshold_mcse"].sel(analysis=label))
        rows.append({"analysis": label, "criterion": f"Pr(δ {sym} 0 | data) > c", "threshold": t,
                     "threshold_mcse": mcse if math.isfinite(mcse) else None, "target_type_i_error": target,
                     "type_i_error": float(cell.rejection_rate), "type_i_error_mcse": float(cell.rejection_rate_mcse),
                     "replicates": int(cell.n_replicates), "scenario": scen})
    return rows


def oc_rows(oc: xr.Dataset) -> list[dict]:
    """``oc_table(oc).reset_index()`` as plain-Python records."""
    return [{k: plain(v) for k, v in r.items()} for r in oc_table(oc).reset_index().to_dict("records")]

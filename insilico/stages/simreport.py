"""From simulation results to the simulation report (``reports.render.render_simulation``).

The report shows what FDA's Bayesian draft guidance (2026), the externally-controlled-trials
draft (2023), ICH E20 and ICH E9(R1) ask of a simulated design (REGULATORY.md §2): the
design, the estimand, the success criterion, scenarios including drift of the current
controls from history, every operating characteristic with its Monte Carlo standard error,
the prior effective sample size, the sample size saved against an unadjusted design,
calibrated thresholds, and what is needed to reproduce the numbers.

Every number in the context comes from the results (or the OC dataset computed from them)
or from a named closed form applied to them:

* prior ESS: the value the engine recorded per replicate (``prior_ess``), else ELIR
  (Neuenschwander et al. 2020) of the control prior via ``trials.borrowing.ess``
  (``a0 n_h`` for a fixed power prior);
* PROCOVA / ANCOVA savings: the unadjusted sample size with the same power, by the
  noncentral-t search of ``trials.analyses.procova_sample_size`` at the correlation
  estimated from the simulation (EMA 2022 PROCOVA opinion: n falls by about 1 - rho^2);
* borrowing savings: the prior ESS counted as control patients saved.
"""

from __future__ import annotations

import json
import math
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import xarray as xr

from insilico.trials.design import BAYESIAN_METHODS, Family, Method, TrialDesign

ESTIMAND_KEYS = ("population", "treatment", "variable", "intercurrent_events", "summary_measure")
DERIVED = "derived from the design"
ELIR = "ELIR (Neuenschwander et al. 2020)"
BORROWING = BAYESIAN_METHODS | {Method.hybrid_power_prior}
ADJUSTED = {Method.procova, Method.ancova}

_EFFECT = {"normal": "mean difference", "binary": "risk difference", "count": "rate ratio",
           "time_to_event": "hazard ratio"}
_GEN_EFFECT = {"normal": "mean difference", "binary": "odds ratio (conditional on covariates)",
               "count": "rate ratio", "time_to_event": "hazard ratio (conditional on covariates)"}
_DELTA = {"normal": "mean difference", "binary": "risk difference", "count": "log rate ratio",
          "time_to_event": "log hazard ratio"}
_METHOD_TEXT = {
    "difference_in_means": "difference in means (pooled t test)", "ancova": "ANCOVA", "procova": "PROCOVA",
    "two_proportions": "two proportions (pooled z test)", "poisson_rate_ratio": "Poisson rate ratio (Wald)",
    "logrank": "log-rank test", "cox_score": "Cox score test", "hybrid_power_prior": "hybrid power prior",
    "external_comparison": "external comparison", "bayesian": "Bayesian (conjugate)",
    "robust_map": "robust MAP prior", "power_prior": "power prior", "commensurate": "commensurate prior",
}


# ----------------------------------------------------------------------------- helpers

def _family(design: TrialDesign) -> str:
    """The outcome family (for generator patients: the generator's, which loads it)."""
    if design.endpoint is not None:
        return design.endpoint.family.value
    from insilico.trials.engine import generator_family

    return generator_family(design)


def _ratio_scale(design: TrialDesign, family: str) -> bool:
    """Effects given as ratios: count and time-to-event endpoints; generator outcomes other than normal."""
    if design.endpoint is not None:
        return design.endpoint.family in (Family.count, Family.time_to_event)
    return family != "normal"


def _py(v):
    """A plain Python value for the JSON-able context: numpy scalars → int/float, NaN → None."""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def _g(x: float) -> str:
    return f"{float(x):.4g}"


def _mixture_text(mix) -> str:
    """'0.8 Beta(17, 83) + 0.2 Beta(1, 1)' from a trials.borrowing mixture."""
    from insilico.trials import borrowing as bw

    w = np.ravel(mix.weights)
    if isinstance(mix, bw.BetaMixture):
        parts = [f"Beta({_g(a)}, {_g(b)})" for a, b in zip(np.ravel(mix.a), np.ravel(mix.b))]
    elif isinstance(mix, bw.GammaMixture):
        parts = [f"Gamma({_g(a)}, {_g(b)})" for a, b in zip(np.ravel(mix.shapes), np.ravel(mix.rates))]
    else:
        parts = [f"N({_g(m)}, {_g(s)}²)" for m, s in zip(np.ravel(mix.means), np.ravel(mix.sds))]
    if len(parts) == 1:
        return parts[0]
    return " + ".join(f"{_g(wk)} {p}" for wk, p in zip(w, parts))


def _label_map(design: TrialDesign) -> dict[str, tuple]:
    """OC analysis label → (analysis, treatment arm index)."""
    return {label: (a, j) for label, a, j in design.analysis_labels()}


def _null_value(design: TrialDesign, family: str) -> float:
    return 1.0 if _ratio_scale(design, family) else 0.0


def _arm_effect(sc, arm_name: str) -> float:
    return float((sc.arm_effects or {}).get(arm_name, sc.effect))


def _is_null_effect(design: TrialDesign, sc, null: float) -> bool:
    if sc.effect_prior is not None:
        return False
    return all(_arm_effect(sc, arm.name) == null for arm in design.arms[1:])


def _check_oc(design: TrialDesign, oc: xr.Dataset) -> None:
    if not isinstance(oc, xr.Dataset):
        raise ValueError(f"oc: expected the xarray Dataset of trials.oc.operating_characteristics, "
                         f"got {type(oc).__name__}")
    missing = [v for v in ("rejection_rate", "rejection_rate_mcse", "n_replicates") if v not in oc]
    if missing or "scenario" not in oc.dims or "analysis" not in oc.dims:
        raise ValueError(f"oc: not an operating-characteristics Dataset (missing {missing or 'dims'}; "
                         "dims scenario and analysis expected)")
    names = [s.name for s in design.scenarios]
    got = [str(s) for s in oc.scenario.values]
    if sorted(got) != sorted(names):
        raise ValueError(f"oc: scenarios {got} do not match the design's scenarios {names}")
    labels = list(_label_map(design))
    got = [str(a) for a in oc.analysis.values]
    if sorted(got) != sorted(labels):
        raise ValueError(f"oc: analyses {got} do not match the design's analyses {labels}")


# ----------------------------------------------------------------------------- scenarios

def classify_scenarios(design: TrialDesign, family: str | None = None) -> list[dict]:
    """Each scenario as the report lists it: kind null / drift / alternative, true effect
    (natural scale), drift (``control_shift``), a description, and ``target`` for the design
    alternative. Null means every treatment arm's effect equals the null value (1 for ratio
    effects, 0 otherwise); drift is a null effect with ``control_shift`` ≠ 0; a design prior
    on the effect (assurance) is an alternative."""
    family = family or _family(design)
    null = _null_value(design, family)
    ratio = _ratio_scale(design, family)
    label = (_EFFECT if design.endpoint is not None else _GEN_EFFECT)[family]
    named_target = [s.name for s in design.scenarios if s.name.lower() == "target"]
    out = []
    for sc in design.scenarios:
        is_null = _is_null_effect(design, sc, null)
        kind = ("drift" if sc.control_shift != 0 else "null") if is_null else "alternative"
        if sc.effect_prior is not None:
            p = sc.effect_prior
            true = float(np.exp(p.mean)) if ratio else float(p.mean)
            scale = f"log {label}" if ratio else label
            desc = f"assurance: each replicate's {scale} drawn from N({_g(p.mean)}, {_g(p.sd)}²)"
        elif is_null:
            true = null
            desc = "no treatment effect"
        else:
            true = float(sc.effect)
            desc = f"{label} {_g(sc.effect)}"
        if sc.arm_effects:
            desc += "; arm effects: " + ", ".join(f"{k} {_g(v)}" for k, v in sc.arm_effects.items())
        desc += "; " + _drift_text(design, family, sc.control_shift)
        row = {"name": sc.name, "kind": kind, "true_effect": true, "drift": float(sc.control_shift),
               "description": desc}
        if sc.name in named_target and kind == "alternative":
            row["target"] = True
            row["description"] = "design alternative: " + desc
        out.append(row)
    return out


def _drift_text(design: TrialDesign, family: str, shift: float) -> str:
    if shift == 0:
        return "current controls as historical"
    ep = design.endpoint
    if ep is None:
        unit = "outcome units" if family == "normal" else "log scale, linear predictor"
        return f"current controls shifted by {shift:+.4g} ({unit}) from the generator's population"
    if ep.family is Family.binary:
        return f"current control rate {_g(ep.control_rate + shift)} (historical {_g(ep.control_rate)})"
    if ep.family is Family.count:
        return f"current control rate {_g(ep.control_rate + shift)} (historical {_g(ep.control_rate)})"
    if ep.family is Family.normal:
        return f"current control mean {_g(ep.control_mean + shift)} (historical {_g(ep.control_mean)})"
    return f"log hazard ratio {shift:+.4g} of current vs historical controls"


# ----------------------------------------------------------------------------- words

def _direction_symbol(design: TrialDesign) -> str:
    return ">" if design.direction == "greater" else "<"


def success_criterion(design: TrialDesign, family: str | None = None, calibrated_on: str | None = None) -> str:
    """The decision rule of every analysis, in words."""
    family = family or _family(design)
    dec = design.decision
    alpha = design.comparison_alpha
    sym = _direction_symbol(design)
    delta = f"δ the {_DELTA[family]} (treatment vs control)"
    k = len(design.arms) - 1
    parts = []
    freq = [a.name for a in design.analyses if a.method not in BORROWING]
    if freq:
        if dec.sided == "one":
            h0 = "δ ≤ 0" if design.direction == "greater" else "δ ≥ 0"
            text = f"{', '.join(freq)}: one-sided test of H0: {h0} rejected at α = {alpha:g}"
        else:
            text = f"{', '.join(freq)}: two-sided test of H0: δ = 0 rejected at α = {alpha:g}"
        ss = design.sample_size
        if ss.stages is not None:
            spend = {"obrien_fleming": "O'Brien–Fleming-type", "pocock": "Pocock-type"}[ss.spending]
            text += (f", at the first of {len(ss.stages)} looks where the z statistic crosses the Lan–DeMets "
                     f"{spend} efficacy boundary")
            if ss.futility is not None:
                text += " (non-binding futility stop below " + ", ".join(_g(f) for f in ss.futility) + ")"
        parts.append(text)
    bayes = [a.name for a in design.analyses if a.method in BORROWING]
    if bayes:
        if dec.calibrate_to_alpha is not None:
            target = dec.calibrate_to_alpha / (k if dec.multiplicity == "bonferroni" else 1)
            scen = calibrated_on or design.calibration_scenario
            parts.append(f"{', '.join(bayes)}: Pr(δ {sym} 0 | data) > c, with c calibrated by simulation to a "
                         f"one-sided type I error of {target:g} on scenario '{scen}'")
        else:
            fixed = [a.name for a in design.analyses if a.method in BAYESIAN_METHODS]
            hybrid = [a.name for a in design.analyses if a.method is Method.hybrid_power_prior]
            c = dec.threshold if dec.threshold is not None else 1 - alpha
            if fixed:
                parts.append(f"{', '.join(fixed)}: Pr(δ {sym} 0 | data) > {c:g}")
            if hybrid:
                parts.append(f"{', '.join(hybrid)}: Pr(δ {sym} 0 | data) > {1 - alpha:g}")
    text = "; ".join(parts) + f"; {delta}"
    if k > 1:
        adj = f"Bonferroni, α/{k} each" if dec.multiplicity == "bonferroni" else "no multiplicity adjustment"
        text += f"; each of the {k} treatment arms is compared with control ({adj})"
    return text


def derived_estimand(design: TrialDesign, family: str | None = None) -> dict[str, str]:
    """ICH E9(R1) attributes as far as the design states them, each marked as derived."""
    family = family or _family(design)
    ep, pat = design.endpoint, design.patients
    if ep is not None:
        if family == "normal":
            params = f"control mean {_g(ep.control_mean)}, sd {_g(ep.sd)}"
        elif family in ("binary", "count"):
            params = f"control {'response' if family == 'binary' else 'event'} rate {_g(ep.control_rate)}"
        else:
            params = (f"control median {_g(ep.control_median)}" if ep.control_median is not None
                      else "piecewise-constant control hazard")
        population = f"simulated patients of the design's parametric {family.replace('_', '-')} model ({params})"
    else:
        population = (f"virtual patients from the generator '{Path(pat.generator).name}' "
                      f"(study '{pat.study}', parameters: {pat.parameters.replace('_', ' ')})")
    if design.external_control is not None:
        population += f"; {design.external_control.n} external controls per trial"
    ctrl = design.arms[0]
    treatment = (", ".join(a.name for a in design.arms[1:]) + f" vs {ctrl.name} (allocation "
                 + " : ".join(f"{a.name} {_g(a.allocation)}" for a in design.arms) + ")")
    if family == "time_to_event":
        cut = (ep.cutoff if ep is not None else pat.cutoff)
        when = (f"analysis at {cut.events} events" if cut is not None and cut.events else
                f"analysis at calendar time {_g(cut.calendar)}" if cut is not None else "analysis at each look's events")
        variable = f"time to event ({when})"
    elif family == "binary":
        variable = "binary response"
    elif family == "count":
        variable = f"event count over exposure {_g(ep.exposure)}" if ep is not None else "event count"
    else:
        variable = "continuous outcome"
    dropout = (ep.dropout_rate if ep is not None else pat.dropout_rate) if family == "time_to_event" else 0
    ice = ("none simulated: every patient stays on the assigned treatment and is followed as randomised "
           "(treatment policy by construction)")
    if dropout:
        ice += f"; dropout (exponential hazard {_g(dropout)}) is censored"
    label = _EFFECT[family] if ep is not None else _GEN_EFFECT[family]
    summary = f"{label} (treatment vs control)"
    if _ratio_scale(design, family):
        summary += ", analysed on the log scale"
    return {k: f"{v} — {DERIVED}" for k, v in zip(ESTIMAND_KEYS, (population, treatment, variable, ice, summary))}


def _estimand(design: TrialDesign, family: str, given: dict | None) -> dict:
    if given is None:
        return derived_estimand(design, family)
    if not isinstance(given, dict):
        raise ValueError(f"estimand: expected a mapping with keys {list(ESTIMAND_KEYS)}, got {type(given).__name__}")
    unknown = sorted(set(given) - set(ESTIMAND_KEYS))
    if unknown:
        raise ValueError(f"estimand: unknown key(s) {unknown}; ICH E9(R1) attributes are {list(ESTIMAND_KEYS)}")
    derived = derived_estimand(design, family)
    return {k: (str(given[k]) if given.get(k) else derived[k]) for k in ESTIMAND_KEYS}


def _analysis_text(a, design: TrialDesign, family: str) -> str:
    extra = []
    if a.prior is not None:
        extra.append("control prior " + _prior_text(a, design, family))
    elif a.method in (Method.power_prior, Method.commensurate) and a.historical is not None:
        extra.append(_historical_text(a.historical))
    if a.a0 is not None:
        extra.append(f"a0 = {_g(a.a0)}")
    if a.kappa is not None:
        extra.append(f"κ = {_g(a.kappa)}")
    if a.covariates:
        extra.append("covariates " + ", ".join(a.covariates))
    if a.method in (Method.hybrid_power_prior, Method.external_comparison):
        extra.append(f"weighting: {a.weighting}")
    return f"{a.name} ({_METHOD_TEXT[a.method.value]}{'; ' + '; '.join(extra) if extra else ''})"


def _sigma(design: TrialDesign) -> float | None:
    return design.endpoint.sd if design.endpoint is not None else None


def _control_prior(a, design: TrialDesign, family: str):
    """(control prior mixture or None, its ESS and ESS method) from the design (``trials.bayesian.priors``)."""
    from insilico.trials import bayesian

    if a.method not in BAYESIAN_METHODS or (a.prior is not None and a.prior.map_from is not None):
        return None, None, None
    control, _, ess = bayesian.priors(a.model_dump_json(), family, _sigma(design))
    method = "a0 · n_h (power prior)" if a.method is Method.power_prior else ELIR
    return control, float(ess), method


def _prior_text(a, design: TrialDesign, family: str) -> str:
    if a.prior is not None and a.prior.map_from is not None:
        return f"MAP prior derived from {len(a.prior.map_from.n)} historical studies at simulation time"
    control, _, _ = _control_prior(a, design, family)
    return _mixture_text(control) if control is not None else "—"


def _historical_text(h) -> str:
    parts = [f"n = {_g(h.n)}"]
    for k in ("responders", "mean", "events"):
        if getattr(h, k) is not None:
            parts.append(f"{k} = {_g(getattr(h, k))}")
    return "historical controls: " + ", ".join(parts)


def _prior_source(a, design: TrialDesign) -> str:
    if a.method is Method.hybrid_power_prior:
        ext = design.external_control
        return f"{ext.n} external controls per trial ({ext.source}), weighting: {a.weighting}"
    if a.historical is not None:
        return _historical_text(a.historical)
    if a.prior is not None and a.prior.map_from is not None:
        h = a.prior.map_from
        return f"MAP prior from {len(h.n)} historical studies (n = {', '.join(_g(x) for x in h.n)})"
    return f"prior components as specified in the design (analysis '{a.name}')"


def _design_table(design: TrialDesign, family: str, criterion: str, replicates: int) -> dict:
    ep, ss = design.endpoint, design.sample_size
    table = {"arms": " : ".join(f"{a.name} {_g(a.allocation)}" for a in design.arms)}
    if ep is not None:
        if family == "normal":
            extra = f"control mean {_g(ep.control_mean)}, sd {_g(ep.sd)}"
        elif family == "binary":
            extra = f"control rate {_g(ep.control_rate)}"
        elif family == "count":
            extra = f"control rate {_g(ep.control_rate)}, exposure {_g(ep.exposure)}"
        else:
            cut = ep.cutoff
            extra = (f"control median {_g(ep.control_median)}" if ep.control_median is not None
                     else f"piecewise hazards {ep.piecewise.hazards} at cuts {ep.piecewise.cuts}")
            extra += (f", accrual {_g(ep.accrual)}, dropout hazard {_g(ep.dropout_rate)}"
                      + (f", analysis at {cut.events} events" if cut is not None and cut.events else "")
                      + (f", analysis at time {_g(cut.calendar)}" if cut is not None and cut.calendar else ""))
        table["endpoint"] = f"{family.replace('_', ' ')} (parametric; {extra})"
    else:
        p = design.patients
        table["endpoint"] = (f"{family.replace('_', ' ')} outcome of generator '{Path(p.generator).name}' "
                             f"(study '{p.study}', {p.parameters.replace('_', ' ')})")
    if ss.stages is not None:
        spend = {"obrien_fleming": "O'Brien–Fleming", "pocock": "Pocock"}[ss.spending]
        unit = "events" if family == "time_to_event" else "patients"
        table["stages"] = (", ".join(str(s) for s in ss.stages) + f" {unit} (Lan–DeMets {spend}-type spending"
                           + (f"; futility z < {', '.join(_g(f) for f in ss.futility)}" if ss.futility else "") + ")")
    table["sample size"] = design.n_total
    if design.external_control is not None:
        table["external controls"] = f"{design.external_control.n} per trial ({design.external_control.source})"
    table["analyses"] = "; ".join(_analysis_text(a, design, family) for a in design.analyses)
    table["decision rule"] = criterion
    table["alpha"] = f"{design.decision.alpha:g} ({design.decision.sided}-sided)"
    table["replicates per scenario"] = replicates
    table["chunk size"] = design.chunk_size
    table["seed"] = design.seed
    return table


# ----------------------------------------------------------------------------- numbers

def prior_ess_rows(design: TrialDesign, oc: xr.Dataset | None = None, results: xr.Dataset | None = None,
                   family: str | None = None) -> list[dict]:
    """Prior effective sample size of every borrowing analysis: the value the simulation
    recorded (``prior_ess``, mean over scenarios and replicates) when there is one, else
    ELIR of the control prior mixture (``a0 n_h`` for a fixed power prior)."""
    family = family or _family(design)
    rows = []
    for label, (a, _) in _label_map(design).items():
        if a.method not in BORROWING:
            continue
        control, ess, method = _control_prior(a, design, family)
        recorded = None
        for src in (results, oc):
            if src is not None and "prior_ess" in src and label in src.analysis.values:
                v = src["prior_ess"].sel(analysis=label).values
                if np.isfinite(v).any():
                    recorded = float(np.nanmean(v))
                    break
        if a.method is Method.hybrid_power_prior:
            method = "a0 · Σ w (power prior on external controls; mean over replicates)"
            prior = f"power prior on external controls, a0 = {_g(a.a0)}"
        else:
            prior = _prior_text(a, design, family)
        if recorded is not None:
            ess = recorded
            method = (method or ELIR) + ", as recorded by the simulation"
        if ess is None:
            continue
        rows.append({"analysis": label, "prior": prior, "ess": ess, "method": method,
                     "source": _prior_source(a, design)})
    return rows


def _target_scenario(design: TrialDesign, j: int, null: float):
    """The design alternative for arm j: the scenario named 'target', else the first with a
    fixed non-null effect and no drift."""
    arm = design.arms[j].name
    ok = [s for s in design.scenarios if s.effect_prior is None and s.control_shift == 0
          and _arm_effect(s, arm) != null]
    named = [s for s in ok if s.name.lower() == "target"]
    return (named or ok or [None])[0]


def _mean_se2(label: str, oc: xr.Dataset, results: xr.Dataset | None, df: int, level: float) -> tuple[float, str]:
    """Mean squared standard error of an analysis over all scenarios and replicates: from
    the replicates when given, else from the mean interval width (width = 2 t_df se)."""
    if results is not None and "std_error" in results:
        se = results["std_error"].sel(analysis=label).values
        return float(np.nanmean(se**2)), "simulated standard errors"
    from scipy import stats

    q = stats.t.ppf(0.5 + level / 2, df)
    w = oc["mean_width"].sel(analysis=label).values
    return float(np.nanmean((w / (2 * q)) ** 2)), "mean interval widths"


def sample_size_rows(design: TrialDesign, oc: xr.Dataset, results: xr.Dataset | None = None,
                     prior_ess: list[dict] | None = None, family: str | None = None) -> list[dict]:
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
    from scipy import stats

    from insilico.trials.analyses import procova_sample_size

    family = family or _family(design)
    null = _null_value(design, family)
    labels = _label_map(design)
    sizes = design.arm_sizes()
    alpha = design.comparison_alpha / (2 if design.decision.sided == "two" else 1)
    level = design.decision.interval
    rows = []
    for label, (a, j) in labels.items():
        if a.method not in ADJUSTED:
            continue
        ref = next((lab for lab, (b, jj) in labels.items() if jj == j and b.method is Method.difference_in_means), None)
        sc = _target_scenario(design, j, null)
        if ref is None or sc is None or _ratio_scale(design, family):
            continue
        n_c, n_t = sizes[0], sizes[j]
        n = n_c + n_t
        p = 1 if a.method is Method.procova else max(len(a.covariates), 1)
        s_u, how = _mean_se2(ref, oc, results, n - 2, level)
        s_a, _ = _mean_se2(label, oc, results, n - 2 - p, level)
        inv = 1 / n_c + 1 / n_t
        sigma = math.sqrt(s_u / inv)
        rho2 = float(np.clip(1 - (s_a / s_u) * (n - 3 - p) / (n - 3), 0.0, 0.999))
        delta = abs(_arm_effect(sc, design.arms[j].name))
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
                      f"at N = {n} for the {_EFFECT['normal']} {_g(delta)} of scenario '{sc.name}', one-sided "
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


def threshold_rows(design: TrialDesign, oc: xr.Dataset, results: xr.Dataset | None = None,
                   family: str | None = None) -> list[dict]:
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
    k = len(design.arms) - 1
    target = dec.calibrate_to_alpha / (k if dec.multiplicity == "bonferroni" else 1)
    scen = str(oc.attrs.get("calibrated_on") or (results.attrs.get("calibrated_on") if results is not None else None)
               or design.calibration_scenario)
    sym = _direction_symbol(design)
    rows = []
    for label in _label_map(design):
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
    from insilico.trials.oc import oc_table

    return [{k: _py(v) for k, v in r.items()} for r in oc_table(oc).reset_index().to_dict("records")]


# ----------------------------------------------------------------------------- context

def simulation_context(design: TrialDesign, oc: xr.Dataset, *, results: xr.Dataset | None = None,
                       run_id: str | None = None, estimand: dict | None = None, title: str | None = None,
                       versions: dict | None = None, name: str | None = None,
                       source_design: TrialDesign | None = None) -> dict:
    """The context of ``reports.render.render_simulation`` for a simulated design.

    ``design``: the design that was simulated; ``oc``: its operating characteristics
    (``trials.oc.operating_characteristics``); ``results``: the replicate-level Dataset
    (optional: prior ESS, thresholds and standard errors are read from it when given);
    ``estimand``: ICH E9(R1) attributes — any not given are derived from the design and
    marked so; ``versions``: package versions of the run (default: this environment's);
    ``name``: the design's name (default from its hash); ``source_design``: the design as
    the user wrote it when the simulation ran a derived one (MAP priors resolved,
    replicates overridden): its hash is shown beside the simulated one.
    """
    if not isinstance(design, TrialDesign):
        raise ValueError(f"design: expected a TrialDesign, got {type(design).__name__}")
    _check_oc(design, oc)
    if results is not None and not isinstance(results, xr.Dataset):
        raise ValueError(f"results: expected the replicate-level xarray Dataset, got {type(results).__name__}")
    from insilico.tracking import git_commit

    family = _family(design)
    attrs = {**(results.attrs if results is not None else {}), **oc.attrs}
    sha = str(attrs.get("design_sha256") or design.hash())
    R = int(np.max(oc["n_replicates"].values))
    name = name or f"design-{sha[:8]}"
    calibrated_on = attrs.get("calibrated_on")
    criterion = success_criterion(design, family, calibrated_on)
    table = _design_table(design, family, criterion, R)
    if sha != design.hash():
        table["note"] = (f"the design given (SHA-256 {design.hash()}) differs from the one simulated: the "
                         "numbers are those of the simulated design")
    if source_design is not None and source_design.hash() != sha:
        table["design as written"] = (f"SHA-256 {source_design.hash()} (the simulation ran a derived design, e.g. "
                                      "generator path resolved, MAP priors derived or replicates overridden)")
    scenarios = classify_scenarios(design, family)
    kinds = {s["kind"] for s in scenarios}
    n_arms = len(design.arms)
    description = (f"{n_arms}-arm trial ({table['arms']}), {table['endpoint']}; {len(scenarios)} scenarios "
                   f"({', '.join(sorted(kinds))}) × {R} replicates; analyses: "
                   + ", ".join(a.name for a in design.analyses) + ".")
    prior_design = source_design if source_design is not None else design
    ess_rows = prior_ess_rows(design, oc, results, family)
    for r in ess_rows:  # the user's wording of a derived (MAP) prior's source
        a = _label_map(design)[r["analysis"]][0]
        orig = next((b for b in prior_design.analyses if b.name == a.name), None)
        if orig is not None and orig.prior is not None and orig.prior.map_from is not None:
            r["source"] = _prior_source(orig, prior_design)
    judgements = {"reviewer_signoff": None}
    if any(a.method in BORROWING for a in design.analyses):
        judgements = {"prior_justification": None, **judgements}
    return {
        "title": title or f"{name}: operating characteristics",
        "design": {"name": name, "title": f"{n_arms}-arm {family.replace('_', '-')} trial", "description": description,
                   "sha256": sha, "table": table},
        "estimand": _estimand(design, family, estimand),
        "success_criterion": criterion,
        "scenarios": scenarios,
        "oc": oc_rows(oc),
        "prior_ess": ess_rows,
        "sample_size": sample_size_rows(design, oc, results, ess_rows, family),
        "thresholds": threshold_rows(design, oc, results, family),
        "reproducibility": {"seed": int(attrs.get("seed", design.seed)), "spec_sha256": sha, "replicates": R,
                            "chunk_size": int(attrs.get("chunk_size", design.chunk_size)), "run_id": run_id,
                            "git_commit": git_commit(),
                            "created_at": datetime.now(UTC).isoformat(timespec="seconds")},
        "versions": dict(versions) if versions is not None else _versions(),
        "judgements": judgements,
    }


def _versions() -> dict[str, str]:
    from insilico.virtual_patients.generator import package_versions

    return package_versions()


# ----------------------------------------------------------------------------- figures

def simulation_figures(design: TrialDesign, oc: xr.Dataset, out_dir: str | Path) -> dict[str, Path]:
    """``"power"``: rejection rate against the true effect (natural scale) of the null and
    alternative scenarios without drift, per analysis — against the scenario order when
    effects repeat or come from a design prior; ``"type_i_drift"`` (only with drift
    scenarios): rejection rate against ``control_shift`` over the null-effect scenarios,
    with the nominal one-sided α. Error bars ±1.96 MCSE (``reports.figures.oc_curves``)."""
    import pandas as pd

    from insilico.reports.figures import oc_curves

    _check_oc(design, oc)
    family = _family(design)
    out_dir = Path(out_dir)
    scen = classify_scenarios(design, family)
    by_name = {s.name: s for s in design.scenarios}
    label = (_EFFECT if design.endpoint is not None else _GEN_EFFECT)[family]
    rows = []
    for lab, (a, j) in _label_map(design).items():
        for order, s in enumerate(scen, start=1):
            sc = by_name[s["name"]]
            cell = oc.sel(scenario=s["name"], analysis=lab)
            rows.append({"analysis": lab, "scenario": s["name"], "kind": s["kind"], "order": order,
                         "effect": _arm_effect(sc, design.arms[j].name), "drift": float(sc.control_shift),
                         "assurance": sc.effect_prior is not None, "rejection_rate": float(cell.rejection_rate),
                         "mcse": float(cell.rejection_rate_mcse)})
    df = pd.DataFrame(rows)
    out = {}
    curve = df[(df.drift == 0) & ~df.assurance & df.kind.isin(["null", "alternative"])]
    if len(curve) and not curve.duplicated(["analysis", "effect"]).any() and curve.scenario.nunique() > 1:
        out["power"] = oc_curves(curve, "effect", "rejection_rate", "analysis", out_dir / "power.png",
                                 "Pr(reject)", err="mcse", xlabel=f"true effect ({label})",
                                 title="Rejection rate by true effect (null: type I error; else power)")
    else:
        legend = ", ".join(f"{s['order']} {s['scenario']}" for s in
                           df.drop_duplicates("scenario")[["order", "scenario"]].to_dict("records"))
        out["power"] = oc_curves(df, "order", "rejection_rate", "analysis", out_dir / "power.png", "Pr(reject)",
                                 err="mcse", xlabel=f"scenario ({legend})", title="Rejection rate by scenario")
    nulls = df[df.kind.isin(["null", "drift"])]
    if (df.kind == "drift").any():
        dec = design.decision
        k = len(design.arms) - 1
        alpha = (dec.calibrate_to_alpha / (k if dec.multiplicity == "bonferroni" else 1)
                 if dec.calibrate_to_alpha is not None else design.comparison_alpha)
        if design.endpoint is None:
            unit = "outcome units" if family == "normal" else "log scale, linear predictor"
        else:
            unit = {"normal": "outcome units", "binary": "absolute change of the control rate",
                    "count": "change of the control rate", "time_to_event": "log hazard ratio"}[family]
        out["type_i_drift"] = oc_curves(nulls, "drift", "rejection_rate", "analysis", out_dir / "type_i_drift.png",
                                        "type I error", hline=alpha, err="mcse",
                                        xlabel=f"drift of current controls (control_shift, {unit})",
                                        hline_label=f"nominal one-sided α = {alpha:g}",
                                        title="Type I error under drift of the current controls")
    return out


# ----------------------------------------------------------------------------- report

def _run_record(results_path: Path, run_id: str | None) -> dict | None:
    """The MLflow run that wrote the results (by id, else by the results file's SHA-256
    tag), with its recorded versions and git commit; None when there is no store or run."""
    import os

    from insilico import tracking

    try:
        if not os.environ.get("MLFLOW_TRACKING_URI") and not (tracking.project_root() / "mlflow" / "mlflow.db").is_file():
            return None  # no store: do not create one just to look
        import mlflow

        tracking.setup()
        if run_id:
            run = mlflow.get_run(run_id)
        else:
            sha = tracking.sha256_file(results_path)
            runs = mlflow.search_runs(filter_string=f"tags.`results.sha256` = '{sha}'", output_format="list",
                                      search_all_experiments=True, max_results=1)
            if not runs:
                return None
            run = runs[0]
    except Exception:  # noqa: BLE001 - a missing or unreadable store leaves the report without the run's tags
        return None
    tags = run.data.tags
    versions = {k.removeprefix("version."): v for k, v in tags.items() if k.startswith("version.")}
    return {"run_id": run.info.run_id, "versions": versions or None, "git_commit": tags.get("code.git_commit")}


def simulation_report(design_path: str | Path, results_path: str | Path, out_dir: str | Path, *,
                      run_id: str | None = None, estimand: dict | None = None,
                      title: str | None = None) -> dict[str, Path]:
    """Write the simulation report of a results file (``insilico simulate``) into ``out_dir``.

    The design that ran is read from the results (``design_yaml``: MAP priors resolved,
    replicates as simulated); the design file names the report and words derived priors.
    The MLflow run (``run_id``, else the run tagged with the results file's SHA-256) gives
    the recorded versions and git commit. Returns ``{"html", "pdf", "figures",
    "context"}``: the context is also written as ``simulation_context.json``.
    """
    import yaml

    from insilico.reports.render import render_simulation

    from .fit import read_results

    design_path, results_path, out_dir = Path(design_path), Path(results_path), Path(out_dir)
    file_design = TrialDesign.from_yaml(design_path)
    results, oc = read_results(results_path)
    design = file_design
    if results.attrs.get("design_yaml"):
        design = TrialDesign.from_dict(yaml.safe_load(results.attrs["design_yaml"]),
                                       source=f"{results_path} (design_yaml)")
    if design.patients is not None and not Path(design.patients.generator).is_absolute():
        gen = (design_path.parent / design.patients.generator).resolve()  # relative to the design file
        design = TrialDesign.from_dict({**design.model_dump(mode="json"),
                                        "patients": {**design.patients.model_dump(mode="json"), "generator": str(gen)}})
    record = _run_record(results_path, run_id)
    name = design_path.stem.removesuffix(".resolved")
    ctx = simulation_context(design, oc, results=results, run_id=record["run_id"] if record else run_id,
                             estimand=estimand, title=title, name=name, source_design=file_design,
                             versions=record["versions"] if record else None)
    if record and record["git_commit"]:
        ctx["reproducibility"]["git_commit"] = record["git_commit"]
    from insilico.tracking import sha256_file

    ctx["design"]["table"]["results file"] = f"{results_path.name} (SHA-256 {sha256_file(results_path)})"
    with tempfile.TemporaryDirectory() as tmp:
        figures = simulation_figures(design, oc, tmp)
        paths = render_simulation(ctx, out_dir, figures)
    ctx_path = out_dir / "simulation_context.json"
    ctx_path.write_text(json.dumps(ctx, indent=1, ensure_ascii=False, default=str, allow_nan=True), encoding="utf-8")
    return {**paths, "context": ctx_path}


__all__ = ["simulation_context", "simulation_figures", "simulation_report", "classify_scenarios",
           "derived_estimand", "success_criterion", "prior_ess_rows", "sample_size_rows", "threshold_rows",
           "oc_rows"]

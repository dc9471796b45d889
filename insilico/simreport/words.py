"""The simulation report's words: scenarios, the success criterion, the estimand, the design table.

Every sentence is derived from the design (and, for scenario kinds, from the results);
what a method says of itself comes from the method registry (`insilico.trials.methods`).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import xarray as xr

from insilico.trials import scales
from insilico.trials.components import BETA_SPENDING, SPENDING, FutilitySpending, SampleSize
from insilico.trials.design import STEPWISE, Family, TrialDesign
from insilico.trials.methods import method_of

ESTIMAND_KEYS = ("population", "treatment", "variable", "intercurrent_events", "summary_measure")
DERIVED = "derived from the design"


def plain(v):
    """A plain Python value for the JSON-able context: numpy scalars → int/float, NaN → None."""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def fmt(x: float) -> str:
    return f"{float(x):.4g}"


def label_map(design: TrialDesign) -> dict[str, tuple]:
    """OC analysis label → (analysis, treatment arm index)."""
    return {label: (a, j) for label, a, j in design.analysis_labels()}


def check_oc(design: TrialDesign, oc: xr.Dataset) -> None:
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
    labels = list(label_map(design))
    got = [str(a) for a in oc.analysis.values]
    if sorted(got) != sorted(labels):
        raise ValueError(f"oc: analyses {got} do not match the design's analyses {labels}")


def classify_scenarios(design: TrialDesign, kinds: list[str] | None = None) -> list[dict]:
    """Each scenario as the report lists it: its kind (null / drift / alternative, as
    `insilico.trials.scales` decides; ``kinds`` as stored on the results, when given), true
    effect (natural scale), drift (``control_shift``), a description, and ``target`` for
    the design alternative."""
    scale = design.scale
    kinds = kinds if kinds is not None else [k.value for k in scales.scenario_kinds(design)]
    named_target = [s.name for s in design.scenarios if s.name.lower() == "target"]
    out = []
    for sc, kind in zip(design.scenarios, kinds, strict=True):
        if sc.effect_prior is not None:
            p = sc.effect_prior
            true = float(scale.to_natural(p.mean))
            label = f"log {scale.natural}" if scale.ratio else scale.natural
            desc = f"assurance: each replicate's {label} drawn from N({fmt(p.mean)}, {fmt(p.sd)}²)"
        elif kind != "alternative":
            true = scale.null
            desc = "no treatment effect"
        else:
            true = float(sc.effect)
            desc = f"{scale.natural} {fmt(sc.effect)}"
        if sc.arm_effects:
            desc += "; arm effects: " + ", ".join(f"{k} {fmt(v)}" for k, v in sc.arm_effects.items())
        desc += "; " + _drift_text(design, sc.control_shift)
        row = {"name": sc.name, "kind": kind, "true_effect": true, "drift": float(sc.control_shift),
               "description": desc}
        if sc.name in named_target and kind == "alternative":
            row["target"] = True
            row["description"] = "design alternative: " + desc
        out.append(row)
    return out


def _drift_text(design: TrialDesign, shift: float) -> str:
    if shift == 0:
        return "current controls as historical"
    ep = design.endpoint
    if ep is None:
        unit = "outcome units" if design.scale.family == "normal" else "log scale, linear predictor"
        return f"current controls shifted by {shift:+.4g} ({unit}) from the generator's population"
    if ep.family in (Family.binary, Family.count):
        return f"current control rate {fmt(ep.control_rate + shift)} (historical {fmt(ep.control_rate)})"
    if ep.family is Family.normal:
        return f"current control mean {fmt(ep.control_mean + shift)} (historical {fmt(ep.control_mean)})"
    return f"log hazard ratio {shift:+.4g} of current vs historical controls"


_FAMILY = {"asOF": "O'Brien–Fleming", "asP": "Pocock", "asHSD": "Hwang–Shih–DeCani", "asKD": "Kim–DeMets",
           "asUser": "user-specified", "OF": "O'Brien–Fleming", "P": "Pocock",
           "bsOF": "O'Brien–Fleming", "bsP": "Pocock", "bsHSD": "Hwang–Shih–DeCani", "bsKD": "Kim–DeMets"}


def boundary_words(ss: SampleSize) -> str:
    """The efficacy boundary family: 'Lan–DeMets Pocock-type', 'constant O'Brien–Fleming', …"""
    code = SPENDING[ss.spending]
    if code in ("OF", "P"):
        return f"constant {_FAMILY[code]}"
    name = _FAMILY[code]
    if code == "asHSD":
        name += f" (γ = {fmt(ss.spending_gamma)})"
    elif code == "asKD":
        name += f" (ρ = {fmt(ss.spending_gamma)})"
    elif code == "asUser":
        name += " (cumulative α " + ", ".join(fmt(a) for a in ss.user_alpha_spending) + ")"
    return f"Lan–DeMets {name}-type"


def futility_words(ss: SampleSize, *, short: bool = False) -> str:
    """The futility rule, as a parenthesis (or, ``short``, a table fragment); '' when none."""
    f = ss.futility
    if f is None:
        return ""
    if isinstance(f, FutilitySpending):
        code = BETA_SPENDING[f.spending]
        family = _FAMILY[code]
        gamma = f", {'ρ' if code == 'bsKD' else 'γ'} = {fmt(f.gamma)}" if f.gamma is not None else ""
        rule = f"{family}-type β spending, β = {fmt(f.beta)}{gamma}"
        return f"; futility: {rule}" if short else f" (non-binding futility stop from {rule})"
    bounds = ", ".join(fmt(b) for b in f)
    if short:
        return f"; futility z < {bounds}" + (" (binding)" if ss.binding_futility else "")
    return f" ({'binding' if ss.binding_futility else 'non-binding'} futility stop below {bounds})"


def multiplicity_words(design: TrialDesign) -> str:
    dec, k = design.decision, len(design.arms) - 1
    if dec.multiplicity == "graph":
        w = ", ".join(fmt(x) for x in dec.graph.weights)
        return f"the graphical procedure of Bretz et al., initial weights {w}"
    return {"bonferroni": f"Bonferroni, α/{k} each", "none": "no multiplicity adjustment",
            "dunnett": f"Dunnett's single-step test, α = {design.comparison_alpha:.4g} each",
            "holm": "Holm's step-down procedure", "hochberg": "Hochberg's step-up procedure",
            "closed_simes": "closed testing with Simes tests (Hommel)"}[dec.multiplicity]


def direction_symbol(design: TrialDesign) -> str:
    return ">" if design.direction == "greater" else "<"


def success_criterion(design: TrialDesign, calibrated_on: str | None = None) -> str:
    """The decision rule of every analysis, in words."""
    dec = design.decision
    alpha = design.comparison_alpha
    sym = direction_symbol(design)
    delta = f"δ the {design.scale.estimand} (treatment vs control)"
    k = len(design.arms) - 1
    parts = []
    freq = [a.name for a in design.analyses if not method_of(a).decides_by_probability]
    if freq:
        level = f"family-wise α = {dec.alpha:g}" if dec.multiplicity in STEPWISE and k > 1 else f"α = {alpha:g}"
        if dec.sided == "one":
            h0 = "δ ≤ 0" if design.direction == "greater" else "δ ≥ 0"
            text = f"{', '.join(freq)}: one-sided test of H0: {h0} rejected at {level}"
        else:
            text = f"{', '.join(freq)}: two-sided test of H0: δ = 0 rejected at {level}"
        ss = design.sample_size
        if ss.stages is not None:
            z = "the |z|" if dec.sided == "two" else "the z"
            text += (f", at the first of {len(ss.stages)} looks where {z} statistic crosses the "
                     f"{boundary_words(ss)} efficacy boundary{futility_words(ss)}")
        parts.append(text)
    bayes = [a.name for a in design.analyses if method_of(a).decides_by_probability]
    if bayes:
        if dec.calibrate_to_alpha is not None:
            target = design.calibration_alpha
            scen = calibrated_on or design.calibration_scenario
            parts.append(f"{', '.join(bayes)}: Pr(δ {sym} 0 | data) > c, with c calibrated by simulation to a "
                         f"one-sided type I error of {target:g} on scenario '{scen}'")
        else:  # the engine's threshold: the design's, else 1 - alpha
            c = dec.threshold if dec.threshold is not None else 1 - alpha
            parts.append(f"{', '.join(bayes)}: Pr(δ {sym} 0 | data) > {c:g}")
    text = "; ".join(parts) + f"; {delta}"
    if k > 1:
        text += f"; each of the {k} treatment arms is compared with control ({multiplicity_words(design)})"
    return text


def derived_estimand(design: TrialDesign) -> dict[str, str]:
    """ICH E9(R1) attributes as far as the design states them, each marked as derived."""
    family = design.scale.family
    ep, pat = design.endpoint, design.patients
    if ep is not None:
        if family == "normal":
            params = f"control mean {fmt(ep.control_mean)}, sd {fmt(ep.sd)}"
        elif family in ("binary", "count"):
            params = f"control {'response' if family == 'binary' else 'event'} rate {fmt(ep.control_rate)}"
        else:
            params = (f"control median {fmt(ep.control_median)}" if ep.control_median is not None
                      else "piecewise-constant control hazard")
        population = f"simulated patients of the design's parametric {family.replace('_', '-')} model ({params})"
    else:
        population = (f"virtual patients from the generator '{Path(pat.generator).name}' "
                      f"(study '{pat.study}', parameters: {pat.parameters.replace('_', ' ')})")
    if design.external_control is not None:
        population += f"; {design.external_control.n} external controls per trial"
    ctrl = design.arms[0]
    treatment = (", ".join(a.name for a in design.arms[1:]) + f" vs {ctrl.name} (allocation "
                 + " : ".join(f"{a.name} {fmt(a.allocation)}" for a in design.arms) + ")")
    if family == "time_to_event":
        cut = (ep.cutoff if ep is not None else pat.cutoff)
        when = (f"analysis at {cut.events} events" if cut is not None and cut.events else
                f"analysis at calendar time {fmt(cut.calendar)}" if cut is not None else "analysis at each look's events")
        variable = f"time to event ({when})"
    elif family == "binary":
        variable = "binary response"
    elif family == "count":
        variable = f"event count over exposure {fmt(ep.exposure)}" if ep is not None else "event count"
    else:
        variable = "continuous outcome"
    dropout = (ep.dropout_rate if ep is not None else pat.dropout_rate) if family == "time_to_event" else 0
    ice = ("none simulated: every patient stays on the assigned treatment and is followed as randomised "
           "(treatment policy by construction)")
    if dropout:
        ice += f"; dropout (exponential hazard {fmt(dropout)}) is censored"
    summary = f"{design.scale.natural} (treatment vs control)"
    if design.scale.ratio:
        summary += ", analysed on the log scale"
    return {k: f"{v} — {DERIVED}" for k, v in zip(ESTIMAND_KEYS, (population, treatment, variable, ice, summary))}


def estimand(design: TrialDesign, given: dict | None) -> dict:
    """The estimand attributes given (ICH E9(R1)), the others derived from the design."""
    if given is None:
        return derived_estimand(design)
    if not isinstance(given, dict):
        raise ValueError(f"estimand: expected a mapping with keys {list(ESTIMAND_KEYS)}, got {type(given).__name__}")
    unknown = sorted(set(given) - set(ESTIMAND_KEYS))
    if unknown:
        raise ValueError(f"estimand: unknown key(s) {unknown}; ICH E9(R1) attributes are {list(ESTIMAND_KEYS)}")
    derived = derived_estimand(design)
    return {k: (str(given[k]) if given.get(k) else derived[k]) for k in ESTIMAND_KEYS}


def design_table(design: TrialDesign, criterion: str, replicates: int) -> dict:
    """The design's key facts as (label, value) rows of the report's design table."""
    family = design.scale.family
    ep, ss = design.endpoint, design.sample_size
    table = {"arms": " : ".join(f"{a.name} {fmt(a.allocation)}" for a in design.arms)}
    if ep is not None:
        if family == "normal":
            extra = f"control mean {fmt(ep.control_mean)}, sd {fmt(ep.sd)}"
        elif family == "binary":
            extra = f"control rate {fmt(ep.control_rate)}"
        elif family == "count":
            extra = f"control rate {fmt(ep.control_rate)}, exposure {fmt(ep.exposure)}"
        else:
            cut = ep.cutoff
            extra = (f"control median {fmt(ep.control_median)}" if ep.control_median is not None
                     else f"piecewise hazards {ep.piecewise.hazards} at cuts {ep.piecewise.cuts}")
            extra += (f", accrual {fmt(ep.accrual)}, dropout hazard {fmt(ep.dropout_rate)}"
                      + (f", analysis at {cut.events} events" if cut is not None and cut.events else "")
                      + (f", analysis at time {fmt(cut.calendar)}" if cut is not None and cut.calendar else ""))
        table["endpoint"] = f"{family.replace('_', ' ')} (parametric; {extra})"
    else:
        p = design.patients
        table["endpoint"] = (f"{family.replace('_', ' ')} outcome of generator '{Path(p.generator).name}' "
                             f"(study '{p.study}', {p.parameters.replace('_', ' ')})")
    if ss.stages is not None:
        unit = "events" if family == "time_to_event" else "patients"
        kind = "boundaries" if SPENDING[ss.spending] in ("OF", "P") else "spending"
        table["stages"] = (", ".join(str(s) for s in ss.stages) + f" {unit} ({boundary_words(ss)} {kind}"
                           + futility_words(ss, short=True) + ")")
    table["sample size"] = design.n_total
    if design.external_control is not None:
        table["external controls"] = f"{design.external_control.n} per trial ({design.external_control.source})"
    table["analyses"] = "; ".join(method_of(a).describe(a, design, family) for a in design.analyses)
    table["decision rule"] = criterion
    table["alpha"] = f"{design.decision.alpha:g} ({design.decision.sided}-sided)"
    table["replicates per scenario"] = replicates
    table["chunk size"] = design.chunk_size
    table["seed"] = design.seed
    return table

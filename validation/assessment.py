"""Credibility assessment: evidence records mapped onto the plan's goals, factor by factor.

Built from the records alone (nothing is recomputed here). For each sub-model and each
V&V 40 factor the achieved level is

* ``met`` — every goal of the factor has a record and every record passed;
* ``partly met`` — some goals passed, others failed or have no evidence;
* ``not met`` — goals have records and none passed;
* ``no evidence`` — goals are set but no check produced a record;
* ``not assessed`` — the plan sets no goal for the factor (shown, never hidden).

A factor is adequate only when ``met``; a sub-model when all its assessed factors are;
the study when every sub-model is. Judgement fields stay None until a person fills
them with ``insilico sign``: the software never invents them.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime

from insilico.validation.evidence import CATEGORIES, FACTORS, EvidenceRecord
from insilico.validation.plan import CredibilityPlan, Goal

SUB_MODEL_TITLES = {
    "virtual_patient_generation": "Virtual-patient generation",
    "treatment_effect_model": "Treatment-effect model",
    "trial_decision_model": "Trial and decision model",
}


def judge(plan: CredibilityPlan, metrics: dict[str, dict], run_id: str | None = None) -> list[EvidenceRecord]:
    """Turn computed metrics into records: judged against the plan's goals where set.

    ``metrics`` maps metric name -> {"value", "check", "description"?, "artifact"?,
    "artifact_sha256"?, "detail"?, "sub_model"?}. A metric that is a goal of a sub-model
    yields one judged record per such sub-model; other metrics yield one informative
    record (passed None) under the sub-model that computed them.
    """
    from insilico.validation.evidence import record
    from insilico.validation.plan import METRICS

    goals: dict[str, list[tuple[str, Goal]]] = defaultdict(list)
    for sub_model, goal in plan.goals():
        goals[goal.metric].append((sub_model, goal))
    out = []
    for metric, m in metrics.items():
        factor, category, text = METRICS[metric]
        targets = goals.get(metric) or [(m.get("sub_model", "virtual_patient_generation"), None)]
        for sub_model, goal in targets:
            r = record(factor=goal.resolved_factor if goal else factor, sub_model=sub_model, check=m["check"],
                       metric=metric, value=m["value"], threshold=goal.threshold if goal else None,
                       category=category, description=m.get("description", text), detail=m.get("detail"))
            r.artifact, r.artifact_sha256, r.run_id = m.get("artifact"), m.get("artifact_sha256"), run_id
            out.append(r)
    return out


def _factor_level(goal_records: list[tuple[Goal, EvidenceRecord | None]]) -> tuple[str, list[str]]:
    gaps = []
    passed = failed = missing = 0
    for goal, rec in goal_records:
        if rec is None or rec.value is None:
            missing += 1
            gaps.append(f"no evidence for {goal.metric} (goal {goal.threshold.describe()})")
        elif rec.passed:
            passed += 1
        else:
            failed += 1
            gaps.append(f"{goal.metric} = {rec.value:.4g} misses its goal {goal.threshold.describe()}")
    if passed == len(goal_records):
        return "met", gaps
    if passed:
        return "partly met", gaps
    return ("not met", gaps) if failed else ("no evidence", gaps)


def assess(plan: CredibilityPlan, records: list[EvidenceRecord], *, frozen, data: list[dict],
           judgements: dict | None = None, versions: dict | None = None, run_id: str | None = None) -> dict:
    """The assessment document (the schema the credibility report renders)."""
    by_goal = {(r.sub_model, r.metric): r for r in records if r.passed is not None}
    sub_models = []
    for name, sm in plan.sub_models.items():
        factors = []
        for factor, group in FACTORS.items():
            goals = [g for g in sm.goals if g.resolved_factor == factor]
            informative = [r for r in records if r.sub_model == name and r.factor == factor and r.passed is None]
            if not goals:
                factors.append({"factor": factor, "group": group, "goals": [], "level": "not assessed",
                                "adequate": None, "achieved": _achieved([], informative),
                                "records": [r.key for r in informative],
                                "gaps": ["no credibility goal for this factor in the plan"]})
                continue
            pairs = [(g, by_goal.get((name, g.metric))) for g in goals]
            level, gaps = _factor_level(pairs)
            factors.append({
                "factor": factor, "group": group,
                "goals": [{"metric": g.metric, "threshold": g.threshold.describe(),
                           "record": r.key if r else None} for g, r in pairs],
                "achieved": _achieved([r for _, r in pairs if r], informative),
                "level": level, "adequate": level == "met",
                "records": [r.key for _, r in pairs if r] + [r.key for r in informative],
                "gaps": gaps,
            })
        assessed = [f for f in factors if f["adequate"] is not None]
        sub_models.append({"name": name, "title": SUB_MODEL_TITLES[name], "description": sm.description,
                           "adequate": all(f["adequate"] for f in assessed) if assessed else None,
                           "factors": factors})
    gaps = [f"{s['title']} — {f['factor']}: {g}" for s in sub_models for f in s["factors"]
            if f["adequate"] is False for g in f["gaps"]]
    deviations = [{"kind": "plan changed after freezing", "description": d} for d in frozen.deviations]
    adequate = all(s["adequate"] is not False for s in sub_models) and any(s["adequate"] for s in sub_models)
    n = _counts(sub_models)
    summary = (f"{n['met']} of {n['assessed']} assessed factor(s) meet their goals; {n['not_adequate']} do not "
               f"({n['no_evidence']} without evidence). Overall: "
               + ("adequate for the context of use." if adequate else "NOT adequate for the context of use.")
               + (f" {len(deviations)} deviation(s) from the frozen plan." if deviations else ""))
    categories = {c: [r.key for r in records if r.category == c] for c in CATEGORIES}
    return {
        "plan": {"name": plan.name, "title": plan.title, "question_of_interest": plan.question_of_interest,
                 "context_of_use": plan.context_of_use,
                 "model_influence": plan.model_influence.model_dump(mode="json"),
                 "decision_consequence": plan.decision_consequence.model_dump(mode="json"),
                 "model_impact": plan.model_impact.model_dump(mode="json"),
                 "model_risk": plan.risk_summary, "sha256": frozen.sha256, "frozen_at": frozen.frozen_at,
                 "frozen_run_id": frozen.run_id, "text": frozen.text},
        "data": data,
        "sub_models": sub_models,
        "overall": {"adequate": adequate, "summary": summary, "gaps": gaps, "counts": n},
        "deviations": deviations,
        "categories": {c: keys for c, keys in categories.items() if keys},
        "category_order": list(CATEGORIES),
        "judgements": {k: (judgements or {}).get(k) for k in plan.judgements},
        "traceability": [{"sub_model": r.sub_model, "factor": r.factor, "metric": r.metric,
                          "threshold": r.threshold_text, "record": r.key, "value": r.value, "passed": r.passed,
                          "run_id": r.run_id, "artifact": r.artifact, "artifact_sha256": r.artifact_sha256}
                         for r in records if r.passed is not None],
        "versions": versions or {}, "run_id": run_id,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _achieved(goal_records: list[EvidenceRecord], informative: list[EvidenceRecord]) -> str:
    parts = [f"{r.metric} = {_fmt(r.value)} ({'pass' if r.passed else 'fail'})" for r in goal_records]
    parts += [f"{r.metric} = {_fmt(r.value)}" for r in informative]
    return "; ".join(parts) if parts else "—"


def _fmt(v: float | None) -> str:
    return "no value" if v is None else f"{v:.4g}"


def _counts(sub_models: list[dict]) -> dict:
    fs = [f for s in sub_models for f in s["factors"] if f["adequate"] is not None]
    return {"assessed": len(fs), "met": sum(f["adequate"] for f in fs),
            "not_adequate": sum(not f["adequate"] for f in fs),
            "no_evidence": sum(f["level"] == "no evidence" for f in fs)}

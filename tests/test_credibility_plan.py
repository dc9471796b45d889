"""The credibility plan, its freezing and the assessment built from evidence records."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from insilico.cli import main
from insilico.stages.freeze import freeze
from insilico.validation.assessment import assess, judge
from insilico.validation.evidence import EvidenceRecord, Threshold, record
from insilico.validation.plan import CredibilityPlan, PlanError, read_plan

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _plan_dict(**change) -> dict:
    d = {
        "name": "unit-plan", "title": "t", "question_of_interest": "q?", "context_of_use": "cou",
        "model_influence": {"level": "medium", "justification": "j"},
        "decision_consequence": {"level": "high", "justification": "j"},
        "model_impact": {"level": "low", "justification": "j"},
        "sub_models": {"virtual_patient_generation": {"goals": [
            {"metric": "max_abs_smd", "threshold": {"max": 0.1}},
            {"metric": "min_variance_ratio", "threshold": {"min": 0.5}},
            {"metric": "divergences", "threshold": {"equals": 0}},
            {"metric": "km_distance", "threshold": {"max": 0.05}},
        ]}},
    }
    d.update(change)
    return d


def _write(tmp_path: Path, d: dict, name: str = "plan.yaml") -> Path:
    p = tmp_path / name
    p.write_text(yaml.safe_dump(d, sort_keys=False))
    return p


def test_bundled_plans_load_and_state_their_risk():
    indo, _ = read_plan(EXAMPLES / "credibility_indo.yaml")
    rott, _ = read_plan(EXAMPLES / "credibility_rotterdam_gbsg.yaml")
    assert indo.model_risk == 3 and rott.model_risk == 5  # medium+medium-1, high+high-1


@pytest.mark.parametrize(("influence", "consequence", "risk"), [("low", "low", 1), ("low", "high", 3),
                                                          ("medium", "high", 4), ("high", "high", 5)])
def test_model_risk_rule(influence, consequence, risk):
    p = CredibilityPlan.model_validate(_plan_dict(model_influence={"level": influence, "justification": "j"},
                                                  decision_consequence={"level": consequence, "justification": "j"}))
    assert p.model_risk == risk


@pytest.mark.parametrize(("goal", "words"), [
    ({"metric": "max_abs_smd", "threshold": {"max": 0.1}, "factor": "Output comparisons"},
     ["unknown credibility factor", "did you mean 'Output comparison'"]),
    ({"metric": "max_abs_smd"}, ["threshold", "Field required"]),
    ({"metric": "max_abs_smd", "threshold": {}}, ["a threshold needs min, max or equals"]),
    ({"metric": "max_abs_sdm", "threshold": {"max": 0.1}}, ["unknown metric", "did you mean 'max_abs_smd'"]),
])
def test_bad_plan_is_a_clear_error_with_exit_2(tmp_path, capsys, goal, words):
    d = _plan_dict(sub_models={"virtual_patient_generation": {"goals": [goal]}})
    path = _write(tmp_path, d)
    with pytest.raises(PlanError) as err:
        read_plan(path)
    for w in words:
        assert w in str(err.value)
    out = tmp_path / "out"
    assert main(["validate", str(path), "--out", str(out)]) == 2
    assert "error" in capsys.readouterr().err
    assert not out.exists()  # nothing half-written


def test_unknown_key_and_unknown_sub_model_are_errors(tmp_path):
    with pytest.raises(PlanError, match="unknown key"):
        read_plan(_write(tmp_path, _plan_dict(contxt_of_use="typo")))
    with pytest.raises(PlanError, match="unknown sub-model"):
        read_plan(_write(tmp_path, _plan_dict(sub_models={"generator": {"goals": []}})))


def test_threshold_rules():
    assert Threshold(max=0.1).admits(0.1) and not Threshold(max=0.1).admits(0.1000001)
    assert Threshold(min=0.5, max=2).admits(0.5) and not Threshold(min=0.5, max=2).admits(2.5)
    assert Threshold(equals=0).admits(0) and not Threshold(equals=0).admits(1)
    assert not Threshold(max=1).admits(float("nan")) and not Threshold(max=1).admits(None)
    with pytest.raises(ValueError):
        Threshold(equals=0, max=1)


def test_record_rejects_unknown_factor_or_category():
    with pytest.raises(ValueError, match="unknown credibility factor"):
        EvidenceRecord(factor="Vibes", sub_model="x", metric="m", value=1, threshold=None, passed=None,
                       category="code verification", check="c")
    r = record(factor="Output comparison", sub_model="s", check="c", metric="m", value=0.2,
               threshold={"max": 0.1}, category="population-based validation")
    assert r.passed is False and r.threshold_text == "≤ 0.1"


class _Frozen:
    sha256, frozen_at, run_id, text, deviations = "abc", "2026-11-23T00:00:00+00:00", "r0", "plan", []


def test_assessment_levels_follow_the_records():
    plan = CredibilityPlan.model_validate(_plan_dict())
    metrics = {"max_abs_smd": {"check": "balance", "value": 0.05},        # passes
               "min_variance_ratio": {"check": "balance", "value": 0.3},  # fails
               "divergences": {"check": "mcmc", "value": 0},              # passes
               # km_distance: no record at all -> no evidence
               "correlation_difference": {"check": "dep", "value": 0.12}}  # informative (no goal)
    records = judge(plan, metrics, run_id="run-1")
    a = assess(plan, records, frozen=_Frozen(), data=[])
    factors = {f["factor"]: f for f in a["sub_models"][0]["factors"]}
    eq = factors["Equivalency of input parameters"]
    assert eq["level"] == "partly met" and eq["adequate"] is False
    assert any("min_variance_ratio = 0.3 misses its goal ≥ 0.5" in g for g in eq["gaps"])
    assert "correlation_difference = 0.12" in eq["achieved"]  # informative evidence shown, not graded
    assert factors["Numerical solver error"]["level"] == "met"
    assert factors["Output comparison"]["level"] == "no evidence"
    assert factors["Use error"]["level"] == "not assessed"
    assert a["overall"]["adequate"] is False
    assert a["overall"]["counts"] == {"assessed": 3, "met": 1, "not_adequate": 2, "no_evidence": 1}
    assert a["judgements"] == {"clinical_relevance_of_margins": None, "adequacy_of_comparator": None,
                               "reviewer_signoff": None}  # blank until a person signs
    assert {t["record"] for t in a["traceability"]} == {"virtual_patient_generation/balance/max_abs_smd",
                                                        "virtual_patient_generation/balance/min_variance_ratio",
                                                        "virtual_patient_generation/mcmc/divergences"}
    assert all(t["run_id"] == "run-1" for t in a["traceability"])


def test_all_goals_met_is_adequate():
    plan = CredibilityPlan.model_validate(_plan_dict())
    metrics = {"max_abs_smd": {"check": "b", "value": 0.01}, "min_variance_ratio": {"check": "b", "value": 1.0},
               "divergences": {"check": "m", "value": 0}, "km_distance": {"check": "k", "value": 0.02}}
    a = assess(plan, judge(plan, metrics), frozen=_Frozen(), data=[])
    assert a["overall"]["adequate"] is True and a["sub_models"][0]["adequate"] is True


def test_plan_changed_after_freezing_is_a_deviation(tmp_path):
    d = _plan_dict(name="freeze-test")
    raw = _write(tmp_path, d).read_bytes()
    first = freeze("freeze-test", raw)
    assert first.new and first.deviations == []
    again = freeze("freeze-test", raw)
    assert not again.new and again.run_id == first.run_id and again.deviations == []
    d["sub_models"]["virtual_patient_generation"]["goals"][0]["threshold"]["max"] = 0.25  # loosened afterwards
    changed = freeze("freeze-test", _write(tmp_path, d, "changed.yaml").read_bytes())
    assert changed.sha256 == first.sha256 and changed.frozen_at == first.frozen_at  # the frozen plan stays
    assert changed.deviations == ["sub_models.virtual_patient_generation.goals[0].threshold.max: 0.1 -> 0.25"]
    comment = freeze("freeze-test", raw + b"# a comment\n")
    assert comment.deviations == ["plan text changed (comments or formatting only)"]

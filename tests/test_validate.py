"""`insilico validate` end to end on real data (small MCMC), and its checks one by one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from studies import small_indo_plan

from insilico.checks.engine import verify_engine
from insilico.checks.trial import check_design, check_replication
from insilico.cli import main

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.slow
def test_validate_end_to_end_logs_records_assessment_and_alias(tmp_path, capsys):
    import mlflow
    from mlflow import MlflowClient

    goals = [{"metric": "data_contract_failures", "threshold": {"equals": 0}},
             {"metric": "comparator_overlap", "threshold": {"equals": 0}},
             {"metric": "comparator_size", "threshold": {"min": 80}},
             {"metric": "cohort_plausibility_failures", "threshold": {"equals": 0}},
             {"metric": "plan_deviations", "threshold": {"equals": 0}}]
    plan = small_indo_plan(tmp_path, goals, "e2e-adequate")
    out = tmp_path / "out"
    assert main(["validate", str(plan), "--out", str(out), "--no-progress"]) == 0
    records = json.loads((out / "records.json").read_text())
    assessment = json.loads((out / "assessment.json").read_text())
    by = {r["metric"]: r for r in records}
    # every goal has a judged record; the informative metrics are there too
    assert {g["metric"] for g in goals} <= {m for m, r in by.items() if r["passed"] is not None}
    assert by["comparator_overlap"]["value"] == 0 and by["comparator_size"]["value"] == 93  # 30% of 307
    assert 0 <= by["detection_auc"]["value"] <= 1 and by["detection_auc"]["passed"] is None
    assert by["max_pareto_k"]["value"] < 0.7  # PSIS-LOO of the logistic outcome model: every k reliable
    assert "sbc_min_p_bonferroni" not in by  # no SBC goal: not run (it costs minutes)
    assert assessment["overall"]["adequate"] is True
    run_id = assessment["run_id"]
    run = mlflow.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.tags["credibility.adequate"] == "True"
    assert run.data.metrics["evidence.virtual_patient_generation.comparator_size"] == 93
    arts = {a.path for a in MlflowClient().list_artifacts(run_id, "evidence")}
    assert "evidence/records.json" in arts and "evidence/covariate_balance.json" in arts
    # the fit is a nested run of the validation; the generator carries the alias 'validated'
    children = mlflow.search_runs(filter_string=f"tags.mlflow.parentRunId = '{run_id}'", output_format="list")
    assert {c.data.tags.get("stage") for c in children} >= {"fit_generator", "freeze_plan"}
    mv = MlflowClient().get_model_version_by_alias("generator-e2e-adequate", "validated")
    assert mv.run_id in {c.info.run_id for c in children}
    # a figure record points at its artifact by path and SHA-256
    assert by["max_abs_smd"]["artifact"] == "figures/balance.png" and len(by["max_abs_smd"]["artifact_sha256"]) == 64
    # judgements stay blank until a person signs; signing fills exactly one
    assert all(v is None for v in assessment["judgements"].values())
    assert main(["sign", run_id, "--field", "reviewer_signoff", "--text", "accepted", "--by", "A. Reviewer"]) == 0
    signed = json.loads(mlflow.artifacts.load_text(f"runs:/{run_id}/assessment.json"))
    assert signed["judgements"]["reviewer_signoff"]["by"] == "A. Reviewer"
    assert signed["judgements"]["clinical_relevance_of_margins"] is None
    assert main(["sign", run_id, "--field", "vibes", "--text", "x", "--by", "y"]) == 2
    assert "unknown judgement field" in capsys.readouterr().err

    # the same plan with a loosened goal is a deviation from the frozen plan
    changed = yaml.safe_load(plan.read_text())
    changed["sub_models"]["virtual_patient_generation"]["goals"][2]["threshold"] = {"min": 10}
    plan.write_text(yaml.safe_dump(changed, sort_keys=False))
    out2 = tmp_path / "out2"
    assert main(["validate", str(plan), "--out", str(out2), "--no-progress", "--no-register"]) == 0
    a2 = json.loads((out2 / "assessment.json").read_text())
    assert a2["deviations"] == [{"kind": "plan changed after freezing",
                                 "description": "sub_models.virtual_patient_generation.goals[2].threshold.min: 80 -> 10"}]
    assert a2["overall"]["adequate"] is False  # plan_deviations = 1 misses its goal
    assert a2["plan"]["sha256"] == assessment["plan"]["sha256"]  # the frozen plan is the one reported


def test_a_failing_contract_stops_validation_with_exit_2(tmp_path, capsys):
    plan = small_indo_plan(tmp_path, [{"metric": "data_contract_failures", "threshold": {"equals": 0}}], "bad-data")
    bad = yaml.safe_load(plan.read_text())
    rows = pd.DataFrame({"id": [1, 2], "rx": "0_placebo", "age": [30, 300], "outcome": ["0_no", "1_yes"]})
    rows.to_csv(tmp_path / "bad.csv", index=False)
    bad["data"]["training"] = {"path": "bad.csv"}
    plan.write_text(yaml.safe_dump(bad))
    assert main(["validate", str(plan), "--out", str(tmp_path / "o"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "gender" in err and "age" in err  # names the missing column and the value out of range
    assert not (tmp_path / "o" / "assessment.json").exists()


def test_a_bad_target_population_file_stops_validation_before_anything_is_fitted(tmp_path, capsys):
    """The target population (and comparator, replication trial, twins source) pass a contract
    derived from the spec for their role: every failed expectation listed, the input named,
    exit 2, nothing fitted or written."""
    from insilico.virtual_patients.examples import example_data

    plan = small_indo_plan(tmp_path, [{"metric": "data_contract_failures", "threshold": {"equals": 0}}], "bad-target")
    target = example_data("indo_rct").head(40).copy()
    target.loc[0, "age"] = 300           # outside the spec's range [18, 100]
    target.loc[1, "gender"] = "3_other"  # not a level of gender
    target = target.drop(columns=["risk"])
    target.to_csv(tmp_path / "target.csv", index=False)
    bad = yaml.safe_load(plan.read_text())
    bad["data"]["target"] = {"path": "target.csv"}
    plan.write_text(yaml.safe_dump(bad))
    out = tmp_path / "o"
    assert main(["validate", str(plan), "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "target population" in err and "target.csv" in err
    assert 'covariate "age"' in err and 'covariate "gender"' in err and 'covariate "risk"' in err
    assert not out.exists()  # nothing written


def test_drift_inflates_type_one_error_and_the_check_says_so(tmp_path):
    design = yaml.safe_load((EXAMPLES / "design_hybrid_binary.yaml").read_text())
    design.update(replicates=2000, chunk_size=500)
    path = tmp_path / "design.yaml"
    path.write_text(yaml.safe_dump(design))
    m, _ = check_design(path, tmp_path, analyses=["borrowing"])
    drift, null = m["type_i_error_drift"]["value"], m["type_i_error"]["value"]
    # conjugate borrowing of a Beta(17, 83) prior when current controls run at 0.11: the
    # exact rejection rate is ~0.083 (4,000-replicate run); with 2,000 replicates its MCSE is
    # 0.006, so > 0.05 holds with z > 5 and the no-drift rate stays near nominal
    assert drift > 0.05 and null < 0.03 + 3 * np.sqrt(0.03 * 0.97 / 2000)
    assert m["chunking_identical"]["value"] == 1.0 and m["results_integrity_failures"]["value"] == 0
    assert m["oc_stability_max_z"]["value"] < 4


def test_engine_verification_agrees_with_closed_forms_rpact_and_rbest():
    m = verify_engine(2000, seed=7)
    # |z| < 4: three closed forms and five rpact scenarios, each within Monte Carlo error
    assert m["engine_closed_form_max_z"]["value"] < 4 and m["engine_rpact_max_z"]["value"] < 4
    assert m["rbest_ess_abs_difference"]["value"] < 0.5  # ELIR 37.6 (RBesT) to 3 digits


class _StubGenerator:
    """Twins whose control outcomes are the real control arm's distribution (wiring only)."""

    def __init__(self, spec, control):
        self.spec, self.control = spec, control

    def counterfactual(self, df, effect, seed):
        rng = np.random.default_rng(seed)
        pick = self.control.sample(n=len(df), replace=True, random_state=rng)
        o = self.spec.outcome
        return pd.DataFrame({f"{o.time}_control": pick[o.time].to_numpy(),
                             f"{o.event}_control": pick[o.event].to_numpy()})


def test_replication_interval_contains_the_real_effect_when_twins_mimic_controls():
    from insilico.validation.plan import DataSource, Replication
    from insilico.virtual_patients.examples import example_data
    from insilico.virtual_patients.spec import GeneratorSpec

    spec = GeneratorSpec.from_yaml(EXAMPLES / "gbsg_rotterdam_coded.yaml")
    df = example_data("gbsg_rotterdam_coded")
    rep = Replication(source=DataSource(example="gbsg_rotterdam_coded"), arm="hormon", treated=1, control=0,
                      cohorts=50)
    m = check_replication(_StubGenerator(spec, df[df.hormon == 0]), df, rep, seed=3)
    d = m["replication_inside_pi"]["detail"]
    # the real Cox estimate for hormonal therapy in GBSG-2: log HR about -0.36 (HR 0.70)
    assert d["real_estimate"] == pytest.approx(-0.36, abs=0.03)
    assert m["replication_inside_pi"]["value"] == 1.0 and d["n_treated"] == 246 and d["n_control"] == 440


def test_weighted_cox_maximises_the_weighted_breslow_partial_likelihood():
    from scipy.optimize import minimize_scalar

    from insilico.checks.trial import weighted_cox
    from insilico.trials.survival import cox_score

    rng = np.random.default_rng(5)
    n = 300
    arm = rng.integers(0, 2, n)
    t = rng.exponential(1 / np.where(arm == 1, 0.7, 1.0))
    e = (rng.uniform(size=n) < 0.8).astype(int)
    # continuous times, unit weights: the engine's Cox estimate
    ref = cox_score(t[None, :], e[None, :], arm, alpha=0.05, sided="two", direction="greater", level=0.95)
    assert weighted_cox(t, e, arm, np.ones(n)) == pytest.approx(float(ref["estimate"][0]), abs=1e-8)
    # tied times and unequal weights: the Breslow partial likelihood written out patient by patient
    tt, w = np.round(t, 1), rng.uniform(0.2, 3.0, n)

    def neg_loglik(b):
        return -sum(w[i] * (b * arm[i] - np.log(np.sum((w * np.exp(b * arm))[tt >= tt[i]])))
                    for i in range(n) if e[i])

    best = minimize_scalar(neg_loglik, bounds=(-3, 3), method="bounded", options={"xatol": 1e-10}).x
    assert weighted_cox(tt, e, arm, w) == pytest.approx(best, abs=1e-6)


def test_real_external_controls_att_weighted_against_the_randomised_effect(tmp_path):
    from insilico.checks.trial import check_external_control
    from insilico.validation.plan import DataSource, Replication
    from insilico.virtual_patients.examples import example_data
    from insilico.virtual_patients.fitting import select_rows
    from insilico.virtual_patients.spec import GeneratorSpec

    spec = GeneratorSpec.from_yaml(EXAMPLES / "rotterdam_nodepos.yaml")
    external = select_rows(example_data("rotterdam"), spec).dropna(subset=spec.columns).reset_index(drop=True)
    trial = example_data("gbsg_rotterdam_coded")
    rep = Replication(source=DataSource(example="gbsg_rotterdam_coded"), arm="hormon", treated=1, control=0)
    m = check_external_control(trial, external, rep, spec, tmp_path, seed=1, bootstrap=50)
    d = m["external_replication_z"]["detail"]
    # weighting moves the real-world patients towards the trial: balance improves on the worst covariate
    assert m["weighted_max_abs_smd"]["value"] < d["max_abs_smd_before"]
    assert d["rct_log_hr"] == pytest.approx(-0.36, abs=0.03) and d["n_external"] == 655
    assert 0 < d["kish_ess_external"] <= 655 and d["bootstrap_se"] > 0
    assert (tmp_path / "external_balance.png").is_file()

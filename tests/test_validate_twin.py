"""`insilico validate-twin`: a device maker's twin predictions against observations."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.metrics import roc_auc_score

from insilico.cli import main


def _plan(tmp_path, kind: str, goals: list[dict], name: str):
    plan = {"name": name, "title": "Twin of a cardiac device response", "question_of_interest": "q",
            "context_of_use": "cou", "model_influence": {"level": "low", "justification": "j"},
            "decision_consequence": {"level": "medium", "justification": "j"},
            "model_impact": {"level": "low", "justification": "j"},
            "twin": {"kind": kind, "id_column": "subject", "thresholds": [0.5]},
            "sub_models": {"treatment_effect_model": {"goals": goals}}}
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(plan))
    return path


def _pair(tmp_path, pred, obs):
    ids = [f"s{i:03d}" for i in range(len(pred))]
    pd.DataFrame({"subject": ids, "predicted": pred}).to_csv(tmp_path / "p.csv", index=False)
    pd.DataFrame({"subject": ids[::-1], "observed": obs[::-1]}).to_csv(tmp_path / "o.csv", index=False)  # other order


def test_continuous_twin_agreement_graded_by_the_plan(tmp_path):
    rng = np.random.default_rng(1)
    obs = rng.normal(100, 10, 200)
    pred = obs + 2.0 + rng.normal(0, 3, 200)  # biased by +2 units
    _pair(tmp_path, pred, obs)
    plan = _plan(tmp_path, "continuous", [{"metric": "twin_bias", "threshold": {"min": -1, "max": 1}},
                                          {"metric": "twin_mae", "threshold": {"max": 5}}], "twin-cont")
    out = tmp_path / "out"
    assert main(["validate-twin", "--predictions", str(tmp_path / "p.csv"), "--observed", str(tmp_path / "o.csv"),
                 "--plan", str(plan), "--out", str(out)]) == 0
    recs = {r["metric"]: r for r in json.loads((out / "records.json").read_text())}
    d = pred - obs
    assert recs["twin_bias"]["value"] == pytest.approx(d.mean(), rel=1e-12)  # joined by id, not by row order
    assert recs["twin_loa_upper"]["value"] == pytest.approx(d.mean() + 1.96 * d.std(ddof=1), rel=1e-3)
    assert recs["twin_mae"]["value"] == pytest.approx(np.abs(d).mean(), rel=1e-12)
    assert recs["twin_bias"]["passed"] is False and recs["twin_mae"]["passed"] is True  # the +2 bias is caught
    assessment = json.loads((out / "assessment.json").read_text())
    assert assessment["overall"]["adequate"] is False
    assert recs["twin_bias"]["artifact"] == "figures/bland_altman.png"
    assert (out / "report" / "credibility.pdf").is_file()


def test_binary_twin_auc_and_threshold_metrics(tmp_path):
    rng = np.random.default_rng(2)
    p = rng.uniform(0.05, 0.95, 400)
    y = (rng.uniform(size=400) < p).astype(int)  # calibrated by construction
    _pair(tmp_path, p, y)
    plan = _plan(tmp_path, "binary", [{"metric": "twin_auc", "threshold": {"min": 0.7}}], "twin-bin")
    out = tmp_path / "out"
    assert main(["validate-twin", "--predictions", str(tmp_path / "p.csv"), "--observed", str(tmp_path / "o.csv"),
                 "--plan", str(plan), "--out", str(out)]) == 0
    recs = {r["metric"]: r for r in json.loads((out / "records.json").read_text())}
    assert recs["twin_auc"]["value"] == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    pos = p >= 0.5
    assert recs["twin_sensitivity"]["value"] == pytest.approx((pos & (y == 1)).sum() / (y == 1).sum())
    assert recs["twin_specificity"]["value"] == pytest.approx((~pos & (y == 0)).sum() / (y == 0).sum())
    assert recs["twin_brier"]["value"] == pytest.approx(np.mean((p - y) ** 2))
    # calibrated by construction: slope 1 within its sampling error (se ~ 0.15 at n = 400)
    assert abs(recs["twin_calibration_slope"]["value"] - 1) < 0.45


def test_unmatched_ids_and_missing_twin_section_are_clear_errors(tmp_path, capsys):
    _pair(tmp_path, np.arange(5.0), np.arange(5.0))
    pd.DataFrame({"subject": ["s000", "zzz"], "observed": [1.0, 2.0]}).to_csv(tmp_path / "o2.csv", index=False)
    plan = _plan(tmp_path, "continuous", [{"metric": "twin_bias", "threshold": {"max": 1}}], "twin-err")
    assert main(["validate-twin", "--predictions", str(tmp_path / "p.csv"), "--observed", str(tmp_path / "o2.csv"),
                 "--plan", str(plan), "--out", str(tmp_path / "x")]) == 2
    assert "unmatched ids" in capsys.readouterr().err
    no_twin = yaml.safe_load(plan.read_text())
    del no_twin["twin"]
    plan.write_text(yaml.safe_dump(no_twin))
    assert main(["validate-twin", "--predictions", str(tmp_path / "p.csv"), "--observed", str(tmp_path / "o.csv"),
                 "--plan", str(plan), "--out", str(tmp_path / "y")]) == 2
    assert "needs a `twin` section" in capsys.readouterr().err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_twin_files_pass_their_contracts_first_every_failure_listed(tmp_path, capsys):
    """Predictions: a repeated id, a missing id, a probability of 1.3; observations: an outcome
    coded 2 and one missing. Each file fails its contract with every problem named, exit 2,
    nothing written."""
    pd.DataFrame({"subject": ["s1", "s1", None, "s4"], "predicted": [0.2, 0.4, 0.5, 1.3]}).to_csv(
        tmp_path / "p.csv", index=False)
    pd.DataFrame({"subject": ["s1", "s2", "s3", "s4"], "observed": [0, 1, 2, None]}).to_csv(
        tmp_path / "o.csv", index=False)
    plan = _plan(tmp_path, "binary", [{"metric": "twin_auc", "threshold": {"min": 0.7}}], "twin-contract")
    out = tmp_path / "out"
    args = ["validate-twin", "--predictions", str(tmp_path / "p.csv"), "--observed", str(tmp_path / "o.csv"),
            "--plan", str(plan), "--out", str(out)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "twin predictions (p.csv)" in err
    assert 'id column "subject"' in err and "predicted probability" in err and "1.3" in err
    assert err.count("  - ") >= 3  # the repeated id, the missing id, the probability out of [0, 1]
    assert not out.exists()
    pd.DataFrame({"subject": ["s1", "s2", "s3", "s4"], "predicted": [0.2, 0.4, 0.5, 0.9]}).to_csv(
        tmp_path / "p.csv", index=False)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "observed outcomes (o.csv)" in err and 'observed outcome "observed"' in err
    assert not out.exists()

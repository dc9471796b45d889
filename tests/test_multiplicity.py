"""Multiple-testing procedures (`insilico.trials.multiplicity`, `decision.multiplicity`): the
kernels on hand-worked p-values and on their known relations, then in the engine — family-wise
type I error under the global null (Dunnett: alpha within 3 MCSE), and per-replicate
rejections ordered Bonferroni <= Holm <= Hochberg <= closed Simes under an alternative."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_simulate_refuses

from insilico.trials import multiplicity as mt
from insilico.trials.design import TrialDesign
from insilico.trials.engine import run

R = 20_000


def holm_graph(m: int) -> tuple[list[float], list[list[float]]]:
    G = np.full((m, m), 1 / (m - 1))
    np.fill_diagonal(G, 0)
    return [1 / m] * m, G.tolist()


def test_hand_worked_p_values():
    p = np.array([[0.01, 0.04, 0.03, 0.005]])
    # Holm: 0.005 < 0.0125, 0.01 < 0.0167, 0.03 > 0.025 stops. Hochberg: 0.04 < 0.05 rejects all
    assert mt.holm(p, 0.05).tolist() == [[1, 0, 0, 1]]
    assert mt.hochberg(p, 0.05).tolist() == [[1, 1, 1, 1]]
    # Hommel beats Hochberg: every intersection holding H1 falls to Simes, {H2, H3} does not
    p = np.array([[0.02, 0.03, 0.06]])
    assert mt.hochberg(p, 0.05).tolist() == [[0, 0, 0]]
    assert mt.closed_simes(p, 0.05).tolist() == [[1, 0, 0]]
    # fixed sequence as a graph: H2 is tested at alpha only once H1 is rejected
    seq = ([1.0, 0.0], [[0.0, 1.0], [0.0, 0.0]])
    assert mt.graph(np.array([[0.01, 0.04], [0.06, 0.001]]), 0.05, *seq).tolist() == [[1, 1], [0, 0]]
    assert mt.holm(np.array([[np.nan, 0.001]]), 0.05).tolist() == [[0, 1]]  # NaN never rejected


def test_known_relations_on_random_p_values():
    rng = np.random.default_rng(20261204)
    p = rng.uniform(size=(20000, 4)) ** 2
    bonferroni = (p < 0.05 / 4).astype(np.int8)
    holm, hochberg, simes = mt.holm(p, 0.05), mt.hochberg(p, 0.05), mt.closed_simes(p, 0.05)
    assert (bonferroni <= holm).all() and (holm <= hochberg).all() and (hochberg <= simes).all()
    assert (holm.sum() > bonferroni.sum()) and (simes.sum() > hochberg.sum() > holm.sum())
    np.testing.assert_array_equal(mt.graph(p, 0.05, *holm_graph(4)), holm)  # Holm is a graph
    two = p[:, :2]
    np.testing.assert_array_equal(mt.closed_simes(two, 0.05), mt.hochberg(two, 0.05))  # m = 2: Hommel = Hochberg


def multiarm(multiplicity: str, **decision) -> TrialDesign:
    return TrialDesign.from_dict({
        "seed": 20261204, "replicates": R, "chunk_size": 5000,
        "arms": [{"name": "placebo", "allocation": 1}, {"name": "low", "allocation": 1},
                 {"name": "mid", "allocation": 1}, {"name": "high", "allocation": 1}],
        "endpoint": {"family": "normal", "sd": 1.0}, "sample_size": {"total": 400},
        "scenarios": [{"name": "null", "effect": 0.0},
                      {"name": "dose", "effect": 0.0, "arm_effects": {"low": 0.2, "mid": 0.3, "high": 0.35}}],
        "analyses": [{"name": "t", "method": "difference_in_means"}],
        "decision": {"alpha": 0.025, "multiplicity": multiplicity, **decision}})


@pytest.fixture(scope="module")
def decisions():
    rules = {"bonferroni": {}, "dunnett": {}, "holm": {}, "hochberg": {}, "closed_simes": {},
             "graph": dict(zip(("weights", "transitions"), holm_graph(3), strict=True))}
    out = {}
    for rule, extra in rules.items():
        decision = {"graph": extra} if extra else {}
        out[rule] = run(multiarm(rule, **decision), executor="serial").decision.values  # (scenario, analysis, R)
    return out


def test_familywise_error_under_the_global_null(decisions):
    """Dunnett's single-step test spends alpha exactly for z statistics (here t with 198 df:
    within MCSE); Holm's first step is Bonferroni's, so their family-wise errors are the same
    replicates; Hochberg stays at or below alpha (the shared control makes the tests PRDS)."""
    mcse = np.sqrt(0.025 * 0.975 / R)
    fw = {rule: float(d[0].any(axis=0).mean()) for rule, d in decisions.items()}
    assert abs(fw["dunnett"] - 0.025) <= 3 * mcse, fw
    assert fw["bonferroni"] < fw["dunnett"]
    np.testing.assert_array_equal(decisions["holm"][0].any(axis=0), decisions["bonferroni"][0].any(axis=0))
    assert fw["hochberg"] <= 0.025 + 3 * mcse and fw["closed_simes"] <= 0.025 + 3 * mcse, fw


def test_rejections_ordered_replicate_by_replicate_under_an_alternative(decisions):
    alt = {rule: d[1] for rule, d in decisions.items()}
    assert (alt["bonferroni"] <= alt["holm"]).all() and (alt["holm"] <= alt["hochberg"]).all()
    assert (alt["hochberg"] <= alt["closed_simes"]).all()
    np.testing.assert_array_equal(alt["graph"], alt["holm"])
    assert alt["closed_simes"].sum() > alt["hochberg"].sum() > alt["holm"].sum() > alt["bonferroni"].sum()


@pytest.mark.parametrize(("decision", "message"), [
    ({"multiplicity": "graph", "graph": {"weights": [0.5, 0.3, 0.1], "transitions": [[0, 0.5, 0.5], [0.5, 0, 0.5],
                                                                                     [0.5, 0.5, 0]]}},
     "sum to 1"),
    ({"multiplicity": "graph", "graph": {"weights": [0.5, 0.25, 0.25], "transitions": [[0.5, 0.5, 0], [0.5, 0, 0.5],
                                                                                       [0.5, 0.5, 0]]}},
     "the diagonal must be 0"),
    ({"multiplicity": "graph"}, "graph and decision.graph go together"),
    ({"multiplicity": "holm", "graph": {"weights": [1], "transitions": [[0]]}}, "go together"),
    ({"multiplicity": "holm", "sided": "one"}, "decides on p-values of fixed designs"),
])
def test_a_wrong_multiplicity_setting_is_one_message_and_exit_2(tmp_path, capsys, decision, message):
    spec = multiarm("bonferroni").model_dump(mode="json", exclude_none=True)
    spec["decision"] = {"alpha": 0.025, **decision}
    if message.startswith("decides"):
        spec["sample_size"] = {"total": 400, "stages": [200, 400]}
    assert_simulate_refuses(spec, tmp_path, capsys, message)


def test_dunnett_needs_equal_treatment_allocations():
    spec = multiarm("dunnett").model_dump(mode="json", exclude_none=True)
    spec["arms"][3]["allocation"] = 2
    with pytest.raises(ValueError, match="dunnett needs equal treatment-arm allocations"):
        TrialDesign.from_dict(spec)


def test_the_simulation_report_names_the_procedure(tmp_path):
    import yaml

    from insilico.cli import main

    spec = multiarm("hochberg").model_dump(mode="json", exclude_none=True)
    spec["replicates"], spec["chunk_size"] = 2000, 1000
    path = tmp_path / "design.yaml"
    path.write_text(yaml.safe_dump(spec))
    assert main(["simulate", "--design", str(path), "--out", str(tmp_path / "r.nc"), "--serial", "--no-progress"]) == 0
    assert main(["report", str(tmp_path / "r.nc"), "--design", str(path), "--out", str(tmp_path / "report")]) == 0
    html = (tmp_path / "report" / "simulation.html").read_text()
    assert "rejected at family-wise α = 0.025" in html and "Hochberg&#39;s step-up procedure" in html

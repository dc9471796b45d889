"""Every error-spending family, beta-spending futility, binding futility and two-sided
designs from a design's YAML (`sample_size`, `decision.sided`), against rpact 3.3.4's exact
boundaries (validation/reference/rpact_gsd_exact.json and rpact_gsd_two_sided.json, each
recorded by the R script beside it) and, for binding futility and two-sided designs, the
engine's simulated type I error."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_simulate_refuses

from insilico.common.resources import reference_values
from insilico.trials.design import TrialDesign
from insilico.trials.engine import run
from insilico.trials.gsd import crossing_probabilities, spending_function

#: rpact prints 12 significant digits; both are numerical integrations (measured: <= 5e-8)
ATOL = 1e-6
EXACT = reference_values("rpact_gsd_exact.json")


def design(replicates: int = 100, decision: dict | None = None, **sample_size) -> TrialDesign:
    return TrialDesign.from_dict({
        "decision": decision or {"alpha": 0.025, "sided": "one"},
        "seed": 20261204, "replicates": replicates, "chunk_size": min(replicates, 10000),
        "arms": [{"name": "control", "allocation": 1}, {"name": "treatment", "allocation": 1}],
        "endpoint": {"family": "normal", "sd": 1.0}, "scenarios": [{"name": "null", "effect": 0.0}],
        "analyses": [{"name": "t", "method": "difference_in_means"}],
        "sample_size": {"stages": [100, 200, 300], **sample_size}})


@pytest.mark.parametrize(("sample_size", "key"), [
    ({"spending": "obrien_fleming"}, "asOF_critical"),
    ({"spending": "pocock"}, "asP_critical"),
    ({"spending": "pocock_constant"}, "P_critical"),
    ({"spending": "OF"}, "OF_critical"),  # rpact's code, accepted as it is
    ({"spending": "hwang_shih_decani", "spending_gamma": -4}, "asHSD_m4_critical"),
    ({"spending": "asKD", "spending_gamma": 2, "stages": [40, 100, 160, 200]}, "asKD_2_unequal_critical"),
])
def test_every_spending_family_from_yaml_matches_rpact(sample_size, key):
    got = design(**sample_size).boundaries().critical_values
    np.testing.assert_allclose(got, EXACT[key], rtol=0, atol=ATOL)


TWO_SIDED = reference_values("rpact_gsd_two_sided.json")


@pytest.mark.parametrize(("sample_size", "key"), [
    ({"spending": "obrien_fleming"}, "asOF"), ({"spending": "pocock"}, "asP"),
    ({"spending": "OF"}, "OF"), ({"spending": "P"}, "P"),
    ({"spending": "asHSD", "spending_gamma": -4}, "asHSD_m4"),
    ({"spending": "asKD", "spending_gamma": 2, "stages": [40, 100, 160, 200]}, "asKD_2_unequal"),
])
def test_two_sided_designs_match_rpact(sample_size, key):
    """decision.sided: two — symmetric boundaries, each tail spending the one-sided function at
    alpha / 2 as rpact does (rpact_gsd_two_sided.R; alpha 0.05). The constant ones are also
    Jennison & Turnbull's Table 2.1 / 2.3 constants for K = 3: Pocock 2.289, O'Brien-Fleming 2.004."""
    b = design(decision={"alpha": 0.05, "sided": "two"}, **sample_size).boundaries()
    assert b.sided == 2
    np.testing.assert_allclose(b.critical_values, TWO_SIDED[f"{key}_critical"], rtol=0, atol=ATOL)
    if f"{key}_alpha_spent" in TWO_SIDED:
        np.testing.assert_allclose(b.alpha_spent, TWO_SIDED[f"{key}_alpha_spent"], rtol=0, atol=ATOL)
    if key in ("P", "OF"):
        assert b.critical_values[-1] == pytest.approx({"P": 2.289, "OF": 2.004}[key], abs=5e-4)


def test_two_sided_design_rejects_alpha_on_both_sides():
    """Under the null the engine's two-sided O'Brien-Fleming design rejects 5 % (40,000
    replicates, MCSE 0.0011), half of it on each side."""
    d = design(40000, decision={"alpha": 0.05, "sided": "two"})
    res = run(d, executor="serial")
    rejected = res.decision.values[0, 0] == 1
    mcse = np.sqrt(0.05 * 0.95 / 40000)
    assert abs(rejected.mean() - 0.05) <= 3 * mcse, rejected.mean()
    below = (res.estimate.values[0, 0][rejected] < 0).mean()
    assert abs(below - 0.5) <= 3 * np.sqrt(0.25 / rejected.sum()), below
    assert (res.p_value.values[0, 0][rejected] < 0.05).all()  # two-sided p-values at the stopping look


def test_beta_spending_futility_from_yaml_matches_rpact():
    b = design(futility={"spending": "obrien_fleming", "beta": 0.2}).boundaries()
    np.testing.assert_allclose(b.critical_values, EXACT["asOF_bsOF_critical"], rtol=0, atol=ATOL)
    np.testing.assert_allclose(b.futility_bounds[:-1], EXACT["asOF_bsOF_futility"][:2], rtol=0, atol=ATOL)


def test_user_spending_reproduces_the_family_it_copies():
    """asUser with the cumulative alpha of O'Brien-Fleming spending at the looks is that design."""
    rates = np.array([1, 2, 3]) / 3
    cum = spending_function("asOF", rates, 0.025).tolist()
    cum[-1] = 0.025  # the spending function's own last value, up to rounding
    user = design(spending="user", user_alpha_spending=cum).boundaries()
    np.testing.assert_allclose(user.critical_values, design().boundaries().critical_values, rtol=0, atol=1e-9)


def test_binding_futility_spends_all_alpha_when_trials_stop_at_futility():
    """Futility at z < 0 after looks 1 and 2. Non-binding, the efficacy bounds are O'Brien-
    Fleming's, and trials that do stop at futility spend less than alpha (exactly: the
    crossing probabilities with both bounds). Binding, the later bounds are lowered so that
    stopping at futility spends exactly alpha. The engine's simulated type I errors (40,000
    replicates, MCSE 0.00078) match both closed forms within 3 MCSE."""
    fut = {"futility": [0.0, 0.0]}
    binding, loose = design(40000, binding_futility=True, **fut), design(40000, **fut)
    b, nb = binding.boundaries(), loose.boundaries()
    # the first look comes before any futility stop: same bound; later ones lower
    assert b.critical_values[0] == pytest.approx(nb.critical_values[0], abs=1e-12)
    assert np.all(b.critical_values[1:] < nb.critical_values[1:])
    exact_b = crossing_probabilities(b.information_rates, b.critical_values, b.futility_bounds)[0].sum()
    exact_nb = crossing_probabilities(nb.information_rates, nb.critical_values, nb.futility_bounds)[0].sum()
    assert exact_b == pytest.approx(0.025, abs=1e-9) and exact_nb < 0.025 - 5e-4
    mcse = np.sqrt(0.025 * 0.975 / 40000)
    for d, exact in ((binding, exact_b), (loose, exact_nb)):
        rate = run(d, executor="serial").decision.mean().item()
        assert abs(rate - exact) <= 3 * mcse, (d.sample_size.binding_futility, rate, exact)


@pytest.mark.parametrize(("sample_size", "message"), [
    ({"spending": "hwang_shih_decani"}, "needs its parameter gamma"),
    ({"spending": "kim_demets", "spending_gamma": -1}, "rho must be > 0"),
    ({"spending": "pocock", "spending_gamma": 1}, "gamma applies to"),
    ({"spending": "user"}, "user and user_alpha_spending go together"),
    ({"spending": "user", "user_alpha_spending": [0.001, 0.01, 0.02]}, "must end at the comparison's alpha"),
    ({"spending": "user", "user_alpha_spending": [0.01, 0.005, 0.025]}, "positive and increasing"),
    ({"futility": {"spending": "pocock"}, "binding_futility": True}, "binding_futility needs futility z bounds"),
    ({"futility": [0.0, 0.0], "binding_futility": True, "spending": "P"}, "not constant boundaries"),
    ({"futility": {"spending": "bsKD"}}, "futility: the bsKD family needs"),
    ({"spending": "lan_demets"}, "spending"),
    ({"futility": [0.0, 0.0], "sided": "two"}, "futility bounds apply to one-sided designs"),
])
def test_a_wrong_spending_setting_is_one_message_and_exit_2(tmp_path, capsys, sample_size, message):
    spec = design().model_dump(mode="json", exclude_none=True)
    if "sided" in sample_size:
        spec["decision"]["sided"] = sample_size.pop("sided")
    spec["sample_size"] = {"stages": [100, 200, 300], **sample_size}
    assert_simulate_refuses(spec, tmp_path, capsys, message)


def test_the_simulation_report_names_the_boundaries_and_the_futility_rule(tmp_path):
    import yaml

    from insilico.cli import main

    spec = design(2000, spending="hwang_shih_decani", spending_gamma=-4,
                  futility={"spending": "kim_demets", "gamma": 2, "beta": 0.1}).model_dump(mode="json", exclude_none=True)
    path = tmp_path / "design.yaml"
    path.write_text(yaml.safe_dump(spec))
    assert main(["simulate", "--design", str(path), "--out", str(tmp_path / "r.nc"), "--serial", "--no-progress"]) == 0
    assert main(["report", str(tmp_path / "r.nc"), "--design", str(path), "--out", str(tmp_path / "report")]) == 0
    html = (tmp_path / "report" / "simulation.html").read_text()
    assert "Lan–DeMets Hwang–Shih–DeCani (γ = -4)-type" in html
    assert "Kim–DeMets-type β spending, β = 0.1, ρ = 2" in html
    assert (tmp_path / "report" / "simulation.pdf").read_bytes().startswith(b"%PDF")

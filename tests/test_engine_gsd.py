"""Group-sequential designs through the whole engine (design YAML -> chunks -> OCs)
against rpact 3.3.4 (`validation/reference/rpact_gsd.json`, a copy of `../shared/reference/`): within 3 combined Monte Carlo
standard errors, sqrt(se_ours^2 + se_rpact^2), each se = sqrt(p(1-p)/10000) for
proportions and the simulated sd / 100 for expectations."""

from __future__ import annotations

import json

import numpy as np
import pytest

from insilico.common.resources import REFERENCE, data_file
from insilico.trials.design import TrialDesign
from insilico.trials.engine import run
from insilico.trials.oc import operating_characteristics

REF = json.loads(data_file(REFERENCE, "rpact_gsd.json").read_text())
# rpact 3.3.4, 100,000 iterations (validation/reference/rpact_gsd_sim.R records the calls)
SIM100K = json.loads(data_file(REFERENCE, "rpact_gsd_sim.json").read_text())
R = 10_000
RATES = [1 / 3, 2 / 3, 1.0]  # rpact's informationRates (the stages are rounded to whole patients/events)


def _close_rate(ours: float, theirs: float) -> bool:
    se = np.sqrt(ours * (1 - ours) / R + theirs * (1 - theirs) / R)
    return abs(ours - theirs) <= 3 * se


def _close_mean(ours: float, mcse: float, theirs: float) -> bool:
    return abs(ours - theirs) <= 3 * np.sqrt(2) * mcse  # rpact's own MCSE is about ours


# rpact's getSimulationSurvival: patient i of 376 enters at 24 i / 376, arms alternate
SURVIVAL_ENDPOINT = {"family": "time_to_event", "control_median": 12, "accrual": 24, "entry": "regular"}
BASE = {"seed": 12345, "replicates": R, "chunk_size": 2500,
        "arms": [{"name": "control", "allocation": 1}, {"name": "treatment", "allocation": 1}],
        "decision": {"alpha": 0.025, "sided": "one"}}


@pytest.fixture(scope="module")
def means():
    d = TrialDesign.from_dict({**BASE, "endpoint": {"family": "normal", "sd": 1.0},
                               "sample_size": {"stages": [119, 237, 356], "spending": "obrien_fleming",
                                               "information_rates": RATES},
                               "scenarios": [{"name": f"alt{a}", "effect": a}
                                             for a in REF["means"]["five_scenarios"]["alternative"]],
                               "analyses": [{"name": "t", "method": "difference_in_means"}]})
    return operating_characteristics(run(d, executor="serial")).sel(analysis="t")


@pytest.fixture(scope="module")
def survival():
    d = TrialDesign.from_dict({**BASE, "endpoint": SURVIVAL_ENDPOINT,
                               "sample_size": {"total": 376, "stages": [83, 167, 250], "information_rates": RATES},
                               "scenarios": [{"name": "hr07", "effect": 0.7}, {"name": "hr1", "effect": 1.0}],
                               "analyses": [{"name": "logrank", "method": "logrank"}]})
    return operating_characteristics(run(d, executor="serial")).sel(analysis="logrank")


def test_boundaries_are_rpacts():
    d = TrialDesign.from_dict({**BASE, "endpoint": {"family": "normal"}, "sample_size": {"stages": [119, 237, 356],
                                                                              "information_rates": RATES},
                               "scenarios": [{"name": "x"}], "analyses": [{"name": "t", "method": "difference_in_means"}]})
    np.testing.assert_allclose(d.boundaries().critical_values, [3.7103, 2.5114, 1.9930], atol=1e-3)


def _stagewise_match(cell, ref: dict) -> None:
    """Power, rejection at each look, early stopping and expected N against rpact."""
    assert _close_rate(float(cell.rejection_rate), ref["power"])
    for k, p in enumerate(ref["rejectPerStage"]):
        assert _close_rate(float(cell.rejection_by_stage.isel(stage=k)), p), k
    assert _close_rate(float(cell.early_stop), ref["earlyStop"])
    assert _close_mean(float(cell.expected_n), float(cell.expected_n_mcse), ref["expectedN"])


def test_means_design_matches_rpact(means):
    ref = REF["means"]
    _stagewise_match(means.sel(scenario="alt0.3"), ref)
    sweep = ref["five_scenarios"]
    for a, rej, en in zip(sweep["alternative"], sweep["reject"], sweep["expectedN"], strict=True):
        c = means.sel(scenario=f"alt{a}")
        assert _close_rate(float(c.rejection_rate), rej), a
        assert _close_mean(float(c.expected_n), float(c.expected_n_mcse), en), a


def test_survival_design_matches_rpact(survival):
    ref = REF["survival"]
    cell = survival.sel(scenario="hr07")
    _stagewise_match(cell, ref)
    assert _close_mean(float(cell.expected_events), float(cell.expected_events_mcse), ref["expectedEvents"])
    assert _close_rate(float(survival.sel(scenario="hr1").rejection_rate), ref["type_I_error_at_HR_1"])


def test_stages_must_increase():
    from insilico.common.errors import SpecError

    with pytest.raises(SpecError, match="stages must increase"):
        TrialDesign.from_dict({**BASE, "endpoint": {"family": "normal"}, "sample_size": {"stages": [100, 80, 200]},
                               "scenarios": [{"name": "x"}], "analyses": [{"name": "t", "method": "difference_in_means"}]})


def test_statistic_looks_decide_as_p_value_looks():
    """Comparing each look's t statistic with the boundary carried to the t scale (and the
    p-value only at the stop) gives the decisions, stopping looks and p-values of the
    p-value path (z = Phi^-1(1 - p) against the z boundary), also for boundaries beyond
    z = 8 where Phi(c) rounds to 1."""
    from insilico.trials.analyses import finish
    from insilico.trials.looks import sequential

    d = TrialDesign.from_dict({**BASE, "endpoint": {"family": "normal", "sd": 1.0},
                               "sample_size": {"stages": [119, 237, 356], "spending": "obrien_fleming",
                                               "futility": [0.0, 0.5]},
                               "scenarios": [{"name": "a", "effect": 0.3}],
                               "analyses": [{"name": "t", "method": "difference_in_means"}]})
    gsd = d.boundaries()
    rng = np.random.default_rng(9)
    est = [0.1 * k + 0.2 * rng.standard_normal(4000) for k in range(1, 4)]
    common = {"alpha": 0.025, "sided": "one", "direction": "greater", "level": 0.95}
    from dataclasses import replace

    for boundaries in (gsd, replace(gsd, critical_values=np.array([9.0, 8.5, 2.0]))):
        looks = [(e, rng.uniform(0.01, 0.2, 4000), 100 * (k + 1)) for k, e in enumerate(est)]  # |z| up to ~90
        by_p = sequential([{**finish(e, se, df, **common), **_extra()} for e, se, df in looks], boundaries, "greater")
        by_t = sequential([{**finish(e, se, df, **common, p_value=False), **_extra()} for e, se, df in looks],
                           boundaries, "greater")
        np.testing.assert_array_equal(by_p["decision"], by_t["decision"])
        np.testing.assert_array_equal(by_p["stop_stage"], by_t["stop_stage"])
        np.testing.assert_allclose(by_t["p_value"], by_p["p_value"], rtol=1e-12)


def _extra():
    nan = np.full(4000, np.nan)
    return {"posterior_prob": nan, "prior_ess": nan, "n_patients": nan, "n_events": nan}


# ---------------------------------------------------------------------- 100,000 replicates
def _within(ours, mcse, theirs, theirs_se, what):
    z = abs(ours - theirs) / np.hypot(mcse, theirs_se)
    assert z <= 3, f"{what}: ours {ours} vs rpact {theirs}, |diff| / combined se = {z:.2f}"


def _rate_se(p, n):
    return np.sqrt(p * (1 - p) / n)


def _match_100k(cell, tag: str, j: int, per_stage: str | None) -> None:
    """Our 100,000 replicates against rpact's 100,000: rates with binomial se on each side;
    expected N with our MCSE on both sides (rpact reports none; same design, same R)."""
    n = SIM100K["iterations"]
    for name, ours in (("overallReject", "rejection_rate"), ("earlyStop", "early_stop")):
        ref = SIM100K[f"{tag}_{name}"][j]
        _within(float(cell[ours]), _rate_se(float(cell[ours]), R100K), ref, _rate_se(ref, n), f"{tag} {name}")
    _within(float(cell.expected_n), float(cell.expected_n_mcse), SIM100K[f"{tag}_expectedN"][j],
            float(cell.expected_n_mcse), f"{tag} expectedN")
    if per_stage:
        for k, ref in enumerate(SIM100K[per_stage]):
            ours = float(cell.rejection_by_stage.isel(stage=k))
            _within(ours, _rate_se(ours, R100K), ref, _rate_se(ref, n), f"{per_stage}[{k}]")


R100K = 100_000


def test_means_t_matches_rpact_100k():
    """The pooled-variance t statistic is rpact's getSimulationMeans(normalApproximation =
    FALSE); 3 combined MCSE at 100,000 replicates each side (se ~0.0018 for power)."""
    d = TrialDesign.from_dict({**BASE, "replicates": R100K, "seed": 777, "endpoint": {"family": "normal", "sd": 1.0},
                               "sample_size": {"stages": [119, 237, 356], "information_rates": RATES},
                               "scenarios": [{"name": "null", "effect": 0.0}, {"name": "alt", "effect": 0.3}],
                               "analyses": [{"name": "t", "method": "difference_in_means"}]})
    oc = operating_characteristics(run(d, executor="serial")).sel(analysis="t")
    _match_100k(oc.sel(scenario="null"), "means_t", 0, None)
    _match_100k(oc.sel(scenario="alt"), "means_t", 1, "means_t_rejectPerStage_alt0.3")


def test_survival_matches_rpact_100k():
    """Log-rank looks at 83/167/250 events, rpact's regular entry: power, per-stage
    rejection, early stopping, expected N and events against rpact's 100,000 iterations."""
    d = TrialDesign.from_dict({**BASE, "replicates": R100K, "seed": 777, "endpoint": SURVIVAL_ENDPOINT,
                               "sample_size": {"total": 376, "stages": [83, 167, 250], "information_rates": RATES},
                               "scenarios": [{"name": "hr07", "effect": 0.7}, {"name": "hr1", "effect": 1.0}],
                               "analyses": [{"name": "logrank", "method": "logrank"}]})
    results = run(d, executor="serial")
    oc = operating_characteristics(results).sel(analysis="logrank")
    _match_100k(oc.sel(scenario="hr07"), "survival", 0, "survival_rejectPerStage_hr0.7")
    _match_100k(oc.sel(scenario="hr1"), "survival", 1, None)
    for j, scenario in enumerate(("hr07", "hr1")):
        cell = oc.sel(scenario=scenario)
        _within(float(cell.expected_events), float(cell.expected_events_mcse), SIM100K["survival_expectedEvents"][j],
                float(cell.expected_events_mcse), f"expectedEvents {scenario}")
    # bookkeeping: each replicate stops with exactly the planned events of its look
    cell = results.sel(scenario="hr07", analysis="logrank")
    k = cell.stop_stage.values.astype(int) - 1
    np.testing.assert_array_equal(cell.n_events.values, np.array([83, 167, 250])[k])


def test_stopped_trials_skip_later_looks_without_changing_a_result():
    """Log-rank-only designs let the risk sets skip the looks after a trial has stopped;
    adding a Cox analysis turns that off. The log-rank results must be the same to the
    bit either way (the data do not depend on the analyses), under benefit (HR 0.7, many
    stop at look 2) and with futility bounds."""
    base = {**BASE, "replicates": 3000, "chunk_size": 1000, "endpoint": SURVIVAL_ENDPOINT,
            "sample_size": {"total": 376, "stages": [83, 167, 250], "information_rates": RATES,
                            "futility": [0.0, 0.5]},
            "scenarios": [{"name": "hr07", "effect": 0.7}, {"name": "hr1", "effect": 1.0}]}
    logrank = {"name": "logrank", "method": "logrank"}
    alone = run(TrialDesign.from_dict({**base, "analyses": [logrank]}), executor="serial")
    with_cox = run(TrialDesign.from_dict({**base, "analyses": [logrank, {"name": "cox", "method": "cox_score"}]}),
                   executor="serial").sel(analysis=["logrank"])
    assert float((alone.stop_stage < 3).mean()) > 0.3  # the skipping is exercised
    for name in alone.data_vars:
        np.testing.assert_array_equal(alone[name].values, with_cox[name].values, err_msg=name)

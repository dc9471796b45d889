"""Time-to-event trials: the vectorised log-rank and Cox kernels against lifelines on the
same data, and simulated power against Schoenfeld's formula within 3 Monte Carlo
standard errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from insilico.trials.design import TrialDesign
from insilico.trials.engine import run
from insilico.trials.oc import operating_characteristics
from insilico.trials.patients import hazard_model
from insilico.trials.survival import (
    cox_score,
    cumulative_hazard_inverse,
    logrank,
    schoenfeld_power,
    simulate_times,
)

COMMON = {"alpha": 0.025, "sided": "one", "direction": "less", "level": 0.95}


def _trials(R=5, n=200, seed=3):
    rng = np.random.default_rng(seed)
    arm = np.repeat([0, 1], n // 2).astype(np.int8)
    hr = np.where(arm == 1, 0.7, 1.0)
    sim = simulate_times(R, arm, hr, {"kind": "exponential", "rate": np.log(2) / 12}, 24.0, 0.01,
                         {"events": 120}, rng)
    return sim, arm


def test_cox_and_logrank_match_lifelines():
    from lifelines import CoxPHFitter
    from lifelines.statistics import logrank_test

    sim, arm = _trials()
    cox = cox_score(sim["time"], sim["event"], arm, **COMMON)
    lr = logrank(sim["time"], sim["event"], arm, **COMMON)
    for r in range(sim["time"].shape[0]):
        keep = sim["time"][r] > 0  # enrolled by the cut-off
        df = pd.DataFrame({"t": sim["time"][r][keep], "e": sim["event"][r][keep], "arm": arm[keep]})
        ref = CoxPHFitter().fit(df, "t", "e")
        assert cox["estimate"][r] == pytest.approx(ref.params_["arm"], abs=1e-6)
        assert cox["std_error"][r] == pytest.approx(ref.standard_errors_["arm"], rel=1e-5)
        test = logrank_test(df.t[df.arm == 1], df.t[df.arm == 0], df.e[df.arm == 1], df.e[df.arm == 0])
        # lifelines reports the two-sided chi-square; ours is one-sided z: z^2 = chi2
        z = lr["estimate"][r] / lr["std_error"][r]
        assert z**2 == pytest.approx(test.test_statistic, rel=1e-9)


def test_event_driven_cutoff_has_exactly_d_events():
    sim, _ = _trials()
    assert (sim["event"].sum(axis=1) == 120).all()
    assert (sim["time"] >= 0).all()


def test_piecewise_and_weibull_inverses():
    t = np.array([0.5, 3.0, 10.0, 30.0])
    pw = {"kind": "piecewise", "cuts": [2.0, 8.0], "hazards": [0.1, 0.05, 0.02]}
    H = np.where(t < 2, 0.1 * t, np.where(t < 8, 0.2 + 0.05 * (t - 2), 0.5 + 0.02 * (t - 8)))
    np.testing.assert_allclose(cumulative_hazard_inverse(H, pw), t, rtol=1e-12)
    wb = {"kind": "weibull", "rate": 0.01, "shape": 1.5}
    np.testing.assert_allclose(cumulative_hazard_inverse(0.01 * t**1.5, wb), t, rtol=1e-12)


def _design(**endpoint):
    return TrialDesign.from_dict({
        "seed": 5, "replicates": 4000, "chunk_size": 1000,
        "arms": [{"name": "control", "allocation": 1}, {"name": "treatment", "allocation": 1}],
        "endpoint": {"family": "time_to_event", "accrual": 24, **endpoint},
        "sample_size": {"total": 376},
        "scenarios": [{"name": "null", "effect": 1.0}, {"name": "hr07", "effect": 0.7}],
        "analyses": [{"name": "logrank", "method": "logrank"}, {"name": "cox", "method": "cox_score"}]})


@pytest.mark.parametrize("endpoint", [
    {"control_median": 12, "cutoff": {"events": 250}},
    {"control_median": 12, "weibull_shape": 1.4, "cutoff": {"events": 250}, "dropout_rate": 0.005},
    {"piecewise": {"cuts": [6, 18], "hazards": [0.08, 0.05, 0.03]}, "cutoff": {"events": 250}},
])
def test_power_matches_schoenfeld(endpoint):
    """Event-driven designs: Schoenfeld's approximation is accurate to about 0.005 at 250
    events and HR 0.7, well inside 3 MCSE (0.019) of 4,000 replicates."""
    oc = operating_characteristics(run(_design(**endpoint), executor="serial"))
    exact = schoenfeld_power(0.7, 250, 0.5, 0.025)
    for a in ("logrank", "cox"):
        power = float(oc.rejection_rate.sel(scenario="hr07", analysis=a))
        assert abs(power - exact) <= 3 * np.sqrt(exact * (1 - exact) / 4000), (a, power)
        size = float(oc.rejection_rate.sel(scenario="null", analysis=a))
        assert abs(size - 0.025) <= 3 * np.sqrt(0.025 * 0.975 / 4000), (a, size)
    cox = oc.sel(scenario="hr07", analysis="cox")
    assert abs(float(cox.coverage) - 0.95) <= 3 * np.sqrt(0.95 * 0.05 / 4000)


def test_calendar_cutoff_counts_enrolled_patients():
    d = _design(control_median=12, cutoff={"calendar": 12})
    res = run(d.model_copy(update={"replicates": 500}), executor="serial")
    # half of the 24-month accrual has happened at month 12: about 188 of 376 enrolled
    assert abs(float(res.n_patients.mean()) - 188) < 3
    assert hazard_model(d.endpoint) == {"kind": "exponential", "rate": pytest.approx(np.log(2) / 12)}


def test_risk_sets_at_staggered_looks_equal_the_observed_data_at_each_look():
    """The one-sort merge of `risk_sets` (finished patients in follow-up order, the ones
    still followed in reverse entry order) gives, at every look, exactly the log-rank sums
    and Cox fit of the data observed at that look (everybody treated as entered at 0):
    two different paths through the kernel, equal to rounding (1e-12)."""
    from insilico.trials.survival import (
        cox_at,
        cutoff_times,
        draw_times,
        logrank_at,
        observe_at,
        risk_sets,
    )

    rng = np.random.default_rng(11)
    n = 300
    arm = (np.arange(n) % 3 == 0).astype(np.int8)  # 1:2 allocation, randomisation order
    raw = draw_times(40, arm, np.where(arm == 1, 0.6, 1.0), {"kind": "weibull", "rate": 0.02, "shape": 1.3},
                     18.0, 0.02, rng)
    cuts = cutoff_times(raw, [{"events": 60}, {"calendar": 20.0}, {"events": 150}])
    risk = risk_sets(raw, cuts, arm, keep=True)
    for k in range(3):
        seen = observe_at(raw, cuts[:, k])
        assert (risk["events"][:, k] == seen["event"].sum(axis=1)).all()
        assert (risk["entered"][:, k] == seen["enrolled"]).all()
        for ours, ref in ((logrank_at(risk, k, **COMMON), logrank(seen["time"], seen["event"], arm, **COMMON)),
                          (cox_at(risk, k, **COMMON), cox_score(seen["time"], seen["event"], arm, **COMMON))):
            for field in ("estimate", "std_error", "p_value"):
                np.testing.assert_allclose(ours[field], ref[field], rtol=1e-12, atol=1e-12)
    assert (risk["events"][:, 0] == 60).all() and (risk["events"][:, 2] == 150).all()


def test_risk_sets_of_a_comparison_ignore_the_other_arms():
    """code -1 leaves a patient out: the same as the data of the two compared arms alone."""
    from insilico.trials.survival import (
        cutoff_times,
        draw_times,
        logrank_at,
        observe_at,
        risk_sets,
    )

    rng = np.random.default_rng(12)
    arm = np.tile(np.array([0, 1, 2], np.int8), 100)
    raw = draw_times(20, arm, np.choose(arm, [1.0, 0.8, 0.6]), {"kind": "exponential", "rate": 0.05}, 12.0, 0.0, rng)
    cuts = cutoff_times(raw, [{"events": 120}])
    code = np.where(arm == 2, 1, np.where(arm == 0, 0, -1))
    ours = logrank_at(risk_sets(raw, cuts, code), 0, **COMMON)
    keep = arm != 1
    seen = observe_at({k: v[:, keep] for k, v in raw.items()}, cuts[:, 0])
    ref = logrank(seen["time"], seen["event"], (arm[keep] == 2).astype(np.int8), **COMMON)
    np.testing.assert_allclose(ours["estimate"], ref["estimate"], rtol=1e-12)


def test_logrank_with_tied_times_matches_lifelines():
    """Tied event times (whole months) share their risk set and the variance is the
    hypergeometric one, as in lifelines' logrank_test (and R's survdiff): z^2 = chi2 to 1e-9."""
    from lifelines.statistics import logrank_test

    rng = np.random.default_rng(13)
    arm = np.repeat([0, 1], 60).astype(np.int8)
    time = np.ceil(rng.exponential(np.where(arm == 1, 14.0, 10.0), (6, 120)))
    event = (rng.random((6, 120)) < 0.8).astype(np.int8)
    lr = logrank(time, event, arm, **COMMON)
    for r in range(6):
        t, e = time[r], event[r]
        test = logrank_test(t[arm == 1], t[arm == 0], e[arm == 1], e[arm == 0])
        assert (lr["estimate"][r] / lr["std_error"][r]) ** 2 == pytest.approx(test.test_statistic, rel=1e-9)


def test_entry_times_out_of_order_are_refused():
    from insilico.trials.survival import risk_sets

    raw = {"entry": np.array([[2.0, 1.0]]), "follow": np.array([[1.0, 2.0]]), "is_event": np.array([[True, True]])}
    with pytest.raises(ValueError, match="sorted"):
        risk_sets(raw, np.array([[10.0]]), np.array([0, 1]))

"""Several treatment arms against a shared control: each comparison is the two-arm test on
its own patients at alpha / (arms - 1) (Bonferroni), so its power has the closed form of
the two-arm t test; the family-wise type I error stays at or below alpha."""

from __future__ import annotations

import numpy as np
import pytest

from insilico.common.errors import SpecError
from insilico.trials.analyses import power_t_test
from insilico.trials.design import TrialDesign
from insilico.trials.engine import run
from insilico.trials.oc import operating_characteristics

R = 10_000


def multiarm(**change) -> TrialDesign:
    base = {"seed": 11, "replicates": R, "chunk_size": 2500,
            "arms": [{"name": "placebo", "allocation": 1}, {"name": "low", "allocation": 1},
                     {"name": "mid", "allocation": 1}, {"name": "high", "allocation": 1}],
            "endpoint": {"family": "normal", "sd": 1.0}, "sample_size": {"total": 400},
            "scenarios": [{"name": "null", "effect": 0.0},
                          {"name": "dose", "effect": 0.0, "arm_effects": {"low": 0.1, "mid": 0.3, "high": 0.45}}],
            "analyses": [{"name": "t", "method": "difference_in_means"}]}
    return TrialDesign.from_dict({**base, **change})


@pytest.fixture(scope="module")
def oc():
    return operating_characteristics(run(multiarm(), executor="serial"))


def test_arms_are_allocated_as_planned():
    d = multiarm()
    assert d.arm_sizes() == (100, 100, 100, 100)
    # interleaved: every prefix of patients is balanced to within one patient per arm
    v = d.arm_vector()
    counts = np.stack([np.cumsum(v == j) for j in range(4)])
    assert (counts.max(axis=0) - counts.min(axis=0)).max() <= 1
    assert [lab for lab, _, _ in d.analysis_labels()] == ["t:low", "t:mid", "t:high"]


def test_each_comparison_has_two_arm_power_at_bonferroni_alpha(oc):
    for arm, effect in (("low", 0.1), ("mid", 0.3), ("high", 0.45)):
        exact = power_t_test(effect, 1.0, 100, 100, 0.025 / 3)
        sim = float(oc.rejection_rate.sel(scenario="dose", analysis=f"t:{arm}"))
        assert abs(sim - exact) <= 3 * np.sqrt(exact * (1 - exact) / R), (arm, sim, exact)
        assert float(oc.true_effect.sel(scenario="dose", analysis=f"t:{arm}")) == pytest.approx(effect)


def test_familywise_type_one_error_at_most_alpha(oc):
    """Under the global null each comparison rejects at 0.025/3; the family-wise rate lies
    between that and Bonferroni's bound 0.025 (the shared control correlates the tests)."""
    fw = float(oc.familywise_rejection.sel(scenario="null", family="t"))
    se = np.sqrt(0.025 * 0.975 / R)
    assert 0.025 / 3 < fw <= 0.025 + 3 * se
    for arm in ("low", "mid", "high"):
        rate = float(oc.rejection_rate.sel(scenario="null", analysis=f"t:{arm}"))
        assert abs(rate - 0.025 / 3) <= 3 * np.sqrt((0.025 / 3) * (1 - 0.025 / 3) / R)


def test_multiarm_survival_counts_events_over_all_arms():
    d = multiarm(endpoint={"family": "time_to_event", "control_median": 12, "accrual": 24,
                           "cutoff": {"events": 240}},
                 scenarios=[{"name": "hr", "effect": 0.7}], analyses=[{"name": "lr", "method": "logrank"}],
                 replicates=500, chunk_size=250)
    res = run(d, executor="serial")
    # comparison j sees control's events e_c and arm j's: summed over the three
    # comparisons that is 3 e_c + (240 - e_c) = 240 + 2 e_c when the cut-off counts all arms
    total = res.n_events.sum("analysis").values
    assert np.all((total > 240) & ((total - 240) % 2 == 0))
    assert set(res.analysis.values) == {"lr:low", "lr:mid", "lr:high"}
    assert np.all(res.n_patients.values < 400)  # two of four arms per comparison


def test_arm_effects_must_name_treatment_arms():
    with pytest.raises(SpecError, match="not treatment arms"):
        multiarm(scenarios=[{"name": "x", "arm_effects": {"placebo": 0.2}}])

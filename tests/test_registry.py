"""The method registry, the effect scales and the scenario kinds: decided once, read everywhere.

A scenario's kind (null / drift / alternative) is decided by `trials.scales` alone and stored
on the results; the calibration, the results suite, the V&V check of the design and the
simulation report all read that one decision. The multi-arm case the issue names: a scenario
with ``effect: 0`` and an ``arm_effects`` entry is an alternative everywhere.
"""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from insilico.checks.trial import check_design
from insilico.common.errors import SpecError
from insilico.simreport import classify_scenarios
from insilico.simreport.report import stored_kinds
from insilico.trials import scales
from insilico.trials.design import Method, TrialDesign, check_runnable
from insilico.trials.engine import run
from insilico.trials.methods import METHODS, method_of
from insilico.trials.oc import operating_characteristics
from insilico.validation.results_suite import check_results

MULTI = {"seed": 5, "replicates": 400, "chunk_size": 200,
         "arms": [{"name": "control", "allocation": 1}, {"name": "a", "allocation": 1},
                  {"name": "b", "allocation": 1}],
         "endpoint": {"family": "normal", "sd": 1.0}, "sample_size": {"total": 300},
         "scenarios": [{"name": "global_null", "effect": 0.0},
                       {"name": "b_works", "effect": 0.0, "arm_effects": {"b": 0.4}},
                       {"name": "drift", "effect": 0.0, "control_shift": 0.2}],
         "analyses": [{"name": "t", "method": "difference_in_means"}]}


def test_every_method_declares_itself():
    assert [m.value for m in Method] == list(METHODS)  # the design's choices are the registry's
    for name, m in METHODS.items():
        assert m.name == name and m.title and m.families <= {"normal", "binary", "count", "time_to_event"}
        assert set(m.required) <= set(m.parameters), name  # a required parameter is a parameter
    assert {n for n, m in METHODS.items() if m.decides_by_probability} == {
        "hybrid_power_prior", "bayesian", "robust_map", "power_prior", "commensurate"}
    assert {n for n, m in METHODS.items() if m.sequential} == {
        "difference_in_means", "ancova", "procova", "two_proportions", "poisson_rate_ratio", "logrank", "cox_score"}


@pytest.mark.parametrize(("family", "ratio", "null", "benefit"), [
    ("normal", False, 0.0, "greater"), ("binary", False, 0.0, "greater"),
    ("count", True, 1.0, "less"), ("time_to_event", True, 1.0, "less")])
def test_effect_scales(family, ratio, null, benefit):
    s = scales.parametric_scale(family)
    assert (s.ratio, s.null, s.benefit, s.collapsible) == (ratio, null, benefit, True)
    assert s.to_natural(s.to_analysis(0.7)) == pytest.approx(0.7)
    assert s.to_analysis(s.null) == 0.0  # the null effect is 0 on the analysis scale
    g = scales.generator_scale(family)
    assert g.ratio == (family != "normal") and g.collapsible == (family in ("normal", "count"))


def test_multi_arm_partial_effect_is_an_alternative_everywhere(tmp_path):
    design = TrialDesign.from_dict(MULTI)
    assert [k.value for k in scales.scenario_kinds(design)] == ["null", "alternative", "drift"]
    results = run(design, executor="serial")
    assert list(results["scenario_kind"].values) == ["null", "alternative", "drift"]  # stored on the results
    oc = operating_characteristics(results)
    assert stored_kinds(oc) == ["null", "alternative", "drift"]  # and kept on the OCs
    assert [s["kind"] for s in classify_scenarios(design, stored_kinds(oc))] == ["null", "alternative", "drift"]
    # the results suite reads the stored kinds: the power target applies to 'b_works' only
    rr = oc["rejection_rate_mcse"]
    tight = float(rr.sel(scenario="b_works").max()) * 0.5
    loose = float(rr.max()) * 2
    bad = check_results(results, oc, mcse_targets={"power": tight, "type_i_error": loose})
    assert not bad.success and all("b_works" in f for f in bad.failures), bad.failures
    # the V&V check grades type I error on the global null only, power on the alternative
    path = tmp_path / "multi.yaml"
    path.write_text(yaml.safe_dump(MULTI))
    metrics, _ = check_design(path, tmp_path)
    rej = oc["rejection_rate"]
    assert metrics["type_i_error"]["value"] == pytest.approx(float(rej.sel(scenario="global_null").max()))
    assert metrics["power"]["value"] == pytest.approx(float(rej.sel(scenario="b_works").min()))
    assert metrics["type_i_error_drift"]["value"] == pytest.approx(float(rej.sel(scenario="drift").max()))
    # arm a has no effect in 'b_works': its rejection rate is a per-comparison type I error near 0.025 / 2
    a = float(rej.sel(scenario="b_works", analysis="t:a"))
    assert a <= 0.0125 + 3 * np.sqrt(0.0125 * 0.9875 / 400)


def test_calibration_skips_a_partly_effective_scenario():
    d = {**MULTI, "scenarios": [{"name": "b_works", "effect": 0.0, "arm_effects": {"b": 0.4}},
                                {"name": "global_null", "effect": 0.0}],
         "endpoint": {"family": "binary", "control_rate": 0.3},
         "analyses": [{"name": "bayes", "method": "bayesian", "prior": {"family": "beta_mixture",
                                                                        "components": [[1.0, 3, 7]]}}],
         "decision": {"calibrate_to_alpha": 0.025}}
    assert TrialDesign.from_dict(d).calibration_scenario == "global_null"


def test_parameters_a_method_does_not_take_are_refused():
    with pytest.raises(SpecError, match="logrank does not take a0"):
        TrialDesign.from_dict({**MULTI, "arms": MULTI["arms"][:2],
                               "endpoint": {"family": "time_to_event", "control_median": 12, "cutoff": {"events": 50}},
                               "scenarios": [{"name": "n", "effect": 1.0}],
                               "analyses": [{"name": "lr", "method": "logrank", "a0": 0.5}]})


def test_generator_family_is_checked_before_running(tmp_path):
    """A method that does not apply to the generator's outcome stops with one message
    (before: a survival generator with procova passed the checks and ended in a KeyError)."""
    from insilico.virtual_patients.generator import Generator

    gen_dir = tmp_path / "gen"
    gen_dir.mkdir()
    (gen_dir / "spec.yaml").write_text(yaml.safe_dump({
        "covariates": [{"name": "age", "type": "continuous"}],
        "outcome": {"family": "weibull", "time": "t", "event": "e"}}))
    d = TrialDesign.from_dict({**MULTI, "arms": MULTI["arms"][:2], "endpoint": None, "scenarios": [
        {"name": "n", "effect": 1.0}], "patients": {"generator": str(gen_dir), "cutoff": {"events": 50}},
        "analyses": [{"name": "p", "method": "procova"}]})
    with pytest.raises(ValueError, match="procova does not apply to a time_to_event endpoint"):
        check_runnable(d)
    assert method_of(d.analyses[0]).needs_covariates
    assert Generator  # the generator itself is never loaded for this check

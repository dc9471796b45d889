"""Conjugate Bayesian borrowing through the engine: the Monte Carlo path agrees with the
exact (RBesT oc2S-style) operating characteristics within 3 Monte Carlo standard errors,
on the RBesT ankylosing-spondylitis design (MAP prior from 8 placebo studies, 24
treated vs 6 controls, success Pr(theta_t - theta_c > 0) > 0.95)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from insilico.common.errors import SpecError
from insilico.common.resources import REFERENCE, data_file
from insilico.trials import borrowing as bw
from insilico.trials.design import TrialDesign
from insilico.trials.engine import run
from insilico.trials.oc import operating_characteristics

REF = json.loads(data_file(REFERENCE, "rbest_AS.json").read_text())
MAP = REF["map_prior_mixture"]["components_w_a_b"]
R = 20_000
TREAT = {"family": "beta_mixture", "components": [[1.0, 0.5, 1.0]]}


def as_design(**change) -> TrialDesign:
    base = {"seed": 3, "replicates": R, "chunk_size": 5000,
            "arms": [{"name": "control", "allocation": 6}, {"name": "treatment", "allocation": 24}],
            "endpoint": {"family": "binary", "control_rate": 0.2555}, "sample_size": {"total": 30},
            "scenarios": [{"name": "null", "effect": 0.0}, {"name": "plus", "effect": 0.3}],
            "analyses": [{"name": "map", "method": "bayesian", "prior": {"family": "beta_mixture", "components": MAP},
                          "treatment_prior": TREAT},
                         {"name": "robust", "method": "robust_map", "robust_weight": 0.2,
                          "prior": {"family": "beta_mixture", "components": MAP}, "treatment_prior": TREAT}],
            "decision": {"threshold": 0.95}}
    return TrialDesign.from_dict({**base, **change})


@pytest.fixture(scope="module")
def oc():
    return operating_characteristics(run(as_design(), executor="serial"))


def _exact(robust: bool):
    prior_c = bw.BetaMixture.from_components(np.asarray(MAP))
    if robust:
        prior_c = prior_c.robustify(0.2)
    return bw.oc2s_binary(bw.BetaMixture(1.0, 0.5, 1.0), prior_c, 24, 6, 0.95)


@pytest.mark.parametrize(("analysis", "robust"), [("map", False), ("robust", True)])
def test_monte_carlo_agrees_with_exact(oc, analysis, robust):
    exact = _exact(robust)
    for scenario, theta_t in (("null", 0.2555), ("plus", 0.5555)):
        p = float(exact(theta_t, 0.2555))
        sim = float(oc.rejection_rate.sel(scenario=scenario, analysis=analysis))
        assert abs(sim - p) <= 3 * np.sqrt(p * (1 - p) / R), (analysis, scenario, sim, p)


def test_exact_type_one_error_is_rbests(oc):
    # the exact path reproduces RBesT's published values (rounded to 4 decimals there)
    ref = REF["type_I_error"]["at_theta_0_2555"]
    assert float(_exact(False)(0.2555, 0.2555)) == pytest.approx(ref["map"], abs=1e-4)
    assert float(_exact(True)(0.2555, 0.2555)) == pytest.approx(ref["robust_map"], abs=1e-4)


def test_prior_ess_reported(oc):
    ess = REF["effective_sample_size"]["elir"], REF["robust_prior"]["ess_elir"]
    assert float(oc.prior_ess.sel(scenario="null", analysis="map")) == pytest.approx(ess[0], abs=1e-3)
    assert float(oc.prior_ess.sel(scenario="null", analysis="robust")) == pytest.approx(ess[1], abs=1e-3)


def test_calibrated_threshold_matches_its_target():
    """Calibrating to 2.5% on the null scenario: the threshold's own MCSE bounds its
    error, and the null rejection rate it gives is at most 2.5%."""
    d = as_design(decision={"calibrate_to_alpha": 0.025})
    res = run(d, executor="serial")
    oc = operating_characteristics(res)
    for a in ("map", "robust"):
        assert float(oc.rejection_rate.sel(scenario="null", analysis=a)) <= 0.025
        assert float(res.threshold.sel(analysis=a)) > 0.5 and float(res.threshold_mcse.sel(analysis=a)) < 0.05
    assert res.attrs["calibrated_on"] == "null"


def test_power_prior_normal_matches_closed_form():
    """A normal power prior (a0 = 0.5 of 100 historical patients) is a known-sd conjugate
    analysis: Pr(delta > 0) > 0.975 has a closed-form rejection rate."""
    from scipy import stats

    d = TrialDesign.from_dict({
        "seed": 4, "replicates": R, "chunk_size": 5000,
        "arms": [{"name": "control", "allocation": 1}, {"name": "treatment", "allocation": 1}],
        "endpoint": {"family": "normal", "sd": 1.0}, "sample_size": {"total": 100},
        "scenarios": [{"name": "null", "effect": 0.0}, {"name": "drift", "effect": 0.0, "control_shift": 0.3}],
        "analyses": [{"name": "pp", "method": "power_prior", "a0": 0.5, "historical": {"n": 100, "mean": 0.0}}]})
    oc = operating_characteristics(run(d, executor="serial")).sel(analysis="pp")
    E, n = 50.0, 50.0
    # treatment: vague N(0, 100^2) prior ~ flat; control: precision (E + n); drift d moves the
    # control posterior mean by d n / (n + E) and the treatment mean by d
    v_post = 1 / n + 1 / (n + E)
    v_true = 1 / n + n / (n + E) ** 2
    z = stats.norm.ppf(0.975)
    for sc, shift in (("null", 0.0), ("drift", 0.3 * E / (n + E))):
        p = float(stats.norm.sf((z * np.sqrt(v_post) - shift) / np.sqrt(v_true)))
        sim = float(oc.rejection_rate.sel(scenario=sc))
        assert abs(sim - p) <= 3 * np.sqrt(p * (1 - p) / R) + 2e-4, (sc, sim, p)  # 2e-4: the vague prior
    assert float(oc.prior_ess.sel(scenario="null")) == pytest.approx(50.0)


def test_gamma_prior_for_counts_runs_and_borrows():
    d = TrialDesign.from_dict({
        "seed": 5, "replicates": 4000, "chunk_size": 2000,
        "arms": [{"name": "control", "allocation": 1}, {"name": "treatment", "allocation": 1}],
        "endpoint": {"family": "count", "control_rate": 1.0}, "sample_size": {"total": 60},
        "scenarios": [{"name": "null", "effect": 1.0}],
        "analyses": [{"name": "g", "method": "bayesian",
                      "prior": {"family": "gamma_mixture", "components": [[1.0, 30.0, 30.0]]}}]})
    res = run(d, executor="serial")
    assert float(res.prior_ess.isel(analysis=0).mean()) == pytest.approx(30.0, rel=0.05)  # Gamma(a, b): ESS ~ b
    assert np.isfinite(res.posterior_prob.values).all()


def test_power_prior_for_counts_is_the_gamma_update_with_a0_events():
    """Power prior on a Poisson rate: L^a0 is a0·y_h events over a0·E_h exposure, so the prior is
    Gamma(0.001 + a0·y_h, 0.001 + a0·E_h) with ESS a0·E_h; on the same simulated data the
    engine's `power_prior` equals `bayesian` with that gamma written out, replicate by replicate."""
    prior = bw.power_prior_count(84.0, 120.0, 0.5)
    assert prior.shapes.ravel() == pytest.approx([42.001]) and prior.rates.ravel() == pytest.approx([60.001])
    assert float(bw.ess(prior, "elir")) == pytest.approx(60.001, rel=1e-9)  # Gamma(a, b): ELIR ESS = b
    hist = {"n": 120.0, "events": 84.0}
    d = TrialDesign.from_dict({
        "seed": 9, "replicates": 2000, "chunk_size": 1000,
        "arms": [{"name": "control", "allocation": 1}, {"name": "treatment", "allocation": 1}],
        "endpoint": {"family": "count", "control_rate": 0.7, "exposure": 2.0}, "sample_size": {"total": 80},
        "scenarios": [{"name": "null", "effect": 1.0}, {"name": "benefit", "effect": 0.6}],
        "analyses": [{"name": "pp", "method": "power_prior", "historical": hist, "a0": 0.5},
                     {"name": "written", "method": "bayesian",
                      "prior": {"family": "gamma_mixture", "components": [[1.0, 42.001, 60.001]]}},
                     {"name": "none", "method": "power_prior", "historical": hist, "a0": 0.0}]})
    res = run(d, executor="serial")
    pp, written, none = (res.posterior_prob.sel(analysis=a).values for a in ("pp", "written", "none"))
    np.testing.assert_allclose(pp, written, rtol=1e-12, atol=1e-12)
    assert float(res.prior_ess.sel(analysis="pp").max()) == pytest.approx(60.0)  # a0 · E_h
    power = (res.decision.sel(scenario="benefit") == 1).mean("replicate")
    assert float(power.sel(analysis="pp")) > float(power.sel(analysis="none")) + 0.05  # 60 units borrowed
    assert not np.allclose(pp, none)


@pytest.mark.parametrize(("change", "message"), [
    ({"analyses": [{"name": "m", "method": "power_prior", "a0": 0.5, "historical": {"n": 100.0}}],
      "endpoint": {"family": "count", "control_rate": 1.0}}, "needs historical: {n, events}"),
    ({"analyses": [{"name": "m", "method": "bayesian",
                    "prior": {"family": "beta_mixture", "components": [[-0.2, 1, 1], [1.2, 2, 2]]}}]}, ">= 0"),
    ({"analyses": [{"name": "m", "method": "bayesian",
                    "prior": {"family": "normal_mixture", "components": [[1, 0, 1]]}}]}, "takes a beta_mixture"),
    ({"analyses": [{"name": "m", "method": "robust_map",
                    "prior": {"family": "beta_mixture", "components": [[1, 2, 3]]}}]}, "robust_weight"),
    ({"decision": {"calibrate_to_alpha": 0.025}, "scenarios": [{"name": "x", "effect": 0.2}]}, "null scenario"),
])
def test_bad_bayesian_designs(change, message):
    with pytest.raises(SpecError, match=message):
        as_design(**change)


@pytest.mark.slow
def test_map_prior_derived_from_historical_studies(tmp_path, capsys):
    """`map_from` with RBesT's 8 placebo studies: `insilico simulate` fits the meta-analysis,
    records the derived mixture and its diagnostics, and the MAP prior's ESS lands where
    RBesT's does (37.6; a different but equally valid mixture fit and MCMC draws move it
    by a few patients)."""
    import mlflow
    import yaml

    from insilico.cli import main
    from insilico.stages.simulate import read_results

    hist = REF["historical_placebo_studies"]
    design = {"seed": 3, "replicates": 2000, "chunk_size": 1000,
              "arms": [{"name": "control", "allocation": 6}, {"name": "treatment", "allocation": 24}],
              "endpoint": {"family": "binary", "control_rate": 0.2555}, "sample_size": {"total": 30},
              "scenarios": [{"name": "null", "effect": 0.0}],
              "analyses": [{"name": "map", "method": "bayesian", "treatment_prior": TREAT,
                            "prior": {"family": "beta_mixture",
                                      "map_from": {"n": hist["n"], "responders": hist["r"]}}}],
              "decision": {"threshold": 0.95}}
    path = tmp_path / "design.yaml"
    path.write_text(yaml.safe_dump(design))
    out = tmp_path / "r.nc"
    assert main(["simulate", "--design", str(path), "--out", str(out), "--serial", "--no-progress"]) == 0
    replicates, oc = read_results(out)
    ess = float(oc.prior_ess.sel(scenario="null", analysis="map"))
    assert 30 < ess < 45, ess
    derived = yaml.safe_load(replicates.attrs["design_yaml"])["analyses"][0]["prior"]
    assert derived["components"] and "map_from" not in derived
    run = mlflow.search_runs(experiment_names=["insilico-trials"], order_by=["attributes.start_time DESC"]).iloc[0]
    files = [f.path for f in mlflow.artifacts.list_artifacts(run_id=run["run_id"])]
    assert "map_priors.json" in files


# ---------------------------------------------------------------------- the MCMC path
@pytest.mark.slow
def test_mcmc_sampler_agrees_with_the_conjugate_path_through_the_engine():
    """sampler: mcmc on the RBesT design (robust MAP, 24:6) sees the same simulated trials
    as the conjugate path (its sampler seed is drawn after the patients) and gives the same
    posterior probabilities within MCMC error: 2 chains x 1000 draws give an effective size
    of >= 400 per replicate, so the MCSE of a probability is <= sqrt(0.25 / 400) = 0.025
    and 4 MCSE = 0.1 bounds every one of the 150 replicates; averaged over the replicates
    the errors cancel to <= 0.01. The 50-replicate last chunk is padded to the compiled 100."""
    design = as_design(replicates=150, chunk_size=100, scenarios=[{"name": "plus", "effect": 0.3}],
                       analyses=[{"name": "robust", "method": "robust_map", "robust_weight": 0.2,
                                  "prior": {"family": "beta_mixture", "components": MAP}, "treatment_prior": TREAT}])
    exact = run(design, executor="serial").sel(scenario="plus", analysis="robust")
    mcmc_design = TrialDesign.from_dict({**design.model_dump(mode="json", exclude_none=True), "analyses": [
        {**design.analyses[0].model_dump(mode="json", exclude_none=True), "sampler": "mcmc"}]})
    sampled = run(mcmc_design, executor="serial").sel(scenario="plus", analysis="robust")
    diff = sampled.posterior_prob.values - exact.posterior_prob.values
    assert np.abs(diff).max() < 0.1 and abs(diff.mean()) < 0.01, (np.abs(diff).max(), diff.mean())
    np.testing.assert_array_equal(sampled.n_patients.values, exact.n_patients.values)
    assert np.abs(sampled.estimate.values - exact.estimate.values).max() < 0.1 * exact.std_error.values.max()
    assert np.isfinite(sampled.prior_ess.values).all()  # a conjugate prior keeps its ESS under MCMC


@pytest.mark.slow
def test_a_non_conjugate_logit_normal_prior_runs_through_the_engine():
    """A normal-mixture prior on the control log-odds (not conjugate: MCMC only) wired
    through the engine: probabilities, decisions at the 0.95 threshold, no ELIR ESS. The
    posterior probabilities themselves are checked against quadrature in test_mcmc.py."""
    prior = {"family": "logit_normal_mixture", "components": [[0.8, -1.07, 0.35], [0.2, 0.0, 2.0]]}
    design = as_design(replicates=100, chunk_size=100, scenarios=[{"name": "plus", "effect": 0.3}],
                       analyses=[{"name": "logit", "method": "bayesian", "sampler": "mcmc", "prior": prior,
                                  "treatment_prior": TREAT}])
    res = run(design, executor="serial").sel(scenario="plus", analysis="logit")
    p = res.posterior_prob.values
    assert ((p >= 0) & (p <= 1)).all() and np.isnan(res.prior_ess.values).all()
    np.testing.assert_array_equal(res.decision.values, (p > 0.95).astype(np.int8))
    assert 0.8 < p.mean() < 1.0  # 24 treated at 0.56 vs 6 controls at 0.26, a prior centred at 0.26


def test_a_non_conjugate_prior_needs_the_mcmc_sampler():
    prior = {"family": "logit_normal_mixture", "components": [[1.0, -1.0, 0.5]]}
    with pytest.raises(SpecError, match="not conjugate: set sampler: mcmc"):
        as_design(analyses=[{"name": "x", "method": "bayesian", "prior": prior}])
    with pytest.raises(SpecError, match="robust_map robustifies"):
        as_design(analyses=[{"name": "x", "method": "robust_map", "robust_weight": 0.2, "sampler": "mcmc",
                             "prior": prior}])
    with pytest.raises(SpecError, match="sampler: mcmc applies to Bayesian methods"):
        as_design(analyses=[{"name": "x", "method": "two_proportions", "sampler": "mcmc"}])

"""Simulation report bridge (trials.simreport): two real designs through the engine — the
hybrid-control binary example (conjugate borrowing, a drift scenario) and a reduced PROCOVA
design on a small fitted generator — then the context's numbers against the OC dataset,
closed forms (ELIR of Beta(a, b) = a + b; PROCOVA n_unadjusted · rho^2) and scipy."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import with_sampler
from scipy import stats

from insilico.reports.render import fmt_number
from insilico.simreport import (
    DERIVED,
    classify_scenarios,
    prior_ess_rows,
    simulation_context,
    simulation_figures,
    simulation_report,
)
from insilico.stages.simulate import simulate_design
from insilico.trials.design import TrialDesign
from insilico.trials.engine import run
from insilico.trials.oc import operating_characteristics

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
RHO2 = 0.64  # y = 1 + 0.8 x1 + 0.6 e, x1 ~ N(0, 1): rho^2 = 0.64 / (0.64 + 0.36)


def _hybrid(**decision) -> dict:
    d = yaml.safe_load((EXAMPLES / "design_hybrid_binary.yaml").read_text())
    d["replicates"] = 1000
    if decision:
        d["decision"] = decision
    return d


@pytest.fixture(scope="module")
def hybrid(tmp_path_factory):
    """The hybrid example, 1,000 replicates, through simulate_design (MLflow run) and the report."""
    tmp = tmp_path_factory.mktemp("hybrid")
    design = TrialDesign.from_dict(_hybrid())
    (tmp / "design_hybrid_binary.yaml").write_text(design.to_yaml())
    sim = simulate_design(tmp / "design_hybrid_binary.yaml", tmp / "results.nc", executor="serial")
    paths = simulation_report(tmp / "design_hybrid_binary.yaml", tmp / "results.nc", tmp / "report")
    ctx = yaml.safe_load(paths["context"].read_text())  # JSON is YAML
    return {"design": design, "sim": sim, "paths": paths, "ctx": ctx, "tmp": tmp}


@pytest.fixture(scope="module")
def procova(tmp_path_factory):
    """design_procova.yaml reduced (1,000 replicates, effect 0.5 sd) on a generator fitted to
    400 historical controls with a known prognostic signal (rho^2 = 0.64)."""
    from insilico.virtual_patients.fitting import fit
    from insilico.virtual_patients.spec import GeneratorSpec

    tmp = tmp_path_factory.mktemp("procova")
    rng = np.random.default_rng(11)
    x1 = rng.standard_normal(400)
    df = pd.DataFrame({"x1": x1, "y": 1 + 0.8 * x1 + 0.6 * rng.standard_normal(400)})
    spec = with_sampler(GeneratorSpec.from_dict({"covariates": [{"name": "x1", "type": "continuous"}],
                                                 "outcome": {"family": "normal", "column": "y"}}),
                        draws=200, tune=200, chains=1)  # the posterior only feeds the simulation here
    fit(df, spec, seed=2, progress=False).save(tmp / "gen")
    d = yaml.safe_load((EXAMPLES / "design_procova.yaml").read_text())
    d.update(replicates=1000, chunk_size=500, patients={"generator": "gen"},
             scenarios=[{"name": "null", "effect": 0.0}, {"name": "target", "effect": 0.5}])
    design_path = tmp / "design_procova.yaml"
    design_path.write_text(TrialDesign.from_dict(d).to_yaml())
    simulate_design(design_path, tmp / "results.nc", executor="serial")
    paths = simulation_report(design_path, tmp / "results.nc", tmp / "report")
    return {"paths": paths, "ctx": yaml.safe_load(paths["context"].read_text())}


# ----------------------------------------------------------------------------- scenarios

def test_scenarios_are_classified_null_drift_alternative(hybrid):
    kinds = {s["name"]: (s["kind"], s["true_effect"], s["drift"], s.get("target", False))
             for s in hybrid["ctx"]["scenarios"]}
    assert kinds == {"null": ("null", 0.0, 0.0, False), "drift": ("drift", 0.0, -0.06, False),
                     "target": ("alternative", -0.09, 0.0, True)}
    # ratio endpoints: the null effect is a hazard / rate ratio of 1
    tte = TrialDesign.from_dict({**yaml.safe_load((EXAMPLES / "design_survival.yaml").read_text()), "scenarios": [
        {"name": "null", "effect": 1.0}, {"name": "drift", "effect": 1.0, "control_shift": 0.2},
        {"name": "hr0", "effect": 0.7}, {"name": "hr_drift", "effect": 0.7, "control_shift": 0.2}]})
    assert [s["kind"] for s in classify_scenarios(tte)] == ["null", "drift", "alternative", "alternative"]
    # normal: drift at effect 0; a design prior on the effect (assurance) is an alternative
    means = TrialDesign.from_yaml(EXAMPLES / "design_means.yaml")
    got = {s["name"]: s["kind"] for s in classify_scenarios(means)}
    assert got == {"null": "null", "target": "alternative", "drift": "drift", "assurance": "alternative"}


# ----------------------------------------------------------------------------- OC rows

def test_oc_rows_are_the_oc_dataset_values(hybrid):
    from insilico.stages.simulate import read_results

    _, oc = read_results(hybrid["tmp"] / "results.nc")
    rows = hybrid["ctx"]["oc"]
    assert len(rows) == oc.sizes["scenario"] * oc.sizes["analysis"] == 9
    for r in rows:
        cell = oc.sel(scenario=r["scenario"], analysis=r["analysis"])
        for k in ("true_effect", "rejection_rate", "rejection_rate_mcse", "bias", "bias_mcse", "rmse", "coverage",
                  "mean_width", "expected_n"):
            assert r[k] == pytest.approx(float(cell[k]), rel=1e-12, abs=1e-15), (r["scenario"], r["analysis"], k)
        assert r["n_replicates"] == 1000
    # one hand check: Pr(reject) is the share of replicates deciding success, MCSE sqrt(p(1-p)/R)
    res, _ = read_results(hybrid["tmp"] / "results.nc")
    p = float(res.decision.sel(scenario="drift", analysis="borrowing").mean())
    row = next(r for r in rows if r["scenario"] == "drift" and r["analysis"] == "borrowing")
    assert row["rejection_rate"] == pytest.approx(p) and row["rejection_rate_mcse"] == pytest.approx(
        math.sqrt(p * (1 - p) / 1000))


def test_rendered_html_shows_the_oc_numbers_and_pdf_exists(hybrid):
    paths, ctx = hybrid["paths"], hybrid["ctx"]
    html = paths["html"].read_text()
    body = html.split('id="oc-table"', 1)[1].split("</tbody>", 1)[0].split("<tbody>", 1)[1]
    trs = re.findall(r"<tr.*?</tr>", body, flags=re.S)
    assert len(trs) == len(ctx["oc"])
    for tr, r in zip(trs, ctx["oc"]):  # same order: each row carries its own numbers
        assert f">{r['analysis']}<" in tr
        for k in ("rejection_rate", "rejection_rate_mcse", "rmse", "coverage"):
            assert fmt_number(r[k]) in tr, (r["scenario"], r["analysis"], k)
    assert paths["pdf"].read_bytes()[:5] == b"%PDF-" and paths["pdf"].stat().st_size > 20_000
    assert sorted(p.name for p in paths["figures"].iterdir()) == ["power.png", "type_i_drift.png"]
    # reproducibility: the run found by the results file's SHA-256 tag, the hash of what ran
    rep = ctx["reproducibility"]
    assert rep["run_id"] == hybrid["sim"].run_id and rep["run_id"] in html
    assert rep["spec_sha256"] == hybrid["design"].hash() and (rep["seed"], rep["replicates"]) == (20261123, 1000)
    assert ctx["versions"]["numpy"] == np.__version__
    assert ctx["estimand"]["variable"].endswith(DERIVED) and DERIVED in html
    assert "Pr(δ &lt; 0 | data) &gt; 0.975" in html  # success criterion in words


# ----------------------------------------------------------------------------- figures

def test_drift_figure_only_with_drift(hybrid, tmp_path):
    figs = simulation_figures(hybrid["design"], _quick_oc(hybrid["design"]), tmp_path / "h")
    assert set(figs) == {"power", "type_i_drift"} and all(p.stat().st_size > 10_000 for p in figs.values())
    nodrift = TrialDesign.from_dict({**_hybrid(), "scenarios": [{"name": "null", "effect": 0.0},
                                                                 {"name": "target", "effect": -0.09}]})
    figs = simulation_figures(nodrift, _quick_oc(nodrift), tmp_path / "n")
    assert set(figs) == {"power"} and not (tmp_path / "n" / "type_i_drift.png").exists()


def _quick_oc(design: TrialDesign):
    small = TrialDesign.from_dict({**design.model_dump(mode="json"), "replicates": 200})
    return operating_characteristics(run(small, executor="serial"))


# ----------------------------------------------------------------------------- prior ESS

def test_prior_ess_of_beta_17_83_is_100(hybrid):
    """ELIR of a single Beta(a, b) is a + b (Neuenschwander et al. 2020); the quadrature
    of trials.borrowing reproduces it to ~1e-12, so 1e-6 is a loose bound."""
    rows = {r["analysis"]: r for r in hybrid["ctx"]["prior_ess"]}
    assert set(rows) == {"borrowing", "robust"}  # the frequentist analysis borrows nothing
    assert rows["borrowing"]["ess"] == pytest.approx(100.0, abs=1e-6)
    assert rows["borrowing"]["prior"] == "Beta(17, 83)" and "ELIR" in rows["borrowing"]["method"]
    assert rows["robust"]["prior"] == "0.8 Beta(17, 83) + 0.2 Beta(1, 1)"
    assert 0 < rows["robust"]["ess"] < 100  # the vague component discounts the information
    # without recorded values the ESS is computed from the design's prior: the same 100
    fresh = {r["analysis"]: r for r in prior_ess_rows(hybrid["design"])}
    assert fresh["borrowing"]["ess"] == pytest.approx(100.0, abs=1e-6)
    assert fresh["robust"]["ess"] == pytest.approx(rows["robust"]["ess"], rel=1e-9)
    # borrowing counts the prior ESS as control patients saved
    saved = {s["analysis"]: s for s in hybrid["ctx"]["sample_size"]}
    assert saved["borrowing"]["n"] == 360 and saved["borrowing"]["n_unadjusted"] == pytest.approx(460.0)


# ----------------------------------------------------------------------------- PROCOVA

@pytest.mark.slow
def test_procova_saving_is_n_unadjusted_times_rho_squared(procova):
    (row,) = procova["ctx"]["sample_size"]
    n, n_u, rho2, sigma, delta, power = (row[k] for k in ("n", "n_unadjusted", "rho2", "sigma", "effect", "power"))
    assert (row["analysis"], n, delta) == ("procova", 60, 0.5)
    # rho^2 estimated from the simulated standard errors ~ the generating 0.64: the generator's
    # posterior (400 patients) puts sd ~0.025 on its rho^2, so 0.07 is ~3 sd
    assert rho2 == pytest.approx(RHO2, abs=0.07)
    assert sigma == pytest.approx(1.0, abs=0.1)  # outcome sd 1: se of a 400-patient sd fit ~0.035
    # closed form: saved = n_unadj - n ~ n_unadj rho^2 (n ~ n_unadj (1 - rho^2)); the integer search
    # (n_unadj at most 1 patient above its continuous value) and the t reference with n - 3 vs
    # n_unadj - 2 df (< 1 patient at n = 60) keep them within 2 patients
    assert abs((n_u - n) - n_u * rho2) <= 2
    assert (n_u - n) / n_u == pytest.approx(rho2, abs=2 / n_u)

    # independent check with scipy: n_unadj is the smallest 1:1 total whose pooled t test
    # reaches the PROCOVA power at n = 60 (noncentral t, df n - 2)
    def t_power(total: int) -> float:
        nc = total // 2
        nt = total - nc
        df = total - 2
        return stats.nct.sf(stats.t.ppf(0.975, df), df, delta / (sigma * math.sqrt(1 / nc + 1 / nt)))

    assert t_power(n_u) >= power > t_power(n_u - 1)
    adj = stats.nct.sf(stats.t.ppf(0.975, n - 3), n - 3, delta / (sigma * math.sqrt((1 - rho2) * 4 / n)))
    assert power == pytest.approx(adj, rel=1e-9)
    # the planning power agrees with the simulated PROCOVA power (MCSE ~0.011 at 1,000 replicates)
    sim = next(r for r in procova["ctx"]["oc"] if (r["scenario"], r["analysis"]) == ("target", "procova"))
    assert abs(sim["rejection_rate"] - power) <= 3 * sim["rejection_rate_mcse"] + 0.02
    assert procova["ctx"]["prior_ess"] == [] and procova["paths"]["pdf"].is_file()
    assert sorted(p.name for p in procova["paths"]["figures"].iterdir()) == ["power.png"]  # no drift
    assert fmt_number(sim["rejection_rate"]) in procova["paths"]["html"].read_text()


# ----------------------------------------------------------------------------- thresholds

def test_calibrated_thresholds_are_the_engines():
    design = TrialDesign.from_dict(_hybrid(alpha=0.025, direction="less", calibrate_to_alpha=0.025))
    res = run(design, executor="serial")
    oc = operating_characteristics(res)
    ctx = simulation_context(design, oc, results=res, run_id="abc", name="calibrated")
    rows = {t["analysis"]: t for t in ctx["thresholds"]}
    assert set(rows) == {"borrowing", "robust"}  # the z test has no threshold to calibrate
    for a, t in rows.items():
        assert t["threshold"] == float(res.threshold.sel(analysis=a))
        assert t["threshold_mcse"] == float(res.threshold_mcse.sel(analysis=a))
        assert t["type_i_error"] == float(oc.rejection_rate.sel(scenario="null", analysis=a))
        # calibrated on these replicates: 1,000 x 0.025 = 25 rejections, give or take ties
        assert abs(t["type_i_error"] - 0.025) <= 0.002 and t["target_type_i_error"] == 0.025
    assert "calibrated by simulation to a one-sided type I error of 0.025 on scenario 'null'" in \
        ctx["success_criterion"]
    fixed = TrialDesign.from_dict(_hybrid())
    assert simulation_context(fixed, operating_characteristics(run(fixed, executor="serial")),
                              run_id=None)["thresholds"] == []


# ----------------------------------------------------------------------------- input

def test_estimand_given_is_kept_and_bad_input_is_named(hybrid):
    design, oc = hybrid["design"], _quick_oc(hybrid["design"])
    ctx = simulation_context(design, oc, run_id=None, estimand={"population": "adults undergoing ERCP"})
    assert ctx["estimand"]["population"] == "adults undergoing ERCP"
    assert ctx["estimand"]["summary_measure"] == f"risk difference (treatment vs control) — {DERIVED}"
    with pytest.raises(ValueError, match="estimand.*endpoint"):
        simulation_context(design, oc, run_id=None, estimand={"endpoint": "x"})
    with pytest.raises(ValueError, match="scenarios"):
        simulation_context(design, oc.isel(scenario=[0, 1]), run_id=None)
    with pytest.raises(ValueError, match="oc"):
        simulation_context(design, oc.to_dataframe(), run_id=None)

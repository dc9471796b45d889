"""Tests of the virtual-cohort and simulation-results suites (validation.suites): a
generator-like cohort and a small engine result pass; each kind of corruption fails with
a line naming the column, or the scenario, analysis and replicate, it concerns."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from insilico.validation.contract import ContractResult
from insilico.validation.results_suite import check_results
from insilico.validation.suites import check_cohort, data_ranges, missing_limits
from insilico.virtual_patients.spec import GeneratorSpec

N = 200


def make_spec(**overrides) -> GeneratorSpec:
    """Survival spec with id and study columns; `nodes` (count) has no spec range."""
    data = {
        "covariates": [
            {"name": "age", "type": "continuous", "range": [18, 100]},
            {"name": "sex", "type": "binary", "levels": ["F", "M"]},
            {"name": "stage", "type": "categorical", "levels": ["I", "II", "III"]},
            {"name": "nodes", "type": "count"},
        ],
        "outcome": {"family": "weibull", "time": "time", "event": "status"},
        "id": "pid",
        "study": "site",
    }
    data.update(overrides)
    return GeneratorSpec.from_dict(data)


def make_cohort(n: int = N, seed: int = 3) -> pd.DataFrame:
    """A virtual cohort shaped as `Generator.sample_cohort` returns it (ids V0000001..,
    study "new", levels as in the spec, counts as int64, censored times)."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "pid": [f"V{i:07d}" for i in range(1, n + 1)],
            "site": np.full(n, "new", dtype=object),
            "age": rng.uniform(30, 80, n),
            "sex": np.array(["F", "M"], dtype=object)[rng.integers(0, 2, n)],
            "stage": np.array(["I", "II", "III"], dtype=object)[rng.integers(0, 3, n)],
            "nodes": rng.integers(0, 20, n),
            "time": np.minimum(rng.exponential(30.0, n), 60.0),
            "status": rng.integers(0, 2, n),
        }
    )


TRAINING_RANGES = {"nodes": (0.0, 30.0)}


def only_failure_about(result: ContractResult, label: str) -> str:
    lines = [line for line in result.failures if line.startswith(label)]
    assert len(lines) == 1, result.report()
    return lines[0]


# ------------------------------------------------------------------------ virtual cohort
def test_generator_like_cohort_passes_with_every_rule_evaluated():
    result = check_cohort(make_cohort(), make_spec(), ranges=TRAINING_RANGES)
    assert result.success, result.report()
    assert result.failures == []
    assert result.n_rows == N
    assert result.missingness == {c: 0.0 for c in make_spec().columns}
    assert result.report().startswith("Virtual cohort plausibility passed: 28 expectations on 200 rows.")
    # 1 row count + 8 presence + id/study not-null + id unique (3) + age: missing, numeric,
    # range (3) + sex, stage: missing, levels (2 + 2) + nodes: missing, numeric, integer,
    # training range (4) + time/status not-null, time numeric, time > 0, status in {0, 1} (5)
    assert result.gx_result["statistics"]["evaluated_expectations"] == 28
    record = json.loads(result.to_json())
    assert record["success"] is True and record["title"] == "Virtual cohort plausibility"
    assert record["n_rows"] == N


def test_data_ranges_are_the_observed_min_and_max():
    df = pd.DataFrame({"age": [40.5, 22.0, 71.25], "nodes": [3, 0, 12], "time": [1.0, 9.5, 4.0],
                       "sex": ["F", "M", "F"]})
    assert data_ranges(df, make_spec()) == {"age": (22.0, 71.25), "nodes": (0.0, 12.0), "time": (1.0, 9.5)}


def test_out_of_range_value_fails_naming_the_column():
    cohort = make_cohort()
    cohort.loc[0, "age"] = 130.0
    result = check_cohort(cohort, make_spec())
    assert result.failures == ['covariate "age": values must be between 18 and 100; found 130 (1 row)']


def test_training_range_applies_where_the_spec_has_none_and_the_spec_range_wins():
    cohort = make_cohort()
    cohort.loc[[4, 5], "nodes"] = 45
    line = only_failure_about(check_cohort(cohort, make_spec(), ranges=TRAINING_RANGES), 'covariate "nodes"')
    assert line == 'covariate "nodes": values must be between 0 and 30; found 45 (2 rows)'
    # a `ranges` entry for age would refuse ages > 50, but the spec's 18-100 is what counts
    assert check_cohort(make_cohort(), make_spec(), ranges={"age": (18, 50)}).success


def test_unknown_category_fails_naming_the_column():
    cohort = make_cohort()
    cohort.loc[[1, 2], "stage"] = "IV"
    result = check_cohort(cohort, make_spec())
    assert result.failures == [
        'covariate "stage": values must be one of {"I", "II", "III"} (compared as text); found "IV" (2 rows)'
    ]


def test_negative_count_fails_naming_the_column():
    cohort = make_cohort()
    cohort.loc[7, "nodes"] = -2
    result = check_cohort(cohort, make_spec())
    assert result.failures == ['covariate "nodes": values must be non-negative integers; found -2 (1 row)']


def test_missing_values_where_the_source_had_none_fail():
    cohort = make_cohort()
    cohort.loc[3, "age"] = np.nan
    result = check_cohort(cohort, make_spec(), source_missingness={"age": 0.0, "sex": 0.1})
    # 1 of 200 = 0.5%
    assert result.failures == ['covariate "age": no missing values allowed; found 1 missing of 200 rows (0.5%)']
    assert result.missingness["age"] == pytest.approx(1 / N)


def test_missing_share_limit_is_source_share_plus_three_binomial_se():
    # s = 0.1, n = 100: 0.1 + 3 sqrt(0.1 * 0.9 / 100) = 0.1 + 3 * 0.03 = 0.19 exactly
    assert missing_limits({"age": 0.1}, 100, ["age", "sex"]) == {"age": pytest.approx(0.19), "sex": 0.0}
    cohort = make_cohort(n=100)
    cohort.loc[:18, "age"] = np.nan  # 19 of 100: at the limit
    assert check_cohort(cohort, make_spec(), source_missingness={"age": 0.1}).success
    cohort.loc[19, "age"] = np.nan  # 20 of 100
    line = only_failure_about(check_cohort(cohort, make_spec(), source_missingness={"age": 0.1}), 'covariate "age"')
    assert line == ('covariate "age": at most 19.0% missing values allowed (source 10.0% + 3 binomial SE '
                    'at 100 rows); found 20 missing of 100 rows (20.0%)')


def test_missing_limit_false_alarm_rate_is_the_normal_tail():
    """A cohort made missing at the source rate exceeds the limit with probability close
    to the normal tail P(Z > 3) = 0.00135 (exact binomial tail from scipy; at n = 10000
    the normal approximation is good to a few 1e-4)."""
    n, s = 10_000, 0.1
    limit = missing_limits({"x": s}, n, ["x"])["x"]
    exceed = stats.binom.sf(math.floor(limit * n + 1e-9), n, s)
    assert exceed == pytest.approx(stats.norm.sf(3.0), abs=4e-4)


def test_bernoulli_and_poisson_outcomes_and_survival_values():
    spec = GeneratorSpec.from_dict({"covariates": [{"name": "age", "type": "continuous"}],
                                    "outcome": {"family": "bernoulli", "column": "y"}})
    result = check_cohort(pd.DataFrame({"age": [50.0, 60.0, 70.0], "y": [0, 1, 2]}), spec)
    assert result.failures == [
        'outcome column "y": values must be one of {"0", "1"} (compared as text); found "2" (1 row)'
    ]
    spec = GeneratorSpec.from_dict({"covariates": [{"name": "age", "type": "continuous"}],
                                    "outcome": {"family": "poisson", "column": "events"}})
    result = check_cohort(pd.DataFrame({"age": [50.0, 60.0, 70.0], "events": [0, 2.5, -1]}), spec)
    assert result.failures == ['outcome column "events": values must be non-negative integers; found -1, 2.5 (2 rows)']
    cohort = make_cohort()
    cohort.loc[0, "time"] = 0.0
    cohort.loc[1, "status"] = 2
    assert check_cohort(cohort, make_spec()).failures == [
        'time column "time": values must be > 0; found 0 (1 row)',
        'event column "status": values must be in {0, 1}; found 2 (1 row)',
    ]


def test_absent_column_and_wrong_type_are_named():
    cohort = make_cohort().drop(columns="sex").assign(age="old")
    result = check_cohort(cohort, make_spec())
    line = only_failure_about(result, 'covariate "sex"')
    assert line == 'covariate "sex": column must be present; missing from the data'
    assert "values must be numeric" in only_failure_about(result, 'covariate "age"')


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"source_missingness": {"weight": 0.1}}, r"source_missingness: \['weight'\] are not columns"),
        ({"source_missingness": {"age": 1.5}}, r"source_missingness\['age'\] must be a share"),
        ({"ranges": {"stage": (0, 1)}}, "'stage' is not a numeric column"),
        ({"ranges": {"nodes": (5, 1)}}, r"ranges\['nodes'\] must be finite numbers with min <= max"),
    ],
)
def test_bad_cohort_arguments_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        check_cohort(make_cohort(), make_spec(), **kwargs)


# -------------------------------------------------------------------- simulation results
R = 200


@pytest.fixture(scope="module")
def simulated():
    """200 replicates of a 100-patient normal trial, null and target scenarios, analysed by
    a t test and a (Bayesian) normal power prior: two seconds serially."""
    from insilico.trials.design import TrialDesign
    from insilico.trials.engine import run
    from insilico.trials.oc import operating_characteristics

    design = TrialDesign.from_dict({
        "seed": 11, "replicates": R, "chunk_size": 100,
        "arms": [{"name": "control", "allocation": 1}, {"name": "treatment", "allocation": 1}],
        "endpoint": {"family": "normal", "sd": 1.0}, "sample_size": {"total": 100},
        "scenarios": [{"name": "null", "effect": 0.0}, {"name": "target", "effect": 0.5}],
        "analyses": [{"name": "t", "method": "difference_in_means"},
                     {"name": "pp", "method": "power_prior", "a0": 0.5, "historical": {"n": 100, "mean": 0.0}}],
        "decision": {"alpha": 0.025, "sided": "one"},
    })
    results = run(design, executor="serial")
    return results, operating_characteristics(results)


def rate_mcse(results, scenario: str, analysis: str) -> float:
    """sqrt(p (1 - p) / R) from the decisions themselves."""
    p = results["decision"].sel(scenario=scenario, analysis=analysis).values.mean()
    return math.sqrt(p * (1 - p) / R)


def test_small_engine_result_passes(simulated):
    results, oc = simulated
    result = check_results(results, oc, mcse_targets={"power": 0.05, "type_i_error": 0.02, "bias": 0.05})
    assert result.success, result.report()
    assert result.n_rows == 2 * 2 * R
    assert result.report().startswith("Simulation results integrity passed")
    assert result.missingness["p_value"] == 0.0
    assert result.missingness["posterior_prob"] == 0.5  # NaN for the t test: half the rows
    suites = result.gx_result["suites"]
    # replicate rows: row count, 3 presence, unique key, index range, decision (2), p-value
    # (2), posterior probability, 4 finite-value rules = 15; replicate counts: 1
    assert [s["statistics"]["evaluated_expectations"] for s in suites[:2]] == [15, 1]
    json.loads(result.to_json())  # strict JSON (no NaN literals)


def test_rejection_of_2_names_scenario_analysis_and_replicate(simulated):
    results = simulated[0].copy(deep=True)
    results["decision"].loc[{"scenario": "null", "analysis": "pp", "replicate": 3}] = 2
    result = check_results(results)
    assert result.failures == [
        'replicate results "decision": rejection indicator must be 0 or 1; found 2 (1 row) '
        'at (scenario "null", analysis "pp", replicate 3)'
    ]


def test_nan_and_out_of_range_p_values_fail(simulated):
    results = simulated[0].copy(deep=True)
    results["p_value"].loc[{"scenario": "target", "analysis": "t", "replicate": 7}] = np.nan
    results["p_value"].loc[{"scenario": "null", "analysis": "t", "replicate": 9}] = 1.5
    result = check_results(results)
    # 1 of 800 rows = 0.125% -> "0.1%"
    assert result.failures == [
        'replicate results "p_value": no missing values allowed; found 1 missing of 800 rows (0.1%) '
        'at (scenario "target", analysis "t", replicate 7)',
        'replicate results "p_value": p-values must be in [0, 1]; found 1.5 (1 row) '
        'at (scenario "null", analysis "t", replicate 9)',
    ]


def test_infinite_estimate_fails_but_missing_one_does_not(simulated):
    results = simulated[0].copy(deep=True)
    results["estimate"].loc[{"scenario": "target", "analysis": "pp", "replicate": 0}] = np.inf
    results["estimate"].loc[{"scenario": "target", "analysis": "pp", "replicate": 1}] = np.nan
    result = check_results(results)
    assert result.failures == [
        'replicate results "estimate": values must be finite where the analysis produced one; found inf (1 row) '
        'at (scenario "target", analysis "pp", replicate 0)'
    ]
    assert json.loads(result.to_json())["gx_result"]["success"] is False  # inf made strict-JSON safe


def test_dropped_replicate_fails_per_scenario_and_analysis(simulated):
    results, oc = simulated
    result = check_results(results.drop_sel(replicate=5))
    line = only_failure_about(result, "replicate results: each")
    assert line.startswith("replicate results: each scenario x analysis must hold 200 replicates; "
                           "found 199 (4 rows) at ")
    for scenario in ("null", "target"):
        for analysis in ("t", "pp"):
            assert f'(scenario "{scenario}", analysis "{analysis}"; missing replicate 5)' in line
    assert len(result.failures) == 1
    # asking for more replicates than were run names the absent indices
    line = check_results(results, replicates=203).failures[0]
    assert "must hold 203 replicates; found 200 (4 rows)" in line
    assert "missing replicates 200, 201, 202)" in line


def test_mcse_above_target_names_scenario_and_analysis(simulated):
    results, oc = simulated
    result = check_results(results, oc, mcse_targets={"type_i_error": 0.005, "power": 0.05})
    line = only_failure_about(result, 'OC "type_i_error" MCSE')
    expected = {a: rate_mcse(results, "null", a) for a in ("t", "pp")}
    assert all(v > 0.005 for v in expected.values())  # this seed rejects some null trials in both analyses
    assert line.startswith('OC "type_i_error" MCSE: must be <= 0.005 (target; rejection_rate_mcse in cells '
                           "without an effect); found ")
    for analysis, mcse in expected.items():
        assert f"{mcse:g}" in line
        assert f'(scenario "null", analysis "{analysis}")' in line
    assert "target" not in line.split("found")[1]  # cells with an effect are judged by the power target
    assert len(result.failures) == 1
    # a named OC's own MCSE: the target scenario's t-test power MCSE
    power = rate_mcse(results, "target", "t")
    line = check_results(results, oc.sel(analysis=["t"]), mcse_targets={"rejection_rate": power * 0.99}).failures
    assert line == [f'OC "rejection_rate" MCSE: must be <= {power * 0.99:g} (target); found {power:g} (1 row) '
                    'at (scenario "target", analysis "t")']


def test_oc_rates_mcse_and_replicate_counts_are_checked(simulated):
    results, oc = simulated
    bad = oc.copy(deep=True)
    bad["rejection_rate"].loc[{"scenario": "target", "analysis": "t"}] = 1.2
    bad["bias_mcse"].loc[{"scenario": "null", "analysis": "pp"}] = -0.01
    bad["n_replicates"].loc[{"scenario": "null", "analysis": "t"}] = 150
    assert check_results(results, bad).failures == [
        'OC "rejection_rate": rates must be in [0, 1]; found 1.2 (1 row) at (scenario "target", analysis "t")',
        'OC "bias_mcse": MCSE must be >= 0; found -0.01 (1 row) at (scenario "null", analysis "pp")',
        'OC "n_replicates": must equal 200, the replicates of the results; found 150 (1 row) '
        'at (scenario "null", analysis "t")',
    ]


def test_null_cells_come_from_true_effect_or_null_scenarios(simulated):
    results, oc = simulated
    unknown = oc.copy(deep=True)
    unknown["true_effect"].loc[{"scenario": "target"}] = np.nan
    # the scenario kinds the engine stored decide, whatever the true effect
    assert check_results(results, unknown, mcse_targets={"power": 0.05, "type_i_error": 0.02}).success
    # results without stored kinds (written before they were stored): the true effect decides
    unknown = unknown.drop_vars("scenario_kind")
    with pytest.raises(ValueError, match=r"scenario\(s\) \['target'\].*pass null_scenarios"):
        check_results(results, unknown, mcse_targets={"power": 0.05})
    result = check_results(results, unknown, mcse_targets={"power": 0.05, "type_i_error": 0.02},
                           null_scenarios=["null"])
    assert result.success, result.report()


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda r, oc: check_results(r, oc, mcse_targets={"powr": 0.01}),
         r"no MCSE for 'powr'.*known: \['type_i_error', 'power'"),
        (lambda r, oc: check_results(r, mcse_targets={"power": 0.01}), "need the OC Dataset"),
        (lambda r, oc: check_results(r, oc, mcse_targets={"power": -1}), r"mcse_targets\['power'\] must be a positive"),
        (lambda r, oc: check_results(r.isel(replicate=0)), r"missing dims \['replicate'\]"),
        (lambda r, oc: check_results(r, replicates=0), "replicates must be a positive whole number"),
        (lambda r, oc: check_results(r.to_dataframe()), "results must be an xarray Dataset"),
    ],
)
def test_bad_results_arguments_are_refused(simulated, call, message):
    with pytest.raises(ValueError, match=message):
        call(*simulated)

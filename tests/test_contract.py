"""Tests of the generator data contract (validation.contract) on small synthetic frames."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from insilico.validation.contract import (
    ContractResult,
    DataContractError,
    build_suite,
    check_data,
    enforce,
)
from insilico.virtual_patients.spec import GeneratorSpec

N = 20


def make_spec(**overrides) -> GeneratorSpec:
    """Survival spec over age/sex/stage with a patient id; `overrides` replace top-level keys."""
    data = {
        "covariates": [
            {"name": "age", "type": "continuous", "range": [18, 100]},
            {"name": "sex", "type": "binary", "levels": ["F", "M"]},
            {"name": "stage", "type": "categorical", "levels": ["I", "II", "III"]},
        ],
        "outcome": {"family": "weibull", "time": "time", "event": "status"},
        "id": "pid",
        "max_missing": 0.2,
    }
    data.update(overrides)
    return GeneratorSpec.from_dict(data)


def make_frame() -> pd.DataFrame:
    """A clean frame of N patients that satisfies `make_spec()`."""
    rng = np.random.default_rng(1)
    return pd.DataFrame(
        {
            "pid": np.arange(1, N + 1),
            "age": rng.uniform(30, 80, N).round(1),
            "sex": np.where(np.arange(N) % 2 == 0, "F", "M"),
            "stage": np.array(["I", "II", "III"])[np.arange(N) % 3],
            "time": rng.exponential(24.0, N) + 0.1,
            "status": np.arange(N) % 2,
        }
    )


def only_failure_about(result: ContractResult, label: str) -> str:
    """The single failure line that names `label`; fails the test if there is not exactly one."""
    lines = [line for line in result.failures if line.startswith(label)]
    assert len(lines) == 1, result.report()
    return lines[0]


# ------------------------------------------------------------------------------- passing
def test_clean_frame_passes_and_reports_zero_missingness():
    result = check_data(make_frame(), make_spec())
    assert result.success, result.report()
    assert result.failures == []
    assert result.n_rows == N
    assert result.missingness == {c: 0.0 for c in ["pid", "age", "sex", "stage", "time", "status"]}
    assert result.gx_result["success"] is True
    json.dumps(result.gx_result)  # must be JSON-serialisable as it is
    assert result.report().startswith("Data contract passed")
    assert enforce(make_frame(), make_spec()).success


def test_suite_holds_the_expectations_derived_from_the_spec():
    suite = build_suite(make_spec(), name="my_contract")
    assert suite.name == "my_contract"
    found = {(e.expectation_type, getattr(e, "column", None)) for e in suite.expectations}
    assert ("expect_table_row_count_to_be_between", None) in found
    for column in ["pid", "age", "sex", "stage", "time", "status"]:
        assert ("expect_column_to_exist", column) in found
        assert ("expect_column_values_to_not_be_null", column) in found
    for column in ["age", "time"]:
        assert ("expect_column_values_to_be_in_type_list", column) in found
    assert ("expect_column_values_to_be_unique", "pid") in found
    by_key = {(e.expectation_type, getattr(e, "column", None)): e for e in suite.expectations}
    assert by_key[("expect_column_values_to_not_be_null", "age")].mostly == pytest.approx(0.8)
    assert by_key[("expect_column_values_to_not_be_null", "time")].mostly == 1
    assert sorted(by_key[("expect_column_values_to_be_in_set", "status")].value_set) == [0, 1]
    assert sorted(by_key[("expect_column_values_to_be_in_set", "stage")].value_set) == ["I", "II", "III"]
    age_range = by_key[("expect_column_values_to_be_between", "age")]
    assert (age_range.min_value, age_range.max_value) == (18, 100)


def test_levels_are_compared_by_string_form():
    spec = make_spec(
        covariates=[
            {"name": "age", "type": "continuous"},
            {"name": "sex", "type": "binary", "levels": [0, 1]},
            {"name": "stage", "type": "categorical", "levels": [1, 2, 3]},
        ]
    )
    df = make_frame().assign(
        sex=np.arange(N) % 2 * 1.0,  # 0.0/1.0 floats match levels 0/1
        stage=pd.Series(["1", 2, 3.0, 2] * 5, dtype=object),  # mixed text and numbers
    )
    result = check_data(df, spec)
    assert result.success, result.report()


def test_missingness_below_max_missing_passes_and_is_reported():
    df = make_frame()
    df.loc[:2, "age"] = np.nan  # 3 of 20 = 15% <= 20%
    result = check_data(df, make_spec())
    assert result.success, result.report()
    assert result.missingness["age"] == pytest.approx(0.15)
    assert result.missingness["sex"] == 0.0
    assert "15.0%" in result.report()


# ------------------------------------------------------------------------------- failing
def test_missing_column_is_named_and_other_failures_still_reported():
    df = make_frame().drop(columns="stage")
    df.loc[:2, "status"] = 2
    result = check_data(df, make_spec())
    assert not result.success
    line = only_failure_about(result, 'covariate "stage"')
    assert line == 'covariate "stage": column must be present; missing from the data'
    assert only_failure_about(result, 'event column "status"').endswith("found 2 (3 rows)")
    assert "stage" not in result.missingness


def test_missing_column_suggests_a_close_name():
    df = make_frame().rename(columns={"age": "Age"})
    line = only_failure_about(check_data(df, make_spec()), 'covariate "age"')
    assert 'missing from the data (did you mean "Age"?)' in line


def test_strings_in_numeric_column_name_column_and_dtype():
    df = make_frame().assign(age=["abc"] * 3 + [50.0] * (N - 3))
    result = check_data(df, make_spec())
    assert not result.success
    line = only_failure_about(result, 'covariate "age"')
    assert "values must be numeric" in line
    assert 'found dtype object with non-numeric values "abc" (3 rows)' in line


def test_non_numeric_dtype_is_reported():
    df = make_frame().assign(time=make_frame()["time"].astype(str))
    line = only_failure_about(check_data(df, make_spec()), 'time column "time"')
    assert "values must be numeric" in line
    assert "dtype object" in line


def test_unknown_category_reports_the_offending_values():
    df = make_frame()
    df.loc[[0, 1], "stage"] = "IV"
    df.loc[2, "stage"] = "4"
    line = only_failure_about(check_data(df, make_spec()), 'covariate "stage"')
    assert 'values must be one of {"I", "II", "III"}' in line
    assert 'found "IV", "4" (3 rows)' in line


def test_negative_time_fails():
    df = make_frame()
    df.loc[0, "time"] = -1.0
    df.loc[1, "time"] = 0.0
    line = only_failure_about(check_data(df, make_spec()), 'time column "time"')
    assert line == 'time column "time": values must be > 0; found -1, 0 (2 rows)'


def test_event_column_containing_2_fails():
    df = make_frame()
    df.loc[:2, "status"] = 2
    result = check_data(df, make_spec())
    assert result.failures == ['event column "status": values must be in {0, 1}; found 2 (3 rows)']


def test_empty_frame_fails_clearly():
    result = check_data(make_frame().iloc[:0], make_spec())
    assert not result.success
    assert result.failures == ["table: must have at least 1 row; found 0 rows"]
    assert result.n_rows == 0
    assert result.missingness["age"] == 0.0


def test_frame_without_columns_fails_on_rows_and_every_column():
    result = check_data(pd.DataFrame(), make_spec())
    assert result.failures[0] == "table: must have at least 1 row; found 0 rows"
    assert len(result.failures) == 1 + 6
    assert all("missing from the data" in line for line in result.failures[1:])


def test_duplicated_ids_fail():
    df = make_frame()
    df.loc[1, "pid"] = 1
    line = only_failure_about(check_data(df, make_spec()), 'id column "pid"')
    assert line == 'id column "pid": values must be unique; found 1 (2 rows)'


def test_too_much_missingness_fails_with_the_share():
    df = make_frame()
    df.loc[:4, "age"] = np.nan  # 5 of 20 = 25% > 20%
    result = check_data(df, make_spec())
    line = only_failure_about(result, 'covariate "age"')
    assert line == 'covariate "age": at most 20% missing values allowed; found 5 missing of 20 rows (25.0%)'
    assert result.missingness["age"] == pytest.approx(0.25)


def test_outcome_columns_allow_no_missing_values():
    df = make_frame()
    df["status"] = df["status"].astype(float)
    df.loc[0, "status"] = np.nan
    line = only_failure_about(check_data(df, make_spec()), 'event column "status"')
    assert line == 'event column "status": no missing values allowed; found 1 missing of 20 rows (5.0%)'


def test_range_violation_fails():
    df = make_frame()
    df.loc[0, "age"] = 130.0
    line = only_failure_about(check_data(df, make_spec()), 'covariate "age"')
    assert line == 'covariate "age": values must be between 18 and 100; found 130 (1 row)'


def test_binary_without_levels_takes_at_most_two_values():
    spec = make_spec(covariates=[{"name": "sex", "type": "binary"}])
    df = make_frame()
    df.loc[0, "sex"] = "X"
    line = only_failure_about(check_data(df, spec), 'covariate "sex"')
    assert "at most 2 distinct values; found 3 distinct values" in line


def test_count_covariate_and_poisson_outcome_must_be_non_negative_integers():
    spec = GeneratorSpec.from_dict(
        {
            "covariates": [{"name": "nodes", "type": "count"}],
            "outcome": {"family": "poisson", "column": "events"},
        }
    )
    df = pd.DataFrame({"nodes": [0, 1, -2, 3], "events": [0.0, 2.5, 1.0, 4.0]})
    result = check_data(df, spec)
    assert result.failures == [
        'covariate "nodes": values must be non-negative integers; found -2 (1 row)',
        'outcome column "events": values must be non-negative integers; found 2.5 (1 row)',
    ]


def test_bernoulli_outcome_defaults_to_0_1():
    spec = GeneratorSpec.from_dict(
        {
            "covariates": [{"name": "age", "type": "continuous"}],
            "outcome": {"family": "bernoulli", "column": "y"},
        }
    )
    result = check_data(pd.DataFrame({"age": [50.0, 60.0, 70.0], "y": [0, 1, 2]}), spec)
    assert result.failures == [
        'outcome column "y": values must be one of {"0", "1"} (compared as text); found "2" (1 row)'
    ]


def test_enforce_raises_with_the_result():
    df = make_frame()
    df.loc[:2, "status"] = 2
    with pytest.raises(DataContractError) as caught:
        enforce(df, make_spec())
    assert caught.value.result.failures == [
        'event column "status": values must be in {0, 1}; found 2 (3 rows)'
    ]
    assert 'event column "status"' in str(caught.value)


def test_report_lists_every_failure_and_the_missingness():
    df = make_frame().drop(columns="sex")
    df.loc[:5, "age"] = np.nan
    df.loc[0, "time"] = -3.0
    result = check_data(df, make_spec())
    text = result.report()
    assert len(result.failures) == 3
    for line in result.failures:
        assert line in text
    assert "Missing values per column:" in text
    assert "30.0%" in text


def test_odd_frames_do_not_crash_gx():
    """All-NaN, all-None, bool, categorical and nullable-integer columns, and a MultiIndex."""
    df = pd.DataFrame(
        {
            "pid": pd.array([1, 2, 3], dtype="Int64"),
            "age": [np.nan] * 3,
            "sex": [None] * 3,
            "stage": pd.Categorical(["I", "II", None]),
            "time": [True, False, True],
            "status": pd.array([0, 1, None], dtype="Int64"),
        },
        index=pd.MultiIndex.from_tuples([(1, 1), (1, 2), (2, 1)]),
    )
    result = check_data(df, make_spec())
    assert not result.success
    assert {line.split(":")[0] for line in result.failures} == {
        'covariate "age"',
        'covariate "sex"',
        'covariate "stage"',
        'time column "time"',
        'event column "status"',
    }
    assert only_failure_about(result, 'time column "time"').endswith("found dtype bool")
    assert result.missingness["age"] == 1.0
    json.dumps(result.gx_result)

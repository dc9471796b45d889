"""Data contract for generator fitting, checked with Great Expectations 1.x.

A generator spec says which columns a fit reads and what each must look like. This module
turns that into a GX ``ExpectationSuite`` and runs it on a pandas frame through an
ephemeral Data Context, so a bad file is refused with one readable line per broken rule
before any MCMC time is spent on it.

Great Expectations is imported inside functions: its import takes seconds and most
commands (spec checks, ``--help``) never need it.
"""

from __future__ import annotations

import difflib
import json
import logging
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from insilico.virtual_patients.encoding import level_key
from insilico.virtual_patients.spec import Covariate, CovariateType, GeneratorSpec, Outcome, OutcomeFamily

if TYPE_CHECKING:
    from great_expectations.core import ExpectationSuite
    from great_expectations.expectations import Expectation

__all__ = ["ContractResult", "DataContractError", "build_suite", "check_data", "enforce"]

# dtype names accepted as numeric by expect_column_values_to_be_in_type_list. GX resolves
# numpy names with np.dtype(), pandas nullable dtypes by class name (so "Int64Dtype", not
# "Int64"), and "int"/"float" also match Python numbers inside an object column.
_NUMERIC_TYPES = (
    [f"int{bits}" for bits in (8, 16, 32, 64)]
    + [f"uint{bits}" for bits in (8, 16, 32, 64)]
    + ["float16", "float32", "float64"]
    + [f"Int{bits}Dtype" for bits in (8, 16, 32, 64)]
    + [f"UInt{bits}Dtype" for bits in (8, 16, 32, 64)]
    + ["Float32Dtype", "Float64Dtype", "int", "float"]
)

# GX's pandas regex metric matches column.astype(str), so 3 -> "3" and 3.0 -> "3.0" pass
# while -1, 2.5 and 1e+20 do not. The group is non-capturing because pandas warns about
# capturing groups in str.contains (and the test suite turns warnings into errors).
_NON_NEGATIVE_INTEGER = r"^\d+(?:\.0*)?$"

# How many offending values a failure line shows.
_SHOW_VALUES = 8

# What an expectation needs from the frame before GX can run it without erroring.
_NEEDS_NOTHING, _NEEDS_COLUMN, _NEEDS_NUMERIC = None, "column", "numeric"


class DataContractError(Exception):
    """Raised when data fail their contract; ``.result`` is the `ContractResult`."""

    def __init__(self, result: ContractResult):
        super().__init__(result.report())
        self.result = result


@dataclass(frozen=True)
class ContractResult:
    """Outcome of checking one data frame against the contract of a generator spec.

    Attributes
    ----------
    success : bool
        True when every expectation passed.
    failures : list of str
        One readable line per failed expectation: column, rule, what was found.
    missingness : dict of str to float
        Share of missing values per spec column present in the frame (0.0 for an empty
        frame), reported on success too. Absent columns are listed in `failures` instead.
    n_rows : int
        Rows in the checked frame.
    gx_result : dict
        The GX suite validation result as a JSON-serialisable dict.
    title : str
        What was checked, as the report's first words (other suites reuse this type).
    """

    success: bool
    failures: list[str]
    missingness: dict[str, float]
    n_rows: int
    gx_result: dict
    title: str = "Data contract"

    def to_dict(self) -> dict:
        """The result as plain data for an evidence artifact.

        Non-finite numbers (an offending ``inf`` quoted by GX, say) become the strings
        ``"nan"``, ``"inf"`` and ``"-inf"``, so that `to_json` is strict JSON.
        """
        return _finite_json(
            {
                "title": self.title,
                "success": self.success,
                "n_rows": self.n_rows,
                "failures": list(self.failures),
                "missingness": dict(self.missingness),
                "gx_result": self.gx_result,
            }
        )

    def to_json(self, indent: int | None = 2) -> str:
        """`to_dict` as strict JSON text (no NaN or Infinity literals)."""
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False, default=_json_default)

    def report(self) -> str:
        """Return a multi-line summary listing every failure and the missingness.

        Returns
        -------
        str
            Human-readable text for logs and the command line.
        """
        stats = self.gx_result.get("statistics", {})
        total = stats.get("evaluated_expectations", 0)
        if self.success:
            head = f"{self.title} passed: {total} expectations on {_rows(self.n_rows)}."
        else:
            head = (
                f"{self.title} FAILED on {_rows(self.n_rows)}: {len(self.failures)} problem(s); "
                f"{stats.get('unsuccessful_expectations', 0)} of {total} expectations failed."
            )
        lines = [head, *(f"  - {failure}" for failure in self.failures)]
        if self.missingness:
            width = max(len(name) for name in self.missingness)
            lines.append("Missing values per column:")
            lines += [f"  {name:<{width}}  {share:6.1%}" for name, share in self.missingness.items()]
        return "\n".join(lines)


def _finite_json(value: Any) -> Any:
    """`value` with every non-finite float replaced by its text and containers copied."""
    if isinstance(value, dict):
        return {str(k): _finite_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite_json(v) for v in value]
    if isinstance(value, float | np.floating):
        return float(value) if np.isfinite(value) else str(float(value))
    if isinstance(value, np.generic):
        return value.item()
    return value


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


# ---------------------------------------------------------------------------- public API
def build_suite(spec: GeneratorSpec, name: str = "generator_data_contract") -> ExpectationSuite:
    """Build the GX expectation suite that data for `spec` must satisfy.

    Parameters
    ----------
    spec : GeneratorSpec
        The generator spec; its covariates, outcome, id and study columns are checked.
    name : str, optional
        Name of the suite.

    Returns
    -------
    great_expectations.core.ExpectationSuite
        A suite not yet bound to any Data Context. Each expectation's ``meta["contract"]``
        holds the readable label and rule used in failure messages.
    """
    gx = _import_gx()
    return gx.ExpectationSuite(name=name, expectations=_expectations(spec))


def check_data(df: pd.DataFrame, spec: GeneratorSpec) -> ContractResult:
    """Check a frame against the data contract of `spec`.

    Expectations on columns absent from the frame are skipped (GX would error on them)
    and so are value checks that need numbers on a column that is not numeric; the
    missing column or wrong dtype is itself reported. Every other failure is reported.

    Parameters
    ----------
    df : pandas.DataFrame
        Patient-level data, one row per patient.
    spec : GeneratorSpec
        The generator spec the data are meant for.

    Returns
    -------
    ContractResult
        Never raises for bad data; ``success`` is False when any expectation failed.
    """
    frame, duplicated = _prepare(df, spec)
    expectations = [e for e in _expectations(spec) if _applicable(e, frame)]
    gx_result = _run_suite(frame, expectations)
    labels = _labels(spec)
    failures = [f"{labels[name]}: column appears more than once in the data" for name in duplicated]
    # Spelling hints for a missing column only point at columns the spec does not use.
    unused = [str(c) for c in df.columns if c not in spec.columns]
    failures += _failures(gx_result, frame, unused)
    return ContractResult(
        success=not failures,
        failures=failures,
        missingness=_missingness(df, spec),
        n_rows=len(df),
        gx_result=gx_result,
    )


def enforce(df: pd.DataFrame, spec: GeneratorSpec) -> ContractResult:
    """Check a frame against the contract of `spec` and raise if it fails.

    Parameters
    ----------
    df : pandas.DataFrame
        Patient-level data.
    spec : GeneratorSpec
        The generator spec the data are meant for.

    Returns
    -------
    ContractResult
        The (successful) result, for its missingness and GX record.

    Raises
    ------
    DataContractError
        If any expectation failed; its message is `ContractResult.report`.
    """
    result = check_data(df, spec)
    if not result.success:
        raise DataContractError(result)
    return result


# ------------------------------------------------------------------ suite construction
def _expectations(spec: GeneratorSpec) -> list[Expectation]:
    """All expectations of the contract, in reporting order."""
    labels = _labels(spec)
    missing = {name: _not_null(name, label) for name, label in labels.items()}
    for covariate in spec.covariates:
        missing[covariate.name] = _at_most_missing(
            covariate.name,
            labels[covariate.name],
            spec.max_missing,
            f"at most {spec.max_missing * 100:g}% missing values allowed",
        )
    return _spec_expectations(spec, labels, missing, _spec_bounds(spec))


def _spec_expectations(
    spec: GeneratorSpec,
    labels: dict[str, str],
    missing: dict[str, Expectation],
    bounds: dict[str, tuple[float, float]],
) -> list[Expectation]:
    """Presence, missingness, type, level and range expectations of every spec column.

    `missing` holds the missingness expectation of each column and `bounds` the range of
    each numeric column that has one (the contract and the virtual-cohort suite differ
    only in these two); everything else follows from the spec.
    """
    gxe = _import_gx().expectations
    found = [
        gxe.ExpectTableRowCountToBeBetween(
            min_value=1, meta=_meta("table", "must have at least 1 row", _NEEDS_NOTHING)
        )
    ]
    found += [
        gxe.ExpectColumnToExist(column=name, meta=_meta(label, "column must be present", _NEEDS_NOTHING))
        for name, label in labels.items()
    ]
    for key in (spec.id, spec.study):
        if key is not None:
            found.append(missing[key])
    if spec.id is not None:
        found.append(
            gxe.ExpectColumnValuesToBeUnique(
                column=spec.id, meta=_meta(labels[spec.id], "values must be unique", _NEEDS_COLUMN)
            )
        )
    for covariate in spec.covariates:
        found.append(missing[covariate.name])
        found += _covariate_expectations(covariate, labels[covariate.name], bounds.get(covariate.name))
    found += [missing[name] for name in spec.outcome.columns]
    found += _outcome_expectations(spec.outcome, labels, bounds)
    return found


def _spec_bounds(spec: GeneratorSpec) -> dict[str, tuple[float, float]]:
    """The spec's plausible range of each numeric column that has one."""
    numeric = (CovariateType.continuous, CovariateType.count)
    bounds = {c.name: c.range for c in spec.covariates if c.range is not None and c.type in numeric}
    outcome = spec.outcome
    if outcome.range is not None and outcome.family is not OutcomeFamily.bernoulli:
        # The plausible range of a survival outcome is that of its follow-up time.
        bounds[outcome.time if outcome.survival else outcome.column] = outcome.range
    return bounds


def _labels(spec: GeneratorSpec) -> dict[str, str]:
    """Role-qualified label of every spec column, e.g. ``'covariate "age"'``."""
    labels: dict[str, str] = {}
    roles = [("id column", spec.id), ("study column", spec.study)]
    roles += [("covariate", c.name) for c in spec.covariates]
    roles += [
        ("outcome column", spec.outcome.column),
        ("time column", spec.outcome.time),
        ("event column", spec.outcome.event),
    ]
    for role, name in roles:
        if name is not None:
            labels.setdefault(name, f'{role} "{name}"')
    return labels


def _at_most_missing(column: str, label: str, max_missing: float, rule: str) -> Expectation:
    """At most a share `max_missing` of the column may be missing."""
    gxe = _import_gx().expectations
    # round() keeps 1 - 0.9 at 0.1 rather than 0.09999999999999998, so that a column
    # sitting exactly at the limit gets the same verdict as the stated percentage.
    return gxe.ExpectColumnValuesToNotBeNull(
        column=column, mostly=round(1.0 - max_missing, 12), meta=_meta(label, rule, _NEEDS_COLUMN)
    )


def _covariate_expectations(
    covariate: Covariate, label: str, bounds: tuple[float, float] | None
) -> list[Expectation]:
    """Type, level and range expectations of one covariate (missingness is separate)."""
    gxe = _import_gx().expectations
    name = covariate.name
    found = []
    kind = covariate.type
    if kind in (CovariateType.continuous, CovariateType.count):
        found.append(_numeric(name, label))
    if kind is CovariateType.count:
        found.append(_non_negative_integer(name, label))
    if kind in (CovariateType.binary, CovariateType.categorical) and covariate.levels is not None:
        found.append(_in_levels(name, label, covariate.levels))
    if kind is CovariateType.binary and covariate.levels is None:
        found.append(
            gxe.ExpectColumnUniqueValueCountToBeBetween(
                column=name,
                max_value=2,
                meta=_meta(label, "a binary covariate takes at most 2 distinct values", _NEEDS_COLUMN),
            )
        )
    if bounds is not None and kind in (CovariateType.continuous, CovariateType.count):
        found.append(_in_range(name, label, bounds))
    return found


def _outcome_expectations(
    outcome: Outcome, labels: dict[str, str], bounds: dict[str, tuple[float, float]]
) -> list[Expectation]:
    """Value expectations of the outcome column(s) (missingness is separate)."""
    found = []
    family, column = outcome.family, outcome.column
    if outcome.survival:
        found += _survival_expectations(outcome.time, outcome.event, labels)
    elif family is OutcomeFamily.bernoulli:
        found.append(_in_levels(column, labels[column], outcome.levels or [0, 1]))
    else:
        found.append(_numeric(column, labels[column]))
    if family is OutcomeFamily.poisson:
        found.append(_non_negative_integer(column, labels[column]))
    ranged = outcome.time if outcome.survival else column
    if ranged in bounds and family is not OutcomeFamily.bernoulli:
        found.append(_in_range(ranged, labels[ranged], bounds[ranged]))
    return found


def _survival_expectations(time: str, event: str, labels: dict[str, str]) -> list[Expectation]:
    """Follow-up time numeric and > 0; event indicator 0/1."""
    gxe = _import_gx().expectations
    positive = gxe.ExpectColumnValuesToBeBetween(
        column=time,
        min_value=0,
        strict_min=True,
        meta=_meta(labels[time], "values must be > 0", _NEEDS_NUMERIC),
    )
    indicator = gxe.ExpectColumnValuesToBeInSet(
        column=event, value_set=[0, 1], meta=_meta(labels[event], "values must be in {0, 1}", _NEEDS_COLUMN)
    )
    return [_numeric(time, labels[time]), positive, indicator]


def _not_null(column: str, label: str) -> Expectation:
    gxe = _import_gx().expectations
    return gxe.ExpectColumnValuesToNotBeNull(
        column=column, meta=_meta(label, "no missing values allowed", _NEEDS_COLUMN)
    )


def _numeric(column: str, label: str) -> Expectation:
    gxe = _import_gx().expectations
    return gxe.ExpectColumnValuesToBeInTypeList(
        column=column, type_list=_NUMERIC_TYPES, meta=_meta(label, "values must be numeric", _NEEDS_COLUMN)
    )


def _non_negative_integer(column: str, label: str) -> Expectation:
    gxe = _import_gx().expectations
    return gxe.ExpectColumnValuesToMatchRegex(
        column=column,
        regex=_NON_NEGATIVE_INTEGER,
        meta=_meta(label, "values must be non-negative integers", _NEEDS_NUMERIC),
    )


def _in_range(column: str, label: str, bounds: tuple[float, float]) -> Expectation:
    gxe = _import_gx().expectations
    low, high = bounds
    return gxe.ExpectColumnValuesToBeBetween(
        column=column,
        min_value=low,
        max_value=high,
        meta=_meta(label, f"values must be between {low:g} and {high:g}", _NEEDS_NUMERIC),
    )


def _in_levels(column: str, label: str, levels: list[Any]) -> Expectation:
    """Set membership by string form: `_prepare` maps the column to the same keys."""
    gxe = _import_gx().expectations
    keys = [level_key(level) for level in levels]
    allowed = "{" + ", ".join(_show(key) for key in keys) + "}"
    return gxe.ExpectColumnValuesToBeInSet(
        column=column,
        value_set=keys,
        meta=_meta(label, f"values must be one of {allowed} (compared as text)", _NEEDS_COLUMN),
    )


def _meta(label: str, rule: str, needs: str | None) -> dict:
    """Expectation meta read back by `_describe` and `_applicable`."""
    return {"contract": {"label": label, "rule": rule, "needs": needs}}


# ---------------------------------------------------------------------- data preparation
def _prepare(df: pd.DataFrame, spec: GeneratorSpec) -> tuple[pd.DataFrame, list[str]]:
    """The frame GX validates: spec columns only, levels as text, numbers as numbers.

    Returns the frame and the spec columns that appear more than once in `df` (only the
    first copy is validated: GX cannot address a duplicated column name).
    """
    present = [name for name in spec.columns if name in df.columns]
    duplicated = [name for name in present if (df.columns == name).sum() > 1]
    frame = df.loc[:, ~df.columns.duplicated()][present].reset_index(drop=True)
    for name in _level_columns(spec):
        if name in frame.columns:
            frame[name] = frame[name].astype(object).map(level_key, na_action="ignore")
    for name in _numeric_columns(spec):
        if name in frame.columns and _all_numbers(frame[name]):
            # Python numbers in an object column (mixed int/float, or None for missing)
            # are numeric data; give GX a numeric dtype so range checks can run.
            frame[name] = pd.to_numeric(frame[name])
    return frame, duplicated


def _level_columns(spec: GeneratorSpec) -> list[str]:
    """Columns compared by string form: binary/categorical covariates, bernoulli outcome."""
    names = [c.name for c in spec.covariates if c.type in (CovariateType.binary, CovariateType.categorical)]
    if spec.outcome.family is OutcomeFamily.bernoulli:
        names.append(spec.outcome.column)
    return names


def _numeric_columns(spec: GeneratorSpec) -> list[str]:
    """Columns whose values must be numbers."""
    names = [c.name for c in spec.covariates if c.type in (CovariateType.continuous, CovariateType.count)]
    if spec.outcome.family in (OutcomeFamily.normal, OutcomeFamily.poisson):
        names.append(spec.outcome.column)
    if spec.outcome.survival:
        names.append(spec.outcome.time)
    return names


def _all_numbers(column: pd.Series) -> bool:
    """True for an object column whose non-missing values are all real numbers."""
    if column.dtype != object:
        return False
    values = column.dropna()
    return all(isinstance(v, (int, float, np.number)) and not isinstance(v, (bool, np.bool_)) for v in values)


def _is_numeric(column: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)


def _applicable(expectation: Expectation, frame: pd.DataFrame) -> bool:
    """Whether GX can evaluate `expectation` on `frame` without erroring."""
    needs = expectation.meta["contract"]["needs"]
    if needs is _NEEDS_NOTHING:
        return True
    column = expectation.column
    if column not in frame.columns:
        return False
    return needs == _NEEDS_COLUMN or _is_numeric(frame[column])


def _missingness(df: pd.DataFrame, spec: GeneratorSpec) -> dict[str, float]:
    """Share of missing values of each spec column present in `df`."""
    shares = {}
    for name in spec.columns:
        if name in df.columns:
            column = df.loc[:, name]
            # A duplicated name selects a frame; its first copy is the one validated.
            column = column.iloc[:, 0] if isinstance(column, pd.DataFrame) else column
            shares[name] = float(column.isna().mean()) if len(column) else 0.0
    return shares


# --------------------------------------------------------------------------- running GX
def _import_gx():
    """Import great_expectations quietly; return the module."""
    # GX logs hundreds of registry/docs lines at INFO/DEBUG, on import and per run. Only
    # touch the level if the application has not set one for GX itself.
    gx_logger = logging.getLogger("great_expectations")
    if gx_logger.level == logging.NOTSET:
        gx_logger.setLevel(logging.WARNING)
    shown = warnings.showwarning
    import great_expectations as gx

    # Several GX modules call logging.captureWarnings(True) on import, rerouting every
    # Python warning of the process into logging. Undo that unless the application did it.
    if warnings.showwarning is not shown:
        logging.captureWarnings(False)

    # This module pins its own logger to INFO on import, bypassing the parent level, and
    # announces a temporary docs directory for every ephemeral context.
    base_logger = logging.getLogger("great_expectations.data_context.types.base")
    if base_logger.level == logging.INFO:
        base_logger.setLevel(logging.WARNING)
    return gx


def _run_suite(
    frame: pd.DataFrame,
    expectations: list[Expectation],
    name: str = "generator_data_contract",
    source: str = "generator_data",
    asset: str = "patients",
) -> dict:
    """Validate `frame` with `expectations` in a fresh ephemeral context; return the result dict.

    `name` names the suite and validation, `source` and `asset` the GX data source and
    asset (together the ``batch_id`` of every result), so that the results of several
    tables kept side by side can be told apart.
    """
    gx = _import_gx()
    from great_expectations.data_context.types.base import ProgressBarsConfig

    # A fresh ephemeral context per call: nothing is written to disk and no state leaks
    # between checks. Note that get_context() also makes it GX's process-wide current one.
    context = gx.get_context(mode="ephemeral")
    # GX draws tqdm "Calculating Metrics" bars on stderr unless told not to.
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    suite = context.suites.add(gx.ExpectationSuite(name=name, expectations=expectations))
    batch = (
        context.data_sources.add_pandas(source)
        .add_dataframe_asset(asset)
        .add_batch_definition_whole_dataframe("whole_frame")
    )
    validation = context.validation_definitions.add(gx.ValidationDefinition(name=name, data=batch, suite=suite))
    # SUMMARY: counts plus up to 20 example values per failure, not every unexpected row.
    result = validation.run(batch_parameters={"dataframe": frame}, result_format=gx.ResultFormat.SUMMARY)
    gx_result = result.to_json_dict()
    # GX returns results in metric-resolution order; restore the suite's order so failures
    # read covariate by covariate.
    order = {str(e.id): i for i, e in enumerate(suite.expectations)}
    gx_result["results"].sort(key=lambda r: order.get(str(r["expectation_config"].get("id")), len(order)))
    return gx_result


# ------------------------------------------------------------------- failure messages
def _failures(gx_result: dict, frame: pd.DataFrame, columns: list[str]) -> list[str]:
    """One readable line per failed expectation, in suite order.

    `frame` is the frame GX validated; `columns` are the input's other column names, for
    spelling hints on missing columns.
    """
    return [_describe(r, frame, columns) for r in gx_result["results"] if not r["success"]]


def _describe(result: dict, frame: pd.DataFrame, columns: list[str]) -> str:
    """``'<label>: <rule>; <what was found>'`` for one failed expectation result."""
    config = result["expectation_config"]
    contract = (config.get("meta") or {}).get("contract", {})
    label = contract.get("label", config["kwargs"].get("column", "table"))
    rule = contract.get("rule", config["type"])
    exception = result.get("exception_info") or {}
    if _raised(exception):
        reason = f"{config['type']} raised: {_exception_message(exception)}"
        return f"{label}: {rule}; could not be checked ({reason})"
    return f"{label}: {rule}; {_found(config, result.get('result') or {}, frame, columns)}"


def _found(config: dict, outcome: dict, frame: pd.DataFrame, columns: list[str]) -> str:
    """What the data showed, worded per expectation type."""
    kind, column = config["type"], config["kwargs"].get("column")
    if kind == "expect_column_to_exist":
        return _absent(column, columns)
    if kind == "expect_table_row_count_to_be_between":
        return f"found {outcome.get('observed_value')} rows"
    if kind == "expect_column_unique_value_count_to_be_between":
        return f"found {outcome.get('observed_value')} distinct values"
    n = outcome.get("unexpected_count", 0)
    if kind == "expect_column_values_to_not_be_null":
        rows = outcome.get("element_count", len(frame))
        return f"found {n} missing of {rows} rows ({n / rows if rows else 0.0:.1%})"
    if kind == "expect_column_values_to_be_in_type_list":
        # GX checks values one by one only for object columns; otherwise it judges the dtype.
        dtype = frame[column].dtype
        if "unexpected_count" not in outcome:
            return f"found dtype {dtype}"
        return f"found dtype {dtype} with non-numeric values {_values(outcome)} ({_rows(n)})"
    return f"found {_values(outcome)} ({_rows(n)})"


def _absent(column: str, columns: list[str]) -> str:
    """Message for a missing column, with a spelling hint when one is close."""
    # Case slips ("Age" for "age") are the commonest; difflib alone ranks them poorly.
    close = [c for c in columns if c.lower() == column.lower()]
    close = close or difflib.get_close_matches(column, columns, n=1)
    hint = f' (did you mean "{close[0]}"?)' if close else ""
    return f"missing from the data{hint}"


def _values(outcome: dict) -> str:
    """The distinct offending values GX sampled, most frequent first."""
    counts = outcome.get("partial_unexpected_counts") or []
    values = [_show(c["value"]) for c in counts[:_SHOW_VALUES]]
    more = ", ..." if len(counts) > _SHOW_VALUES else ""
    return ", ".join(values) + more if values else "unexpected values"


def _rows(n: int) -> str:
    return f"{n} row" if n == 1 else f"{n} rows"


def _show(value: Any) -> str:
    """A value as it should read in a message: text quoted, numbers plain."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _raised(exception_info: dict) -> bool:
    """GX nests exception info per metric when a metric failed to resolve."""
    if "raised_exception" in exception_info:
        return bool(exception_info["raised_exception"])
    return any(isinstance(v, dict) and v.get("raised_exception") for v in exception_info.values())


def _exception_message(exception_info: dict) -> str:
    if exception_info.get("exception_message"):
        return str(exception_info["exception_message"])
    for value in exception_info.values():
        if isinstance(value, dict) and value.get("exception_message"):
            return str(value["exception_message"])
    return "unknown error"

"""The data contract: what a table must look like before anything is fitted on it.

The rules come as a `insilico.common.tables.TableSchema` (a generator spec gives its own
with ``spec.table_schema()``; anything with a ``table_schema()`` method may be passed
instead of the schema). This module turns them into a Great Expectations suite and runs
it on a pandas frame (`insilico.validation.gx`), so a bad file is refused with one
readable line per broken rule before any MCMC time is spent on it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from insilico.common.errors import UserError
from insilico.common.tables import Column, Group, Kind, TableSchema, level_key

from . import gx
from .gx import NEEDS_COLUMN, NEEDS_NOTHING, NEEDS_NUMERIC, ContractResult, meta

if TYPE_CHECKING:
    from great_expectations.core import ExpectationSuite
    from great_expectations.expectations import Expectation

__all__ = ["ContractResult", "DataContractError", "build_suite", "check_data", "enforce", "expectations",
           "prepare", "missingness", "schema_of"]

# dtype names accepted as numeric by expect_column_values_to_be_in_type_list. GX resolves
# numpy names with np.dtype(), pandas nullable dtypes by class name (so "Int64Dtype", not
# "Int64"), and "int"/"float" also match Python numbers inside an object column.
NUMERIC_TYPES = (
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
NON_NEGATIVE_INTEGER = r"^\d+(?:\.0*)?$"

MissingRule = Callable[[Column], "Expectation"]


class DataContractError(UserError):
    """Raised when data fail their contract; ``.result`` is the `ContractResult`."""

    def __init__(self, result: ContractResult):
        super().__init__(result.report())
        self.result = result


def schema_of(rules: Any) -> TableSchema:
    """A `TableSchema`, or the schema of anything with a ``table_schema()`` method (a spec)."""
    if isinstance(rules, TableSchema):
        return rules
    if hasattr(rules, "table_schema"):
        return rules.table_schema()
    raise TypeError(f"expected a TableSchema or a spec with table_schema(), got {type(rules).__name__}")


# ---------------------------------------------------------------------------- public API
def build_suite(rules: TableSchema | Any, name: str = "generator_data_contract") -> ExpectationSuite:
    """The GX expectation suite that data for `rules` must satisfy.

    Returns a suite not yet bound to any Data Context. Each expectation's
    ``meta["contract"]`` holds the readable label and rule used in failure messages.
    """
    return gx.import_gx().ExpectationSuite(name=name, expectations=expectations(schema_of(rules)))


def check_data(df: pd.DataFrame, rules: TableSchema | Any) -> ContractResult:
    """Check a frame against its data contract.

    Expectations on columns absent from the frame are skipped (GX would error on them)
    and so are value checks that need numbers on a column that is not numeric; the
    missing column or wrong dtype is itself reported. Every other failure is reported.

    Parameters
    ----------
    df : pandas.DataFrame
        Patient-level data, one row per patient.
    rules : TableSchema or GeneratorSpec
        The columns' rules (a spec stands for its ``table_schema()``).

    Returns
    -------
    ContractResult
        Never raises for bad data; ``success`` is False when any expectation failed.
    """
    return run_contract(df, schema_of(rules))


def enforce(df: pd.DataFrame, rules: TableSchema | Any) -> ContractResult:
    """`check_data`, raising `DataContractError` (its message the report) on failure."""
    result = check_data(df, rules)
    if not result.success:
        raise DataContractError(result)
    return result


def input_missing(column: Column) -> Expectation:
    """Missingness of an input other than the training data: keys complete, every other
    column at most its ``max_missing`` share missing (those rows are then left out, as the
    training rows are under the spec's ``missing: drop``)."""
    if column.group is Group.key:
        return not_null(column)
    return at_most_missing(column, column.max_missing, f"at most {column.max_missing * 100:g}% missing values allowed")


def enforce_input(df: pd.DataFrame, schema: TableSchema, role: str, name: str) -> ContractResult:
    """An input other than the training data (comparator, target population, replication
    trial, twins source) through the contract derived for its role; raises
    `DataContractError` listing every failed expectation, the input named."""
    slug = "".join(ch if ch.isalnum() else "_" for ch in role)
    result = run_contract(df, schema, missing=input_missing, title=f"Data contract of the {role} ({name})",
                          name=f"{slug}_data_contract", source=slug)
    if not result.success:
        raise DataContractError(result)
    return result


def run_contract(df: pd.DataFrame, schema: TableSchema, *, missing: MissingRule | None = None,
                 title: str = "Data contract", name: str = "generator_data_contract",
                 source: str = "generator_data") -> ContractResult:
    """The contract's expectations (with `missing` building each column's missingness
    rule, if given) run on `df`: the machinery shared with the virtual-cohort suite."""
    frame, duplicated = prepare(df, schema)
    found = [e for e in expectations(schema, missing) if gx.applicable(e, frame)]
    gx_result = gx.run_suite(frame, found, name=name, source=source)
    failures = [f"{c.label}: column appears more than once in the data" for c in schema.columns
                if c.name in duplicated]
    # Spelling hints for a missing column only point at columns the contract does not use.
    unused = [str(c) for c in df.columns if c not in schema.names]
    failures += gx.failures(gx_result, frame, unused)
    return ContractResult(success=not failures, failures=failures, missingness=missingness(df, schema),
                          n_rows=len(df), gx_result=gx_result, title=title)


# ------------------------------------------------------------------ suite construction
def contract_missing(column: Column) -> Expectation:
    """The contract's missingness rule: keys and outcomes complete, covariates at most
    their ``max_missing`` share missing."""
    if column.group is Group.covariate:
        return at_most_missing(column, column.max_missing,
                               f"at most {column.max_missing * 100:g}% missing values allowed")
    return not_null(column)


def expectations(schema: TableSchema, missing: MissingRule | None = None) -> list[Expectation]:
    """Every expectation of the contract, in reporting order: the table has rows; every
    column is present; keys complete (ids unique); each covariate's missingness and
    value rules; the outcome columns complete; their value rules."""
    missing = missing or contract_missing
    gxe = gx.import_gx().expectations
    found = [gxe.ExpectTableRowCountToBeBetween(min_value=1, meta=meta("table", "must have at least 1 row",
                                                                       NEEDS_NOTHING))]
    found += [gxe.ExpectColumnToExist(column=c.name, meta=meta(c.label, "column must be present", NEEDS_NOTHING))
              for c in schema.columns]
    keys = schema.group(Group.key)
    found += [missing(c) for c in keys]
    found += [gxe.ExpectColumnValuesToBeUnique(column=c.name, meta=meta(c.label, "values must be unique",
                                                                        NEEDS_COLUMN)) for c in keys if c.unique]
    for c in schema.group(Group.covariate):
        found += [missing(c), *value_rules(c)]
    outcome = schema.group(Group.outcome)
    found += [missing(c) for c in outcome]
    for c in outcome:
        found += value_rules(c)
    return found


def value_rules(column: Column) -> list[Expectation]:
    """Type, level and range expectations of one column (its missingness is separate)."""
    gxe = gx.import_gx().expectations
    found = []
    if column.numeric:
        found.append(_numeric(column))
    if column.kind is Kind.count:
        found.append(gxe.ExpectColumnValuesToMatchRegex(
            column=column.name, regex=NON_NEGATIVE_INTEGER,
            meta=meta(column.label, "values must be non-negative integers", NEEDS_NUMERIC)))
    if column.kind is Kind.time:
        found.append(gxe.ExpectColumnValuesToBeBetween(
            column=column.name, min_value=0, strict_min=True,
            meta=meta(column.label, "values must be > 0", NEEDS_NUMERIC)))
    if column.kind is Kind.event:
        found.append(gxe.ExpectColumnValuesToBeInSet(
            column=column.name, value_set=[0, 1], meta=meta(column.label, "values must be in {0, 1}", NEEDS_COLUMN)))
    if column.kind is Kind.levels and column.levels is not None:
        allowed = "{" + ", ".join(gx.show(key) for key in column.levels) + "}"
        found.append(gxe.ExpectColumnValuesToBeInSet(
            column=column.name, value_set=list(column.levels),
            meta=meta(column.label, f"values must be one of {allowed} (compared as text)", NEEDS_COLUMN)))
    if column.kind is Kind.levels and column.levels is None and column.max_levels is not None:
        found.append(gxe.ExpectColumnUniqueValueCountToBeBetween(
            column=column.name, max_value=column.max_levels,
            meta=meta(column.label, f"a binary covariate takes at most {column.max_levels} distinct values",
                      NEEDS_COLUMN)))
    if column.numeric and column.range is not None:
        low, high = column.range
        found.append(gxe.ExpectColumnValuesToBeBetween(
            column=column.name, min_value=low, max_value=high,
            meta=meta(column.label, f"values must be between {low:g} and {high:g}", NEEDS_NUMERIC)))
    return found


def at_most_missing(column: Column, share: float, rule: str) -> Expectation:
    """At most a share `share` of the column may be missing."""
    gxe = gx.import_gx().expectations
    # round() keeps 1 - 0.9 at 0.1 rather than 0.09999999999999998, so that a column
    # sitting exactly at the limit gets the same verdict as the stated percentage.
    return gxe.ExpectColumnValuesToNotBeNull(column=column.name, mostly=round(1.0 - share, 12),
                                             meta=meta(column.label, rule, NEEDS_COLUMN))


def not_null(column: Column) -> Expectation:
    gxe = gx.import_gx().expectations
    return gxe.ExpectColumnValuesToNotBeNull(column=column.name,
                                             meta=meta(column.label, "no missing values allowed", NEEDS_COLUMN))


def _numeric(column: Column) -> Expectation:
    gxe = gx.import_gx().expectations
    return gxe.ExpectColumnValuesToBeInTypeList(column=column.name, type_list=NUMERIC_TYPES,
                                                meta=meta(column.label, "values must be numeric", NEEDS_COLUMN))


# ---------------------------------------------------------------------- data preparation
def prepare(df: pd.DataFrame, schema: TableSchema) -> tuple[pd.DataFrame, list[str]]:
    """The frame GX validates: the schema's columns only, levels as text, numbers as numbers.

    Returns the frame and the schema columns that appear more than once in `df` (only
    the first copy is validated: GX cannot address a duplicated column name).
    """
    present = [name for name in schema.names if name in df.columns]
    duplicated = [name for name in present if (df.columns == name).sum() > 1]
    frame = df.loc[:, ~df.columns.duplicated()][present].reset_index(drop=True)
    for name in schema.level_columns:
        if name in frame.columns:
            frame[name] = frame[name].astype(object).map(level_key, na_action="ignore")
    for name in schema.numeric:
        if name in frame.columns and _all_numbers(frame[name]):
            # Python numbers in an object column (mixed int/float, or None for missing)
            # are numeric data; give GX a numeric dtype so range checks can run.
            frame[name] = pd.to_numeric(frame[name])
    return frame, duplicated


def _all_numbers(column: pd.Series) -> bool:
    """True for an object column whose non-missing values are all real numbers."""
    if column.dtype != object:
        return False
    values = column.dropna()
    return all(isinstance(v, (int, float, np.number)) and not isinstance(v, (bool, np.bool_)) for v in values)


def missingness(df: pd.DataFrame, schema: TableSchema) -> dict[str, float]:
    """Share of missing values of each schema column present in `df`."""
    shares = {}
    for name in schema.names:
        if name in df.columns:
            column = df.loc[:, name]
            # A duplicated name selects a frame; its first copy is the one validated.
            column = column.iloc[:, 0] if isinstance(column, pd.DataFrame) else column
            shares[name] = float(column.isna().mean()) if len(column) else 0.0
    return shares

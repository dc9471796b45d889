"""Data-quality suite of a virtual cohort: plausible for the generator that drew it.

The contract's column, type, level and range rules (`insilico.validation.contract`) with
missingness judged against the source data; `insilico.validation.results_suite` checks
simulation results. Both return the `ContractResult` of `insilico.validation.gx`, whose
``to_dict()`` / ``to_json()`` form is the artifact behind an evidence record.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from insilico.common.tables import Column, TableSchema

from . import gx
from .contract import at_most_missing, not_null, run_contract, schema_of
from .gx import (
    ContractResult,
)

# Binomial standard errors a virtual cohort's missing share may exceed the source's by.
MISSING_TAIL_SE = 3.0


# ------------------------------------------------------------------------ virtual cohort
def missing_limits(source_missingness: Mapping[str, float] | None, n: int, columns: Sequence[str]) -> dict[str, float]:
    """Largest missing share each column of an `n`-patient virtual cohort may have.

    A generator draws complete patients, so a cohort may have missing values only where
    the source data had them (for instance when missingness is imposed to mimic the
    source). The rule is ``s + 3 sqrt(s (1 - s) / n)`` (capped at 1) for a column whose
    source share is ``s``: the cohort's share of a column made missing at rate ``s`` is a
    binomial proportion, which exceeds that bound with probability about 0.13% (normal
    approximation). A column the source had no missing values in (``s = 0``, also every
    column not in `source_missingness`) may have none.

    Parameters
    ----------
    source_missingness : mapping of str to float or None
        Missing share per column in the source data, e.g. ``check_data(...).missingness``.
    n : int
        Rows in the cohort.
    columns : sequence of str
        The columns to give a limit to.

    Returns
    -------
    dict of str to float
        The limit per column, in [0, 1].
    """
    shares = dict(source_missingness or {})
    limits = {}
    for name in columns:
        s = float(shares.get(name, 0.0))
        tail = MISSING_TAIL_SE * math.sqrt(s * (1.0 - s) / n) if n > 0 else 0.0
        limits[name] = min(1.0, s + tail)
    return limits


def data_ranges(df: pd.DataFrame, rules: TableSchema | Any) -> dict[str, tuple[float, float]]:
    """Observed [min, max] of each numeric column of `rules` in `df` (e.g. the training data).

    This is what a generator's meta can record for `check_cohort`'s ``ranges`` when the
    spec states no plausible range. Columns that are absent or hold no numbers are left out.
    """
    out = {}
    for name in schema_of(rules).numeric:
        if name in df.columns:
            values = pd.to_numeric(df[name], errors="coerce")
            if values.notna().any():
                out[name] = (float(values.min()), float(values.max()))
    return out


def check_cohort(
    cohort: pd.DataFrame,
    rules: TableSchema | Any,
    source_missingness: dict[str, float] | None = None,
    ranges: dict[str, tuple[float, float]] | None = None,
) -> ContractResult:
    """Check that a virtual cohort is plausible for the generator spec it was drawn from.

    Every spec column must be present with the contract's type, level and value rules:
    continuous and count covariates numeric, counts non-negative integers, binary and
    categorical covariates only from the spec's levels, a bernoulli outcome in its levels
    (0/1 by default), a poisson outcome a non-negative integer, survival time > 0 and
    event in {0, 1}, ids unique. Numeric columns must lie in the spec's range or, where
    the spec has none, in `ranges` (the training data range, see `data_ranges`). Missing
    values are judged by `missing_limits`: none unless the source had them.

    Parameters
    ----------
    cohort : pandas.DataFrame
        The virtual cohort, one row per virtual patient (as `Generator.sample_cohort` gives).
    rules : TableSchema or GeneratorSpec
        The table rules of the generator that drew it (a spec stands for its ``table_schema()``).
    source_missingness : dict of str to float, optional
        Missing share per spec column in the source data: ``check_data(...).missingness``,
        or a generator's ``meta["missing"]["by_column"]`` counts over ``n_input``.
        Omitted columns had none.
    ranges : dict of str to (float, float), optional
        [min, max] of numeric spec columns the spec gives no range for.

    Returns
    -------
    ContractResult
        Titled "Virtual cohort plausibility"; never raises for bad data.

    Raises
    ------
    ValueError
        If an argument names a column the spec does not have, or holds an invalid value.
    """
    if not isinstance(cohort, pd.DataFrame):
        raise ValueError(f"cohort must be a pandas DataFrame, got {type(cohort).__name__}")
    schema = schema_of(rules)
    shares = _source_shares(source_missingness, schema)
    schema = schema.with_limits(ranges=_cohort_ranges(schema, ranges))
    n = len(cohort)
    limits = missing_limits(shares, n, schema.names)

    def missing(column: Column):
        s = shares.get(column.name, 0.0)
        if s == 0.0:
            return not_null(column)
        rule = (f"at most {limits[column.name]:.1%} missing values allowed (source {s:.1%} "
                f"+ {MISSING_TAIL_SE:g} binomial SE at {gx.rows_text(n)})")
        return at_most_missing(column, limits[column.name], rule)

    return run_contract(cohort, schema, missing=missing, title="Virtual cohort plausibility",
                        name="virtual_cohort_plausibility", source="virtual_cohort")


def _source_shares(source_missingness: Mapping[str, float] | None, schema: TableSchema) -> dict[str, float]:
    """Validated source missing shares, keyed by spec column."""
    if source_missingness is None:
        return {}
    if not isinstance(source_missingness, Mapping):
        kind = type(source_missingness).__name__
        raise ValueError(f"source_missingness must be a dict of column -> share, got {kind}")
    unknown = sorted(str(k) for k in source_missingness if k not in schema.names)
    if unknown:
        raise ValueError(f"source_missingness: {unknown} are not columns of the spec (its columns: {schema.names})")
    shares = {}
    for name, share in source_missingness.items():
        if not is_number(share) or not 0.0 <= float(share) <= 1.0:
            raise ValueError(f"source_missingness[{name!r}] must be a share in [0, 1], got {share!r}")
        shares[name] = float(share)
    return shares


def _cohort_ranges(schema: TableSchema, ranges: Mapping[str, Any] | None) -> dict[str, tuple[float, float]]:
    """Validated `ranges` for numeric columns (the schema's own range wins, `with_limits`)."""
    bounds: dict[str, tuple[float, float]] = {}
    if ranges is None:
        return bounds
    if not isinstance(ranges, Mapping):
        raise ValueError(f"ranges must be a dict of column -> (min, max), got {type(ranges).__name__}")
    numeric = schema.numeric
    for name, pair in ranges.items():
        if name not in numeric:
            raise ValueError(f"ranges: {name!r} is not a numeric column of the spec (numeric columns: {numeric})")
        try:
            low, high = pair
        except (TypeError, ValueError):
            raise ValueError(f"ranges[{name!r}] must be a pair (min, max), got {pair!r}") from None
        if not (is_number(low) and is_number(high)) or not float(low) <= float(high):
            raise ValueError(f"ranges[{name!r}] must be finite numbers with min <= max, got {pair!r}")
        bounds[name] = (float(low), float(high))
    return bounds


def is_number(value: Any) -> bool:
    return (
        isinstance(value, int | float | np.integer | np.floating)
        and not isinstance(value, bool | np.bool_)
        and math.isfinite(value)
    )

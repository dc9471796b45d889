"""Great Expectations 1.x machinery shared by every data-quality suite.

A suite is a list of GX expectations, each carrying ``meta["contract"]``: the readable
label of what it checks, the rule in words, and what it needs of the frame before GX
can evaluate it (`applicable`). `run_suite` validates a pandas frame in a fresh
ephemeral Data Context; `failures` turns the result into one readable line per broken
rule; `ContractResult` is what every suite returns.

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

import pandas as pd

from insilico.common.jsonable import finite, lenient

if TYPE_CHECKING:
    from great_expectations.expectations import Expectation

# How many offending values a failure line shows.
SHOW_VALUES = 8

# What an expectation needs from the frame before GX can run it without erroring.
NEEDS_NOTHING, NEEDS_COLUMN, NEEDS_NUMERIC = None, "column", "numeric"


@dataclass(frozen=True)
class ContractResult:
    """Outcome of checking one data frame against a suite (a data contract, a cohort or results suite).

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
        return finite(
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
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False, default=lenient)

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
            head = f"{self.title} passed: {total} expectations on {rows_text(self.n_rows)}."
        else:
            head = (
                f"{self.title} FAILED on {rows_text(self.n_rows)}: {len(self.failures)} problem(s); "
                f"{stats.get('unsuccessful_expectations', 0)} of {total} expectations failed."
            )
        lines = [head, *(f"  - {failure}" for failure in self.failures)]
        if self.missingness:
            width = max(len(name) for name in self.missingness)
            lines.append("Missing values per column:")
            lines += [f"  {name:<{width}}  {share:6.1%}" for name, share in self.missingness.items()]
        return "\n".join(lines)






def meta(label: str, rule: str, needs: str | None) -> dict:
    """Expectation meta read back by `describe` and `applicable`."""
    return {"contract": {"label": label, "rule": rule, "needs": needs}}


def _is_numeric(column: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)


def applicable(expectation: Expectation, frame: pd.DataFrame) -> bool:
    """Whether GX can evaluate `expectation` on `frame` without erroring."""
    needs = expectation.meta["contract"]["needs"]
    if needs is NEEDS_NOTHING:
        return True
    column = expectation.column
    if column not in frame.columns:
        return False
    return needs == NEEDS_COLUMN or _is_numeric(frame[column])


# --------------------------------------------------------------------------- running GX
def import_gx():
    """Import great_expectations; return the module.

    GX's own loggers are left alone (their INFO chatter reaches no handler unless the
    application configures one; the command line keeps them at WARNING).
    """
    shown = warnings.showwarning
    import great_expectations as gx

    # Several GX modules call logging.captureWarnings(True) on import, rerouting every
    # Python warning of the process into logging. Undo that unless the application did it.
    if warnings.showwarning is not shown:
        logging.captureWarnings(False)
    return gx


def run_suite(
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
    gx = import_gx()
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
def failures(gx_result: dict, frame: pd.DataFrame, columns: list[str]) -> list[str]:
    """One readable line per failed expectation, in suite order.

    `frame` is the frame GX validated; `columns` are the input's other column names, for
    spelling hints on missing columns.
    """
    return [describe(r, frame, columns) for r in gx_result["results"] if not r["success"]]


def describe(result: dict, frame: pd.DataFrame, columns: list[str]) -> str:
    """``'<label>: <rule>; <what was found>'`` for one failed expectation result."""
    config = result["expectation_config"]
    contract = (config.get("meta") or {}).get("contract", {})
    label = contract.get("label", config["kwargs"].get("column", "table"))
    rule = contract.get("rule", config["type"])
    exception = result.get("exception_info") or {}
    if raised(exception):
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
        return f"found dtype {dtype} with non-numeric values {_values(outcome)} ({rows_text(n)})"
    return f"found {_values(outcome)} ({rows_text(n)})"


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
    values = [show(c["value"]) for c in counts[:SHOW_VALUES]]
    more = ", ..." if len(counts) > SHOW_VALUES else ""
    return ", ".join(values) + more if values else "unexpected values"


def rows_text(n: int) -> str:
    return f"{n} row" if n == 1 else f"{n} rows"


def show(value: Any) -> str:
    """A value as it should read in a message: text quoted, numbers plain."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def raised(exception_info: dict) -> bool:
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

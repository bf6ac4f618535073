"""Data validation with a Great Expectations 1.x suite derived from the declared schema."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from modelops.data import DatasetSchema
from modelops.errors import DataValidationError

if TYPE_CHECKING:
    import pandas as pd

NUMERIC_TYPES = [
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "float16",
    "float32",
    "float64",
    "Int8",
    "Int16",
    "Int32",
    "Int64",
    "UInt8",
    "UInt16",
    "UInt32",
    "UInt64",
    "Float32",
    "Float64",
]
BOOLEAN_TYPES = ["bool", "boolean"]


FINITE = {"modelops.check": "finite"}  # meta of the expectation that refuses inf/-inf


def build_expectations(schema: DatasetSchema, df: pd.DataFrame | None = None) -> list[Any]:
    """The expectation suite for ``schema``, in the order a person would check things.

    With ``df``, a column that is missing gets only its "column exists" expectation (the
    others would fail with Great Expectations internals instead of saying it is missing), and
    numeric columns also get a finiteness check (``inf`` would only fail later, in training).
    """
    import sys

    import great_expectations as gx

    e = gx.expectations
    target = schema.target
    present = set(map(str, df.columns)) if df is not None else None
    out: list[Any] = [
        e.ExpectTableRowCountToBeBetween(min_value=schema.min_rows),
        e.ExpectColumnToExist(column=target),
    ]
    if present is None or target in present:
        out += [
            e.ExpectColumnValuesToNotBeNull(column=target),
            # Binary with both classes present: exactly two distinct labels.
            e.ExpectColumnUniqueValueCountToBeBetween(column=target, min_value=2, max_value=2),
        ]
    for name, spec in schema.features.items():
        out.append(e.ExpectColumnToExist(column=name))
        if present is not None and name not in present:
            continue
        if (
            df is not None
            and spec.kind == "numeric"
            and df[name].dtype.kind == "f"
            and spec.min is None
            and spec.max is None
        ):
            big = sys.float_info.max
            out.append(
                e.ExpectColumnValuesToBeBetween(
                    column=name, min_value=-big, max_value=big, meta=FINITE
                )
            )
        if spec.kind == "numeric":
            out.append(e.ExpectColumnValuesToBeInTypeList(column=name, type_list=NUMERIC_TYPES))
        elif spec.kind == "boolean" and (df is None or df[name].dtype.kind == "b"):
            out.append(e.ExpectColumnValuesToBeInTypeList(column=name, type_list=BOOLEAN_TYPES))
        elif spec.kind == "boolean":  # True/False with missing values is an object column
            out.append(e.ExpectColumnValuesToBeInSet(column=name, value_set=[True, False]))
        if spec.nullable:
            # Missing values are allowed, a column with no values at all is not.
            out.append(
                e.ExpectColumnProportionOfNonNullValuesToBeBetween(
                    column=name, min_value=1e-12, max_value=None
                )
            )
        else:
            out.append(e.ExpectColumnValuesToNotBeNull(column=name))
        # A range check on a column that is not numeric only fails with GX internals; the type
        # check above already says what is wrong with it.
        is_numeric = df is None or df[name].dtype.kind in "iufb"
        if spec.kind == "numeric" and is_numeric and (spec.min is not None or spec.max is not None):
            out.append(
                e.ExpectColumnValuesToBeBetween(column=name, min_value=spec.min, max_value=spec.max)
            )
        if spec.values is not None:
            out.append(e.ExpectColumnValuesToBeInSet(column=name, value_set=list(spec.values)))
    return out


def _describe(result: dict[str, Any]) -> str:
    """One line a person can act on, for a failed expectation."""
    kind = result["expectation"]
    kw = result["kwargs"]
    col = kw.get("column")
    observed = result.get("observed")
    where = f"column {col!r}: " if col is not None else "table: "
    if result.get("exception"):
        return f"{where}{kind} could not run: {result['exception']}"
    unexpected = result.get("unexpected_count")
    sample = result.get("unexpected_sample")
    messages = {
        "expect_table_row_count_to_be_between": (
            f"has {observed} rows, needs at least {kw.get('min_value')}"
        ),
        "expect_column_to_exist": "is missing from the data",
        "expect_column_values_to_not_be_null": f"{unexpected} missing value(s), none allowed",
        "expect_column_unique_value_count_to_be_between": (
            f"target must be binary with both classes present; found {observed} distinct value(s)"
        ),
        "expect_column_values_to_be_in_type_list": (
            f"values must be {'numeric' if kw.get('type_list') == NUMERIC_TYPES else 'boolean'}"
            f", observed type {observed}"
        ),
        "expect_column_proportion_of_non_null_values_to_be_between": "every value is missing",
        "expect_column_values_to_be_between": (
            f"{unexpected} infinite value(s); replace or drop them"
            if result.get("meta") == FINITE
            else f"{unexpected} value(s) outside [{kw.get('min_value')}, {kw.get('max_value')}], "
            f"e.g. {sample}"
        ),
        "expect_column_values_to_be_in_set": (
            f"{unexpected} value(s) not in {kw.get('value_set')}, e.g. {sample}"
        ),
    }
    return where + messages.get(kind, f"{kind} failed (observed {observed})")


def validate_dataframe(df: pd.DataFrame, schema: DatasetSchema, name: str = "data") -> dict:
    """Run the suite for ``schema`` on ``df``.

    Args:
        df: the table to check.
        schema: its declared schema.
        name: a label for the report.

    Returns:
        The report: ``success``, ``statistics`` and one entry per expectation.

    Raises:
        DataValidationError: one or more expectations failed; the message names each one and
            the report is attached as ``.report``.
    """
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    # GX logs an INFO line per context about a temporary docs directory it never creates.
    logging.getLogger("great_expectations.data_context.types.base").setLevel(logging.WARNING)

    # In memory, no analytics, no progress bars on stderr: said in the context's own config.
    project = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(),
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
    )
    ctx = gx.get_context(mode="ephemeral", project_config=project)
    batch = (
        ctx.data_sources.add_pandas("modelops")
        .add_dataframe_asset(name)
        .add_batch_definition_whole_dataframe("whole")
    )
    # The whole suite in one store write (adding expectations one by one re-serialises the
    # suite into the store each time: ~0.1 s for two dozen expectations).
    suite = ctx.suites.add(
        gx.ExpectationSuite(name=f"{name}-suite", expectations=build_expectations(schema, df))
    )
    definition = ctx.validation_definitions.add(
        gx.ValidationDefinition(name=f"{name}-validation", data=batch, suite=suite)
    )
    outcome = definition.run(batch_parameters={"dataframe": df})

    results = []
    for r in outcome.results:
        config = r.expectation_config
        assert config is not None  # GX fills it for every result of a suite run
        kwargs = {k: v for k, v in config.kwargs.items() if k != "batch_id"}
        info = r.exception_info or {}
        exception = None
        if isinstance(info, dict):
            if info.get("raised_exception"):
                exception = info.get("exception_message")
            else:  # one entry per metric that raised
                for value in info.values():
                    if isinstance(value, dict) and value.get("raised_exception"):
                        exception = value.get("exception_message")
                        break
        partial = r.result.get("partial_unexpected_list") or []
        results.append(
            {
                "expectation": config.type,
                "kwargs": kwargs,
                "success": bool(r.success),
                "observed": _plain(r.result.get("observed_value")),
                "unexpected_count": r.result.get("unexpected_count"),
                "unexpected_sample": [_plain(v) for v in partial[:5]],
                "meta": dict(config.meta or {}) or None,
                "exception": exception,
            }
        )
    order = {id(x): i for i, x in enumerate(results)}
    results.sort(key=lambda x: (x["success"], order[id(x)]))
    failures = [_describe(r) for r in results if not r["success"]]
    report = {
        "name": name,
        "success": bool(outcome.success) and not failures,
        "statistics": {k: _plain(v) for k, v in dict(outcome.statistics).items()},
        "failures": failures,
        "results": results,
    }
    if not report["success"]:
        n = len(failures)
        raise DataValidationError(
            f"Data validation failed for {name!r}: {n} of {len(results)} expectation(s) failed"
            f", first {failures[0]}:\n"
            + "\n".join(f"  - {line}" for line in failures)
            + "\nFix the data (or the declared schema) and run again.",
            failures=failures,
            report=report,
        )
    return report


def _plain(value: Any) -> Any:
    """JSON-friendly scalars (numpy types become Python ones)."""
    if hasattr(value, "item") and callable(value.item):
        try:
            return value.item()
        except (ValueError, TypeError):
            return str(value)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def report_markdown(report: dict[str, Any]) -> str:
    """A validation report as markdown: verdict, failures, then one row per expectation."""
    verdict = "PASSED" if report["success"] else "FAILED"
    stats = report["statistics"]
    lines = [
        f"**Data validation: {verdict}** ({stats.get('successful_expectations')} of "
        f"{stats.get('evaluated_expectations')} expectations met) for `{report['name']}`",
        "",
    ]
    if report["failures"]:
        lines += ["Failed:", *[f"- {f}" for f in report["failures"]], ""]
    lines += ["| expectation | column | result | observed |", "|---|---|---|---|"]
    for r in report["results"]:
        observed = r["observed"] if r["observed"] is not None else r.get("unexpected_count")
        lines.append(
            f"| {r['expectation']} | {r['kwargs'].get('column', '')} | "
            f"{'ok' if r['success'] else '**FAIL**'} | {observed if observed is not None else ''} |"
        )
    return "\n".join(lines)

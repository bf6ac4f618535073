"""The data steps: load a table (a file, or a DataFrame in hand) and validate it.

With a tracking context each step logs into its own child run of the flow's MLflow run; without
one (the Python API with ``enable_mlflow=False``) the same work runs and nothing is logged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from modelops import tracking
from modelops.data import (
    DatasetInfo,
    FeatureSpec,
    dataset_digest,
    describe_dataset,
    load_table,
    resolve_data_uri,
    resolve_schema,
)
from modelops.errors import DataValidationError
from modelops.types import LoadedData
from modelops.validation import validate_dataframe

if TYPE_CHECKING:
    import pandas as pd

FRAME_URI = "memory://dataframe"  # the source recorded for a DataFrame handed to the library


def load_dataset(
    ctx: tracking.TrackingContext | None,
    data_path: str | None,
    target: str,
    features: dict[str, FeatureSpec] | None = None,
    min_rows: int = 50,
    frame: pd.DataFrame | None = None,
) -> LoadedData:
    """Read the CSV/Parquet table (or take ``frame`` as it is) with its schema, and log it as
    an MLflow dataset input when ``ctx`` is given."""
    uri = FRAME_URI if frame is not None else resolve_data_uri(data_path)
    if ctx is None:
        table = load_table(uri) if frame is None else frame
        schema = resolve_schema(table, target, uri, features=features, min_rows=min_rows)
        info = DatasetInfo(
            name=uri.rsplit("/", 1)[-1],
            source=uri,
            digest=dataset_digest(table),
            rows=len(table),
            columns=[str(c) for c in table.columns],
        )
        return LoadedData(frame=table, schema=schema, info=info)
    with tracking.child_run(ctx, "load_dataset") as run_id:
        table = load_table(uri) if frame is None else frame
        schema = resolve_schema(table, target, uri, features=features, min_rows=min_rows)
        # describe_dataset builds the MLflow dataset (and its digest) in one pass over the rows.
        dataset = describe_dataset(table, uri, target)
        info = DatasetInfo(
            name=dataset.name,
            source=uri,
            digest=dataset.digest,
            rows=len(table),
            columns=[str(c) for c in table.columns],
        )
        for run in (run_id, ctx.parent_run_id):
            tracking.log_dataset(ctx, run, dataset, context="training")
        tracking.log_params(
            ctx,
            run_id,
            {"data.source": uri, "data.digest": info.digest, "data.columns": info.columns},
        )
        tracking.log_metrics(ctx, run_id, {"data.rows": info.rows})
        tracking.log_json(ctx, run_id, schema.model_dump(mode="json"), "schema.json")
    return LoadedData(frame=table, schema=schema, info=info)


def validate_dataset(ctx: tracking.TrackingContext | None, data: LoadedData) -> dict[str, Any]:
    """Check the table against a Great Expectations suite built from its schema; with ``ctx``
    the report is kept in MLflow whether it passes or not.

    Raises:
        DataValidationError: an expectation failed (one line per failure).
    """
    if ctx is None:
        return validate_dataframe(data.frame, data.schema, name=data.info.name)
    with tracking.child_run(ctx, "validate_dataset") as run_id:
        try:
            report = validate_dataframe(data.frame, data.schema, name=data.info.name)
        except DataValidationError as exc:
            _record_validation(ctx, run_id, exc.report)
            raise
        _record_validation(ctx, run_id, report)
    return report


def _record_validation(ctx: tracking.TrackingContext, run_id: str, report: dict[str, Any]) -> None:
    stats = report.get("statistics", {})
    tracking.log_json(ctx, run_id, report, "validation/report.json")
    tracking.log_metrics(
        ctx,
        run_id,
        {
            "validation.evaluated": stats.get("evaluated_expectations") or 0,
            "validation.failed": stats.get("unsuccessful_expectations") or 0,
        },
    )
    verdict = "passed" if report.get("success") else "failed"
    for run in (run_id, ctx.parent_run_id):
        tracking.set_tags(ctx, run, {"modelops.validation": verdict})

"""Data tasks: load a table and validate it against its declared schema."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task

from modelops.data import FeatureSpec
from modelops.errors import DataValidationError
from modelops.steps import data as steps
from modelops.tracking import TrackingContext
from modelops.types import LoadedData
from modelops.validation import report_markdown
from tasks.common import IO_TASK, artifact_key, markdown_artifact


@task(name="load_dataset", **IO_TASK)
def load_dataset(
    ctx: TrackingContext,
    data_path: str | None,
    target: str,
    features: dict[str, FeatureSpec] | None = None,
    min_rows: int = 50,
) -> LoadedData:
    """Read the CSV/Parquet table and log it as an MLflow dataset input."""
    data = steps.load_dataset(ctx, data_path, target, features=features, min_rows=min_rows)
    info = data.info
    get_run_logger().info(
        "Loaded %s rows x %s columns from %s (digest %s)",
        info.rows,
        len(info.columns),
        info.source,
        info.digest,
    )
    return data


@task(name="validate_dataset", **IO_TASK)
def validate_dataset(ctx: TrackingContext, data: LoadedData) -> dict[str, Any]:
    """Check the table against a Great Expectations suite built from its schema."""
    try:
        report = steps.validate_dataset(ctx, data)
    except DataValidationError as exc:
        _publish(exc.report)
        raise
    _publish(report)
    get_run_logger().info(
        "Validation passed: %s expectations met",
        report["statistics"].get("successful_expectations"),
    )
    return report


def _publish(report: dict[str, Any]) -> None:
    verdict = "passed" if report.get("success") else "failed"
    markdown_artifact(
        report_markdown(report),
        key=artifact_key("data-validation", report.get("name", "data")),
        description=f"Great Expectations validation: {verdict}",
    )

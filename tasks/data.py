"""Data tasks: load a table and validate it against its declared schema."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from prefect import get_run_logger, task

from modelops import tracking
from modelops.data import (
    DatasetInfo,
    DatasetSchema,
    FeatureSpec,
    describe_dataset,
    load_table,
    resolve_data_uri,
    resolve_schema,
)
from modelops.errors import DataValidationError
from modelops.validation import validate_dataframe
from tasks.common import COMPUTE_TASK, IO_TASK, artifact_key, markdown_artifact

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class LoadedData:
    """A loaded table with its schema and identity; handed between tasks in memory."""

    frame: pd.DataFrame
    schema: DatasetSchema
    info: DatasetInfo


@task(name="load_dataset", **IO_TASK)
def load_dataset(
    ctx: tracking.TrackingContext,
    data_path: str | None,
    target: str,
    features: dict[str, FeatureSpec] | None = None,
    min_rows: int = 50,
) -> LoadedData:
    """Read the CSV/Parquet table and log it as an MLflow dataset input."""
    uri = resolve_data_uri(data_path)
    with tracking.child_run(ctx, "load_dataset") as run_id:
        frame = load_table(uri)
        schema = resolve_schema(frame, target, uri, features=features, min_rows=min_rows)
        dataset = describe_dataset(frame, uri, target)
        info = DatasetInfo(
            name=dataset.name,
            source=uri,
            digest=dataset.digest,
            rows=len(frame),
            columns=[str(c) for c in frame.columns],
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
    get_run_logger().info(
        "Loaded %s rows x %s columns from %s (digest %s)",
        info.rows,
        len(info.columns),
        uri,
        info.digest,
    )
    return LoadedData(frame=frame, schema=schema, info=info)


def _report_markdown(report: dict) -> str:
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


@task(name="validate_dataset", **COMPUTE_TASK)
def validate_dataset(ctx: tracking.TrackingContext, data: LoadedData) -> dict:
    """Check the table against a Great Expectations suite built from its schema."""
    with tracking.child_run(ctx, "validate_dataset") as run_id:
        try:
            report = validate_dataframe(data.frame, data.schema, name=data.info.name)
        except DataValidationError as exc:
            _publish(ctx, run_id, exc.report)
            raise
        _publish(ctx, run_id, report)
    get_run_logger().info(
        "Validation passed: %s expectations met",
        report["statistics"].get("successful_expectations"),
    )
    return report


def _publish(ctx: tracking.TrackingContext, run_id: str, report: dict) -> None:
    """Keep the report in MLflow (artifact, metrics, tag) and as a Prefect artifact."""
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
    markdown_artifact(
        _report_markdown(report),
        key=artifact_key("data-validation", report.get("name", "data")),
        description=f"Great Expectations validation: {verdict}",
    )

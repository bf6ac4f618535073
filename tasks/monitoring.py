"""Monitoring tasks: the check, what a person sees (artifacts), the alert and the retraining."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task

from modelops import monitoring
from modelops.steps import monitoring as steps
from modelops.tracking import TrackingContext
from tasks.common import IO_TASK, artifact_key, markdown_artifact, table_artifact


@task(name="load_watched_version", **IO_TASK)
def load_watched_version(ctx: TrackingContext, model_name: str, version: str) -> steps.Watched:
    """The version to watch, its model and its reference profile."""
    watched = steps.resolve_watched(ctx.client(), model_name, version)
    get_run_logger().info("Watching %s version %s", watched.name, watched.version)
    return watched


@task(name="read_window", **IO_TASK)
def read_window(
    watched: steps.Watched,
    data_path: str | None,
    sample_dir: str | None,
    max_rows: int | None,
    min_rows: int,
) -> Any:
    """The recent inputs, checked: enough rows, every feature column."""
    return steps.read_checked_window(watched, data_path, sample_dir, max_rows, min_rows)


check_drift = task(name="check_drift", **IO_TASK)(steps.check_drift)
check_performance = task(name="check_performance", **IO_TASK)(steps.check_performance)


@task(name="report_check", **IO_TASK)
def report_check(
    ctx: TrackingContext, watched: steps.Watched, window: Any, result: monitoring.CheckResult
) -> None:
    """An MLflow run point per check, a Prefect table per feature, the worst feature's chart."""
    report = steps.report_check(ctx, watched, window, result)
    table_artifact(
        report.table, key=artifact_key(watched.name, "monitoring"), description=report.description
    )
    markdown_artifact(
        report.markdown,
        key=artifact_key(watched.name, "monitoring-summary"),
        description="Monitoring verdict and the worst feature's distribution",
    )
    logger = get_run_logger()
    for line in report.log_lines:
        logger.info(line)


@task(name="raise_alert", **IO_TASK)
def raise_alert(
    ctx: TrackingContext, watched: steps.Watched, result: monitoring.CheckResult, actor: str | None
) -> str | None:
    """On a breach: tag the version, append an audit entry, emit ``modelops.model.degraded``."""
    from prefect.events import emit_event

    steps.mark_degraded(ctx.client(), ctx, watched, result, actor)
    event = emit_event(**steps.degraded_event(ctx, watched, result))
    get_run_logger().warning(
        "%s v%s degraded: %s", watched.name, watched.version, "; ".join(result.breaches)
    )
    return str(event.id) if event else None


@task(name="trigger_retraining", **IO_TASK)
def trigger_retraining(deployment: str, model_name: str) -> str:
    """Start the training deployment (the new version is staged, never promoted from here)."""
    from prefect.deployments import run_deployment

    run = run_deployment(
        name=deployment,
        parameters={"model_name": model_name},
        timeout=0,
        tags=["modelops", "retrain-on-breach"],
    )
    flow_run_id = str(run.id)  # type: ignore[union-attr]  # sync call: a FlowRun, not a coroutine
    get_run_logger().info("Triggered %s: flow run %s", deployment, flow_run_id)
    return flow_run_id

"""Monitoring tasks: the check, what a person sees (artifacts), the alert and the retraining."""

from __future__ import annotations

import base64
import io
from typing import Any

from prefect import get_run_logger, task

from modelops import monitoring
from modelops.evaluation import evaluate_binary
from modelops.steps import monitor as steps
from modelops.tracking import TrackingContext
from tasks.common import IO_TASK, artifact_key, markdown_artifact, table_artifact

DEGRADED_EVENT = "modelops.model.degraded"


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
    frame = steps.read_window(data_path, sample_dir, watched.name, watched.version, max_rows)
    monitoring.check_window(frame, watched.required_columns, min_rows)
    return frame


@task(name="check_drift", **IO_TASK)
def check_drift(watched: steps.Watched, window: Any, psi_max: float) -> monitoring.CheckResult:
    """PSI and KS per feature, and the shift of the predicted probabilities."""
    X = steps.features_of(watched, window)
    proba, predicted = watched.predict(window)
    if watched.kind == "text":  # drift of lengths and of the predicted labels
        return monitoring.compare(
            X, watched.profile, None, None, psi_max=psi_max, predicted_labels=predicted
        )
    return monitoring.compare(X, watched.profile, watched.sample, proba, psi_max=psi_max)


@task(name="check_performance", **IO_TASK)
def check_performance(
    watched: steps.Watched,
    labelled: Any,
    result: monitoring.CheckResult,
    metric_drop_max: dict[str, float],
    min_rows: int,
) -> None:
    """The registered metrics recomputed on labelled recent data, compared with registration."""
    monitoring.check_window(labelled, watched.required_columns, min_rows)
    if watched.kind == "text":
        current = steps.text_metrics(watched, labelled)
    else:
        y = steps.labels_of(watched, labelled)
        proba = watched.model.predict_proba(steps.features_of(watched, labelled))[:, 1]
        current = evaluate_binary(y, proba).metrics
    monitoring.compare_performance(result, current, watched.registered_metrics, metric_drop_max)


@task(name="report_check", **IO_TASK)
def report_check(
    ctx: TrackingContext, watched: steps.Watched, window: Any, result: monitoring.CheckResult
) -> None:
    """An MLflow run point per check, a Prefect table per feature, the worst feature's chart."""
    worst = result.worst
    shown = steps.features_of(watched, window) if watched.kind == "text" else window
    figure = steps.distribution_figure(watched, shown, worst.feature) if worst else None
    steps.record_check(ctx, watched, result, figure)
    key = artifact_key(watched.name, "monitoring")
    table_artifact(
        [f.row() for f in sorted(result.features, key=lambda f: -f.psi)],
        key=key,
        description=f"Drift of {watched.name} v{watched.version} "
        f"on {result.rows} rows: {'DEGRADED' if result.degraded else 'ok'}",
    )
    lines = [
        f"## {watched.name} version {watched.version}: "
        f"{'**DEGRADED**' if result.degraded else 'ok'} ({result.rows} rows)",
        "",
    ]
    lines += [f"- {b}" for b in result.breaches] or ["No threshold breached."]
    if result.performance:
        lines += ["", "| metric | registered | now |", "|---|---:|---:|"]
        lines += [
            f"| {m} | {result.registered.get(m, float('nan')):.4f} | {v:.4f} |"
            for m, v in result.performance.items()
        ]
    if figure is not None and worst is not None:
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=80)
        encoded = base64.b64encode(buffer.getvalue()).decode()
        lines += [
            "",
            f"### Worst feature: {worst.feature} (PSI {worst.psi:.3f})",
            "",
            f"![{worst.feature}](data:image/png;base64,{encoded})",
        ]
    markdown_artifact(
        "\n".join(lines),
        key=artifact_key(watched.name, "monitoring-summary"),
        description="Monitoring verdict and the worst feature's distribution",
    )
    logger = get_run_logger()
    for f in result.features:
        logger.info("%-24s PSI %.4f%s", f.feature, f.psi, "  DRIFT" if f.breached else "")


@task(name="raise_alert", **IO_TASK)
def raise_alert(
    ctx: TrackingContext, watched: steps.Watched, result: monitoring.CheckResult, actor: str | None
) -> str | None:
    """On a breach: tag the version, append an audit entry, emit ``modelops.model.degraded``."""
    from prefect.events import emit_event

    steps.mark_degraded(ctx.client(), ctx, watched, result, actor)
    event = emit_event(
        event=DEGRADED_EVENT,
        resource={
            "prefect.resource.id": f"modelops.model.{watched.name}.{watched.version}",
            "prefect.resource.name": f"{watched.name} v{watched.version}",
            "modelops.model": watched.name,
            "modelops.version": watched.version,
        },
        payload={
            "breaches": result.breaches,
            "rows": result.rows,
            "psi": {f.feature: round(f.psi, 4) for f in result.features},
            "prediction_psi": result.prediction_psi,
            "performance": result.performance,
            "mlflow_run_id": ctx.parent_run_id,
        },
    )
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

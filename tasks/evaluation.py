"""Evaluation tasks: held-out metrics with plots, and the quality gate."""

from __future__ import annotations

from prefect import get_run_logger, task

from modelops.evaluation import Evaluation, GateDecision
from modelops.steps import evaluation as steps
from modelops.tracking import TrackingContext
from modelops.types import Split, TrainedModel
from tasks.common import IO_TASK, artifact_key, markdown_artifact, table_artifact


@task(name="evaluate_model", **IO_TASK)
def evaluate_model(
    ctx: TrackingContext, model: TrainedModel, split: Split, model_name: str
) -> Evaluation:
    """Score the held-out part; log metrics and ROC/PR/confusion-matrix PNGs."""
    evaluation = steps.evaluate_model(ctx, model, split)
    table_artifact(
        [{"metric": k, "value": round(v, 4)} for k, v in evaluation.metrics.items()],
        key=artifact_key(model_name, "evaluation-metrics"),
        description=f"Held-out metrics on {evaluation.rows} rows",
    )
    get_run_logger().info(
        "Held-out metrics: %s", {k: round(v, 4) for k, v in evaluation.metrics.items()}
    )
    return evaluation


@task(name="check_quality_gate", **IO_TASK)
def check_quality_gate(
    ctx: TrackingContext, metrics: dict[str, float], thresholds: dict[str, float], model_name: str
) -> GateDecision:
    """Compare metrics with thresholds; record the decision; fail the run when it fails."""
    decision = steps.check_gate(ctx, metrics, thresholds)
    markdown_artifact(
        decision.markdown(),
        key=artifact_key(model_name, "quality-gate"),
        description=f"Quality gate {'passed' if decision.passed else 'failed'}",
    )
    decision.raise_if_failed()
    get_run_logger().info("Quality gate passed:\n%s", decision.text())
    return decision

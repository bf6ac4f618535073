"""Evaluation tasks: held-out metrics with plots, and the quality gate."""

from __future__ import annotations

from prefect import get_run_logger, task

from modelops import tracking
from modelops.evaluation import Evaluation, GateDecision, apply_gate, evaluate_binary, plot_curves
from modelops.training import Split
from tasks.common import COMPUTE_TASK, IO_TASK, artifact_key, markdown_artifact, table_artifact
from tasks.training import TrainedModel


@task(name="evaluate_model", **IO_TASK)
def evaluate_model(
    ctx: tracking.TrackingContext, model: TrainedModel, split: Split, model_name: str
) -> Evaluation:
    """Score the held-out part; log metrics and ROC/PR/confusion-matrix PNGs."""
    with tracking.child_run(ctx, "evaluate_model") as run_id:
        proba = model.pipeline.predict_proba(split.X_test)[:, 1]
        evaluation = evaluate_binary(split.y_test, proba)
        for run in (run_id, ctx.parent_run_id):
            tracking.log_metrics(ctx, run, evaluation.metrics)
        tracking.log_figures(ctx, run_id, plot_curves(evaluation, model.labels))
    table_artifact(
        [{"metric": k, "value": round(v, 4)} for k, v in evaluation.metrics.items()],
        key=artifact_key(model_name, "evaluation-metrics"),
        description=f"Held-out metrics on {evaluation.rows} rows",
    )
    get_run_logger().info(
        "Held-out metrics: %s", {k: round(v, 4) for k, v in evaluation.metrics.items()}
    )
    return evaluation


@task(name="check_quality_gate", **COMPUTE_TASK)
def check_quality_gate(
    ctx: tracking.TrackingContext,
    evaluation: Evaluation,
    thresholds: dict[str, float],
    model_name: str,
) -> GateDecision:
    """Compare metrics with thresholds; record the decision; fail the run when it fails."""
    decision = apply_gate(evaluation.metrics, thresholds)
    verdict = "passed" if decision.passed else "failed"
    tags = {"modelops.gate": verdict}
    for row in decision.rows:
        tags[f"modelops.gate.{row['metric']}"] = (
            f"{row['value']:.4f} {row['comparison']} {row['threshold']:.4f}: "
            f"{'pass' if row['passed'] else 'fail'}"
        )
    tracking.set_tags(ctx, ctx.parent_run_id, tags)
    tracking.log_json(ctx, ctx.parent_run_id, decision.as_dict(), "quality_gate.json")
    markdown_artifact(
        decision.markdown(),
        key=artifact_key(model_name, "quality-gate"),
        description=f"Quality gate {verdict}",
    )
    decision.raise_if_failed()
    get_run_logger().info("Quality gate passed:\n%s", decision.text())
    return decision

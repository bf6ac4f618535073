"""Reproduce tasks: read a version's recorded inputs, rebuild it, compare the rebuild."""

from __future__ import annotations

from prefect import get_run_logger, task

from modelops.steps import reproduce as steps
from modelops.tracking import TrackingContext
from modelops.types import Rebuild, RecordedInputs, Reproduction
from tasks.common import IO_TASK, artifact_key, markdown_artifact


@task(name="read_recorded_inputs", **IO_TASK)
def read_recorded_inputs(ctx: TrackingContext, model_name: str, version: str) -> RecordedInputs:
    """The version's training key parts, estimator or base model, held-out rows and metrics."""
    recorded = steps.read_recorded_inputs(ctx, model_name, version)
    logger = get_run_logger()
    for line in steps.environment_warnings(recorded):
        logger.warning("Not the recorded environment: %s", line)
    return recorded


@task(name="rebuild_version", **IO_TASK)
def rebuild_version(
    ctx: TrackingContext, recorded: RecordedInputs, data_path: str | None, log_model: bool
) -> Rebuild:
    """Retrain with the recorded parameters and seed on the recorded data (refused if changed)."""
    rebuild = steps.rebuild_version(ctx, recorded, data_path, log_model)
    rebuild.warnings = steps.environment_warnings(recorded)
    return rebuild


@task(name="compare_rebuild", **IO_TASK)
def compare_rebuild(
    ctx: TrackingContext,
    recorded: RecordedInputs,
    rebuild: Rebuild,
    tolerance: float | None,
) -> Reproduction:
    """Recorded vs rebuilt metrics, the largest prediction difference, and the verdict."""
    result = steps.compare_rebuild(ctx, recorded, rebuild, tolerance)
    markdown_artifact(
        "```\n" + steps.reproduction_text(result) + "\n```",
        key=artifact_key(recorded.model_name, "reproduction"),
        description=f"{recorded.model_name} v{recorded.version} rebuilt: {result.verdict}",
    )
    get_run_logger().info("Reproduction of version %s: %s", recorded.version, result.verdict)
    return result

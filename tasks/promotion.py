"""Promotion tasks: resolve the candidate, compare it with the champion, move the aliases."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task

from modelops.registry.champion import Comparison
from modelops.steps import promotion as steps
from modelops.tracking import TrackingContext
from modelops.types import Candidate, PromotionResult, RollbackResult
from tasks.common import IO_TASK, artifact_key, markdown_artifact

resolve_candidate = task(name="resolve_candidate", **IO_TASK)(steps.resolve_candidate)
recheck_candidate = task(name="recheck_candidate", **IO_TASK)(steps.recheck_candidate)


@task(name="recover_interrupted", **IO_TASK)
def recover_interrupted(ctx: TrackingContext, model_name: str) -> list[str]:
    """Finish or abandon a promotion or rollback a killed process left half done."""
    lines = steps.recover_interrupted(ctx, model_name)
    for line in lines:
        get_run_logger().warning("Recovered an interrupted move: %s", line)
    return lines


@task(name="compare_with_champion", **IO_TASK)
def compare_with_champion(
    ctx: TrackingContext, candidate: Candidate, held_out_path: str | None, **options: Any
) -> Comparison | None:
    """Score champion and challenger on the same held-out data; refuse a worse challenger.

    ``options`` are :func:`modelops.steps.promotion.compare_with_champion`'s: metrics, margin,
    target, actor.
    """
    comparison = steps.compare_with_champion(ctx, candidate, held_out_path, **options)
    if comparison is None:
        get_run_logger().info("No other champion in production: the staging gate result stands.")
        return None
    markdown_artifact(
        comparison.markdown(candidate.name, str(candidate.champion), candidate.version),
        key=artifact_key(candidate.name, "champion-challenger"),
        description="Champion vs challenger on held-out data",
    )
    return comparison


@task(name="promote_candidate", **IO_TASK)
def promote_candidate(
    ctx: TrackingContext,
    candidate: Candidate,
    comparison: Comparison | None,
    reason: str,
    archive_existing: bool = True,
    actor: str | None = None,
) -> PromotionResult:
    """Point production at the candidate, keep the old champion for rollback, audit both."""
    result = steps.promote_candidate(ctx, candidate, comparison, reason, archive_existing, actor)
    summary = steps.promotion_summary(result, ctx.actor(actor), reason, candidate.staging_override)
    markdown_artifact(
        summary,
        key=artifact_key(candidate.name, "production"),
        description=f"{candidate.name} promotion",
    )
    get_run_logger().info(summary.replace("**", ""))
    return result


@task(name="rollback_model", **IO_TASK)
def rollback_model(
    ctx: TrackingContext, model_name: str, reason: str, actor: str | None = None
) -> RollbackResult:
    """Put production back on previous-production and record why."""
    result = steps.rollback_model(ctx, model_name, reason, actor)
    markdown_artifact(
        f"**{model_name}@production rolled back: version {result.rolled_back} → "
        f"{result.version}**\n\n- actor: {ctx.actor(actor)}\n- reason: {reason}\n",
        key=artifact_key(model_name, "production"),
        description=f"{model_name} rollback",
    )
    return result

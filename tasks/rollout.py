"""Rollout tasks: plan it, start the candidate beside the stable version, judge each step on
live traffic, and end it (promoted, or the candidate out of traffic)."""

from __future__ import annotations

from prefect import get_run_logger, task

from modelops.rollouts.analysis import Analysis
from modelops.rollouts.control import RolloutRecord
from modelops.steps import rollout as steps
from modelops.tracking import TrackingContext
from modelops.types import RolloutResult
from tasks.common import IO_TASK, artifact_key, markdown_artifact, table_artifact

plan_rollout = task(name="plan_rollout", **IO_TASK)(steps.plan_rollout)
start_candidate = task(name="start_candidate", **IO_TASK)(steps.start_candidate)
hold_for_approval = task(name="hold_for_approval", **IO_TASK)(steps.hold_for_approval)


def _result_artifact(result: RolloutResult) -> None:
    markdown_artifact(
        steps.result_text(result),
        key=artifact_key(result.name, "rollout"),
        description=f"{result.name} rollout: {result.outcome}",
    )


@task(name="judge_step", **IO_TASK)
def judge_step(ctx: TrackingContext, rollout: RolloutRecord, index: int) -> Analysis:
    """Move traffic to step ``index``, wait for its evidence, and judge it (a table artifact)."""
    analysis = steps.judge_step(ctx, rollout, index)
    text = steps.rollout_table(rollout.plan, index, analysis)
    table_artifact(
        analysis.table(),
        key=artifact_key(rollout.plan.name, "rollout-step", str(index + 1)),
        description=text.splitlines()[0].strip("*"),
    )
    get_run_logger().info(text.replace("**", ""))
    return analysis


@task(name="end_rollout", **IO_TASK)
def end_rollout(
    ctx: TrackingContext,
    rollout: RolloutRecord,
    analyses: list[Analysis],
    reason: str,
    judged: bool = True,
    actor: str | None = None,
    workers: int = 1,
    timeout_seconds: float = 600,
) -> RolloutResult:
    """Candidate out of traffic, stable alone; after a failed step or an abort, emit
    ``modelops.model.rollout_aborted``."""
    from prefect.events import emit_event

    result = steps.end_rollout(
        ctx,
        rollout,
        analyses,
        reason,
        judged=judged,
        actor=actor,
        workers=workers,
        timeout_seconds=timeout_seconds,
    )
    if result.outcome == "aborted":
        emit_event(
            **steps.aborted_event(
                result.name,
                result.stable,
                result.candidate,
                result.mode,
                result.reason,
                len(result.steps),
            )
        )
        get_run_logger().warning(
            "Rollout of %s v%s aborted: %s", result.name, result.candidate, reason
        )
    else:
        get_run_logger().info(
            "Rollout of %s v%s ended, %s: %s", result.name, result.candidate, result.outcome, reason
        )
    _result_artifact(result)
    return result


@task(name="finish_rollout", **IO_TASK)
def finish_rollout(
    ctx: TrackingContext,
    rollout: RolloutRecord,
    analyses: list[Analysis],
    reason: str,
    actor: str | None = None,
    workers: int = 1,
    timeout_seconds: float = 600,
) -> RolloutResult:
    """Every step passed: promote the candidate (with the live evidence) and serve it alone."""
    result = steps.finish_rollout(
        ctx,
        rollout,
        analyses,
        reason=reason,
        actor=actor,
        workers=workers,
        timeout_seconds=timeout_seconds,
    )
    _result_artifact(result)
    get_run_logger().info(steps.result_text(result).replace("**", ""))
    return result

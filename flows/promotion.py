"""The `promotion` flow: a staged version → production, after a champion/challenger check."""

from __future__ import annotations

from typing import Annotated

from prefect import flow
from pydantic import Field

from modelops.orchestration.approval import await_approval
from modelops.params import ModelName
from modelops.types import PromotionResult
from tasks.common import model_lock
from tasks.promotion import (
    compare_with_champion,
    promote_candidate,
    recheck_candidate,
    recover_interrupted,
    resolve_candidate,
)
from tasks.tracking import flow_run


@flow(name="promotion", log_prints=True)
def promotion(
    model_name: ModelName = "lead-scoring",
    version: str = "staging",
    held_out_path: str | None = None,
    target: str | None = None,
    compare_metrics: list[str] = ["roc_auc"],  # noqa: B006 (never mutated)
    margin: Annotated[float, Field(ge=0)] = 0.0,
    override_staging_reason: str | None = None,
    archive_existing: bool = True,
    reason: str = "promoted by the promotion flow",
    actor: str | None = None,
    require_approval: bool = False,
    approval_timeout_seconds: Annotated[int, Field(ge=1)] = 86400,
) -> PromotionResult:
    """Promote a model version to production (champion/challenger when a champion exists).

    Args:
        model_name: the registered model.
        version: a version number, 'latest', an alias such as 'staging', or models:/name/N.
        held_out_path: CSV/Parquet with features and target, to score champion and challenger.
        target: the target column in the held-out data (default: the one the model was
            trained on).
        compare_metrics: metrics the challenger must not be worse on.
        margin: how much worse (absolute) the challenger may be and still win.
        override_staging_reason: promote a version that does not hold `staging` (recorded).
        archive_existing: tag the replaced production version archived.
        reason: why, for the audit trail.
        actor: who, for the audit trail (default: the deployment or OS user).
        require_approval: after the comparison, pause until someone other than ``actor``
            approves (Prefect UI form, or the API's approvePromotion); rejected or not answered
            within ``approval_timeout_seconds``: nothing moves.
        approval_timeout_seconds: how long to wait for an answer.
    """
    params = {
        "model_name": model_name,
        "version": version,
        "margin": margin,
        "compare_metrics": compare_metrics,
        "held_out_path": held_out_path,
    }
    with flow_run("promotion", model_name, params) as ctx:
        # The model's promotion lock around the whole decision — but never around the wait
        # for a person: a rollback must always be possible while an approval is pending.
        with model_lock("promotion", model_name):
            recover_interrupted(ctx, model_name)
            candidate = resolve_candidate(ctx, model_name, version, override_staging_reason, actor)
            comparison = compare_with_champion(
                ctx,
                candidate,
                held_out_path,
                metrics=compare_metrics,
                margin=margin,
                target=target,
                actor=actor,
            )
            if not require_approval:
                return promote_candidate(
                    ctx, candidate, comparison, reason, archive_existing, actor
                )
        answer = await_approval(
            ctx, candidate, comparison, ctx.actor(actor), approval_timeout_seconds
        )
        reason = answer.reason(reason)
        with model_lock("promotion", model_name):
            # Whatever happened during the wait: the candidate must still be staged (or
            # overridden), and the move refuses if the champion it was compared with is gone.
            recheck_candidate(ctx, candidate, override_staging_reason, actor)
            return promote_candidate(ctx, candidate, comparison, reason, archive_existing, actor)


if __name__ == "__main__":
    import sys

    from modelops.cli import run

    run(["promote", *sys.argv[1:]])

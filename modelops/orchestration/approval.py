"""A promotion waiting for a person: the flow run pauses (Prefect's pause with an input form)
until someone other than the requester approves or rejects; the refusal and four-eyes rules are
the core's (:mod:`modelops.registry.approval`, :func:`modelops.registry.promotion.record_refusal`).
Prefect glue, not a task: a paused task would hold its task run, and nothing here is retried."""

from __future__ import annotations

from prefect import get_run_logger
from prefect.input import RunInput

from modelops.registry.champion import Comparison
from modelops.tracking import TrackingContext
from modelops.types import Candidate
from tasks.common import artifact_key, markdown_artifact


class Approval(RunInput):
    """What a person answers when a promotion waits for approval (the Prefect UI's form, or
    the API's ``approvePromotion``)."""

    approve: bool = False
    comment: str = ""
    approver: str = ""  # set by the API (the token's subject); empty from the Prefect UI

    def reason(self, reason: str) -> str:
        """``reason`` for the audit trail, saying who approved (and what they said)."""
        said = f": {self.comment}" if self.comment else ""
        return f"{reason}; approved by {self.approver or 'prefect-ui'}{said}"


def await_approval(
    ctx: TrackingContext,
    candidate: Candidate,
    comparison: Comparison | None,
    requester: str,
    timeout_seconds: int,
    poll_seconds: int = 2,
) -> Approval:
    """Pause this flow run until a person approves or rejects moving ``candidate`` to
    production; the comparison table is shown in the form. The model's promotion lock is not
    held while waiting (the flow takes it again to move production, and that move refuses if
    the champion changed meanwhile, e.g. by a rollback).

    Raises:
        PromotionRefused: rejected, approved by the requester (four eyes), or not answered in
            time — recorded in the version's audit trail either way; nothing moves.
    """
    table = (
        comparison.markdown(candidate.name, str(candidate.champion), candidate.version)
        if comparison
        else "No champion in production: the staging gate result stands."
    )
    return await_decision(
        ctx, candidate.name, candidate.version, table, requester, timeout_seconds, poll_seconds
    )


def await_decision(
    ctx: TrackingContext,
    name: str,
    version: str,
    evidence: str,
    requester: str,
    timeout_seconds: int,
    poll_seconds: int = 2,
) -> Approval:
    """Pause this flow run until a person approves or rejects moving version ``version`` of
    ``name`` to production, with ``evidence`` (markdown) in the form.

    Raises:
        PromotionRefused: rejected, approved by the requester (four eyes), or not answered in
            time — recorded in the version's audit trail either way; nothing moves.
    """
    from prefect.exceptions import FlowPauseTimeout
    from prefect.flow_runs import pause_flow_run

    from modelops.errors import PromotionRefused
    from modelops.registry.approval import check_approver
    from modelops.registry.promotion import record_refusal

    description = (
        f"### Promote {name} version {version} to production?\n\n"
        f"Requested by **{requester}**. Someone else must approve.\n\n{evidence}"
    )
    logger = get_run_logger()
    logger.info("Waiting up to %ss for approval (Prefect UI, or approvePromotion)", timeout_seconds)
    markdown_artifact(
        description,
        key=artifact_key(name, "approval"),
        description="Waiting for approval",
    )

    def refuse(reason: str, approver: str) -> PromotionRefused:
        record_refusal(
            ctx.client(),
            name,
            version,
            reason=reason,
            actor=approver,
            flow_run_id=ctx.flow_run_id,
        )
        return PromotionRefused(reason)

    try:
        answer = pause_flow_run(
            wait_for_input=Approval.with_initial_data(description=description, approve=False),
            timeout=timeout_seconds,
            poll_interval=poll_seconds,
        )
    except FlowPauseTimeout as exc:
        raise refuse(
            f"No approval within {timeout_seconds}s: version {version} was not promoted.",
            "modelops",
        ) from exc
    approver = answer.approver or "prefect-ui"
    try:
        check_approver(requester, approver)
    except PromotionRefused as exc:
        raise refuse(str(exc), approver) from None
    if not answer.approve:
        raise refuse(f"Rejected by {approver}: {answer.comment or 'no comment'}", approver)
    logger.info("Approved by %s: %s", approver, answer.comment or "no comment")
    return answer

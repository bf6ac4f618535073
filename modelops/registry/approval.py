"""The approval policy for production promotions: four eyes, written once.

The promotion flow (when it resumes from its pause) and the operator API's ``approvePromotion``
both ask :func:`check_approver`; neither keeps its own copy of the rule.
"""

from __future__ import annotations

from modelops.errors import PromotionRefused


def check_approver(requester: str, approver: str, *, approver_shown: str | None = None) -> None:
    """Refuse an approval given by the person who requested the promotion (four eyes).

    Args:
        requester: the actor who asked for the promotion.
        approver: the actor answering.
        approver_shown: how to name the approver in the message (default: ``approver``).

    Raises:
        PromotionRefused: the approver is the requester; nothing may move.
    """
    if approver and approver == requester:
        raise PromotionRefused(
            f"{approver_shown or approver} requested this promotion and cannot also approve it "
            f"(four eyes): nothing moved. Ask someone else with the OPERATOR or ADMIN role."
        )

"""Human approval before production: the promotion pauses, a second person decides."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from mlflow import MlflowClient

from flows.promotion import promotion
from modelops.errors import PromotionRefused

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]


def _paused_run(timeout: float = 60) -> Any:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            runs = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED]))
                )
            )
            if runs:
                return runs[0]
            time.sleep(0.3)
    raise AssertionError("the promotion never paused for approval")


def _promote_in_background(**kwargs: Any) -> tuple[threading.Thread, dict[str, Any]]:
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = promotion(
                model_name="approved", require_approval=True, actor="api:alice", **kwargs
            )
        except Exception as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def _answer(run: Any, **answer: Any) -> None:
    from prefect.flow_runs import resume_flow_run

    resume_flow_run(run.id, run_input=answer)


def _production() -> str | None:
    aliases = MlflowClient().get_registered_model("approved").aliases
    return str(aliases["production"]) if "production" in aliases else None


def test_approval_by_a_second_person_moves_production(mlflow_store: str, make_version: Any) -> None:
    make_version("approved")
    thread, outcome = _promote_in_background()
    run = _paused_run()
    assert _production() is None  # nothing moves while it waits
    _answer(run, approve=True, comment="looks good", approver="api:bob")
    thread.join(120)
    assert "error" not in outcome, outcome
    assert _production() == "1"
    events = [
        v
        for k, v in MlflowClient().get_model_version("approved", "1").tags.items()
        if k.startswith("modelops.audit.")
    ]
    assert any("approved by api:bob: looks good" in e for e in events)


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (
            {"approve": False, "comment": "drift too high", "approver": "api:bob"},
            "Rejected by api:bob: drift too high",
        ),
        ({"approve": True, "approver": "api:alice"}, "cannot also approve it (four eyes)"),
    ],
)
def test_rejection_or_self_approval_moves_nothing(
    mlflow_store: str, make_version: Any, answer: dict, message: str
) -> None:
    make_version("approved")
    thread, outcome = _promote_in_background()
    _answer(_paused_run(), **answer)
    thread.join(120)
    assert isinstance(outcome.get("error"), PromotionRefused), outcome
    assert message in str(outcome["error"])
    assert _production() is None
    tags = MlflowClient().get_model_version("approved", "1").tags
    assert any(message in v for k, v in tags.items() if k.startswith("modelops.audit."))


def test_no_answer_in_time_moves_nothing(mlflow_store: str, make_version: Any) -> None:
    make_version("approved")
    with pytest.raises(PromotionRefused, match="No approval within 3s"):
        promotion(
            model_name="approved",
            require_approval=True,
            actor="api:alice",
            approval_timeout_seconds=3,
        )
    assert _production() is None

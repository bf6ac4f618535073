"""Human approval before production: the promotion pauses, a second person decides."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from mlflow import MlflowClient

from flows.promotion import promotion
from modelops.errors import PromotionRefused

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]


def _paused_run(timeout: float = 60) -> Any:
    """The paused promotion this test started (never one an earlier test of this worker left)."""
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
            ours = [r for r in runs if r.start_time and r.start_time >= _started[-1]]
            if ours:
                return ours[0]
            time.sleep(0.3)
    raise AssertionError("the promotion never paused for approval")


_started: list[datetime] = []


def _promote_in_background(**kwargs: Any) -> tuple[threading.Thread, dict[str, Any]]:
    outcome: dict[str, Any] = {}
    _started.append(datetime.now(UTC))

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


def test_a_rollback_goes_ahead_while_an_approval_is_pending_and_wins(
    mlflow_store: str, make_version: Any, held_out_csv: Any
) -> None:
    """The pause holds no lock: an operator rolls back at once (it used to wait 900 s and
    fail), and the approval given afterwards refuses to overrule it — the champion it was
    compared with is no longer in production."""
    from flows.rollback import rollback
    from modelops import ModelStage, promote_model
    from modelops.errors import RegistryError
    from modelops.registry import read_events

    for _ in range(2):  # v1, then v2 in production (v1 previous-production)
        make_version("approved")
        promote_model("approved", "staging", ModelStage.PRODUCTION)
    make_version("approved")  # v3 staged: the promotion waiting for approval
    thread, outcome = _promote_in_background(held_out_path=str(held_out_csv))
    run = _paused_run()
    started = time.monotonic()
    rollback(model_name="approved", reason="incident on v2", actor="ops:carol")
    assert time.monotonic() - started < 60
    assert _production() == "1"
    _answer(run, approve=True, approver="api:bob")
    thread.join(120)
    assert isinstance(outcome.get("error"), RegistryError), outcome
    assert "moved from 2 to 1" in str(outcome["error"])
    assert _production() == "1"  # the rollback stands
    v3 = read_events(MlflowClient().get_model_version("approved", "3"))
    assert not any(e.action == "promote" for e in v3)


def test_a_candidate_archived_while_waiting_is_refused_after_approval(
    mlflow_store: str, make_version: Any
) -> None:
    from modelops import ModelStage, promote_model

    make_version("approved")  # v1 staged
    thread, outcome = _promote_in_background()
    run = _paused_run()
    promote_model("approved", 1, ModelStage.ARCHIVED, reason="withdrawn while waiting")
    _answer(run, approve=True, approver="api:bob")
    thread.join(120)
    assert isinstance(outcome.get("error"), PromotionRefused), outcome
    assert "does not hold the 'staging' alias" in str(outcome["error"])
    assert _production() is None
    tags = MlflowClient().get_model_version("approved", "1").tags
    assert tags.get("modelops.archived") == "true"

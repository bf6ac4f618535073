"""The `rollout` flow on the local target, with live traffic and feedback from a client that
follows the model's server as a user's would: a worse candidate is aborted at the first step
while every answer is a 200 naming its version; a good one goes through every step and is
promoted with the live evidence in its audit entry; a second rollout of the model while one
runs is refused; bad parameters change nothing."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from typing import Any

import httpx
import pytest

from flows.rollout import rollout
from modelops.errors import ConfigurationError, ModelNotFound
from modelops.registry.locks import LockTimeout
from modelops.serving.local import running_server
from modelops.settings import get_settings

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]
NAME = "rollout-flow model"


class Traffic(threading.Thread):
    """One-row requests to whatever server the model's local record names, each followed by
    its true label on ``/feedback`` (while a rollout's server takes them)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        from modelops.sample import make_leads

        rows = make_leads(4000, seed=21)
        self.truth = rows.pop("won").tolist()
        split = json.loads(rows.to_json(orient="split", index=False))
        self.payloads = [
            {"dataframe_split": {"columns": split["columns"], "data": [row]}}
            for row in split["data"]
        ]
        self.answers: Counter[tuple[int, str]] = Counter()
        self.failures: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        home = get_settings().home_dir
        with httpx.Client(timeout=30) as client:
            i = 0
            while not self.stop.is_set():
                server = running_server(home, NAME)
                if server is None:
                    time.sleep(0.05)
                    continue
                row = i % len(self.payloads)
                i += 1
                try:
                    r = client.post(f"{server.url}/invocations", json=self.payloads[row])
                except httpx.TransportError as exc:
                    # Blue/green: the old server stops right after the record moved on.
                    if running_server(home, NAME) == server:
                        self.failures.append(f"{server.url}: {exc}")
                    continue
                self.answers[(r.status_code, r.headers.get("X-Model-Version", "?"))] += 1
                body = r.json()
                if r.status_code != 200 or body.get("model_version") != r.headers.get(
                    "X-Model-Version"
                ):
                    self.failures.append(f"{r.status_code}: {r.text[:200]}")
                    continue
                if server.candidate is not None:
                    label = {"request_id": r.headers["X-Request-Id"], "label": self.truth[row]}
                    client.post(f"{server.url}/feedback", json=label)

    def __enter__(self) -> Traffic:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.join(timeout=30)


def _registry(name: str = NAME) -> dict[str, Any]:
    from modelops.registry.aliases import AliasState
    from modelops.tracking import get_client

    s = get_settings()
    client = get_client(s.resolved_tracking_uri, s.resolved_registry_uri)
    return {"aliases": AliasState.read(client, name), "client": client}


def _stop_serving() -> None:
    from modelops.cli import main as cli

    assert cli(["stop", NAME]) == 0


FAST = {
    "poll_seconds": 0.5,
    "max_step_seconds": 120,
    "min_requests": 100,
    "timeout_seconds": 180,
}


def test_a_worse_candidate_is_aborted_at_the_first_step(make_version: Any) -> None:
    from modelops.api import promote_model
    from modelops.registry.audit import read_events
    from modelops.steps.rollout import ABORTED_TAG

    make_version(NAME)
    promote_model(NAME, 1, "Production")
    make_version(NAME, good=False)  # v2, staged: trained on shuffled labels
    refused: list[BaseException] = []

    def second_rollout() -> None:
        home = get_settings().home_dir
        while (server := running_server(home, NAME)) is None or server.candidate is None:
            time.sleep(0.1)
        try:
            rollout(NAME, candidate="2", mode="shadow", **FAST)
        except BaseException as exc:  # the lock refuses it at once
            refused.append(exc)

    other = threading.Thread(target=second_rollout, daemon=True)
    try:
        with Traffic() as traffic:
            other.start()
            result = rollout(NAME, steps=[20, 50], min_labels=50, **FAST)
            other.join(timeout=120)
            time.sleep(1)  # the stable-only server answers the client too
        assert result.outcome == "aborted" and len(result.steps) == 1, result
        assert result.steps[0]["verdict"] == "fail"
        assert traffic.failures == []
        versions = {version for (status, version) in traffic.answers}
        assert {status for (status, _) in traffic.answers} == {200}
        assert versions == {"1", "2"}  # the candidate answered its share, then no more
        assert len(refused) == 1 and isinstance(refused[0], LockTimeout)
        assert "locked for rollout" in str(refused[0])
        state = _registry()
        assert state["aliases"].production == "1" and state["aliases"].staging == "2"
        mv = state["client"].get_model_version(NAME, "2")
        assert mv.tags[ABORTED_TAG] == result.reason
        events = [e for e in read_events(mv) if e.action == "rollout-aborted"]
        assert len(events) == 1 and events[0].model_extra["rollout"][0]["verdict"] == "fail"
        server = running_server(get_settings().home_dir, NAME)
        assert server is not None and server.candidate is None and server.version == "1"
        assert httpx.get(f"{server.url}/version").json()["model_version"] == "1"
    finally:
        _stop_serving()


def test_a_good_candidate_goes_through_every_step_and_is_promoted(make_version: Any) -> None:
    from modelops.api import promote_model
    from modelops.registry.audit import read_events

    make_version(NAME)
    promote_model(NAME, 1, "Production")
    make_version(NAME)  # v2, staged: as good as v1
    try:
        with Traffic() as traffic:
            result = rollout(NAME, steps=[20, 50], min_labels=400, margin=0.15, **FAST)
        assert result.outcome == "promoted", result
        assert [s["verdict"] for s in result.steps] == ["pass", "pass"]
        assert traffic.failures == [] and {s for (s, _) in traffic.answers} == {200}
        state = _registry()
        assert state["aliases"].production == "2"
        assert state["aliases"].previous_production == "1"
        mv = state["client"].get_model_version(NAME, "2")
        promoted = [e for e in read_events(mv) if e.action == "promote"]
        assert promoted and "live canary rollout" in (promoted[-1].basis or "")
        assert [s["verdict"] for s in promoted[-1].model_extra["rollout"]] == ["pass", "pass"]
        assert promoted[-1].metrics["live.candidate.labels"] >= 400
        server = running_server(get_settings().home_dir, NAME)
        assert server is not None and server.candidate is None and server.version == "2"
    finally:
        _stop_serving()


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"steps": [50, 10]}, ConfigurationError, "Steps must increase"),
        ({"steps": [0, 50]}, ConfigurationError, "strictly between 0 and 100"),
        ({"steps": [10, 100]}, ConfigurationError, "strictly between 0 and 100"),
        ({"mode": "shadow", "steps": [10]}, ConfigurationError, "no steps"),
        ({"candidate": "1"}, ConfigurationError, "already is production"),
        ({"candidate": "9"}, ModelNotFound, "9"),
        ({"metric": "auc"}, ConfigurationError, "Unknown live metric"),
        ({"min_step_seconds": 10, "max_step_seconds": 5}, ConfigurationError, "cannot be over"),
    ],
)
def test_bad_rollout_parameters_change_nothing(
    make_version: Any, registry_snapshot: Any, kwargs: dict[str, Any], error: type, words: str
) -> None:
    from modelops.api import promote_model

    make_version(NAME)
    promote_model(NAME, 1, "Production")
    make_version(NAME)
    before = registry_snapshot()
    with pytest.raises(error, match=words):
        rollout(NAME, **kwargs)
    assert registry_snapshot() == before
    assert running_server(get_settings().home_dir, NAME) is None

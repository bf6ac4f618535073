"""The `rollout` flow on the local target, with live traffic and feedback from a client that
follows the model's server as a user's would: a worse candidate is aborted at the first step
while every answer is a 200 naming its version; a good one goes through every step and is
promoted with the live evidence in its audit entry; a second rollout of the model while one
runs is refused; bad parameters change nothing."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

import httpx
import pytest
from support import Client, one_row_requests, prefect_events

from flows.rollout import rollout
from modelops.errors import ConfigurationError, ModelNotFound
from modelops.registry.locks import LockTimeout
from modelops.serving.local import running_server
from modelops.settings import get_settings
from modelops.steps.rollout import ABORTED_EVENT

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]
NAME = "rollout-flow model"


class Traffic(Client):
    """One-row requests to whatever server the model's local record names, each followed by
    its true label on ``/feedback`` (while a rollout's server takes them)."""

    def __init__(self) -> None:
        super().__init__()
        self.payloads, self.truth = one_row_requests()
        self.answers: Counter[tuple[int, str]] = Counter()
        self.sent: list[tuple[float, str]] = []  # (when the request went, who answered)
        self.failures: list[str] = []

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
                sent = time.time()
                try:
                    r = client.post(f"{server.url}/invocations", json=self.payloads[row])
                except httpx.TransportError as exc:
                    # Blue/green: the old server stops right after the record moved on.
                    if running_server(home, NAME) == server:
                        self.failures.append(f"{server.url}: {exc}")
                    continue
                self.answers[(r.status_code, r.headers.get("X-Model-Version", "?"))] += 1
                self.sent.append((sent, r.headers.get("X-Model-Version", "?")))
                body = r.json()
                if r.status_code != 200 or body.get("model_version") != r.headers.get(
                    "X-Model-Version"
                ):
                    self.failures.append(f"{r.status_code}: {r.text[:200]}")
                    continue
                if server.candidate is not None:
                    label = {"request_id": r.headers["X-Request-Id"], "label": self.truth[row]}
                    try:
                        client.post(f"{server.url}/feedback", json=label)
                    except httpx.TransportError as exc:
                        # The rollout ended between the answer and its label (the server of
                        # two versions stopped): only a server still running must take it.
                        if running_server(home, NAME) == server:
                            self.failures.append(f"{server.url}/feedback: {exc}")


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
    # The candidate's p99 over ~100 requests is nearly its slowest one: beside the suite's other
    # workers, one scheduling pause of 10+ ms failed a good candidate (or ended a rollout before
    # the operator could). These tests judge labels and aborts; latency is judged in
    # tests/unit/test_rollout_analysis.py.
    "p99_slack_ms": 250.0,
    "max_step_seconds": 120,
    "min_requests": 100,
    "timeout_seconds": 180,
}


def test_a_worse_candidate_is_aborted_at_the_first_step(make_version: Any) -> None:
    from modelops.api import promote_model
    from modelops.registry.audit import read_events
    from modelops.rollouts.control import ABORTED_TAG

    make_version(NAME)
    promote_model(NAME, 1, "Production")
    make_version(NAME, good=False)  # v2, staged: trained on shuffled labels
    refused: list[BaseException] = []
    began = time.time()

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
        (event,) = prefect_events(ABORTED_EVENT, f"modelops.model.{NAME}.2", began)
        assert event.payload == {
            "stable": "1",
            "mode": "canary",
            "reason": result.reason,
            "steps": 1,
        }
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


# ------------------------------------------------------------------ the other doors: API, kill

SECRET = "rollout-test-secret-0123456789abcdef"
STATUS = """query($m: String!) { rolloutStatus(modelName: $m) { modelName stable candidate mode
  state step steps weight inTraffic serverUrl flowRunId verdict reasons abortedBy abortReason
  notes versions { version role requests errors errorRate p99Ms predictionPsi labels metric
  metricLow metricHigh } } }"""
ABORT = """mutation($m: String!, $r: String!) { abortRollout(modelName: $m, reason: $r) {
  state inTraffic abortedBy abortReason } }"""
START = """mutation($m: String!, $s: [Float!]) { startRollout(input: {modelName: $m, steps: $s}) {
  flowRunId } }"""


class OperatorApi:
    """The operator API as a process of its own, on this test's MODELOPS_HOME and store."""

    def __init__(self, folder: Any, prefect_url: str = "") -> None:
        import os
        import socket
        import subprocess
        import sys

        from support import wait_http

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        env = {**os.environ, "MODELOPS_API_JWT_SECRET": SECRET, "PREFECT_API_URL": prefect_url}
        self.log = (folder / "api.log").open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "modelops", "api", "--port", str(port)],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.url = f"http://127.0.0.1:{port}"
        try:
            wait_http(f"{self.url}/healthz", self.proc)
        except BaseException:
            self.close()
            raise

    def __call__(self, query: str, who: str, *roles: str, **variables: Any) -> dict[str, Any]:
        import jwt

        claims = {"sub": who, "roles": list(roles), "exp": int(time.time()) + 600}
        bearer = jwt.encode(claims, SECRET, algorithm="HS256")
        r = httpx.post(
            f"{self.url}/graphql",
            json={"query": query, "variables": variables},
            headers={"Authorization": f"Bearer {bearer}"},
            timeout=60,
        )
        return dict(r.json())

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.close()


@pytest.fixture
def operator_api(tmp_path: Any, mlflow_store: str) -> Any:
    from prefect.settings import PREFECT_API_URL

    api = OperatorApi(tmp_path, str(PREFECT_API_URL.value()))  # this session's Prefect API
    try:
        yield api
    finally:
        api.close()


def _code(answer: dict[str, Any]) -> str | None:
    errors = answer.get("errors") or []
    return errors[0]["extensions"]["code"] if errors else None


def _live_status(api: OperatorApi, deadline_seconds: float = 120) -> dict[str, Any]:
    """The rollout's status once its first step has evidence from both versions."""
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        status = api(STATUS, "vera", "viewer", m=NAME)["data"]["rolloutStatus"]
        if status and status["step"] == 1 and all(v["requests"] >= 50 for v in status["versions"]):
            return dict(status)
        time.sleep(0.5)
    raise AssertionError(f"no live rollout status within {deadline_seconds} s")


def test_an_operator_watches_a_rollout_live_and_aborts_it(
    make_version: Any, operator_api: OperatorApi
) -> None:
    from modelops.api import promote_model
    from modelops.registry.audit import read_events
    from modelops.rollouts.control import ABORTED_TAG, record_path

    make_version(NAME)
    promote_model(NAME, 1, "Production")
    make_version(NAME)  # v2, staged
    assert operator_api(STATUS, "vera", "viewer", m=NAME) == {"data": {"rolloutStatus": None}}
    nothing = operator_api(ABORT, "olivia", "operator", m=NAME, r="why not")
    assert _code(nothing) == "NOT_FOUND"
    bad = operator_api(START, "olivia", "operator", m=NAME, s=[50, 10])
    assert _code(bad) == "BAD_USER_INPUT" and "Steps must increase" in bad["errors"][0]["message"]
    ended: list[Any] = []
    # Long steps: the rollout would wait ten minutes for its first verdict; the operator ends it.
    slow = {**FAST, "min_step_seconds": 600, "max_step_seconds": 900}
    flow = threading.Thread(
        target=lambda: ended.append(rollout(NAME, steps=[20, 50], min_labels=50, **slow)),
        daemon=True,
    )
    try:
        with Traffic() as traffic:
            flow.start()
            status = _live_status(operator_api)
            assert status["mode"] == "canary" and status["steps"] == [20.0, 50.0]
            assert (status["stable"], status["candidate"], status["weight"]) == ("1", "2", 0.2)
            assert status["state"] == "running" and status["inTraffic"] is True
            assert [(v["version"], v["role"]) for v in status["versions"]] == [
                ("1", "stable"),
                ("2", "candidate"),
            ]
            assert status["verdict"] in ("pass", "inconclusive") and status["reasons"]
            assert status["flowRunId"] and status["serverUrl"].startswith("http://127.0.0.1:")
            for who, role in (("vera", "viewer"), ("mel", "ml_engineer")):
                refused = operator_api(ABORT, who, role, m=NAME, r="not mine to stop")
                assert _code(refused) == "FORBIDDEN"
            still = operator_api(STATUS, "vera", "viewer", m=NAME)["data"]["rolloutStatus"]
            assert still["inTraffic"] is True
            blank = operator_api(ABORT, "olivia", "operator", m=NAME, r=" ")
            assert _code(blank) == "BAD_USER_INPUT"
            answer = operator_api(ABORT, "olivia", "operator", m=NAME, r="p99 pages at 3 am")
            aborted_at = time.time()  # the answer comes after the split changed
            assert answer["data"]["abortRollout"] == {
                "state": "aborted",
                "inTraffic": False,
                "abortedBy": "api:olivia",
                "abortReason": "p99 pages at 3 am",
            }
            flow.join(timeout=180)
            time.sleep(1)  # the stable-only server answers the client too
        assert ended and ended[0].outcome == "aborted", ended
        assert ended[0].reason == "aborted by api:olivia: p99 pages at 3 am"
        assert traffic.failures == [] and {s for (s, _) in traffic.answers} == {200}
        # Out at once: nothing sent after the abort's answer came from the candidate.
        late = [v for (at, v) in traffic.sent if at > aborted_at]
        assert late and set(late) == {"1"}, Counter(late)
        state = _registry()
        assert state["aliases"].production == "1" and state["aliases"].staging == "2"
        mv = state["client"].get_model_version(NAME, "2")
        assert mv.tags[ABORTED_TAG] == ended[0].reason
        events = [e for e in read_events(mv) if e.action == "rollout-aborted"]
        assert len(events) == 1 and events[0].actor == "api:olivia"
        assert operator_api(STATUS, "vera", "viewer", m=NAME) == {"data": {"rolloutStatus": None}}
        assert not record_path(get_settings().home_dir, NAME).exists()
        server = running_server(get_settings().home_dir, NAME)
        assert server is not None and server.candidate is None and server.version == "1"
    finally:
        _stop_serving()


def test_a_killed_rollout_leaves_production_alone_and_the_next_one_can_start(
    make_version: Any, operator_api: OperatorApi, tmp_path: Any
) -> None:
    from modelops.api import promote_model

    make_version(NAME)
    promote_model(NAME, 1, "Production")
    make_version(NAME)  # v2, staged
    home = get_settings().home_dir
    try:
        _killed_then_next(home, operator_api, tmp_path)
    finally:
        _stop_serving()


def _killed_then_next(home: Any, operator_api: OperatorApi, tmp_path: Any) -> None:
    """`modelops rollout` killed mid-step; what production, the API and the next rollout see."""
    import os
    import signal
    import subprocess
    import sys

    from modelops.registry.audit import read_events
    from modelops.rollouts import control

    options = ["--steps", "20,50", "--poll-seconds", "0.5", "--min-step-seconds", "600"]
    with (tmp_path / "rollout.log").open("w") as log, Traffic() as traffic:
        command = subprocess.Popen(
            [sys.executable, "-m", "modelops", "--no-warm", "rollout", NAME, *options],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # the command and its temporary Prefect server: one group
        )
        try:
            _live_status(operator_api, deadline_seconds=240)
        finally:
            os.killpg(command.pid, signal.SIGKILL)  # the flow dies mid-step, nothing ends it
            command.wait(timeout=30)
        killed = time.time()
        # Within one lease nobody renews, the candidate is out, production answers alone.
        deadline = time.monotonic() + 90
        while (found := control.status(home, NAME)) is not None and found.state != "stopped":
            assert time.monotonic() < deadline, found
            time.sleep(0.5)
        assert found is not None and not found.in_traffic and "stopped renewing" in found.notes[0]
        stopped = time.time()
        time.sleep(2)
    assert traffic.failures == [] and {s for (s, _) in traffic.answers} == {200}
    assert {v for (at, v) in traffic.sent if at > stopped} == {"1"}
    assert stopped - killed <= 35  # the lease: three polls, at least 30 s
    shown = operator_api(STATUS, "vera", "viewer", m=NAME)["data"]["rolloutStatus"]
    assert shown["state"] == "stopped" and shown["inTraffic"] is False
    # No flow will end it: the operator's abort tags, audits and forgets it itself.
    answer = operator_api(ABORT, "olivia", "operator", m=NAME, r="the rollout run was killed")
    assert answer["data"]["abortRollout"]["state"] == "aborted", answer
    assert control.load(home, NAME) is None
    state = _registry()
    assert state["aliases"].production == "1" and state["aliases"].staging == "2"
    events = [
        e
        for e in read_events(state["client"].get_model_version(NAME, "2"))
        if e.action == "rollout-aborted"
    ]
    assert [e.actor for e in events] == ["api:olivia"]
    (event,) = prefect_events(ABORTED_EVENT, f"modelops.model.{NAME}.2", killed)  # by the API
    assert event.payload["reason"] == "aborted by api:olivia: the rollout run was killed"
    # The dead run's rollout lock runs out with its lease; then the next rollout starts, replaces
    # the stopped server, and (too little evidence in 2 s) ends inconclusive, production alone.
    refusals = 0
    deadline = time.monotonic() + 120
    while True:
        try:
            result = rollout(NAME, candidate="2", mode="shadow", **{**FAST, "max_step_seconds": 2})
            break
        except LockTimeout:
            refusals += 1
            assert time.monotonic() < deadline
            time.sleep(3)
    assert result.outcome == "inconclusive", result
    assert refusals >= 1  # the first try came while the dead run's lease still held
    assert _registry()["aliases"].production == "1"
    server = running_server(home, NAME)
    assert server is not None and server.candidate is None and server.version == "1"


def _paused_for_approval(flow: threading.Thread, ended: list[Any]) -> Any:
    """The rollout's record once every step passed and its run paused for a person."""
    from uuid import UUID

    from prefect import get_client

    from modelops.rollouts import control

    deadline = time.monotonic() + 180
    with get_client(sync_client=True) as prefect:
        while True:
            assert time.monotonic() < deadline and flow.is_alive(), ended
            record = control.load(get_settings().home_dir, NAME)
            if record is not None and record.awaiting_approval and record.flow_run_id:
                state = prefect.read_flow_run(UUID(record.flow_run_id)).state
                if state is not None and state.is_paused():
                    return record
            time.sleep(0.3)


def _rollout_needing_approval(make_version: Any) -> tuple[threading.Thread, list[Any]]:
    """v1 in production, an equal v2 staged, and a thread (not started) that rolls v2 out in
    one step with --require-approval, requested by api:alice; its result lands in the list."""
    from modelops.api import promote_model

    make_version(NAME)
    promote_model(NAME, 1, "Production")
    make_version(NAME)  # v2, staged: as good as v1
    ended: list[Any] = []
    options = {**FAST, "min_labels": 200, "margin": 0.15, "require_approval": True}
    flow = threading.Thread(
        target=lambda: ended.append(rollout(NAME, steps=[50], actor="api:alice", **options)),
        daemon=True,
    )
    return flow, ended


def test_an_abort_during_the_approval_wait_ends_the_paused_run_at_once(
    make_version: Any, operator_api: OperatorApi
) -> None:
    from modelops.registry.audit import read_events
    from modelops.rollouts.control import ABORTED_TAG

    api = operator_api
    flow, ended = _rollout_needing_approval(make_version)
    try:
        with Traffic():
            flow.start()
            _paused_for_approval(flow, ended)
            answer = api(ABORT, "olivia", "operator", m=NAME, r="the pager says no")
            asked = time.monotonic()
            assert answer["data"]["abortRollout"]["state"] == "aborted", answer
            flow.join(timeout=120)  # not the approval's timeout (a day)
            assert not flow.is_alive() and time.monotonic() - asked < 60
        assert ended and ended[0].outcome == "aborted", ended
        assert ended[0].reason == "aborted by api:olivia: the pager says no"
        state = _registry()
        assert state["aliases"].production == "1" and state["aliases"].staging == "2"
        mv = state["client"].get_model_version(NAME, "2")
        assert mv.tags[ABORTED_TAG] == ended[0].reason
        actions = [e.action for e in read_events(mv)]
        assert "promote" not in actions and actions.count("rollout-aborted") == 1
    finally:
        _stop_serving()


def test_with_approval_the_candidate_waits_out_of_traffic_for_a_second_person(
    make_version: Any,
) -> None:
    from uuid import UUID

    from prefect.flow_runs import resume_flow_run

    from modelops.registry.audit import read_events
    from modelops.rollouts import control

    home = get_settings().home_dir
    flow, ended = _rollout_needing_approval(make_version)
    try:
        with Traffic() as traffic:
            flow.start()
            record = _paused_for_approval(flow, ended)
            waiting = control.status(home, NAME)
            assert waiting is not None and waiting.state == "awaiting-approval"
            assert not waiting.in_traffic
            paused_at = time.time()
            time.sleep(2)
            assert _registry()["aliases"].production == "1"  # nothing moves while it waits
            resume_flow_run(
                UUID(record.flow_run_id),
                run_input={"approve": True, "comment": "live AUC holds", "approver": "api:bob"},
            )
            flow.join(timeout=180)
        assert ended and ended[0].outcome == "promoted", ended
        assert {v for (at, v) in traffic.sent if paused_at + 0.5 < at < paused_at + 2} == {"1"}
        state = _registry()
        assert state["aliases"].production == "2" and state["aliases"].previous_production == "1"
        promoted = [
            e
            for e in read_events(state["client"].get_model_version(NAME, "2"))
            if e.action == "promote"
        ]
        assert promoted[-1].reason.endswith("; approved by api:bob: live AUC holds")
        assert promoted[-1].actor == "api:alice"
    finally:
        _stop_serving()

"""Every door that moves an alias takes the model's one promotion lock: the promotion and
rollback flows, the Python API and the operator API (a real server process over HTTP). While
one writer holds it, a writer through any other door waits and moves nothing; once it is
released, the waiting writer goes ahead. Two writers through different doors at once leave
one consistent history (no abandoned record, previous-production the first champion)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from mlflow import MlflowClient
from support import wait_http

from flows.promotion import promotion
from flows.rollback import rollback
from modelops import ModelStage, promote_model
from modelops.processes import free_port
from modelops.registry import AliasState, locks, read_events

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]

NAME = "door test"
SECRET = "door-secret-0123456789abcdef0123456789"
HOLD_SECONDS = 2.0


def _client() -> MlflowClient:
    return MlflowClient()


@contextlib.contextmanager
def _held_by_another_writer(holder: Callable[[], Any]) -> Iterator[threading.Event]:
    """Take the lock through ``holder`` in another thread (another context: no re-entrance) and
    keep it until the returned event is set."""
    taken, release = threading.Event(), threading.Event()

    def hold() -> None:
        with holder():
            taken.set()
            release.wait(120)

    thread = threading.Thread(target=hold)
    thread.start()
    assert taken.wait(60), "the holder never got the lock"
    try:
        yield release
    finally:
        release.set()
        thread.join(60)


def _in_background(call: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = call()
        except Exception as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def _waits_for_the_lock(
    holder: Callable[[], Any],
    writer: Callable[[], Any],
    moved_to: str,
    action: str,
    meanwhile: Callable[[], None] = lambda: None,
) -> None:
    """``writer``, started while ``holder`` holds the lock, moves nothing until it is released:
    production is unchanged meanwhile, and the audit record of its move is dated after the
    release (a writer that took no lock and was merely slow would be dated before it)."""
    with _held_by_another_writer(holder) as release:
        thread, outcome = _in_background(writer)
        time.sleep(HOLD_SECONDS)
        assert thread.is_alive() and _production() != moved_to, "the writer did not wait"
        meanwhile()
        released = datetime.now(UTC)
        release.set()
    thread.join(120)
    assert "error" not in outcome, outcome
    assert _production() == moved_to
    moves = [
        e
        for e in read_events(_client().get_model_version(NAME, moved_to))
        if e.action == action and e.state == "completed"
    ]
    assert moves and moves[-1].when >= released, "the move was made while the lock was held"


def _flow_door() -> Any:
    from tasks.common import model_lock

    return model_lock("promotion", NAME)


def _core_door() -> Any:
    return locks.model_lock(_client(), NAME)


def _production() -> str | None:
    return AliasState.read(_client(), NAME).production


def test_the_python_api_waits_for_a_flow_and_a_flow_for_the_python_api(
    mlflow_store: str, make_version: Any, held_out_csv: Path
) -> None:
    make_version(NAME)  # v1, staged
    _waits_for_the_lock(
        _flow_door, lambda: promote_model(NAME, "staging", ModelStage.PRODUCTION), "1", "promote"
    )
    make_version(NAME)  # v2, staged
    _waits_for_the_lock(
        _core_door,
        lambda: promotion(model_name=NAME, held_out_path=str(held_out_csv)),
        "2",
        "promote",
    )
    _waits_for_the_lock(
        _core_door,
        lambda: rollback(model_name=NAME, reason="incident"),
        "1",
        "rollback",
    )


def test_a_flow_and_the_python_api_at_once_leave_one_consistent_history(
    mlflow_store: str, make_version: Any, held_out_csv: Path
) -> None:
    make_version(NAME)
    promote_model(NAME, "staging", ModelStage.PRODUCTION)  # v1 champion
    make_version(NAME)  # v2 staged
    make_version(NAME, stage=False)  # v3 unstaged: the Python API promotes it by override
    flow, flow_outcome = _in_background(
        lambda: promotion(model_name=NAME, version="2", held_out_path=str(held_out_csv))
    )
    api, api_outcome = _in_background(
        lambda: promote_model(NAME, 3, ModelStage.PRODUCTION, override_staging_reason="hotfix")
    )
    flow.join(180)
    api.join(180)
    assert "error" not in flow_outcome and "error" not in api_outcome
    client = _client()
    events = [e for v in ("1", "2", "3") for e in read_events(client.get_model_version(NAME, v))]
    promotes = [e for e in events if e.action == "promote"]
    assert sorted(str(e.to_version) for e in promotes) == ["1", "2", "3"]
    assert all(e.state == "completed" for e in promotes), [e.state for e in promotes]
    assert not any(e.state == "abandoned" or e.recovered for e in events)
    # One after the other: each promotion replaced the champion the other left.
    first, second = sorted((e for e in promotes if e.to_version != "1"), key=lambda e: e.when)
    assert first.from_version == "1" and second.from_version == first.to_version
    state = AliasState.read(client, NAME)
    assert (state.production, state.previous_production) == (second.to_version, first.to_version)
    assert client.search_registered_models(f"name = '{locks.lock_name('promotion', NAME)}'") == []


@pytest.fixture
def api_url(mlflow_store: str, tmp_path: Path) -> Iterator[str]:
    """The operator API as its own process, on this test's MLflow store."""
    env = {
        **os.environ,
        "MODELOPS_API_JWT_SECRET": SECRET,
        "MODELOPS_API_JWT_AUDIENCE": "modelops-api",
        "PREFECT_API_URL": "",
    }
    port = free_port()
    with (tmp_path / "api.log").open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "modelops", "api", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_http(f"http://127.0.0.1:{port}/healthz", proc)
            yield f"http://127.0.0.1:{port}"
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def _gql(url: str, query: str, **variables: Any) -> dict[str, Any]:
    bearer = jwt.encode(
        {"sub": "ops", "roles": ["ADMIN"], "aud": "modelops-api", "exp": int(time.time()) + 600},
        SECRET,
        algorithm="HS256",
    )
    response = httpx.post(
        f"{url}/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {bearer}"},
        timeout=120,
    )
    body = response.json()
    assert not body.get("errors"), body
    return body["data"]


PROMOTE = """mutation($m: String!) { promoteModelVersion(input: {modelName: $m,
  version: "2", stage: "Production", reason: "door test"}) { version } }"""
VERSIONS = """query($m: String!) { mlModelVersions(modelName: $m) { version } }"""
ROLLBACK = """mutation($m: String!) { rollbackModel(modelName: $m, reason: "incident") {
  version } }"""


def test_the_operator_api_waits_for_a_flow(
    api_url: str, mlflow_store: str, make_version: Any
) -> None:
    make_version(NAME)
    promote_model(NAME, "staging", ModelStage.PRODUCTION)
    make_version(NAME)  # v2 staged

    def still_answering() -> None:
        """A change waiting for the lock waits off the server's event loop: others are served."""
        assert httpx.get(f"{api_url}/healthz", timeout=3).status_code == 200
        assert _gql(api_url, VERSIONS, m=NAME)["mlModelVersions"]

    _waits_for_the_lock(
        _flow_door, lambda: _gql(api_url, PROMOTE, m=NAME), "2", "promote", still_answering
    )
    _waits_for_the_lock(
        _flow_door, lambda: _gql(api_url, ROLLBACK, m=NAME), "1", "rollback", still_answering
    )

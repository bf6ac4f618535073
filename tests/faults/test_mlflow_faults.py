"""A real `mlflow server`, killed at exact moments of a training run (found by watching its
traffic through a proxy) and restarted, or not: nothing is lost, nothing is registered twice,
and no MLflow run is left RUNNING."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mlflow_server import MlflowServer
from proxy import FaultProxy, http_response

pytestmark = [
    pytest.mark.slow,
    pytest.mark.faults,
    pytest.mark.usefixtures("prefect_harness"),
    # Timing-sensitive (a load to measure, servers killed on cue): `make test` runs these
    # alone, after the parallel part, so no other test shares the machine with them.
    pytest.mark.timing,
]

REGISTER = "/api/2.0/mlflow/model-versions/create"
ALIAS = "/api/2.0/mlflow/registered-models/alias"


@pytest.fixture
def server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[MlflowServer, FaultProxy]]:
    backend = MlflowServer(tmp_path)
    backend.start()
    proxy = FaultProxy(backend.port)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", proxy.url)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "faults")
    monkeypatch.setenv("MODELOPS_HOME", str(tmp_path / "home"))
    try:
        yield backend, proxy
    finally:
        proxy.close()
        backend.kill()


def _client(proxy: FaultProxy) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=proxy.url)


def _kill_on(server: MlflowServer, path: str, restart_after: float | None, when: str = "before"):
    """A proxy hook that kills the server at the first request to ``path``."""
    fired = threading.Event()

    def hook(method: str, seen: str) -> None:
        if seen.startswith(path) and not fired.is_set():
            fired.set()
            server.kill()
            if restart_after is not None:
                server.restart_after(restart_after)

    hook.fired = fired  # type: ignore[attr-defined]
    return hook


def _check_consistent(proxy: FaultProxy, versions: int = 1) -> None:
    """One version per training run, staged with its record, and no run left RUNNING."""
    from modelops.registry import read_events

    client = _client(proxy)
    found = client.search_model_versions("name = 'lead-scoring'")
    assert len(found) == versions, [v.version for v in found]
    by_run = {v.run_id for v in found}
    assert len(by_run) == len(found), "a training run registered twice"
    staged = client.get_model_version_by_alias("lead-scoring", "staging")
    assert [e.action for e in read_events(staged)][-1] == "set-staging"
    experiment = client.get_experiment_by_name("faults").experiment_id
    running = client.search_runs([experiment], "attributes.status = 'RUNNING'")
    assert running == [], [r.info.run_name for r in running]


@pytest.mark.parametrize(
    ("path", "when"),
    [(REGISTER, "before"), (REGISTER, "after"), (ALIAS, "before")],
    ids=["before registration", "during registration", "after registration"],
)
def test_a_server_restarted_within_the_retry_window_is_survived(
    server: tuple[MlflowServer, FaultProxy], path: str, when: str
) -> None:
    from flows.training import training

    backend, proxy = server
    hook = _kill_on(backend, path, restart_after=3.0)
    if when == "before":
        proxy.before = hook
    else:
        proxy.after = hook
    state = training(return_state=True)
    assert hook.fired.is_set(), "the fault was never injected"  # type: ignore[attr-defined]
    assert backend.starts == 2
    assert state.is_completed(), state.message
    _check_consistent(proxy)


def test_a_server_down_for_good_fails_clearly_and_the_next_run_closes_what_was_left(
    server: tuple[MlflowServer, FaultProxy],
) -> None:
    from flows.training import training
    from modelops.errors import TransientError, is_transient

    backend, proxy = server
    hook = _kill_on(backend, REGISTER, restart_after=None)
    proxy.before = hook
    started = time.monotonic()
    state = training(return_state=True)
    took = time.monotonic() - started
    assert state.is_failed()
    error = state.result(raise_on_failure=False)
    assert isinstance(error, TransientError) and is_transient(error)
    assert f"MLflow tracking server at {proxy.url}" in str(error)
    assert "did not answer" in str(error)
    assert took < 120, f"gave up only after {took:.0f} s"

    backend.start()  # back, much later: the next flow run of the experiment closes the runs
    proxy.before = None
    client = _client(proxy)
    experiment = client.get_experiment_by_name("faults").experiment_id
    left = client.search_runs([experiment], "attributes.status = 'RUNNING'")
    assert left, "the killed run's MLflow runs should still be RUNNING before the next run"
    assert client.search_registered_models() == [] or not client.search_model_versions(
        "name = 'lead-scoring'"
    )
    assert training(return_state=True).is_completed()
    for run in left:
        after = client.get_run(run.info.run_id)
        assert after.info.status == "FAILED"
        assert after.data.tags["modelops.repaired"].startswith("marked FAILED: its Prefect flow")
    _check_consistent(proxy)


def test_a_retried_flow_run_reuses_the_version_it_registered(
    server: tuple[MlflowServer, FaultProxy],
) -> None:
    from flows.training import training

    _, proxy = server
    # The staging step fails through all its retries (4 HTTP tries a call x 4 task attempts).
    failures = {"left": 16}

    def alias_unavailable(method: str, path: str) -> bytes | None:
        if method == "POST" and path.startswith(ALIAS) and failures["left"]:
            failures["left"] -= 1
            return http_response(503, b'{"error_code": "TEMPORARILY_UNAVAILABLE"}')
        return None

    proxy.before = alias_unavailable
    state = training.with_options(retries=1, retry_delay_seconds=0)(return_state=True)
    assert state.is_completed(), state.message
    assert failures["left"] == 0
    _check_consistent(proxy, versions=1)  # the retry staged the version the first try made
    client = _client(proxy)
    (version,) = client.search_model_versions("name = 'lead-scoring'")
    runs = client.search_runs(
        [client.get_experiment_by_name("faults").experiment_id],
        "tags.`modelops.reused_version` = '1'",
    )
    assert len(runs) == 1 and version.tags["prefect.flow_run_id"] == str(
        state.state_details.flow_run_id
    )

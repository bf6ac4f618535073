"""The local model server under faults: processes killed at each point of a blue/green swap,
a worker killed under load, MLflow unreachable while telemetry is due. Whatever happens, the
model keeps being served by a version someone chose, no server runs unrecorded, and what could
not be logged is counted."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from mlflow_server import MlflowServer
from proxy import FaultProxy
from support import wait_http

from modelops.errors import DeploymentFailed
from modelops.processes import free_port
from modelops.serving.local import LocalServer, pending_dir, running_server
from modelops.settings import get_settings

pytestmark = [
    pytest.mark.slow,
    pytest.mark.faults,
    # Timing-sensitive (a load to measure, servers killed on cue): `make test` runs these
    # alone, after the parallel part, so no other test shares the machine with them.
    pytest.mark.timing,
]

MODEL = "lead-scoring"


def _rows(n: int = 2) -> dict[str, Any]:
    from modelops.sample import make_leads

    frame = make_leads(n, seed=3).drop(columns="won")
    return {"dataframe_split": json.loads(frame.to_json(orient="split", index=False))}


def _answers(url: str) -> str:
    """The version the server at ``url`` answers with (one real prediction)."""
    r = httpx.post(f"{url}/invocations", json=_rows(), timeout=30)
    assert r.status_code == 200, r.text
    return str(r.json()["model_version"])


def _gone(url: str) -> bool:
    try:
        httpx.get(f"{url}/ping", timeout=2)
    except httpx.HTTPError:
        return True
    return False


def _pending(home: Path) -> list[LocalServer]:
    return [
        LocalServer(**json.loads(p.read_text())) for p in pending_dir(home, MODEL).glob("*.json")
    ]


@contextlib.contextmanager
def when_server_starts(
    home: Path, version: str, act: Callable[[LocalServer], None]
) -> Iterator[list[LocalServer]]:
    """Call ``act`` as soon as a server of ``version`` is recorded as starting (the moment a
    blue/green swap is under way); yields the servers it acted on."""
    seen: list[LocalServer] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set() and not seen:
            for server in _pending(home):
                if server.version == version:
                    act(server)
                    seen.append(server)
                    return
            time.sleep(0.02)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        stop.set()
        thread.join(timeout=5)


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


@pytest.fixture
def two_versions(make_version: Any) -> Iterator[Path]:
    """Versions 1 (in production) and 2 of the lead model; every local server stopped after."""
    from modelops import promote_model
    from modelops.cli import main as cli

    make_version()
    promote_model(MODEL, 1, "Production")
    make_version()
    home = get_settings().home_dir
    try:
        yield home
    finally:
        cli(["stop", MODEL])
        for server in _pending(home):
            _kill(server.pid)


@pytest.mark.usefixtures("prefect_harness")
def test_the_old_server_killed_during_the_swap_the_new_one_takes_over(two_versions: Path) -> None:
    from flows.deployment import deployment

    home = two_versions
    first = deployment(version="1", workers=1, timeout_seconds=120)
    with when_server_starts(home, "2", lambda _: _kill(first.pid)) as acted:
        second = deployment(version="2", workers=1, timeout_seconds=120)
    assert acted, "the fault was never injected"
    assert second.version == "2" and second.previous_version == "1"
    assert _answers(second.url) == "2" and _gone(first.url)
    current = running_server(home, MODEL)
    assert current is not None and current.pid == second.pid
    assert _pending(home) == []


@pytest.mark.usefixtures("prefect_harness")
def test_a_new_server_that_crashes_before_answering_leaves_the_old_one_serving(
    two_versions: Path,
) -> None:
    from flows.deployment import deployment
    from modelops.tracking import get_client

    home = two_versions
    first = deployment(version="1", workers=1, timeout_seconds=120)
    with (
        when_server_starts(home, "2", lambda s: _kill(s.pid)) as acted,
        pytest.raises(
            DeploymentFailed,
            match=r"v2 exited with -9 \(killed by SIGKILL\) before it answered .*Version 1 keeps serving",
        ),
    ):
        deployment(version="2", workers=1, timeout_seconds=120)
    assert acted and _gone(acted[0].url)
    assert _answers(first.url) == "1"
    current = running_server(home, MODEL)
    assert current is not None and current.pid == first.pid
    assert _pending(home) == []
    client = get_client(get_settings().resolved_tracking_uri)
    assert "modelops.deployed.local" in client.get_model_version(MODEL, "1").tags
    assert "modelops.deployed.local" not in client.get_model_version(MODEL, "2").tags


DEPLOYER = """
import sys
from pathlib import Path
from modelops.serving import local, scoring
from modelops.settings import get_settings
from modelops.tracking import get_client
from modelops.types import ServingTarget
settings = get_settings()
client = get_client(settings.resolved_tracking_uri)
version = client.get_model_version(sys.argv[1], sys.argv[2])
payload, rows, flavors = scoring.example_and_flavors(client, sys.argv[1], sys.argv[2])
target = ServingTarget(name=sys.argv[1], version=sys.argv[2], run_id=version.run_id,
                       payload=payload, rows=rows, flavors=flavors)
local.serve_locally(settings.home_dir, settings.resolved_tracking_uri, target, 1, 120)
"""


def test_a_deploy_killed_mid_swap_leaves_no_server_unrecorded(two_versions: Path) -> None:
    """The deploying process dies while the new server starts: the old version keeps serving,
    the half-started server is recorded as pending, and the next deploy (or `stop`) stops it."""
    from modelops.cli import main as cli
    from modelops.serving.local import serve_locally
    from modelops.serving.scoring import example_and_flavors
    from modelops.tracking import get_client
    from modelops.types import ServingTarget

    home = two_versions
    settings = get_settings()

    def deploy_in_process(version: str) -> LocalServer:
        client = get_client(get_settings().resolved_tracking_uri)
        payload, rows, flavors = example_and_flavors(client, MODEL, version)
        target = ServingTarget(
            name=MODEL,
            version=version,
            payload=payload,
            rows=rows,
            flavors=flavors,
            run_id=client.get_model_version(MODEL, version).run_id,
        )
        serve_locally(home, settings.resolved_tracking_uri, target, 1, 120)
        server = running_server(home, MODEL)
        assert server is not None
        return server

    first = deploy_in_process("1")
    deployer = subprocess.Popen([sys.executable, "-c", DEPLOYER, MODEL, "2"])
    try:
        with when_server_starts(home, "2", lambda _: deployer.kill()) as acted:
            deployer.wait(timeout=120)
    finally:
        if deployer.poll() is None:
            deployer.kill()
    assert acted and deployer.returncode == -signal.SIGKILL
    orphan = acted[0]
    wait_http(f"{orphan.url}/ping", timeout=120)  # it comes up, with nobody to record it...
    assert _answers(first.url) == "1" and running_server(home, MODEL).pid == first.pid  # type: ignore[union-attr]
    assert [s.pid for s in _pending(home)] == [orphan.pid]  # ...but it is recorded as pending

    again = deploy_in_process("2")  # the next deploy stops it before starting its own
    assert _gone(orphan.url) and again.pid != orphan.pid and _answers(again.url) == "2"
    assert _gone(first.url) and _pending(home) == []
    assert cli(["stop", MODEL]) == 0
    assert _gone(again.url) and running_server(home, MODEL) is None


def test_a_worker_killed_under_load_is_replaced_and_the_server_keeps_answering(
    make_version: Any,
) -> None:
    import psutil

    make_version()
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "modelops",
            "serve",
            MODEL,
            "--version",
            "1",
            "--port",
            str(port),
            "--workers",
            "2",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/ping", proc, timeout=120)

        def workers() -> list[int]:
            found = []
            for child in psutil.Process(proc.pid).children(recursive=True):
                with contextlib.suppress(psutil.Error):  # a killed worker: a zombie until reaped
                    if (
                        child.status() != psutil.STATUS_ZOMBIE
                        and "resource_tracker" not in " ".join(child.cmdline())
                    ):
                        found.append(child.pid)
            return found

        deadline = time.monotonic() + 30
        while len(workers()) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        before = workers()
        assert len(before) == 2, before
        os.kill(before[0], signal.SIGKILL)
        # Requests keep being answered by the other worker while the killed one is replaced.
        answered, failed = 0, 0
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                answered += _answers(url) == "1"
            except httpx.HTTPError:
                failed += 1  # a request in flight on the killed worker's connection
            after = workers()
            if len(after) == 2 and before[0] not in after and answered >= 20:
                break
        assert before[0] not in after and len(after) == 2, (before, after)
        assert answered >= 20 and failed <= 2
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def test_telemetry_with_mlflow_down_serves_every_request_and_counts_what_was_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, version_factory: Any
) -> None:
    from mlflow import MlflowClient

    backend = MlflowServer(tmp_path)
    backend.start()
    proxy = FaultProxy(backend.port)
    env = {
        "MLFLOW_TRACKING_URI": proxy.url,
        "MLFLOW_EXPERIMENT_NAME": "telemetry-faults",
        "MODELOPS_HOME": str(tmp_path / "home"),
        "MODELOPS_SERVE_FLUSH_SECONDS": "0.3",
        "MODELOPS_SERVE_MAX_BUFFERED": "20",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    port = free_port()
    proc = None
    try:
        version_factory()
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "modelops",
                "serve",
                MODEL,
                "--version",
                "1",
                "--port",
                str(port),
            ],
            env=dict(os.environ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/ping", proc, timeout=120)
        deadline = time.monotonic() + 30
        while httpx.get(f"{url}/version").json()["telemetry"]["mlflow_run_id"] is None:
            assert time.monotonic() < deadline, "the inference run was never opened"
            time.sleep(0.2)
        sent = 0
        for _ in range(5):  # logged normally
            sent += _answers(url) == "1"
        time.sleep(1)

        proxy.refuse()  # MLflow unreachable: "connection refused"
        for _ in range(100):
            sent += _answers(url) == "1"  # every request is still answered
        time.sleep(1.5)  # a few flushes fail; the buffer keeps the newest 20
        about = httpx.get(f"{url}/version").json()["telemetry"]
        assert about["dropped_requests"] >= 80, about
        metrics = httpx.get(f"{url}/metrics").text
        assert f'modelops_telemetry_dropped_total{{model="{MODEL}",version="1"}}' in metrics

        proxy.accept()  # back: what was kept is logged, what was lost is reported
        for _ in range(5):
            sent += _answers(url) == "1"
        client = MlflowClient(tracking_uri=f"http://127.0.0.1:{backend.port}")
        run_id = about["mlflow_run_id"]
        deadline = time.monotonic() + 30
        while True:
            logged = sum(m.value for m in client.get_metric_history(run_id, "requests"))
            dropped = client.get_run(run_id).data.metrics.get("telemetry.dropped_requests", 0)
            if logged + dropped == sent or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert sent == 110
        assert logged + dropped == sent, (logged, dropped)  # every request: logged or counted
        assert dropped == httpx.get(f"{url}/version").json()["telemetry"]["dropped_requests"]
        assert 80 <= dropped <= 100
    finally:
        if proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        proxy.close()
        backend.kill()

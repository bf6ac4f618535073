"""Helpers shared by the benchmarks: a real Prefect server, per-task timings."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

QUIET = {
    "DO_NOT_TRACK": "true",
    "MLFLOW_ENABLE_TELEMETRY": "false",
    "GX_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_LOGGING_LEVEL": "WARNING",
}


def quiet_environment() -> None:
    """No telemetry, no INFO chatter (existing settings win)."""
    for key, value in QUIET.items():
        os.environ.setdefault(key, value)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def prefect_server(home: Path) -> Iterator[str]:
    """A real `prefect server` on loopback for the run (or the one PREFECT_API_URL names)."""
    if os.environ.get("PREFECT_API_URL"):
        yield os.environ["PREFECT_API_URL"]
        return
    import httpx

    port = _free_port()
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_API_URL": ""}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "prefect",
            "server",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/api"
    started = time.perf_counter()
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError("prefect server exited during start-up")
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.perf_counter() - started > 180:
                raise RuntimeError("prefect server did not start within 180 s")
            time.sleep(0.5)
        print(f"prefect server up on {url} in {time.perf_counter() - started:.1f}s")
        os.environ["PREFECT_API_URL"] = url
        yield url
    finally:
        os.environ.pop("PREFECT_API_URL", None)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 15)
        proc.wait(timeout=30)


def task_breakdown(flow_run_id: object) -> list[tuple[str, float]]:
    """Each task run's wall time, in the order they started, from the Prefect API."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )
    rows = [
        (r.name.rsplit("-", 1)[0], (r.end_time - r.start_time).total_seconds(), r.start_time)
        for r in runs
        if r.start_time and r.end_time
    ]
    return [(n, d) for n, d, _ in sorted(rows, key=lambda x: x[2])]


def empty_flow_seconds(repeat: int = 3) -> float:
    """Best wall time of a flow with no tasks: Prefect's fixed cost per flow run here."""
    from prefect import flow

    @flow(name="bench-empty")
    def empty() -> None:
        return None

    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        empty()
        times.append(time.perf_counter() - started)
    return min(times)

"""The ``local`` target: a model version served on 127.0.0.1 by a background process.

The process id and URL are kept in ``$MODELOPS_HOME/serving/<model>.json`` so the server can be
found and stopped later (``modelops stop <model>``). Re-deploying is blue/green: the old server
stops only after the new one answered its smoke test.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from modelops.errors import DeploymentFailed
from modelops.naming import local_server_key
from modelops.registry.versions import model_uri
from modelops.serving.scoring import score_http
from modelops.types import DeploymentRecord, ServingTarget


@dataclass
class LocalServer:
    """A scoring server this machine runs for one model."""

    model_name: str
    version: str
    pid: int
    port: int
    url: str
    log: str

    def record_path(self, home: Path) -> Path:
        """Where this server is recorded."""
        return server_record(home, self.model_name)


def server_record(home: Path, model_name: str) -> Path:
    """The record file of the local server of ``model_name``."""
    return home / "serving" / f"{local_server_key(model_name)}.json"


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def running_server(home: Path, model_name: str) -> LocalServer | None:
    """The recorded local server of ``model_name`` if its process is still alive."""
    path = server_record(home, model_name)
    if not path.is_file():
        return None
    server = LocalServer(**json.loads(path.read_text()))
    if server.model_name != model_name:  # file names are unique per model; never stop another's
        return None
    return server if _alive(server.pid) else None


def start_local_server(
    home: Path, tracking_uri: str, model_name: str, version: str,
    workers: int = 2, timeout: float = 120, env_manager: str = "local",
) -> LocalServer:  # fmt: skip
    """Start ``mlflow models serve`` for a version on a free loopback port and wait for /ping.

    Raises:
        DeploymentFailed: the server exited or did not become healthy in time (it is stopped).
    """
    import httpx

    port = free_port()
    folder = home / "serving"
    folder.mkdir(parents=True, exist_ok=True)
    log_path = folder / f"{local_server_key(model_name)}-v{version}-{port}.log"
    # MLflow execs `uvicorn` by name: the interpreter's own bin folder must come first on PATH
    # even when the virtual environment is not activated.
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri,
           "PATH": os.pathsep.join([bin_dir, os.environ.get("PATH", "")])}  # fmt: skip
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "models", "serve", "-m",
             model_uri(model_name, version), "--host", "127.0.0.1", "--port", str(port),
             "--workers", str(workers), "--env-manager", env_manager],
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )  # fmt: skip
    server = LocalServer(model_name, str(version), proc.pid, port,
                         f"http://127.0.0.1:{port}", str(log_path))  # fmt: skip
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace")[-1500:]
            raise DeploymentFailed(
                f"The model server for {model_name} v{version} exited with {proc.returncode}:\n"
                f"{tail}"
            )
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{server.url}/ping", timeout=2).status_code == 200:
                return server
        time.sleep(0.5)
    stop_server(server)
    raise DeploymentFailed(
        f"The model server for {model_name} v{version} was not healthy after {timeout:.0f}s "
        f"(log: {log_path})."
    )


def record_server(home: Path, server: LocalServer) -> None:
    """Remember ``server`` as the model's local server."""
    path = server.record_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(server), indent=2))


def stop_server(server: LocalServer, wait: float = 15) -> None:
    """Stop a server (its whole process group) and wait for it to exit."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(server.pid, signal.SIGTERM)
    deadline = time.monotonic() + wait
    while _alive(server.pid) and time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(server.pid, os.WNOHANG)
        time.sleep(0.2)
    if _alive(server.pid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(server.pid, signal.SIGKILL)


def stop_local(home: Path, model_name: str) -> LocalServer | None:
    """Stop the recorded local server of ``model_name``; returns what was stopped."""
    server = running_server(home, model_name)
    path = server_record(home, model_name)
    if server is not None:
        stop_server(server)
    path.unlink(missing_ok=True)
    return server


def serve_locally(
    home: Path, tracking_uri: str, target: ServingTarget, workers: int, timeout: float
) -> tuple[DeploymentRecord, dict[str, float]]:
    """Serve a version on 127.0.0.1, blue/green: the old local server of the model stops only
    after the new one answered the smoke test.

    Returns:
        The deployment record, and timings (``rollout_seconds``, ``smoke_seconds``).

    Raises:
        DeploymentFailed: the new server did not come up or failed its smoke test; it was
            stopped and the old one (if any) keeps serving.
    """
    old = running_server(home, target.name)
    started = time.monotonic()
    new = start_local_server(home, tracking_uri, target.name, target.version, workers=workers,
                             timeout=timeout)  # fmt: skip
    rollout_seconds = time.monotonic() - started
    try:
        smoke_started = time.monotonic()
        score_http(new.url, target.payload, target.rows)
        smoke_seconds = time.monotonic() - smoke_started
    except DeploymentFailed as exc:
        stop_server(new)
        kept = f"version {old.version} keeps serving at {old.url}" if old else "nothing was serving"
        raise DeploymentFailed(f"{exc} The new server was stopped; {kept}.") from exc
    if old is not None and old.pid != new.pid:
        stop_server(old)
    record_server(home, new)
    record = DeploymentRecord(
        target="local", version=new.version, url=new.url,
        previous_version=old.version if old else None, pid=new.pid, log=new.log,
        stop=f"modelops stop {target.name}",
    )  # fmt: skip
    return record, {"rollout_seconds": rollout_seconds, "smoke_seconds": smoke_seconds}

"""The ``local`` target: a model version served on 127.0.0.1 by a background process.

The serving server's process id and URL are kept in ``$MODELOPS_HOME/serving/<model>.json`` so
it can be found and stopped later (``modelops stop <model>``). Re-deploying is blue/green: the
old server stops only after the new one answered its smoke test.

A swap can be cut short (the deploying process killed, the machine rebooted): so that no server
is ever left running unrecorded, every server started is first recorded as *pending*
(``serving/pending/<model>/<pid>.json``, with the deploying process's id), and the old one is
moved back to pending before the new one becomes the model's server. The next deploy or
``stop`` of the model stops every pending server whose deploying process is gone. A record
names its process by id *and* start time, so a reused process id is never stopped.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from modelops.errors import DeploymentFailed
from modelops.naming import local_server_key
from modelops.processes import free_port, same_process, start_time, write_record
from modelops.registry.versions import model_uri
from modelops.serving.scoring import score_http
from modelops.serving.traffic import Rollout
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
    started: float | None = None  # the process's start time: tells it from a reused pid
    deployer: int | None = None  # the process that started it (pending records)
    candidate: str | None = None  # a rollout's candidate served beside ``version``

    def record_path(self, home: Path) -> Path:
        """Where this server is recorded."""
        return server_record(home, self.model_name)

    def alive(self) -> bool:
        """Whether this server's process still runs (the same process, not a reused id)."""
        return same_process(self.pid, self.started)


def server_record(home: Path, model_name: str) -> Path:
    """The record file of the local server of ``model_name``."""
    return home / "serving" / f"{local_server_key(model_name)}.json"


def _write(path: Path, server: LocalServer) -> None:
    write_record(path, asdict(server))


def _read(path: Path, model_name: str) -> LocalServer | None:
    try:
        server = LocalServer(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None
    # File names are unique per model; still, never act on another model's server.
    return server if server.model_name == model_name else None


def running_server(home: Path, model_name: str) -> LocalServer | None:
    """The recorded local server of ``model_name`` if its process is still alive."""
    server = _read(server_record(home, model_name), model_name)
    return server if server is not None and server.alive() else None


def pending_dir(home: Path, model_name: str) -> Path:
    """Where servers of ``model_name`` that are not (or no longer) its server are recorded."""
    return home / "serving" / "pending" / local_server_key(model_name)


def _mark_pending(home: Path, server: LocalServer) -> Path:
    path = pending_dir(home, server.model_name) / f"{server.pid}.json"
    _write(path, LocalServer(**{**asdict(server), "deployer": os.getpid()}))
    return path


def sweep_pending(home: Path, model_name: str) -> list[LocalServer]:
    """Stop the servers of ``model_name`` that a cut-short deploy left behind (pending, and the
    process that started them is gone); returns what was stopped."""
    current = running_server(home, model_name)
    stopped = []
    for path in sorted(pending_dir(home, model_name).glob("*.json")):
        server = _read(path, model_name)
        if server is None:
            continue
        if (
            server.deployer is not None
            and server.deployer != os.getpid()
            and start_time(server.deployer) is not None
        ):
            continue  # a deploy in progress in another process owns it
        if current is not None and server.pid == current.pid:
            path.unlink(missing_ok=True)
            continue
        if server.alive():
            stop_server(server)
            stopped.append(server)
        path.unlink(missing_ok=True)
    return stopped


def start_local_server(
    home: Path,
    tracking_uri: str,
    model_name: str,
    version: str,
    workers: int = 2,
    timeout: float = 120,
    env_manager: str = "local",
    server: str = "modelops",
    rollout: Rollout | None = None,
) -> LocalServer:
    """Start a server for a version on a free loopback port and wait for /ping: ``modelops
    serve`` (the default), or ``mlflow models serve``.

    Raises:
        DeploymentFailed: the server exited or did not become healthy in time (it is stopped).
    """
    port = free_port()
    folder = home / "serving"
    folder.mkdir(parents=True, exist_ok=True)
    log_path = folder / f"{local_server_key(model_name)}-v{version}-{port}.log"
    # MLflow execs `uvicorn` by name: the interpreter's own bin folder must come first on PATH
    # even when the virtual environment is not activated.
    bin_dir = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": tracking_uri,
        "MODELOPS_HOME": str(home),
        "PATH": os.pathsep.join([bin_dir, os.environ.get("PATH", "")]),
    }
    # Both servers take the same listening options (loopback only: a local server is for
    # this machine).
    listen = ["--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    if server == "modelops":
        serve = ["modelops", "serve", model_name, "--version", str(version), *listen]
        if rollout is not None:
            serve += rollout.serve_options()
            env.update(rollout.environment())
    else:
        model = model_uri(model_name, version)
        serve = ["mlflow", "models", "serve", "-m", model, *listen, "--env-manager", env_manager]
    command = [sys.executable, "-m", *serve]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    started = LocalServer(
        model_name,
        str(version),
        proc.pid,
        port,
        f"http://127.0.0.1:{port}",
        str(log_path),
        started=start_time(proc.pid),
        candidate=rollout.candidate if rollout is not None else None,
    )
    pending = _mark_pending(home, started)
    try:
        _wait_until_healthy(proc, started, timeout)
    except DeploymentFailed:
        stop_server(started)
        pending.unlink(missing_ok=True)
        raise
    return started


def _wait_until_healthy(proc: subprocess.Popen, server: LocalServer, timeout: float) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            code = proc.returncode
            how = f" (killed by {signal.Signals(-code).name})" if code < 0 else ""
            tail = Path(server.log).read_text(errors="replace")[-1500:].strip()
            raise DeploymentFailed(
                f"The model server for {server.model_name} v{server.version} exited with "
                f"{code}{how} before it answered (log: {server.log})."
                + (f"\n{tail}" if tail else "")
            )
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{server.url}/ping", timeout=2).status_code == 200:
                return
        time.sleep(0.5)
    raise DeploymentFailed(
        f"The model server for {server.model_name} v{server.version} was not healthy after "
        f"{timeout:.0f}s (log: {server.log})."
    )


def record_server(home: Path, server: LocalServer) -> None:
    """Make ``server`` the model's local server (its pending record goes)."""
    _write(server.record_path(home), LocalServer(**{**asdict(server), "deployer": None}))
    (pending_dir(home, server.model_name) / f"{server.pid}.json").unlink(missing_ok=True)


def stop_server(server: LocalServer, wait: float = 15) -> None:
    """Stop a server (its whole process group) and wait for it to exit; a server whose process
    is gone (or whose id now belongs to another process) is left alone."""
    if not server.alive():
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(server.pid, signal.SIGTERM)
    deadline = time.monotonic() + wait
    while start_time(server.pid) is not None and time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(server.pid, os.WNOHANG)
        time.sleep(0.2)
    if start_time(server.pid) is not None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(server.pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(server.pid, os.WNOHANG)


def stop_local(home: Path, model_name: str) -> LocalServer | None:
    """Stop the recorded local server of ``model_name`` (and any a cut-short deploy left
    behind); returns the model's server, if one was running."""
    server = running_server(home, model_name)
    if server is not None:
        stop_server(server)
    server_record(home, model_name).unlink(missing_ok=True)
    sweep_pending(home, model_name)
    return server


def serve_locally(
    home: Path,
    tracking_uri: str,
    target: ServingTarget,
    workers: int,
    timeout: float,
    server: str = "modelops",
    rollout: Rollout | None = None,
) -> tuple[DeploymentRecord, dict[str, float]]:
    """Serve a version on 127.0.0.1 (with a rollout's candidate beside it, if given),
    blue/green: the old local server of the model stops only after the new one answered the
    smoke test.

    Returns:
        The deployment record, and timings (``rollout_seconds``, ``smoke_seconds``).

    Raises:
        DeploymentFailed: the new server did not come up or failed its smoke test; it was
            stopped and the old one (if any) keeps serving.
    """
    sweep_pending(home, target.name)
    old = running_server(home, target.name)
    kept = f"version {old.version} keeps serving at {old.url}" if old else "nothing was serving"
    started = time.monotonic()
    try:
        new = start_local_server(
            home,
            tracking_uri,
            target.name,
            target.version,
            workers=workers,
            timeout=timeout,
            server=server,
            rollout=rollout,
        )
    except DeploymentFailed as exc:
        first, _, rest = str(exc).partition("\n")
        raise DeploymentFailed(f"{first} {kept[0].upper()}{kept[1:]}.\n{rest}".strip()) from exc
    rollout_seconds = time.monotonic() - started
    try:
        smoke_started = time.monotonic()
        score_http(new.url, target.payload, target.rows)
        smoke_seconds = time.monotonic() - smoke_started
    except DeploymentFailed as exc:
        stop_server(new)
        (pending_dir(home, target.name) / f"{new.pid}.json").unlink(missing_ok=True)
        raise DeploymentFailed(f"{exc} The new server was stopped; {kept}.") from exc
    # Swap: the old server is recorded as pending before the new one replaces it, so that at
    # every moment each running server is in some record.
    retiring = _mark_pending(home, old) if old is not None and old.pid != new.pid else None
    record_server(home, new)
    if old is not None and retiring is not None:
        stop_server(old)
        retiring.unlink(missing_ok=True)
    record = DeploymentRecord(
        target="local",
        version=new.version,
        url=new.url,
        previous_version=old.version if old else None,
        pid=new.pid,
        log=new.log,
        stop=f"modelops stop {target.name}",
    )
    return record, {"rollout_seconds": rollout_seconds, "smoke_seconds": smoke_seconds}

"""Model versions as scoring servers: the input example, and the `local` target.

The local target runs MLflow's own scoring server (``mlflow models serve``, the FastAPI one) on
127.0.0.1 in the background; its process id and URL are kept in
``$MODELOPS_HOME/serving/<model>.json`` so it can be found and stopped later
(``python -m modelops stop <model>``).
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
from typing import TYPE_CHECKING, Any

from modelops.errors import ConfigurationError, DeploymentFailed

if TYPE_CHECKING:
    from mlflow import MlflowClient


def example_and_flavors(
    client: MlflowClient, name: str, version: str
) -> tuple[dict, int, list[str]]:
    """The scoring request built from the input example, its rows, and the model's flavours.

    Raises:
        ConfigurationError: the version was logged without an input example.
    """
    import mlflow.artifacts
    from mlflow.models import Model

    from modelops.tracking import use_tracking_uri

    with use_tracking_uri(client.tracking_uri):
        local = mlflow.artifacts.download_artifacts(f"models:/{name}/{version}/MLmodel")
        folder = str(Path(local).parent)
        model = Model.load(local)
        info = model.saved_input_example_info
        if info and not (Path(folder) / info["artifact_path"]).exists():  # remote store
            mlflow.artifacts.download_artifacts(
                f"models:/{name}/{version}/{info['artifact_path']}",
                dst_path=folder,
            )
    example = model.load_input_example(folder)
    if example is None:
        raise ConfigurationError(
            f"Version {version} of {name!r} has no input example, so it cannot be smoke-tested. "
            f"Log models with input_example=... (the training flows do)."
        )
    flavors = sorted(model.flavors)
    if hasattr(example, "to_json"):
        # to_json writes missing values as null; json.dumps would write NaN, which is not JSON
        # and which a strict scoring server (or the API server's proxy) rejects.
        split = json.loads(example.to_json(orient="split", index=False))
        return {"dataframe_split": split}, len(example), flavors
    return {"inputs": list(example)}, len(example), flavors


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
    from modelops.k8s import dns_label

    return home / "serving" / f"{dns_label(model_name)}.json"


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
    from modelops.k8s import dns_label

    log_path = folder / f"{dns_label(model_name)}-v{version}-{port}.log"
    # MLflow execs `uvicorn` by name: the interpreter's own bin folder must come first on PATH
    # even when the virtual environment is not activated.
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri,
           "PATH": os.pathsep.join([bin_dir, os.environ.get("PATH", "")])}  # fmt: skip
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "models", "serve", "-m",
             f"models:/{model_name}/{version}", "--host", "127.0.0.1", "--port", str(port),
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


def score_http(url: str, payload: dict[str, Any], rows: int, timeout: float = 30) -> list[Any]:
    """POST a scoring request to ``url/invocations`` and check there is one prediction per row.

    Raises:
        DeploymentFailed: the request failed or the answer has the wrong shape.
    """
    import httpx

    from modelops.k8s import check_predictions

    try:
        response = httpx.post(f"{url}/invocations", json=payload, timeout=timeout)
    except httpx.HTTPError as exc:
        raise DeploymentFailed(f"Smoke test request to {url} failed: {exc}") from exc
    if response.status_code != 200:
        raise DeploymentFailed(
            f"Smoke test got HTTP {response.status_code} from {url}: {response.text[:500]}"
        )
    return check_predictions(response.json(), rows)

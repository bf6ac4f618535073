"""Test support shared by tests and benchmarks (importing it changes no environment)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Self

from modelops.serving.local import free_port

ROOT = Path(__file__).resolve().parents[1]


def register_fixture_version(
    name: str = "lead-scoring", good: bool = True, stage: bool = True, estimator: Any = None
) -> str:
    """Register a real sklearn model version fast (no flow) in the store the environment names,
    with held-out rows beside it (as the training flow stores them).

    A "bad" model is trained on shuffled labels: a challenger that must lose.
    """
    import numpy as np

    from modelops import registry
    from modelops.data import resolve_schema
    from modelops.model_io import log_sklearn_model
    from modelops.sample import make_leads
    from modelops.settings import get_settings
    from modelops.tracking import child_run, start_parent_run
    from modelops.training import EstimatorConfig, build_pipeline, fit_pipeline, split_dataset

    df = make_leads(3000, seed=11)
    if not good:
        df["won"] = np.random.default_rng(0).permutation(df["won"].to_numpy())
    schema = resolve_schema(df, "won", str(ROOT / "modelops/sample_data/leads.csv"))
    split = split_dataset(df, schema)
    model = fit_pipeline(build_pipeline(schema, estimator or EstimatorConfig()), split)
    ctx = start_parent_run(get_settings(), "fixture")
    with child_run(ctx, "fit_model") as run_id:
        info = log_sklearn_model(
            ctx,
            run_id,
            model,
            split.X_train.head(3),
            metadata={"target": "won", "positive_label": "1"},
            holdout=split.X_test.head(500),
            optional_inputs={"phone_confidence"},
        )
    client = ctx.client()
    version, _ = registry.register_version(client, name, info.model_id, run_id)
    if stage:
        registry.move_alias(
            client,
            name,
            "staging",
            str(version.version),
            action="set-staging",
            actor="fixture",
            reason="fixture",
        )
    return str(version.version)


def snapshot_registry() -> dict:
    """Every registered model's aliases and every version's tags, for before/after checks."""
    from modelops.registry.versions import all_versions
    from modelops.settings import get_settings
    from modelops.tracking import get_client

    s = get_settings()
    client = get_client(s.resolved_tracking_uri, s.resolved_registry_uri)
    snapshot = {}
    for model in client.search_registered_models():
        versions = all_versions(client, model.name)
        snapshot[model.name] = {
            "aliases": {k: str(v) for k, v in model.aliases.items()},
            "versions": sorted((str(v.version), tuple(sorted(v.tags.items()))) for v in versions),
        }
    return snapshot


BIN = Path(sys.executable).parent


def wait_http(url: str, proc: subprocess.Popen | None = None, timeout: float = 120) -> None:
    """Wait until ``url`` answers 200, failing early if ``proc`` (when given) exits."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server for {url} exited with {proc.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


def stop_group(proc: subprocess.Popen) -> None:
    """Stop a process started in its own session, and its children: SIGTERM, then SIGKILL
    after 30 s."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, 15)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.wait()


@contextlib.contextmanager
def _process(cmd: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            cmd, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            yield proc
        finally:
            stop_group(proc)


@contextlib.contextmanager
def mlflow_server(backend: str, log: Path, *options: str) -> Iterator[str]:
    """A real ``mlflow server`` on loopback over the store ``backend``; its URL."""
    port = free_port()
    cmd = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port)]
    with _process([*cmd, "--backend-store-uri", backend, *options], dict(os.environ), log) as proc:
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/health", proc)
        yield url


class Client(threading.Thread):
    """A client running beside a test (``with Client(): ...``): ``run`` sends until ``stop``
    is set; leaving the block stops it and waits for it."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.stop = threading.Event()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.join(timeout=30)


def prefect_events(name: str, resource_id: str, since: float, timeout: float = 60) -> list[Any]:
    """The events ``name`` about ``resource_id`` the Prefect API has taken since ``since``
    (Unix time), once there is one (events reach it asynchronously); [] after ``timeout``."""
    import datetime

    from prefect import get_client
    from prefect.events.filters import (
        EventFilter,
        EventNameFilter,
        EventOccurredFilter,
        EventResourceFilter,
    )

    start = datetime.datetime.fromtimestamp(since, datetime.UTC)
    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            wanted = EventFilter(  # its "until" is when it is made
                occurred=EventOccurredFilter(since=start),
                event=EventNameFilter(name=[name]),
                resource=EventResourceFilter(id=[resource_id]),
            )
            found = client.read_events(wanted, limit=50).events
            if found or time.monotonic() > deadline:
                return list(found)
            time.sleep(0.5)


def one_row_requests(rows: int = 4000, seed: int = 21) -> tuple[list[dict[str, Any]], list[Any]]:
    """Lead rows as one-row ``dataframe_split`` bodies, and each row's true label (what a
    client sends to ``/feedback`` later)."""
    import json

    from modelops.sample import make_leads

    frame = make_leads(rows, seed=seed)
    truth = frame.pop("won").tolist()
    split = json.loads(frame.to_json(orient="split", index=False))
    payloads = [
        {"dataframe_split": {"columns": split["columns"], "data": [row]}} for row in split["data"]
    ]
    return payloads, truth


@contextlib.contextmanager
def prefect_stack(tmp: Path, worker_kind: str = "modelops") -> Iterator[dict[str, Any]]:
    """Prefect server + MLflow server + work pools + deployments (prefect.yaml) + a process
    worker (``modelops worker``, as ``make worker`` starts it; ``worker_kind="prefect"``: Prefect's
    own ``prefect worker start``), all on loopback, as a user would set them up; everything is
    stopped on exit."""
    prefect_port, mlflow_port = free_port(), free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_"))},
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "PREFECT_HOME": str(tmp / "prefect-home"),
        "PREFECT_API_URL": f"http://127.0.0.1:{prefect_port}/api",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_WORKER_QUERY_SECONDS": "2",
        "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{mlflow_port}",
        "MLFLOW_EXPERIMENT_NAME": "e2e",
        "MODELOPS_HOME": str(tmp / "modelops"),
        "MODELOPS_MLFLOW_UI_URL": f"http://127.0.0.1:{mlflow_port}",
        "DO_NOT_TRACK": "true",
        "MLFLOW_ENABLE_TELEMETRY": "false",
        "GX_ANALYTICS_ENABLED": "false",
    }
    (tmp / "prefect-home").mkdir()
    server_env = {**env, "PREFECT_API_URL": ""}
    with (
        _process(
            [
                str(BIN / "prefect"),
                "server",
                "start",
                "--host",
                "127.0.0.1",
                "--port",
                str(prefect_port),
            ],
            server_env,
            tmp / "prefect-server.log",
        ) as prefect,
        _process(
            [
                str(BIN / "mlflow"),
                "server",
                "--host",
                "127.0.0.1",
                "--port",
                str(mlflow_port),
                "--backend-store-uri",
                f"sqlite:///{tmp / 'mlflow.db'}",
                "--artifacts-destination",
                (tmp / "artifacts").as_uri(),
            ],
            env,
            tmp / "mlflow-server.log",
        ) as mlflow,
    ):
        wait_http(f"http://127.0.0.1:{prefect_port}/api/health", prefect, timeout=180)
        wait_http(f"http://127.0.0.1:{mlflow_port}/health", mlflow, timeout=120)

        def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [str(BIN / "prefect"), *args],
                env=env,
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=timeout,
            )

        for pool, kind in (("modelops-process", "process"), ("modelops-kubernetes", "kubernetes")):
            extra = (
                ["--base-job-template", "deployments/work-pools/kubernetes-base-job-template.json"]
                if kind == "kubernetes"
                else []
            )
            done = cli("work-pool", "create", pool, "--type", kind, *extra)
            assert done.returncode == 0, done.stdout + done.stderr
        deployed = cli("--no-prompt", "deploy", "--all")
        assert deployed.returncode == 0, deployed.stdout + deployed.stderr
        command = {
            "modelops": [str(BIN / "modelops"), "worker"],
            "prefect": [str(BIN / "prefect"), "worker", "start"],
        }[worker_kind]
        with _process([*command, "--pool", "modelops-process"], env, tmp / "worker.log") as worker:
            if worker_kind == "modelops":  # its warm process is up before the first run
                from modelops.warmstart import socket_path

                sock = Path(socket_path(worker.pid))
                deadline = time.monotonic() + 120
                while not sock.exists():
                    assert worker.poll() is None, (tmp / "worker.log").read_text()
                    assert time.monotonic() < deadline, "the warm process did not start"
                    time.sleep(0.2)
            yield {
                "env": env,
                "cli": cli,
                "prefect": f"http://127.0.0.1:{prefect_port}",
                "mlflow": f"http://127.0.0.1:{mlflow_port}",
                "tmp": tmp,
                "deploy_output": deployed.stdout,
                "pids": {"prefect": prefect.pid, "mlflow": mlflow.pid, "worker": worker.pid},
            }

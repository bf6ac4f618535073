"""Real servers on loopback: a throwaway PostgreSQL and an `mlflow server` backed by it."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import wait_http

from modelops.serving.local import free_port


def _as_postgres(*cmd: str) -> list[str]:
    """PostgreSQL refuses to run as root: run its tools as the postgres user when we are root."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return list(cmd)


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL cluster from the machine's binaries, on a free loopback port."""
    for tool in ("initdb", "pg_ctl"):
        assert shutil.which(tool), f"{tool} not found: install PostgreSQL 15 server binaries"
    root = Path(tempfile.mkdtemp(prefix="modelops-pg-"))
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(sock, "postgres")
    port = free_port()
    subprocess.run(
        _as_postgres("initdb", "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"),
        check=True, capture_output=True,
    )  # fmt: skip
    subprocess.run(
        _as_postgres(
            "pg_ctl", "-D", str(data), "-l", str(root / "log"), "-w", "start",
            "-o", f"-p {port} -k {sock} -c listen_addresses=127.0.0.1",
        ),
        check=True, capture_output=True,
    )  # fmt: skip
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            _as_postgres("pg_ctl", "-D", str(data), "-m", "fast", "-w", "stop"),
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def mlflow_server(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`mlflow server` on loopback with the PostgreSQL backend and a local artifact store."""
    artifacts = tmp_path_factory.mktemp("mlflow-artifacts")
    port = free_port()
    log = open(artifacts.parent / f"mlflow-server-{port}.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", postgres_url, "--artifacts-destination", artifacts.as_uri(),
         "--workers", "2"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/health", proc)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 15)
        proc.wait(timeout=30)
        log.close()

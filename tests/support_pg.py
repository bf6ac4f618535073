"""A throwaway PostgreSQL 15 cluster from the machine's binaries, on a free loopback port."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelops.processes import free_port


def _as_postgres(*cmd: str) -> list[str]:
    """PostgreSQL refuses to run as root: run its tools as the postgres user when we are root."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return list(cmd)


@pytest.fixture(scope="session")
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
        check=True,
        capture_output=True,
    )
    subprocess.run(
        _as_postgres(
            "pg_ctl",
            "-D",
            str(data),
            "-l",
            str(root / "log"),
            "-w",
            "start",
            "-o",
            f"-p {port} -k {sock} -c listen_addresses=127.0.0.1",
        ),
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            _as_postgres("pg_ctl", "-D", str(data), "-m", "fast", "-w", "stop"),
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)

"""Background processes this machine keeps for the project (model servers, the local Prefect
server): free ports, process identity, and the records that name them.

A record names its process by id *and* start time, so a process id reused after the process
ended (or after a reboot) is never taken for it, and never stopped.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_is_free(port: int) -> bool:
    """Whether nothing listens on ``port`` at 127.0.0.1 (and it may be bound)."""
    with socket.socket() as s:
        # As servers bind (uvicorn sets it): a port a stopped server left in TIME_WAIT is free.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def start_time(pid: int) -> float | None:
    """When process ``pid`` started, or None if there is no such (live) process."""
    import psutil

    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        return float(process.create_time())
    except psutil.Error:
        return None


def same_process(pid: int, started: float | None) -> bool:
    """Whether ``pid`` still runs and is the process that started at ``started``."""
    now = start_time(pid)
    if now is None:
        return False
    return started is None or abs(now - started) < 1.0


def write_record(path: Path, record: dict[str, Any], private: bool = False) -> None:
    """Write a JSON record whole or not at all (a reader never sees half a file); ``private``:
    readable by this user only (it holds a secret)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    partial.unlink(missing_ok=True)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if private else 0o666)
    with os.fdopen(fd, "w") as out:
        out.write(json.dumps(record, indent=2))
    os.replace(partial, path)

"""`modelops serve` as a real process on loopback, for the tests that speak to it over HTTP."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator

from support import wait_http

from modelops.serving.local import free_port


@contextlib.contextmanager
def serving(*args: str, env: dict[str, str] | None = None, ready: bool = True) -> Iterator[str]:
    """``modelops serve <args>`` on a free loopback port; yields its URL; stops it after, on
    every path (the command execs into the server: whoever starts it must stop it)."""
    with serving_process(*args, env=env, ready=ready) as (url, _):
        yield url


@contextlib.contextmanager
def serving_process(
    *args: str, env: dict[str, str] | None = None, ready: bool = True
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """:func:`serving`, yielding the process too (to wait for several servers at once, or
    to see what it left behind once stopped)."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelops", "serve", *args, "--port", str(port)],
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        if ready:
            wait_http(f"{url}/ping", proc, timeout=120)
        yield url, proc
    finally:
        stop(proc)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group and wait; SIGKILL if it will not go."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)

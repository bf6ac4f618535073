"""The local Prefect server the command line starts, and leaves running, when no Prefect API is
configured: the runs a user made can be looked at in its UI afterwards, and later commands do
not wait ~10 s for a server each.

It lives under ``$MODELOPS_HOME/prefect/``: its database (``prefect.db``), its Prefect home (the
UI's files; the user's own ``~/.prefect`` and profiles are never read or written by it), its
log (``server.log``) and its record (``server.json``: process id and start time, port). One per
``MODELOPS_HOME``. Starting takes a file lock, so two commands started at once start one
server; a recorded server that died, or that has not answered for longer than a start takes,
is replaced; a port in use by something else gives way to a free one, recorded.

``MODELOPS_PREFECT=temporary`` keeps a temporary server per command instead (nothing is left
running); ``modelops server status | start | stop`` looks after this one.

No Prefect import here (the server runs in its own process): ``modelops server status`` answers
at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from modelops.errors import ConfigurationError
from modelops.processes import free_port, port_is_free, same_process, start_time, write_record

MODE_ENV = "MODELOPS_PREFECT"  # "local" (the default) or "temporary"
MODES = ("local", "temporary")
DEFAULT_PORT = 4200  # Prefect's own default, so links look as Prefect's documentation shows
# Seconds a start may take: Prefect's own setting for its temporary server (10-28 s seen on
# 2 cores; the command line makes it 120 unless set).
START_TIMEOUT_ENV = "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"


def start_timeout() -> float:
    """How long a server may take to start before it is taken for one that will not answer."""
    try:
        return float(os.environ.get(START_TIMEOUT_ENV) or 120)
    except ValueError:
        return 120.0


def mode(environ: Mapping[str, str] | None = None) -> str:
    """``MODELOPS_PREFECT`` (in ``environ``, default this process's environment): how a command
    without ``PREFECT_API_URL`` gets a Prefect API.

    Raises:
        ConfigurationError: it is set to something else.
    """
    environ = os.environ if environ is None else environ
    chosen = environ.get(MODE_ENV, "").strip().lower() or "local"
    if chosen not in MODES:
        raise ConfigurationError(
            f"{MODE_ENV}={environ[MODE_ENV]!r} is not one of {', '.join(MODES)}: local "
            "leaves a Prefect server running under MODELOPS_HOME, temporary starts one per "
            "command"
        )
    return chosen


def folder(home: Path) -> Path:
    """Where the local server keeps its database, home, log and record."""
    return home / "prefect"


@dataclass
class LocalServer:
    """The recorded local Prefect server of one ``MODELOPS_HOME``."""

    pid: int
    port: int
    started: float | None  # the process's start time: tells it from a reused process id
    home: str
    new: bool = False  # started by this command (not recorded)

    @property
    def url(self) -> str:
        """Its API, as ``PREFECT_API_URL`` takes it."""
        return f"http://127.0.0.1:{self.port}/api"

    @property
    def ui(self) -> str:
        """Its UI."""
        return f"http://127.0.0.1:{self.port}"

    def running(self) -> bool:
        """Whether its process still runs (the same process, not a reused id)."""
        return same_process(self.pid, self.started)

    def answering(self, timeout: float = 2.0) -> bool:
        """Whether its API answers its health check now."""
        import urllib.error
        import urllib.request

        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=timeout) as answer:
                return bool(answer.status == 200)
        except (OSError, urllib.error.URLError, ValueError):
            return False

    # What flow_api needs of a server (as of engine.TemporaryApi)

    def ready(self, timeout: float) -> bool:
        """Wait until it answers; False if its process ends or the time runs out."""
        deadline = time.monotonic() + timeout
        while not self.answering(timeout=1.0):
            if not self.running() or time.monotonic() > deadline:
                return False
            time.sleep(0.1)
        return True

    @contextlib.contextmanager
    def serving(self) -> Iterator[None]:
        """Flow runs in this block use it, and their links point at its UI."""
        from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL, temporary_settings

        with temporary_settings(updates={PREFECT_API_URL: self.url, PREFECT_UI_URL: self.ui}):
            yield

    def close(self) -> None:
        """This command is done with it: it stays (``modelops server stop`` ends it)."""


def _record(home: Path) -> Path:
    return folder(home) / "server.json"


def recorded(home: Path) -> LocalServer | None:
    """The server the record names, whether or not it still runs."""
    import json

    try:
        data = json.loads(_record(home).read_text())
        return LocalServer(int(data["pid"]), int(data["port"]), data.get("started"), str(home))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def status(home: Path) -> LocalServer | None:
    """The local server if it runs and answers."""
    server = recorded(home)
    return server if server is not None and server.running() and server.answering() else None


@contextlib.contextmanager
def _locked(home: Path) -> Iterator[None]:
    """One command at a time starts or stops this home's server (held for milliseconds: the
    start does not wait for the server to answer)."""
    path = folder(home)
    path.mkdir(parents=True, exist_ok=True)
    with open(path / "server.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def ensure(home: Path) -> LocalServer:
    """The local server of ``home``: the recorded one if it runs (and answers, or is still
    within its start time), else a new one started in the background (not waited for: see
    :meth:`LocalServer.ready`)."""
    home = home.resolve()
    with _locked(home):
        server = recorded(home)
        if server is not None and server.running():
            young = server.started is not None and time.time() - server.started < start_timeout()
            if young or server.answering():
                return server
            _end(server)  # running but not answering, longer than a start takes: replace it
        port = server.port if server is not None else DEFAULT_PORT
        if not port_is_free(port):
            port = free_port()
        return _start(home, port)


def _start(home: Path, port: int) -> LocalServer:
    import importlib.util

    place = folder(home)
    spec = importlib.util.find_spec("prefect")
    assert spec is not None and spec.origin is not None, "Prefect is a dependency"
    # Everything the server reads is ours: its own PREFECT_HOME (so the user's profiles are
    # never read, nor ~/.prefect written), its database, host and port; the user's API URL or
    # profile cannot redirect it. Block registration off as for the temporary server: it
    # imports every Prefect collection (~2.5 s) to register block types no flow here uses.
    keep = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env = {
        **keep,
        "PREFECT_HOME": str(place / "home"),
        "PREFECT_PROFILES_PATH": str(place / "home" / "profiles.toml"),
        "PREFECT_SERVER_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{place / 'prefect.db'}",
        "PREFECT_SERVER_API_HOST": "127.0.0.1",
        "PREFECT_SERVER_API_PORT": str(port),
        "PREFECT_UI_ENABLED": "true",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_REGISTER_BLOCKS_ON_START": "false",
        "PREFECT_SERVER_MEMOIZE_BLOCK_AUTO_REGISTRATION": "false",
        "PREFECT__SERVER_FINAL": "1",
    }
    with open(place / "server.log", "ab") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--app-dir",
                str(Path(spec.origin).parent.parent),
                "--factory",
                "prefect.server.api.server:create_app",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "warning",
                "--lifespan",
                "on",
            ],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,  # not ended by the terminal's Ctrl-C or hang-up
            close_fds=True,
        )
    server = LocalServer(proc.pid, port, start_time(proc.pid), str(home), new=True)
    write_record(_record(home), {k: v for k, v in asdict(server).items() if k != "new"})
    return server


def stop(home: Path) -> LocalServer | None:
    """Stop the local server of ``home``; the one stopped, or None if none ran."""
    home = home.resolve()
    with _locked(home):
        server = recorded(home)
        with contextlib.suppress(FileNotFoundError):
            _record(home).unlink()
        if server is None or not server.running():
            return None
        _end(server)
        return server


def _end(server: LocalServer) -> None:
    """Terminate the server's process group (uvicorn and anything it started), then kill it
    if it has not ended after 10 s; return once it has gone."""
    # SIGCONT: a stopped server acts on the SIGTERM (it would stay pending until continued).
    for signum in (signal.SIGTERM, signal.SIGCONT):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(server.pid, signum)
    for wait, then_kill in ((10.0, True), (5.0, False)):
        deadline = time.monotonic() + wait
        while server.running() and time.monotonic() < deadline:
            time.sleep(0.05)
        if then_kill and server.running():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(server.pid, signal.SIGKILL)

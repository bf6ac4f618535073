"""modelops: train, gate, register, promote, serve and watch models (Prefect flows on MLflow).

Each lifecycle command runs the same flow its Prefect deployment runs (in this process, against
``PREFECT_API_URL`` or Prefect's temporary local API), with one option per flow parameter,
generated from the flow's signature: ``modelops train --help`` lists them all with their
descriptions. Errors print one ``error: ...`` line and exit with a code that says what kind of
failure it was (see ``EXIT_CODES``); the Prefect logs and the MLflow run keep the detail.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, NoReturn

from modelops.cli.commands import FLOW_COMMANDS
from modelops.cli.options import FlowCommand, arg_docs
from modelops.cli.parser import EXIT_CODES, build_parser, dispatch
from modelops.cli.warm import NO_WARM

__all__ = [
    "EXIT_CODES",
    "FLOW_COMMANDS",
    "FlowCommand",
    "arg_docs",
    "build_parser",
    "main",
    "run",
]

QUIET_DEFAULTS = {
    "DO_NOT_TRACK": "true",
    "MLFLOW_ENABLE_TELEMETRY": "false",
    "GX_ANALYTICS_ENABLED": "false",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
}


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    from modelops.errors import ModelOpsError

    argv = [a for a in (sys.argv[1:] if argv is None else argv) if a != NO_WARM]
    # This process owns its environment: quiet, offline-friendly defaults (no telemetry, which
    # also logs DNS errors when offline), and time enough for Prefect's temporary API to come up
    # on a small machine (10-28 s, over its 20 s default). Each is only a default.
    for key, value in QUIET_DEFAULTS.items():
        os.environ.setdefault(key, value)
    try:
        return dispatch(argv, _prefect_api)
    except ModelOpsError as exc:
        print(f"error: {exc.summary}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


_SERVERS: list[Any] = []  # the Prefect API servers this process's flow commands used


def _prefect_api() -> Any:
    """Once a flow command's options parsed: the Prefect API server its run will use, started
    before the flow is imported so that it comes up meanwhile (see engine.prefect_api)."""
    from modelops.cli.commands import make_prefect_home
    from modelops.orchestration.engine import prefect_api
    from modelops.settings import get_settings

    make_prefect_home()
    server = prefect_api(get_settings().home_dir)
    _SERVERS.append(server)
    return server


def _own_folders(home: Path) -> None:
    """Keep what the libraries would write into the user's home folder under ``home``:
    Prefect's home (it creates ``~/.prefect`` when imported; taken only if the user has none,
    so an existing profile is still read), the flow runs' results Prefect keeps (in
    ``~/.prefect/storage``), and matplotlib's config and font cache. Each is only a default
    (an environment variable the user set wins); set before those libraries are imported."""
    if "PREFECT_HOME" not in os.environ and not (Path.home() / ".prefect").exists():
        os.environ["PREFECT_HOME"] = str(home / "prefect" / "home")
    os.environ.setdefault("PREFECT_LOCAL_STORAGE_PATH", str(home / "prefect" / "storage"))
    os.environ.setdefault("MPLCONFIGDIR", str(home / "cache" / "matplotlib"))


def run(argv: list[str] | None = None) -> NoReturn:
    """The ``modelops`` command (and ``python -m modelops``, ``python -m flows.<flow>``): warm
    (forked from the warm process, see :mod:`modelops.cli.warm`) when one runs and may take it,
    else :func:`main` here; then a quick exit (:func:`modelops.warmstart.quick_exit`: no
    teardown of the ~5,000 modules a flow command leaves loaded, 1-1.5 s)."""
    from modelops import warmstart
    from modelops.cli import warm

    argv = list(sys.argv[1:] if argv is None else argv)
    for key, value in QUIET_DEFAULTS.items():  # before the environment is compared or kept
        os.environ.setdefault(key, value)
    home: Path | None = None
    if any(not a.startswith("-") for a in argv) and not {"-h", "--help"} & set(argv):
        from modelops.home import home_dir

        home = home_dir()
        _own_folders(home)
    env = dict(os.environ)  # what a warm start is compared with, and the warm process gets
    warm_home = home if home is not None and warm.wanted(argv, env) else None
    if warm_home is not None:
        try:
            status = warm.run(argv, env, warm_home)
        except warmstart.WarmProcessLost as lost:
            print(warm.lost_message(lost), file=sys.stderr)
            warmstart.quick_exit(75)
        if status is not None:
            warmstart.exit_like(status)
    code = main(argv)
    _leave_running(warm_home, env)
    warmstart.quick_exit(code)


def _leave_running(warm_home: Path | None, env: dict[str, str]) -> None:
    """After a cold command: start the warm process beside the local Prefect server if none
    runs (``warm_home``: where, when warm starts are wanted), and say once, when this command
    started the server, what it left running."""
    new: Any = next((s for s in _SERVERS if getattr(s, "new", False)), None)
    if warm_home is None and new is None:
        return
    from modelops.cli import warm
    from modelops.orchestration import local_server

    home = warm_home if warm_home is not None else Path(new.home)
    server = local_server.recorded(home)
    if server is None or not server.running():
        return
    started = warm_home is not None and warm.start(home, server.pid, env)
    if new is not None:
        also = " and a warm process (later commands start in a fraction of the time)"
        print(
            f"modelops: left running for later commands: a Prefect server at {server.ui} "
            f"(its UI keeps this run){also if started else ''}. Stop: modelops server stop; "
            f"to leave nothing running: {local_server.MODE_ENV}=temporary",
            file=sys.stderr,
        )

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
from typing import NoReturn

from modelops.cli.commands import FLOW_COMMANDS
from modelops.cli.options import FlowCommand, arg_docs
from modelops.cli.parser import EXIT_CODES, build_parser

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

    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    # This process owns its environment: quiet, offline-friendly defaults (no telemetry, which
    # also logs DNS errors when offline), and time enough for Prefect's temporary API to come up
    # on a small machine (10-28 s, over its 20 s default). Each is only a default.
    for key, value in QUIET_DEFAULTS.items():
        os.environ.setdefault(key, value)
    # A flow command without PREFECT_API_URL needs Prefect's temporary server: start it now, so
    # it comes up while this process imports the flow (see engine.TemporaryApi).
    api = None
    if any(c.name == command for c in FLOW_COMMANDS) and not {"-h", "--help"} & set(argv):
        from modelops.orchestration.engine import TemporaryApi

        api = TemporaryApi.start_if_wanted()
    try:
        args = build_parser(command, api).parse_args(argv)
        return int(args.func(args))
    except ModelOpsError as exc:
        print(f"error: {exc.summary}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        if api is not None:
            api.stop()


def run(argv: list[str] | None = None) -> NoReturn:
    """The ``modelops`` command (and ``python -m modelops``, ``python -m flows.<flow>``):
    :func:`main`, then a quick exit (:func:`modelops.warmstart.quick_exit`: no teardown of the
    ~5,000 modules a flow command leaves loaded, 1-1.5 s)."""
    from modelops.warmstart import quick_exit

    quick_exit(main(argv))

"""Warm starts for the command line: a ``modelops`` command forked from a process that has the
heavy libraries imported, as ``modelops worker``'s flow runs are (see :mod:`modelops.warmstart`
for the mechanism and for what makes a start cold).

The warm process of the command line belongs to the local Prefect server of the same
``MODELOPS_HOME`` (see :mod:`modelops.orchestration.local_server`): the first command that
leaves that server running also starts the warm process, after its own work (it then imports
in the background: the first command is no slower), and the warm process ends when the server
ends (``modelops server stop``). A command that finds it running forks from it: the same
standard streams, environment, directory, exit code, and Ctrl-C; anything unsafe (a project or
package file changed, an environment that differs in what is read at import, another
interpreter) starts cold and says why. ``MODELOPS_WARM=false`` or ``--no-warm`` turns it off;
``MODELOPS_PREFECT=temporary`` (nothing left running) does too.
"""

from __future__ import annotations

import os
from pathlib import Path

from modelops import warmstart
from modelops.errors import ConfigurationError
from modelops.orchestration import local_server

WARM_ENV = "MODELOPS_WARM"  # "false" turns warm starts of the command line off
NO_WARM = "--no-warm"
# Commands that stay running (servers, the worker) or manage the warm process: never forked
# from it, which would tie their lives to it.
COLD_COMMANDS = frozenset({"serve", "api", "worker", "server"})


def wanted(argv: list[str], env: dict[str, str]) -> bool:
    """Whether this command may start warm (the user's choices, and what the command is)."""
    command = next((a for a in argv if not a.startswith("-")), None)
    try:
        leaves_running = local_server.mode(env) == "local"
    except ConfigurationError:
        leaves_running = False  # refused in one line when the command runs (cold)
    return (
        command is not None
        and command not in COLD_COMMANDS
        and NO_WARM not in argv
        and env.get(WARM_ENV, "").strip().lower() not in ("false", "0", "no", "off")
        and leaves_running
        and warmstart.WARM_ENV not in env  # already a warm start: never forked twice
        and not {"-h", "--help"} & set(argv)  # help answers at once either way
    )


def socket_for(home: Path) -> str:
    """The warm process's socket for the command line of ``home``.

    Raises:
        OSError: no private directory for it (then everything runs cold).
    """
    return warmstart.socket_path(f"cli\0{home}")


def run(argv: list[str], env: dict[str, str], home: Path) -> int | None:
    """Run ``modelops ARGV`` warm: its exit status (negative: killed by that signal), or None
    if it is to run cold (nothing ran).

    Raises:
        WarmProcessLost: the warm process ended during the command, which ended with it.
    """
    try:
        path = socket_for(home)
    except OSError:
        return None
    if not os.path.exists(path):
        return None
    return warmstart.run_warm(path, ["-m", "modelops", *argv], env)


def start(home: Path, owner: int, env: dict[str, str]) -> bool:
    """Start the warm process of ``home``'s command line in the background, owned by process
    ``owner`` (the local Prefect server), unless one already answers. Whether one was started."""
    import socket

    try:
        path = socket_for(home)
    except OSError:
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as probe:
        try:
            probe.connect(path)
            return False  # one is listening (it may have said why this command ran cold)
        except OSError:
            pass
    warmstart.start_server(path, owner, PRELOAD, env, after_fork=f"{__name__}:refresh_prefect")
    return True


# What a command imports sooner or later: what a flow run does, and Prefect (0.8 s here). The
# worker's warm process leaves Prefect out (its runs' settings come with each run); here each
# child has Prefect's settings and logging made again from its own environment.
PRELOAD = (*warmstart.PRELOAD, "prefect.main", "prefect.flow_runs", "prefect.runtime")


def refresh_prefect() -> None:
    """In a command forked from the warm process, which imported Prefect with the environment
    it started with: Prefect's settings (environment, profile) and its logging made again from
    this command's environment, as a cold import would make them."""
    import prefect.context
    import prefect.logging.configuration

    prefect.context.refresh_global_settings_context()
    prefect.logging.configuration.setup_logging(incremental=False)


def lost_message(error: Exception) -> str:
    """What the user reads when the warm process died during their command."""
    return (
        f"error: {error}; the command was stopped with it. Run it again: it starts cold "
        f"(or set {WARM_ENV}=false)"
    )

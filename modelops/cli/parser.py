"""The ``modelops`` argument parser: every command, its options and the exit codes."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from modelops.cli import commands
from modelops.cli.options import add_options, option_specs, stored_options

DESCRIPTION = (
    "modelops: train, gate, register, promote, serve and watch models (Prefect flows on MLflow)."
)

EXIT_CODES = {
    0: "done",
    1: "failed unexpectedly (a bug, or an error nobody anticipated: see the logs)",
    2: "bad usage, parameter or configuration, or no such model/version",
    3: "the data was refused (unreadable, or failed validation)",
    4: "the quality gate failed: nothing was registered",
    5: "the registry refused (promotion refused, concurrent change)",
    6: "the deployment failed (the previous one was restored)",
    7: "permission denied (HTTP 401/403)",
    75: "a transient fault outlasted the retries (connection refused, 5xx, locked database)",
}


def _add_other_commands(sub: Any) -> None:
    p = sub.add_parser("versions", help="list a registered model's versions")
    p.add_argument("model_name")
    p.add_argument("--stage", choices=["None", "Staging", "Production", "Archived"])
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=commands.cmd_versions)

    p = sub.add_parser("history", help="a model's audit trail, newest first")
    p.add_argument("model_name")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=commands.cmd_history)

    p = sub.add_parser(
        "serve",
        help="serve a registered version over HTTP (MLflow scoring "
        "protocol and Open Inference Protocol v2), with telemetry",
    )
    p.add_argument("model_name")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--version", help="a version number (or 'latest')")
    which.add_argument("--alias", help="an alias (default: production)")
    p.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    p.add_argument("--port", type=int, default=8080, help="port (default: %(default)s)")
    p.add_argument("--workers", type=int, default=1, help="processes (default: %(default)s)")
    p.add_argument(
        "--no-fast-path",
        dest="fast_path",
        action="store_false",
        help="answer with scikit-learn even where a verified ONNX copy exists",
    )
    p.add_argument(
        "--sample-dir",
        help="write a sample of inputs and outputs here as Parquet "
        "(the monitoring flow reads it; default: MODELOPS_SERVE_SAMPLE_DIR)",
    )
    p.add_argument(
        "--sample-rate",
        type=float,
        default=1.0,
        help="fraction of requests sampled (default: %(default)s)",
    )
    p.add_argument(
        "--candidate",
        help="also serve this version or alias (e.g. staging) beside the stable one, "
        "for a rollout: see --mode",
    )
    p.add_argument(
        "--mode",
        choices=["shadow", "canary"],
        help="with --candidate: shadow (the candidate scores every request, clients always "
        "get the stable answer; the default) or canary (the candidate answers --weight of "
        "the requests)",
    )
    p.add_argument(
        "--weight",
        type=float,
        help="canary: the share of requests the candidate answers, in (0, 1) (default: 0.1)",
    )
    p.add_argument(
        "--sticky-header",
        help="canary: a header (e.g. X-User-Id) whose value always meets the same version",
    )
    p.set_defaults(func=commands.cmd_serve)

    p = sub.add_parser("api", help="the operator API: GraphQL with JWT roles (see README)")
    p.add_argument(
        "action",
        nargs="?",
        choices=["serve", "token"],
        default="serve",
        help="serve (default) or token: print a token signed with MODELOPS_API_JWT_SECRET",
    )
    p.add_argument("--host", default="127.0.0.1", help="address (default: %(default)s)")
    p.add_argument("--port", type=int, default=8000, help="port (default: %(default)s)")
    p.add_argument("--sub", help="token: the subject (recorded as the actor)")
    p.add_argument("--role", action="append", default=[], help="token: a role (repeatable)")
    p.add_argument("--ttl", type=int, default=3600, help="token: seconds valid (default 3600)")
    p.set_defaults(func=commands.cmd_api)

    p = sub.add_parser(
        "worker",
        help="a Prefect process worker whose flow runs start warm "
        "(forked from a process with the libraries imported)",
    )
    p.add_argument("--pool", default="modelops-process", help="work pool (default: %(default)s)")
    p.add_argument("--name", help="worker name (default: Prefect's)")
    p.add_argument("--limit", type=int, help="most flow runs at once (default: no limit)")
    p.set_defaults(func=commands.cmd_worker)

    p = sub.add_parser(
        "server",
        help="the local Prefect server (and warm process) commands leave running "
        "when no PREFECT_API_URL is set",
    )
    p.add_argument(
        "action",
        nargs="?",
        choices=["status", "start", "stop"],
        default="status",
        help="status (default), start (and wait until it answers) or stop",
    )
    p.set_defaults(func=commands.cmd_server)

    p = sub.add_parser("stop", help="stop the local model server the deployment flow started")
    p.add_argument("model_name")
    p.set_defaults(func=commands.cmd_stop)

    p = sub.add_parser("sample-data", help="write the lead-scoring sample data set")
    p.add_argument("--out", required=True, help="output .csv or .parquet path")
    p.add_argument("--rows", type=int, default=5000)
    p.add_argument("--seed", type=int, default=7)
    p.set_defaults(func=commands.cmd_sample_data)


def build_parser(command: str | None = None, flow: Any = None) -> argparse.ArgumentParser:
    """The argument parser. ``command``'s options are the stored ones (no flow is imported, so
    ``--help`` and refusals of bad options answer at once), or ``flow``'s own when given."""
    codes = "\n".join(f"  {code:>3}  {meaning}" for code, meaning in EXIT_CODES.items())
    parser = argparse.ArgumentParser(
        prog="modelops",
        description=DESCRIPTION,
        epilog=f"exit codes:\n{codes}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--no-warm",
        action="store_true",
        help="start cold: do not fork from the warm process (also MODELOPS_WARM=false)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")
    for spec in commands.FLOW_COMMANDS:
        p = sub.add_parser(spec.name, help=spec.help, description=spec.help)
        if spec.name == command:
            options = stored_options().get(spec.name) if flow is None else None
            if options is None:
                options = option_specs(spec, flow if flow is not None else spec.load())
            add_options(p, options)
            p.set_defaults(flow_command=spec, options=options)
    _add_other_commands(sub)
    return parser


def dispatch(argv: list[str], start_api: Callable[[], Any] | None = None) -> int:
    """Parse ``argv`` and run its command. For a flow command, ``start_api`` gives the Prefect
    API server its run will use (None: the configured API); its options are checked against
    the flow's own once the flow is imported (stored options may lag behind an edited flow)."""
    command = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(command).parse_args(argv)
    spec = getattr(args, "flow_command", None)
    if spec is None:
        return int(args.func(args))
    server = start_api() if start_api is not None else None
    try:
        flow = spec.load()
        if option_specs(spec, flow) != args.options:
            args = build_parser(command, flow).parse_args(argv)
        return commands.run_flow(spec, flow, _values(args), server)
    finally:
        if server is not None:
            server.close()


def _values(args: argparse.Namespace) -> dict[str, Any]:
    return {
        k: v
        for k, v in vars(args).items()
        if k not in ("command", "func", "flow_command", "options", "no_warm")
    }

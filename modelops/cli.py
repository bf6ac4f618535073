"""modelops: train, gate, register, promote, serve and watch models (Prefect flows on MLflow).

Each lifecycle command runs the same flow its Prefect deployment runs (in this process, against
``PREFECT_API_URL`` or Prefect's temporary local API), with one option per flow parameter,
generated from the flow's signature: ``modelops train --help`` lists them all with their
descriptions. Errors print one ``error: ...`` line and exit with a code that says what kind of
failure it was (see ``EXIT_CODES``); the Prefect logs and the MLflow run keep the detail.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import os
import re
import sys
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

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


QUIET_DEFAULTS = {
    "DO_NOT_TRACK": "true",
    "MLFLOW_ENABLE_TELEMETRY": "false",
    "GX_ANALYTICS_ENABLED": "false",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
}


# ----------------------------------------------------------------------------- flow commands


@dataclass
class FlowCommand:
    """A command that runs a flow: its options come from the flow's parameters."""

    name: str
    flow: str  # "module:function"
    help: str
    positionals: Sequence[str] = ()  # parameters given as positional arguments, in order
    flags: dict[str, list[str]] = field(default_factory=dict)  # parameter -> option strings
    defaults: dict[str, Any] = field(default_factory=dict)  # this command's own defaults
    show: Callable[[Any], str] = str  # what to print when the flow completes
    # What the flow will import, imported while Prefect's temporary server starts (if one is
    # needed): "module" or "module:function" to call.
    warm: Sequence[str] = ()

    def load(self) -> Any:
        """The Prefect flow object."""
        module, attr = self.flow.split(":")
        return getattr(importlib.import_module(module), attr)


def _show_training(result: Any) -> str:
    from modelops.settings import get_settings

    metrics = ", ".join(f"{k}={v:.3f}" for k, v in result.metrics.items())
    alias = f"@{result.alias}" if result.alias else "no alias"
    ui = get_settings().ui_base_url
    look = (
        f"  open {ui}/#/models/{result.model_name}"
        if ui
        else (f"  mlflow ui --backend-store-uri {get_settings().shown_tracking_uri}")
    )
    return (
        f"Registered {result.model_name} version {result.version} ({alias}) from "
        f"{result.rows} rows\n  metrics: {metrics}\n  MLflow run: {result.mlflow_run_id}\n"
        f"Look at it:\n{look}\n  modelops versions {result.model_name}"
    )


def _show_lifecycle(result: Any) -> str:
    from modelops.settings import get_settings
    from modelops.summary import look_here

    return look_here(result, get_settings())


def _show_promotion(r: Any) -> str:
    if not r.changed:
        return f"{r.name}@production is already version {r.version}: nothing changed"
    was = (
        f" (was {r.previous_production}, kept as previous-production)"
        if (r.previous_production)
        else " (first production version)"
    )
    return f"{r.name}@production -> version {r.version}{was}"


def _show_rollback(r: Any) -> str:
    return f"{r.name}@production rolled back: version {r.rolled_back} -> {r.version}"


def _show_deployment(r: Any) -> str:
    where = f"{r.url}/invocations" if r.target == "local" else r.url
    return f"serving version {r.version} ({r.target}) at {where}"


def _show_json(r: Any) -> str:
    data = r.model_dump(mode="json") if hasattr(r, "model_dump") else r
    return json.dumps(data, indent=2, default=str)


# What each kind of flow imports sooner or later (the slow ones).
_WARM_TRAINING = (
    "great_expectations",
    "modelops.model_io:import_skops",
    "mlflow.sklearn",
    "mlflow.store.tracking.sqlalchemy_store",
    "matplotlib.pyplot",
)
_WARM_REGISTRY = (
    "modelops.model_io:import_skops",
    "mlflow.sklearn",
    "mlflow.store.tracking.sqlalchemy_store",
)

FLOW_COMMANDS = [
    FlowCommand(
        "run",
        "flows.lifecycle:lifecycle",
        "the main job: train, gate, register, stage, promote and serve (lifecycle flow)",
        flags={"data_path": ["--data", "--data-path"]},
        defaults={"promote_to": "production", "deploy": "local"},
        show=_show_lifecycle,
        warm=_WARM_TRAINING,
    ),
    FlowCommand(
        "train",
        "flows.training:training",
        "train, validate, gate, register and stage a tabular model (training flow)",
        flags={"data_path": ["--data", "--data-path"]},
        show=_show_training,
        warm=_WARM_TRAINING,
    ),
    FlowCommand(
        "tune",
        "flows.tuning:tuning",
        "search estimators and hyper-parameters on Dask; gate, register and stage the "
        "best (tuning flow)",
        flags={"data_path": ["--data", "--data-path"]},
        show=_show_training,
        warm=_WARM_TRAINING,
    ),
    FlowCommand(
        "text-train",
        "flows.text_training:text_training",
        "fine-tune, gate, register and stage a text classifier (text-training flow)",
        flags={"data_path": ["--data", "--data-path"]},
        show=_show_json,
    ),
    FlowCommand(
        "register-pretrained",
        "flows.register_pretrained:register_pretrained",
        "register a Hugging Face snapshot as a version, untrained",
        positionals=("model_name", "source"),
        flags={"revision": ["--hf-revision", "--revision"], "tags": ["--tag"]},
        show=_show_json,
    ),
    FlowCommand(
        "promote",
        "flows.promotion:promotion",
        "promote a staged version to production (promotion flow)",
        positionals=("model_name",),
        show=_show_promotion,
        warm=_WARM_REGISTRY,
    ),
    FlowCommand(
        "rollback",
        "flows.rollback:rollback",
        "put production back on the previous production version (rollback flow)",
        positionals=("model_name",),
        show=_show_rollback,
    ),
    FlowCommand(
        "deploy",
        "flows.deployment:deployment",
        "serve a version locally or on Kubernetes, verified (deployment flow)",
        positionals=("model_name",),
        show=_show_deployment,
    ),
    FlowCommand(
        "score",
        "flows.batch_scoring:batch_scoring",
        "score a CSV/Parquet file with a version (batch-scoring flow)",
        positionals=("model_name", "input_uri", "output_uri"),
        show=_show_json,
        warm=_WARM_REGISTRY,
    ),
    FlowCommand(
        "monitor",
        "flows.monitoring:monitoring",
        "check a served version for data drift, prediction shift and decay (monitoring flow)",
        positionals=("model_name",),
        show=_show_json,
        warm=_WARM_REGISTRY,
    ),
    FlowCommand(
        "teardown",
        "flows.teardown:teardown",
        "stop serving a model, locally or on Kubernetes (teardown flow)",
        positionals=("model_name",),
        show=_show_json,
    ),
]


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """The annotation without ``Annotated`` and ``None``; whether None was allowed."""
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1:
            return _unwrap(rest[0])[0], len(rest) < len(args)
    return annotation, False


def _is_str_dict(annotation: Any) -> bool:
    return typing.get_origin(annotation) is dict and typing.get_args(annotation) == (str, str)


def _parse_value(text: str) -> Any:
    """A command-line value: JSON when it parses as JSON, else the text itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _key_values(name: str, items: list[str]) -> Any:
    """``--tag k=v --tag k2=v2`` (or one JSON object) as a dict."""
    from modelops.errors import ConfigurationError

    if len(items) == 1 and items[0].lstrip().startswith("{"):
        return _parse_value(items[0])
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigurationError(f"--{name.replace('_', '-')}: {item!r} is not KEY=VALUE")
        out[key] = value
    return out


def arg_docs(docstring: str | None) -> dict[str, str]:
    """The descriptions in a Google-style ``Args:`` section, by parameter name."""
    docs: dict[str, str] = {}
    section = re.split(r"^Args:\s*$", inspect.cleandoc(docstring or ""), maxsplit=1, flags=re.M)
    if len(section) < 2:
        return docs
    name, indent = None, 0
    for line in section[1].splitlines():
        entry = re.match(r"^\s{2,8}(\w+)(?: \([^)]*\))?:\s*(.*)$", line)
        if entry and (name is None or len(line) - len(line.lstrip()) <= indent):
            name, indent = entry[1], len(line) - len(line.lstrip())
            docs[name] = entry[2].strip()
        elif name and line.strip() and len(line) - len(line.lstrip()) > indent:
            docs[name] += " " + line.strip()
        elif re.match(r"^\s*\w+:\s*$", line) or (line.strip() and not line.startswith(" ")):
            break  # the next section (Returns:, Raises:) or the end of Args
    return docs


def _flow_parameters(flow: Any) -> list[tuple[str, inspect.Parameter, str]]:
    """(name, parameter, description) for each parameter of a flow, from its signature and
    its docstring's ``Args:`` section (the same source Prefect's UI form uses)."""
    signature = inspect.signature(flow.fn, eval_str=True)
    docs = arg_docs(inspect.getdoc(flow.fn))
    return [(name, p, docs.get(name, "")) for name, p in signature.parameters.items()]


def _shown_default(default: Any) -> str:
    if hasattr(default, "model_dump"):
        return json.dumps(default.model_dump(mode="json"))
    if isinstance(default, dict | list):
        return json.dumps(default)
    return repr(default)


def _add_flow_options(parser: argparse.ArgumentParser, command: FlowCommand, flow: Any) -> None:
    params = _flow_parameters(flow)
    order = {name: i for i, name in enumerate(command.positionals)}
    params.sort(key=lambda p: order.get(p[0], len(order)))  # positionals first, in their order
    for name, param, doc in params:
        base, _optional = _unwrap(param.annotation)
        required = param.default is inspect.Parameter.empty
        default = command.defaults.get(name, None if required else param.default)
        shown = (
            ""
            if required or default in (None, "", {}, [])
            else (f" (default: {_shown_default(default)})")
        )
        help_text = (doc or "").replace("%", "%%") + shown
        kwargs: dict[str, Any] = {
            "help": help_text,
            "dest": name,
            "default": command.defaults.get(name, argparse.SUPPRESS),
        }
        origin = typing.get_origin(base)
        if origin is typing.Literal:
            choices = [("false" if c is False else str(c)) for c in typing.get_args(base)]
            kwargs.update(choices=choices, metavar="{" + ",".join(choices) + "}")
        elif base is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif base in (int, float, str):
            kwargs["type"] = base
        elif _is_str_dict(base):
            kwargs.update(action="append", metavar="KEY=VALUE")
        else:
            kwargs.update(type=_parse_value, metavar="JSON")
        if name in command.positionals:
            kwargs.pop("dest")
            if not required:
                kwargs.update(nargs="?", default=default)
            parser.add_argument(name, **kwargs)
            continue
        flags = command.flags.get(name, ["--" + name.replace("_", "-")])
        parser.add_argument(*flags, **kwargs)


def _coerce(flow: Any, values: dict[str, Any]) -> dict[str, Any]:
    """Turn parsed options into flow parameters and validate them now, before any run starts.

    Raises:
        ConfigurationError: one line per invalid parameter.
    """
    from pydantic import TypeAdapter, ValidationError

    from modelops.errors import ConfigurationError
    from modelops.params import describe_validation_error

    params = {name: p for name, p, _ in _flow_parameters(flow)}
    out: dict[str, Any] = {}
    problems = []
    for name, value in values.items():
        annotation = params[name].annotation
        base, _ = _unwrap(annotation)
        if typing.get_origin(base) is typing.Literal and value in ("false", False):
            value = False
        elif _is_str_dict(base) and isinstance(value, list):
            value = _key_values(name, value)
        try:
            out[name] = TypeAdapter(annotation).validate_python(value)
        except ValidationError as exc:
            flag = "--" + name.replace("_", "-")
            problems.append(f"{flag}: {describe_validation_error(exc).split(': ', 1)[-1]}")
    if problems:
        raise ConfigurationError("; ".join(problems))
    model = getattr(flow.fn, "__params_model__", None)
    if model is not None:  # cross-field rules (e.g. deploy needs promote_to=production)
        try:
            model.model_validate(out)
        except ValidationError as exc:
            raise ConfigurationError(describe_validation_error(exc)) from None
    return out


def _run_flow(command: FlowCommand, flow: Any, values: dict[str, Any], api: Any = None) -> int:
    from modelops.errors import ModelOpsError
    from modelops.orchestration.console import summarize_console_logs
    from modelops.orchestration.engine import flow_api

    params = _coerce(flow, values)
    summarize_console_logs()
    timeout = float(os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", 120))
    with flow_api(tuple(command.warm), timeout, api):
        state = flow(**params, return_state=True)
    if state.is_completed():
        print(command.show(state.result()))
        return 0
    error = state.result(raise_on_failure=False)
    where = f"Prefect flow run {state.state_details.flow_run_id}"
    if isinstance(error, ModelOpsError):
        print(f"error: {error.summary}", file=sys.stderr)
        print(
            f"  (the {flow.name} flow did not complete; details in the logs above and in {where})",
            file=sys.stderr,
        )
        return error.exit_code
    first = str(error).strip().splitlines()[0] if str(error).strip() else ""
    print(f"error: {type(error).__name__}: {first}", file=sys.stderr)
    print(f"  (details in the logs above and in {where})", file=sys.stderr)
    return _exit_code(error)


def _exit_code(error: BaseException) -> int:
    from modelops.errors import ConfigurationError, ModelOpsError, is_transient

    if isinstance(error, ModelOpsError):
        return error.exit_code
    if type(error).__name__ == "ParameterTypeError":  # Prefect's: bad parameters
        return ConfigurationError.exit_code
    if is_transient(error):
        return 75
    return 1


# ----------------------------------------------------------------------------- other commands


def _cmd_sample_data(args: argparse.Namespace) -> int:
    from modelops.sample import write_leads

    path = write_leads(args.out, n_rows=args.rows, seed=args.seed)
    print(f"wrote {args.rows} rows to {path} (+ schema sidecar)")
    return 0


def _cmd_versions(args: argparse.Namespace) -> int:
    from modelops.registry.stages import get_model_metadata

    rows = get_model_metadata(args.model_name, stage=args.stage)
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
        return 0
    if not rows:
        print(f"{args.model_name}: no versions" + (f" in stage {args.stage}" if args.stage else ""))
        return 0
    _print_table(
        ("version", "stage", "aliases", "created", "run_id", "last event"),
        [
            (
                str(r["version"]),
                r["stage"],
                ",".join(r["aliases"]) or "-",
                str(r["created"])[:19],
                r["run_id"] or "-",
                _last_event(r),
            )
            for r in rows
        ],
    )
    return 0


def _print_table(header: Sequence[str], table: list[Sequence[str]]) -> None:
    widths = [max(len(h), *(len(t[i]) for t in table)) for i, h in enumerate(header)]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    for t in table:
        print("  ".join(c.ljust(w) for c, w in zip(t, widths, strict=True)))


def _last_event(row: dict) -> str:
    events = row.get("audit") or []
    if not events:
        return "-"
    e = events[-1]
    return f"{e.get('action')} by {e.get('actor')} at {str(e.get('time'))[:19]}"


def _cmd_history(args: argparse.Namespace) -> int:
    from modelops.registry.stages import get_model_metadata

    events = [
        {**e, "version": r["version"]}
        for r in get_model_metadata(args.model_name)
        for e in r["audit"]
    ]
    events.sort(key=lambda e: str(e.get("time")), reverse=True)
    if args.json:
        print(json.dumps(events, indent=2, default=str))
        return 0
    if not events:
        print(f"{args.model_name}: no recorded events")
        return 0
    _print_table(
        ("time", "action", "version", "from", "to", "actor", "reason"),
        [
            (
                str(e.get("time"))[:19],
                str(e.get("action")),
                str(e["version"]),
                str(e.get("from_version") or "-"),
                str(e.get("to_version") or "-"),
                str(e.get("actor")),
                str(e.get("reason") or "").splitlines()[0][:60] if e.get("reason") else "-",
            )
            for e in events
        ],
    )
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from modelops.errors import ConfigurationError
    from modelops.serving.server import exec_server, prepare

    if args.workers < 1:
        raise ConfigurationError("--workers must be at least 1")
    if not 0 < args.sample_rate <= 1:
        raise ConfigurationError(
            f"--sample-rate must be a fraction in (0, 1], not {args.sample_rate}"
        )
    if not 1 <= args.port <= 65535:
        raise ConfigurationError(f"--port must be between 1 and 65535, not {args.port}")
    ref = args.version or args.alias or "production"
    config = prepare(
        args.model_name,
        ref,
        fast_path=args.fast_path,
        sample_dir=args.sample_dir,
        sample_rate=args.sample_rate,
    )
    from modelops.serving.model import FAST_PATH_REPORT

    report = Path(config.model_dir) / FAST_PATH_REPORT
    engine = (
        "onnx (verified)"
        if config.fast_path and report.is_file() and json.loads(report.read_text()).get("used")
        else "scikit-learn or the model's own flavour"
    )
    via = f" (@{config.alias})" if config.alias else ""
    print(
        f"serving {config.name} version {config.version}{via}, engine {engine}, at "
        f"http://{args.host}:{args.port} with {args.workers} worker(s)",
        flush=True,
    )
    exec_server(config, args.host, args.port, args.workers)
    return 0  # not reached: the process became the server


def _cmd_stop(args: argparse.Namespace) -> int:
    from modelops.serving.local import stop_local
    from modelops.settings import get_settings

    stopped = stop_local(get_settings().home_dir, args.model_name)
    if stopped is None:
        print(f"no local server is running for {args.model_name}")
        return 0
    print(f"stopped {args.model_name} v{stopped.version} at {stopped.url} (pid {stopped.pid})")
    return 0


def _cmd_worker(args: argparse.Namespace) -> int:
    import asyncio

    from modelops.orchestration.worker import serve

    asyncio.run(serve(args.pool, name=args.name, limit=args.limit))
    return 0


def _cmd_api(args: argparse.Namespace) -> int:
    from modelops.errors import ConfigurationError

    if args.action == "token":
        from modelops.graphql.auth import make_token

        if not args.sub:
            raise ConfigurationError("api token needs --sub (who the token is for)")
        print(make_token(args.sub, args.role or ["VIEWER"], ttl=args.ttl))
        return 0
    if not 1 <= args.port <= 65535:
        raise ConfigurationError(f"--port must be between 1 and 65535, got {args.port}")
    from modelops.graphql.app import serve

    serve(args.host, args.port)
    return 0


def _add_other_commands(sub: Any) -> None:
    p = sub.add_parser("versions", help="list a registered model's versions")
    p.add_argument("model_name")
    p.add_argument("--stage", choices=["None", "Staging", "Production", "Archived"])
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_cmd_versions)

    p = sub.add_parser("history", help="a model's audit trail, newest first")
    p.add_argument("model_name")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_cmd_history)

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
    p.set_defaults(func=_cmd_serve)

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
    p.set_defaults(func=_cmd_api)

    p = sub.add_parser(
        "worker",
        help="a Prefect process worker whose flow runs start warm "
        "(forked from a process with the libraries imported)",
    )
    p.add_argument("--pool", default="modelops-process", help="work pool (default: %(default)s)")
    p.add_argument("--name", help="worker name (default: Prefect's)")
    p.add_argument("--limit", type=int, help="most flow runs at once (default: no limit)")
    p.set_defaults(func=_cmd_worker)

    p = sub.add_parser("stop", help="stop the local model server the deployment flow started")
    p.add_argument("model_name")
    p.set_defaults(func=_cmd_stop)

    p = sub.add_parser("sample-data", help="write the lead-scoring sample data set")
    p.add_argument("--out", required=True, help="output .csv or .parquet path")
    p.add_argument("--rows", type=int, default=5000)
    p.add_argument("--seed", type=int, default=7)
    p.set_defaults(func=_cmd_sample_data)


def build_parser(command: str | None = None, api: Any = None) -> argparse.ArgumentParser:
    """The argument parser. Only ``command``'s flow is imported (``--help`` of the top level
    imports no flow at all), so a command pays only for what it runs."""
    codes = "\n".join(f"  {code:>3}  {meaning}" for code, meaning in EXIT_CODES.items())
    parser = argparse.ArgumentParser(
        prog="modelops",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        epilog=f"exit codes:\n{codes}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")
    for spec in FLOW_COMMANDS:
        p = sub.add_parser(spec.name, help=spec.help, description=spec.help)
        if spec.name == command:
            flow = spec.load()
            _add_flow_options(p, spec, flow)
            p.set_defaults(func=lambda args, s=spec, f=flow: _run_flow(s, f, _values(args), api))
    _add_other_commands(sub)
    return parser


def _values(args: argparse.Namespace) -> dict[str, Any]:
    return {k: v for k, v in vars(args).items() if k not in ("command", "func")}


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

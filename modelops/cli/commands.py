"""The commands themselves: each flow command's spec and what it prints, running a flow in this
process, and the other commands (versions, history, serve, stop, worker, api, sample-data)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelops.cli.options import FlowCommand, coerce

if TYPE_CHECKING:
    from modelops.serving.traffic import TrafficConfig

# ----------------------------------------------------------------------------- flow commands


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
    done = (
        f"Reused {result.model_name} version {result.version} ({alias}): same data, parameters "
        f"and code, nothing trained"
        if getattr(result, "reused", None)
        else f"Registered {result.model_name} version {result.version} ({alias})"
    )
    key = getattr(result, "training_key", "")
    return (
        f"{done} from {result.rows} rows"
        + (f" (training key {key[:12]})" if key else "")
        + "\n"
        + f"  metrics: {metrics}\n  MLflow run: {result.mlflow_run_id}\n"
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


def _show_rollout(r: Any) -> str:
    from modelops.steps.rollout import result_text

    return result_text(r).replace("**", "").rstrip()


def _show_deployment(r: Any) -> str:
    where = f"{r.url}/invocations" if r.target == "local" else r.url
    return f"serving version {r.version} ({r.target}) at {where}"


def _show_reproduction(r: Any) -> str:
    from modelops.steps.reproduce import reproduction_text

    return reproduction_text(r)


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

_DATA_FLAGS = {"data_path": ["--data", "--data-path"]}
# The training flows' options: ``--force`` is the short spelling of ``--force-retrain``.
_TRAINING_FLAGS = {**_DATA_FLAGS, "force_retrain": ["--force-retrain", "--force"]}


def _training_command(name: str, flow: str, help: str) -> FlowCommand:
    """A command whose flow trains a tabular model: ``--data``, the training summary, and the
    training libraries imported while Prefect starts."""
    return FlowCommand(
        name, flow, help, flags=_TRAINING_FLAGS, show=_show_training, warm=_WARM_TRAINING
    )


FLOW_COMMANDS = [
    FlowCommand(
        "run",
        "flows.lifecycle:lifecycle",
        "the main job: train, gate, register, stage, promote and serve (lifecycle flow)",
        flags=_TRAINING_FLAGS,
        defaults={"promote_to": "production", "deploy": "local"},
        show=_show_lifecycle,
        warm=_WARM_TRAINING,
    ),
    _training_command(
        "train",
        "flows.training:training",
        "train, validate, gate, register and stage a tabular model (training flow)",
    ),
    _training_command(
        "tune",
        "flows.tuning:tuning",
        "search estimators and hyper-parameters on Dask; gate, register and stage the "
        "best (tuning flow)",
    ),
    FlowCommand(
        "text-train",
        "flows.text_training:text_training",
        "fine-tune, gate, register and stage a text classifier (text-training flow)",
        flags=_TRAINING_FLAGS,
        show=_show_json,
    ),
    FlowCommand(
        "reproduce",
        "flows.reproduce:reproduce",
        "rebuild a version from its recorded data, parameters and seed, and compare "
        "(reproduce flow)",
        positionals=("model_name", "version"),
        # the parameter cannot be called "register" (Prefect's parameter model has one)
        flags={**_DATA_FLAGS, "register_rebuild": ["--register"]},
        show=_show_reproduction,
        warm=_WARM_TRAINING,
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
        "rollout",
        "flows.rollout:rollout",
        "roll a staged candidate out on live traffic beside production: canary or shadow, "
        "judged step by step, promoted or taken out (rollout flow)",
        positionals=("model_name",),
        show=_show_rollout,
        warm=_WARM_REGISTRY,
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


def make_prefect_home() -> None:
    """Before Prefect is imported: its home folder's parents (Prefect creates the folder itself
    when imported, but not those above it, and ours is under MODELOPS_HOME)."""
    home = os.environ.get("PREFECT_HOME")
    if home:
        Path(home).expanduser().mkdir(parents=True, exist_ok=True)


def run_flow(command: FlowCommand, flow: Any, values: dict[str, Any], api: Any = None) -> int:
    from modelops.errors import ModelOpsError
    from modelops.orchestration import local_server
    from modelops.orchestration.console import summarize_console_logs
    from modelops.orchestration.engine import flow_api

    params = coerce(flow, values)
    summarize_console_logs()
    with flow_api(tuple(command.warm), local_server.start_timeout(), api):
        state = flow(**params, return_state=True)
        ui = _prefect_ui()
    run_id = state.state_details.flow_run_id
    where = f"{ui}/runs/flow-run/{run_id}" if ui else f"Prefect flow run {run_id}"
    if state.is_completed():
        print(command.show(state.result()).rstrip("\n"))
        if ui:
            print(f"  Prefect run: {where}")
        return 0
    error = state.result(raise_on_failure=False)
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


def _prefect_ui() -> str | None:
    """The Prefect UI of the API in use, when it has one that outlives this command."""
    from prefect.settings import get_current_settings

    url = get_current_settings().ui_url
    return str(url).rstrip("/") if url else None


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


def cmd_sample_data(args: argparse.Namespace) -> int:
    from modelops.sample import write_leads

    path = write_leads(args.out, n_rows=args.rows, seed=args.seed)
    print(f"wrote {args.rows} rows to {path} (+ schema sidecar)")
    return 0


def cmd_versions(args: argparse.Namespace) -> int:
    from modelops.registry.stages import get_model_metadata

    rows = get_model_metadata(args.model_name, stage=args.stage)
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
        return 0
    if not rows:
        print(f"{args.model_name}: no versions" + (f" in stage {args.stage}" if args.stage else ""))
        return 0
    _print_table(
        ("version", "stage", "aliases", "created", "run_id", "training key", "last event"),
        [
            (
                str(r["version"]),
                r["stage"],
                ",".join(r["aliases"]) or "-",
                str(r["created"])[:19],
                r["run_id"] or "-",
                (r.get("tags") or {}).get("modelops.training_key", "")[:12] or "-",
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


def cmd_history(args: argparse.Namespace) -> int:
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


def cmd_serve(args: argparse.Namespace) -> int:
    from modelops.errors import ConfigurationError
    from modelops.serving.server import exec_server, prepare
    from modelops.serving.traffic import ROLLOUT_EVIDENCE_ENV, ROLLOUT_LEASE_ENV, ROLLOUT_TOKEN_ENV

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
        candidate=args.candidate,
        traffic=_traffic(args),
        # A rollout's hold on the split (modelops.serving.traffic.Rollout): never an option.
        evidence_path=os.environ.get(ROLLOUT_EVIDENCE_ENV) or None,
        control_token=os.environ.get(ROLLOUT_TOKEN_ENV) or None,
        lease_seconds=float(os.environ.get(ROLLOUT_LEASE_ENV) or 0) or None,
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
    if config.candidate is not None and config.traffic is not None:
        split = (
            f"{config.traffic.weight:g} of the requests"
            if config.traffic.mode == "canary"
            else "every request in shadow (clients get the stable answer)"
        )
        sticky = (
            f", sticky on {config.traffic.sticky_header}" if config.traffic.sticky_header else ""
        )
        print(
            f"candidate version {config.candidate.version} answers {split}{sticky}; "
            f"evidence kept in {config.evidence_path}",
            flush=True,
        )
    exec_server(config, args.host, args.port, args.workers)
    return 0  # not reached: the process became the server


def _traffic(args: argparse.Namespace) -> TrafficConfig | None:
    """The traffic split the serve options ask for (``None`` without a candidate).

    Raises:
        ConfigurationError: a split option without --candidate, or a canary option in shadow.
    """
    from modelops.errors import ConfigurationError
    from modelops.serving.traffic import TrafficConfig

    given = [
        f"--{name.replace('_', '-')}"
        for name in ("mode", "weight", "sticky_header")
        if getattr(args, name) is not None
    ]
    if args.candidate is None:
        if given:
            raise ConfigurationError(
                f"{', '.join(given)} split traffic with a candidate: add --candidate "
                f"(e.g. --candidate staging)."
            )
        return None
    mode = args.mode or "shadow"
    if mode == "shadow" and (args.weight is not None or args.sticky_header is not None):
        raise ConfigurationError(
            "--weight and --sticky-header are for --mode canary: in shadow the candidate "
            "scores every request and answers none."
        )
    weight = 0.1 if args.weight is None else args.weight
    return TrafficConfig(mode, weight, args.sticky_header).check()


def cmd_server(args: argparse.Namespace) -> int:
    from modelops.errors import ConfigurationError
    from modelops.orchestration import local_server
    from modelops.settings import get_settings

    home = get_settings().home_dir
    if args.action == "stop":
        stopped = local_server.stop(home)
        print(
            f"stopped the Prefect server at {stopped.ui} (pid {stopped.pid}) and its warm process"
            if stopped
            else f"no local Prefect server is running for {home}"
        )
        return 0
    if args.action == "start":
        started = local_server.ensure(home)
        if not started.ready(local_server.start_timeout()):
            log = local_server.folder(home) / "server.log"
            raise ConfigurationError(f"the Prefect server did not come up: see {log}")
    server = local_server.status(home)
    if server is None:
        print(f"no local Prefect server is running for {home} (the next flow command starts one)")
        return 0
    print(f"Prefect server: {server.ui} (API {server.url}, pid {server.pid}, data in {home})")
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    from modelops.serving.local import stop_local
    from modelops.settings import get_settings

    stopped = stop_local(get_settings().home_dir, args.model_name)
    if stopped is None:
        print(f"no local server is running for {args.model_name}")
        return 0
    print(f"stopped {args.model_name} v{stopped.version} at {stopped.url} (pid {stopped.pid})")
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    import asyncio

    make_prefect_home()
    from modelops.orchestration.worker import serve

    asyncio.run(serve(args.pool, name=args.name, limit=args.limit))
    return 0


def cmd_api(args: argparse.Namespace) -> int:
    from modelops.errors import ConfigurationError

    if args.action == "token":
        from modelops.graphql.auth import make_token

        if not args.sub:
            raise ConfigurationError("api token needs --sub (who the token is for)")
        print(make_token(args.sub, args.role or ["VIEWER"], ttl=args.ttl))
        return 0
    if not 1 <= args.port <= 65535:
        raise ConfigurationError(f"--port must be between 1 and 65535, got {args.port}")
    make_prefect_home()
    from modelops.graphql.app import serve

    serve(args.host, args.port)
    return 0

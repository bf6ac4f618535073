"""The run tree: one parent run per flow run, one child run per task, each child's params,
metrics and tags written in one batch as it ends.

Run ids are passed explicitly (tasks may run in other threads or processes), so everything here
goes through an ``MlflowClient`` rather than MLflow's thread-local "active run".
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from modelops.settings import Settings
from modelops.tracking.client import ensure_experiment, get_client
from modelops.tracking.tags import PARENT_TAG, process_tags
from modelops.uris import redact

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from mlflow import MlflowClient


class TrackingContext(BaseModel):
    """Everything a task needs to log into the flow run's MLflow run tree."""

    model_config = ConfigDict(frozen=True)

    tracking_uri: str
    registry_uri: str
    experiment_id: str
    parent_run_id: str
    ui_url: str | None = None
    flow_run_id: str | None = None  # the Prefect flow run this MLflow run belongs to
    deployment_name: str | None = None  # its Prefect deployment, if any
    lineage: dict[str, str] = {}  # orchestrator tags (prefect.*) copied onto model versions

    def actor(self, explicit: str | None = None) -> str:
        """Who is acting, for the audit trail: the explicit actor, else the deployment that
        started the run, else the OS user."""
        import getpass

        if explicit and explicit.strip():
            return explicit.strip()
        if self.deployment_name:
            return f"deployment:{self.deployment_name}"
        try:
            return f"user:{getpass.getuser()}"
        except Exception:
            return "user:unknown"

    @property
    def shown_tracking_uri(self) -> str:
        """The tracking URI as it may be shown to people (credentials removed)."""
        return str(redact(self.tracking_uri))

    def client(self) -> MlflowClient:
        """A client bound to this context's tracking and registry stores."""
        return get_client(self.tracking_uri, self.registry_uri)

    def run_url(self, run_id: str | None = None) -> str | None:
        """Link to a run in the MLflow UI, when the UI's address is known."""
        if not self.ui_url:
            return None
        return (
            f"{self.ui_url}/#/experiments/{self.experiment_id}/runs/{run_id or self.parent_run_id}"
        )


def start_parent_run(
    settings: Settings,
    run_name: str,
    tags: dict[str, str] | None = None,
    params: dict[str, Any] | None = None,
    flow_run_id: str | None = None,
    deployment_name: str | None = None,
    lineage: dict[str, str] | None = None,
) -> TrackingContext:
    """Create the parent run of a flow run.

    Args:
        settings: where MLflow lives.
        run_name: the run's display name.
        tags: tags for the run (the Prefect flow-run id among them).
        params: flow parameters to log (nested values are flattened to dotted keys).
        flow_run_id: the Prefect flow run, if any (kept in the context for audit events).
        deployment_name: its Prefect deployment, if any.
        lineage: orchestrator tags to copy onto the versions this run registers.

    Returns:
        The tracking context tasks log through.
    """
    if settings.resolved_tracking_uri.startswith("sqlite:///"):
        settings.home_dir.mkdir(parents=True, exist_ok=True)
    client = get_client(settings.resolved_tracking_uri, settings.resolved_registry_uri)
    experiment_id = ensure_experiment(
        client, settings.experiment_name, settings.default_artifact_location
    )
    run = client.create_run(
        experiment_id,
        run_name=run_name,
        tags={**process_tags(), **{k: str(v) for k, v in (tags or {}).items()}},
    )
    ctx = TrackingContext(
        tracking_uri=settings.resolved_tracking_uri,
        registry_uri=settings.resolved_registry_uri,
        experiment_id=experiment_id,
        parent_run_id=run.info.run_id,
        ui_url=settings.ui_base_url,
        flow_run_id=flow_run_id,
        deployment_name=deployment_name,
        lineage=lineage or {},
    )
    if params:
        log_params(ctx, run.info.run_id, params)
    return ctx


def end_run(ctx: TrackingContext, run_id: str, status: str = "FINISHED") -> None:
    """Mark a run FINISHED, FAILED or KILLED."""
    ctx.client().set_terminated(run_id, status=status)


class _Pending:
    """What a child run has logged so far, written in one batch when it ends."""

    def __init__(self) -> None:
        self.params: dict[str, str] = {}
        self.metrics: list[Any] = []
        self.tags: dict[str, str] = {}

    def add_params(self, params: list[Any]) -> None:
        from mlflow.exceptions import MlflowException

        for param in params:
            if self.params.get(param.key, param.value) != param.value:
                raise MlflowException.invalid_parameter_value(
                    f"Changing param values is not allowed. Param with key={param.key!r} "
                    f"was already logged with value={self.params[param.key]!r}; "
                    f"attempted to log new value {param.value!r}."
                )
            self.params[param.key] = param.value


# Child runs open in this process (run id -> what they logged): their params, metrics and tags
# are written when they end, in one batch, not one store call each (the run stays open until
# then, so nobody reads them half-written).
_PENDING: dict[str, _Pending] = {}


@contextlib.contextmanager
def child_run(ctx: TrackingContext, name: str, tags: dict[str, str] | None = None) -> Iterator[str]:
    """A child run of the flow's parent run for one task; yields its run id.

    What is logged to it with :func:`log_params`, :func:`log_metrics` and :func:`set_tags`
    meanwhile is written in one batch as it ends (artifacts are written at once). The run ends
    FINISHED, or FAILED with the error recorded as tags when the body raises.
    """
    client = ctx.client()
    run = client.create_run(
        ctx.experiment_id,
        run_name=name,
        tags={PARENT_TAG: ctx.parent_run_id, **process_tags(), **(tags or {})},
    )
    run_id = run.info.run_id
    pending = _PENDING[run_id] = _Pending()
    started = time.perf_counter()
    try:
        yield run_id
    except BaseException as exc:
        _PENDING.pop(run_id, None)
        pending.tags.update({"error.type": type(exc).__name__, "error.message": str(exc)[:4900]})
        with contextlib.suppress(Exception):
            _write(client, run_id, pending, time.perf_counter() - started)
            client.set_terminated(run_id, status="FAILED")
        raise
    _PENDING.pop(run_id, None)
    _write(client, run_id, pending, time.perf_counter() - started)
    client.set_terminated(run_id, status="FINISHED")


def _write(client: MlflowClient, run_id: str, pending: _Pending, seconds: float) -> None:
    """A child run's params, metrics and tags in as few ``log_batch`` calls as MLflow allows
    (one, unless it logged over 100 params or tags, or 1,000 values)."""
    from mlflow.entities import Param

    params = [Param(k, v) for k, v in pending.params.items()]
    metrics = [*pending.metrics, *metric_entities({"duration_seconds": seconds})]
    tags = _tags(pending.tags)
    while params or metrics or tags:
        batch_params, params = params[:100], params[100:]
        batch_tags, tags = tags[:100], tags[100:]
        room = 1000 - len(batch_params) - len(batch_tags)
        batch_metrics, metrics = metrics[:room], metrics[room:]
        client.log_batch(run_id, metrics=batch_metrics, params=batch_params, tags=batch_tags)


def record_run(
    ctx: TrackingContext,
    name: str,
    params: dict[str, Any],
    metrics: dict[str, float],
    tags: dict[str, str] | None = None,
    status: str = "FINISHED",
) -> str:
    """A finished child run of the parent run in three calls (create, one batch, end): for
    work done elsewhere (a search candidate on a Dask worker) and recorded here afterwards."""
    from mlflow.entities import Param

    client = ctx.client()
    run = client.create_run(
        ctx.experiment_id,
        run_name=name,
        tags={PARENT_TAG: ctx.parent_run_id, **process_tags(), **(tags or {})},
    )
    flat = [Param(k[:250], v[:6000]) for k, v in flatten(params).items()][:100]
    client.log_batch(run.info.run_id, params=flat, metrics=metric_entities(metrics))
    client.set_terminated(run.info.run_id, status=status)
    return str(run.info.run_id)


def flatten(values: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested dicts to dotted keys with string values (MLflow params are flat strings)."""
    out: dict[str, str] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, BaseModel):
            value = value.model_dump(mode="json")
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value if isinstance(value, str) else json.dumps(value, default=str)
    return out


def _tags(values: dict[str, Any]) -> list[Any]:
    from mlflow.entities import RunTag

    return [RunTag(k, str(v)) for k, v in values.items()]


def metric_entities(values: dict[str, float], step: int = 0) -> list[Any]:
    """MLflow ``Metric`` entities for one ``log_batch``, all stamped now at ``step``."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    return [Metric(k, float(v), now, step) for k, v in values.items()]


def log_params(ctx: TrackingContext, run_id: str, params: dict[str, Any]) -> None:
    """Log parameters (flattened; values cut to MLflow's 6000-character limit)."""
    from mlflow.entities import Param

    flat = [Param(k[:250], v[:6000]) for k, v in flatten(params).items()]
    pending = _PENDING.get(run_id)
    if pending is not None:
        pending.add_params(flat)
        return
    client = ctx.client()
    for start in range(0, len(flat), 100):  # log_batch takes at most 100 params a call
        client.log_batch(run_id, params=flat[start : start + 100])


def log_metrics(
    ctx: TrackingContext, run_id: str, metrics: dict[str, float], step: int = 0
) -> None:
    """Log metrics in one call (``step`` orders repeated values, e.g. per batch)."""
    pending = _PENDING.get(run_id)
    if pending is not None:
        pending.metrics.extend(metric_entities(metrics, step))
        return
    ctx.client().log_batch(run_id, metrics=metric_entities(metrics, step))


def set_tags(ctx: TrackingContext, run_id: str, tags: dict[str, Any]) -> None:
    """Set run tags in one call."""
    pending = _PENDING.get(run_id)
    if pending is not None:
        pending.tags.update({k: str(v) for k, v in tags.items()})
        return
    ctx.client().log_batch(run_id, tags=_tags(tags))


def log_json(ctx: TrackingContext, run_id: str, payload: Any, artifact_file: str) -> None:
    """Log a JSON artifact."""
    ctx.client().log_text(run_id, json.dumps(payload, indent=2, default=str), artifact_file)


def log_text(ctx: TrackingContext, run_id: str, text: str, artifact_file: str) -> None:
    """Log a text artifact (markdown, CSV, ...)."""
    ctx.client().log_text(run_id, text, artifact_file)


def log_figures(ctx: TrackingContext, run_id: str, figures: dict[str, Figure]) -> None:
    """Log matplotlib figures as PNG artifacts, one per file name."""
    client = ctx.client()
    for name, fig in figures.items():
        client.log_figure(run_id, fig, name)


def log_dataset(ctx: TrackingContext, run_id: str, dataset: Any, context: str) -> None:
    """Log a dataset entity (``mlflow.entities.Dataset``) as an input of ``run_id``."""
    from mlflow.entities import DatasetInput, InputTag
    from mlflow.exceptions import MlflowException

    entity = DatasetInput(
        dataset=dataset,
        tags=[InputTag(key="mlflow.data.context", value=context)],
    )
    for attempt in range(3):
        try:
            ctx.client().log_inputs(run_id, datasets=[entity])
            return
        except MlflowException as exc:
            # Two runs logging the same dataset at once race MLflow's look-up-then-insert:
            # the loser's insert hits the unique key; the dataset is there now, so again.
            text = str(exc)
            if attempt == 2 or not (
                "dataset_pk" in text
                or "UNIQUE constraint failed: datasets" in text
                or "Duplicate entry" in text
            ):
                raise
            time.sleep(0.1 * (attempt + 1))

"""What every task shares: the retry policy, Prefect run context, artifacts."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any

from prefect.cache_policies import NONE
from prefect.tasks import exponential_backoff

from modelops.errors import is_transient
from modelops.registry import locks
from modelops.settings import get_settings
from modelops.tracking import get_client


def retry_on_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect retry condition: retry only faults :func:`modelops.errors.is_transient` accepts.

    Validation failures, failed gates, refused promotions and 4xx errors end the task at once.
    """
    try:
        exc = state.result(raise_on_failure=False)
    except Exception as err:  # the result itself could not be read: decide on that error
        exc = err
    return isinstance(exc, BaseException) and is_transient(exc)


# Every task: 3 retries after ~2 s, 4 s, 8 s (each +/- 50% jitter so parallel runs spread out),
# taken only for transient faults (retry_on_transient): a pure computation that fails on its
# input fails at once, one that talks to MLflow or Prefect survives a server's restart.
IO_TASK: dict[str, Any] = {
    "retries": 3,
    "retry_delay_seconds": exponential_backoff(backoff_factor=2),
    "retry_jitter_factor": 0.5,
    "retry_condition_fn": retry_on_transient,
    # Never hash inputs for a cache key: they include whole DataFrames, and these tasks have
    # side effects (runs, versions, aliases) that must not be skipped by a cache hit.
    "cache_policy": NONE,
}


def flow_run_info() -> dict[str, str]:
    """Identity of the current Prefect flow run (empty values outside a flow run).

    Read once per flow run, when its MLflow run opens (:func:`tasks.tracking.start_mlflow_run`);
    tasks then take it from the tracking context: ``prefect.runtime.deployment`` queries the API
    on every read when the deployment is not in the run context.
    """
    from prefect.runtime import deployment, flow_run

    info = {
        "prefect.flow_run_id": flow_run.id or "",
        "prefect.flow_run_name": flow_run.name or "",
        "prefect.flow_name": flow_run.flow_name or "",
        "prefect.deployment_name": deployment.name or "",
    }
    url = flow_run.ui_url  # "None/flow-runs/..." when PREFECT_UI_URL is unset: not a link
    if url and url.startswith(("http://", "https://")):
        info["prefect.flow_run_url"] = url
    return info


def artifact_key(*parts: str) -> str:
    """A valid Prefect artifact key (lowercase letters, digits and dashes) from free text."""
    key = "-".join(re.sub(r"[^a-z0-9]+", "-", p.lower()).strip("-") for p in parts if p)
    return key[:100].strip("-") or "artifact"


def markdown_artifact(markdown: str, key: str, description: str) -> None:
    """Publish a markdown artifact for people reading the run in the Prefect UI."""
    from prefect.artifacts import create_markdown_artifact

    create_markdown_artifact(markdown=markdown, key=key, description=description)


def table_artifact(rows: list[dict[str, Any]], key: str, description: str) -> None:
    """Publish a table artifact."""
    from prefect.artifacts import create_table_artifact

    create_table_artifact(table=rows, key=key, description=description)


@contextlib.contextmanager
def model_lock(
    kind: str, model_name: str, wait_seconds: float = locks.WAIT_SECONDS
) -> Iterator[None]:
    """Hold ``kind``'s lock of ``model_name`` (:func:`modelops.registry.locks.model_lock`) for a
    flow body, so runs that change one model's aliases or what serves it never overlap — with
    each other or with the operator API, the command line or the Python API, which take the
    same lock in the registry. Tasks the body calls take it again for free (re-entrant)."""
    from prefect.runtime import flow_run

    settings = get_settings()
    client = get_client(settings.resolved_tracking_uri, settings.resolved_registry_uri)
    owner = f"flow run {flow_run.name or flow_run.id or '?'}"
    with locks.model_lock(client, model_name, kind, owner=owner, wait_seconds=wait_seconds):
        yield

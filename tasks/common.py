"""What every task shares: the retry policy, Prefect run context, artifacts."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any

from prefect.cache_policies import NONE
from prefect.tasks import exponential_backoff

from modelops.errors import is_transient


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


def _ensure_concurrency_limit(name: str) -> None:
    """Create the global concurrency limit ``name`` (1 slot) unless it exists."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            with contextlib.suppress(ObjectAlreadyExists):
                client.create_global_concurrency_limit(
                    GlobalConcurrencyLimitCreate(name=name, limit=1)
                )


LOCK_LEASE_SECONDS = 60


@contextlib.contextmanager
def model_lock(kind: str, model_name: str, timeout_seconds: float = 900) -> Iterator[None]:
    """Hold the one slot of ``modelops-<kind>-<model>`` so runs of one model never overlap.

    The slot lives in the Prefect server's database, so this excludes runs in other processes
    and on other workers too. MLflow has no compare-and-set on aliases: this is what keeps
    two promotions of one model from both reading the same champion. The slot is a lease the
    holder renews: a holder that is killed frees it when the lease runs out, after 60 s (the
    API's shortest) instead of Prefect's default 5 minutes.
    """
    from prefect.concurrency.sync import concurrency

    name = artifact_key("modelops", kind, model_name)
    _ensure_concurrency_limit(name)
    with concurrency(
        name,
        occupy=1,
        timeout_seconds=timeout_seconds,
        strict=True,
        lease_duration=LOCK_LEASE_SECONDS,
    ):
        yield

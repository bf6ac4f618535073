"""Tasks that open and close the flow run's parent MLflow run."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from prefect import get_run_logger, task

from modelops import tracking
from modelops.errors import ModelOpsError, is_transient, unreachable
from modelops.registry import locks
from modelops.settings import get_settings
from tasks.common import IO_TASK, artifact_key, flow_run_info, markdown_artifact, model_lock


@task(name="start_mlflow_run", **IO_TASK)
def start_mlflow_run(
    run_name: str, params: dict[str, Any] | None = None, tags: dict[str, str] | None = None
) -> tracking.TrackingContext:
    """Open the parent MLflow run of this flow run, tagged with the Prefect flow run."""
    prefect_info = flow_run_info()
    ctx = tracking.start_parent_run(
        get_settings(),
        run_name,
        tags={**prefect_info, **(tags or {})},
        params=params,
        flow_run_id=prefect_info["prefect.flow_run_id"] or None,
        deployment_name=prefect_info["prefect.deployment_name"] or None,
        lineage={k: v for k, v in prefect_info.items() if v},
    )
    logger = get_run_logger()
    try:
        repaired = tracking.repair_stale_runs(ctx.client(), ctx.experiment_id, ended_flow_runs)
    except Exception as exc:  # housekeeping must never stop a run
        logger.warning("Could not check for stale MLflow runs: %s", exc)
    else:
        if repaired:
            logger.warning(
                "Marked %s MLflow run(s) FAILED that an interrupted run left RUNNING: %s",
                len(repaired),
                ", ".join(repaired),
            )
    url = ctx.run_url()
    shown = ctx.shown_tracking_uri
    logger.info("MLflow run: %s", url or f"run {ctx.parent_run_id} in {shown}")
    open_hint = (
        f"[{ctx.parent_run_id}]({url})"
        if url
        else f"`{ctx.parent_run_id}` (open with `mlflow ui --backend-store-uri {shown}`)"
    )
    markdown_artifact(
        f"**MLflow run:** {open_hint}\n\n"
        f"- experiment id: `{ctx.experiment_id}`\n- tracking URI: `{shown}`\n",
        key=artifact_key("mlflow-run", run_name),
        description="Where this flow run's MLflow run lives",
    )
    return ctx


def ended_flow_runs(ids: set[str]) -> set[str]:
    """Which of these Prefect flow runs are over (completed, failed, crashed or cancelled)."""
    from uuid import UUID

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[UUID(i) for i in ids]))
        )
    return {str(r.id) for r in runs if r.state is not None and r.state.is_final()}


@task(name="end_mlflow_run", **IO_TASK)
def end_mlflow_run(ctx: tracking.TrackingContext, status: str, error: str | None = None) -> None:
    """Close the parent MLflow run as FINISHED or FAILED (with the error as a tag)."""
    if error:
        tracking.set_tags(ctx, ctx.parent_run_id, {"error.message": error[:4900]})
    tracking.end_run(ctx, ctx.parent_run_id, status)


@contextlib.contextmanager
def flow_run(
    flow: str,
    model_name: str,
    params: dict[str, Any],
    lock: str | None = None,
    wait_seconds: float = locks.WAIT_SECONDS,
) -> Iterator[tracking.TrackingContext]:
    """What every flow body runs in: its parent MLflow run ``<flow>-<model>`` (tagged with the
    flow), and, for flows that change what serves or what is in production, the model's lock
    (``lock`` names it: runs holding the same lock for one model never overlap; a run waits
    ``wait_seconds`` for another holder)."""
    try:
        with contextlib.ExitStack() as stack:
            if lock:
                stack.enter_context(model_lock(lock, model_name, wait_seconds))
            yield stack.enter_context(
                mlflow_parent_run(
                    f"{flow}-{model_name}", params=params, tags={"modelops.flow": flow}
                )
            )
    except Exception as exc:
        if is_transient(exc) and not isinstance(exc, ModelOpsError):
            raise unreachable(exc) from exc  # one line that says what did not answer
        raise


@contextlib.contextmanager
def mlflow_parent_run(
    run_name: str, params: dict[str, Any] | None = None, tags: dict[str, str] | None = None
) -> Iterator[tracking.TrackingContext]:
    """Open the parent MLflow run for a flow body and close it however the body ends."""
    ctx = start_mlflow_run(run_name, params=params, tags=tags)
    try:
        yield ctx
    except BaseException as exc:
        with contextlib.suppress(Exception):
            end_mlflow_run(ctx, "FAILED", error=f"{type(exc).__name__}: {exc}")
        raise
    end_mlflow_run(ctx, "FINISHED")

"""Stale-run repair: runs left RUNNING by a flow run or process that can no longer end them."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from modelops.tracking.tags import FLOW_RUN_TAG, HOST_TAG, PID_TAG, REPAIRED_TAG, STARTED_TAG

if TYPE_CHECKING:
    from mlflow import MlflowClient


def _process_gone(pid: int, started: str | None) -> bool:
    import psutil

    try:
        process = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return True
    # A recycled pid belongs to a process started at another time.
    return started is not None and abs(process.create_time() - float(started)) > 1


def repair_stale_runs(
    client: MlflowClient,
    experiment_id: str,
    ended_flow_runs: Callable[[set[str]], set[str]] | None = None,
) -> list[str]:
    """Mark FAILED the runs left RUNNING by a flow run that can no longer end them.

    A flow run killed (or cut off from the tracking server until it gave up) cannot close its
    MLflow runs; the next flow run in the experiment does, here. A run is stale when
    ``ended_flow_runs`` says its orchestrator run has ended, or when its process, on this host,
    is gone (pid and start time recorded in its tags: runs made outside a flow).

    Returns:
        The ids of the runs marked FAILED (each tagged ``modelops.repaired`` with why).
    """
    import socket

    running = client.search_runs(
        [experiment_id], filter_string="attributes.status = 'RUNNING'", max_results=1000
    )
    host = socket.gethostname()
    ended = set()
    if ended_flow_runs is not None:
        ids = {r.data.tags[FLOW_RUN_TAG] for r in running if r.data.tags.get(FLOW_RUN_TAG)}
        ended = ended_flow_runs(ids) if ids else set()
    repaired = []
    for run in running:
        tags = run.data.tags
        why = None
        if tags.get(FLOW_RUN_TAG) in ended:
            why = f"its Prefect flow run {tags[FLOW_RUN_TAG]} ended without closing it"
        elif (
            tags.get(HOST_TAG) == host
            and tags.get(PID_TAG, "").isdigit()
            and _process_gone(int(tags[PID_TAG]), tags.get(STARTED_TAG))
        ):
            why = f"its process {tags[PID_TAG]} on {host} ended without closing it"
        if why:
            client.set_tag(run.info.run_id, REPAIRED_TAG, f"marked FAILED: {why}")
            client.set_terminated(run.info.run_id, status="FAILED")
            repaired.append(run.info.run_id)
    return repaired

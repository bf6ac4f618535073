"""The tags a run carries about where it belongs: its parent, its flow run, and the process
that opened it (how a later run knows this one's process is gone)."""

from __future__ import annotations

PARENT_TAG = "mlflow.parentRunId"
RUN_NAME_TAG = "mlflow.runName"
FLOW_RUN_TAG = "prefect.flow_run_id"
HOST_TAG, PID_TAG, STARTED_TAG = "modelops.host", "modelops.pid", "modelops.process_started"
REPAIRED_TAG = "modelops.repaired"
WARM_TAG = "modelops.warm_start"  # the run's process was forked from this warm process (pid)


def process_tags() -> dict[str, str]:
    """Which process a run belongs to: how a later run knows this one's process is gone."""
    import os
    import socket

    import psutil

    pid = os.getpid()
    tags = {
        HOST_TAG: socket.gethostname(),
        PID_TAG: str(pid),
        STARTED_TAG: f"{psutil.Process(pid).create_time():.3f}",
    }
    warm = os.environ.get("MODELOPS_WARM_START")  # forked from a worker's warm process
    if warm:
        tags[WARM_TAG] = warm
    return tags

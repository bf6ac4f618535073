"""The MLflow tracking adapter: one parent run per flow run, one child run per task.

- :mod:`~modelops.tracking.client`: a client per store, the experiment (restored if deleted),
  MLflow's process-wide URI for the one call that needs it.
- :mod:`~modelops.tracking.runs`: the run tree (:class:`TrackingContext`, parent and child runs,
  batched logging, artifacts).
- :mod:`~modelops.tracking.repair`: runs left RUNNING by a flow run that can no longer end them.
- :mod:`~modelops.tracking.tags`: the tags that say where a run belongs.
"""

from __future__ import annotations

from modelops.tracking.client import (
    HTTP_RETRY_DEFAULTS,
    ensure_experiment,
    get_client,
    use_tracking_uri,
)
from modelops.tracking.repair import repair_stale_runs
from modelops.tracking.runs import (
    TrackingContext,
    child_run,
    end_run,
    flatten,
    log_dataset,
    log_figures,
    log_json,
    log_metrics,
    log_params,
    log_text,
    metric_entities,
    record_run,
    set_tags,
    start_parent_run,
)
from modelops.tracking.tags import (
    FLOW_RUN_TAG,
    HOST_TAG,
    PARENT_TAG,
    PID_TAG,
    REPAIRED_TAG,
    RUN_NAME_TAG,
    STARTED_TAG,
    WARM_TAG,
    process_tags,
)

__all__ = [
    "FLOW_RUN_TAG",
    "HOST_TAG",
    "HTTP_RETRY_DEFAULTS",
    "PARENT_TAG",
    "PID_TAG",
    "REPAIRED_TAG",
    "RUN_NAME_TAG",
    "STARTED_TAG",
    "WARM_TAG",
    "TrackingContext",
    "child_run",
    "end_run",
    "ensure_experiment",
    "flatten",
    "get_client",
    "log_dataset",
    "log_figures",
    "log_json",
    "log_metrics",
    "log_params",
    "log_text",
    "metric_entities",
    "process_tags",
    "record_run",
    "repair_stale_runs",
    "set_tags",
    "start_parent_run",
    "use_tracking_uri",
]

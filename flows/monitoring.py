"""The `monitoring` flow: is the production model still seeing the data it was trained on, and
still as good? Drift and decay against its reference; on a breach, alert and (optionally)
retrain."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.states import Completed

from modelops.params import MonitoringParams, keyword_parameters
from modelops.steps.monitoring import check_summary
from tasks.monitoring import (
    check_drift,
    check_performance,
    load_watched_version,
    raise_alert,
    read_window,
    report_check,
    trigger_retraining,
)
from tasks.tracking import flow_run


@flow(name="monitoring", log_prints=True)
@keyword_parameters(MonitoringParams)
def monitoring(params: MonitoringParams) -> Any:
    """Check a version for data drift, prediction shift and (with labels) decay."""
    p = params
    model_name, version, max_rows, min_rows = p.model_name, p.version, p.max_rows, p.min_rows
    logged = p.model_dump(exclude={"model_name", "actor", "training_deployment"})
    with flow_run("monitoring", model_name, logged) as ctx:
        watched = load_watched_version(ctx, model_name, version)
        window = read_window(watched, p.data_path, p.sample_dir, max_rows, min_rows)
        labelled = (
            read_window(watched, p.labelled_path, None, max_rows, min_rows)
            if p.labelled_path
            else None
        )
        result = check_drift(watched, window, p.psi_max)
        if labelled is not None:
            check_performance(watched, labelled, result, p.metric_drop_max, min_rows)
        report_check(ctx, watched, window, result)
        summary = check_summary(ctx, watched, result)
        if not result.degraded:
            return summary
        summary["event_id"] = raise_alert(ctx, watched, result, p.actor)
        if p.retrain_on_breach:
            summary["retraining_flow_run_id"] = trigger_retraining(
                p.training_deployment, model_name
            )
    # Completed, but named so it stands out in the UI: the check worked, the model did not.
    return Completed(name="Degraded", message="; ".join(result.breaches)[:1000], data=summary)


if __name__ == "__main__":
    import sys

    from modelops.cli import run

    run(["monitor", *sys.argv[1:]])

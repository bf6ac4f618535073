"""End to end, as a user does it: real `prefect server`, real `mlflow server`, the project's
prefect.yaml deployed with `prefect deploy`, a process worker, and CLI-triggered runs."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from support import prefect_stack

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Prefect server + MLflow server + work pools + deployments + a worker, all on loopback."""
    with prefect_stack(tmp_path_factory.mktemp("e2e")) as running:
        yield running


def _flow_run_id(output: str) -> str:
    match = re.search(r"UUID:\s*([0-9a-f-]{36})", output)
    assert match, output
    return match.group(1)


def _api(stack: dict[str, Any], method: str, path: str, **kwargs: Any) -> Any:
    response = httpx.request(method, f"{stack['prefect']}/api{path}", timeout=30, **kwargs)
    response.raise_for_status()
    return response.json()


def test_every_deployment_from_prefect_yaml_is_registered(stack: dict[str, Any]) -> None:
    deployments = _api(stack, "POST", "/deployments/filter", json={})
    names = {(d["name"], d["entrypoint"].split(":")[-1]) for d in deployments}
    for flow_fn in (
        "lifecycle",
        "training",
        "promotion",
        "rollback",
        "deployment",
        "batch_scoring",
        "tuning",
        "monitoring",
        "rollout",
    ):
        assert any(fn == flow_fn for _, fn in names), (flow_fn, names)
    rollouts = {d["name"]: d for d in deployments if d["entrypoint"].endswith(":rollout")}
    assert rollouts["kubernetes"]["parameters"]["target"] == "kubernetes"
    assert rollouts["kubernetes"]["work_pool_name"] == rollouts["local"]["work_pool_name"]
    nightly = next(d for d in deployments if d["name"] == "lead-scoring-nightly")
    (schedule,) = nightly["schedules"]
    assert schedule["schedule"]["cron"] == "30 2 * * *"
    assert schedule["schedule"]["timezone"] == "Europe/Berlin" and schedule["active"]
    promotion = next(d for d in deployments if d["entrypoint"].endswith(":promotion"))
    assert promotion["global_concurrency_limit"]["limit"] == 1


def test_cli_triggered_lifecycle_registers_promotes_and_links_both_ways(
    stack: dict[str, Any],
) -> None:
    from mlflow import MlflowClient

    run = stack["cli"](
        "deployment",
        "run",
        "lifecycle/lead-scoring",
        "-p",
        "promote_to=production",
        "--watch",
        "--watch-timeout",
        "600",
        timeout=700,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    flow_run_id = _flow_run_id(run.stdout)
    flow_run = _api(stack, "GET", f"/flow_runs/{flow_run_id}")
    assert flow_run["state"]["type"] == "COMPLETED"

    client = MlflowClient(tracking_uri=stack["mlflow"])
    model = client.get_registered_model("lead-scoring")
    assert {k: str(v) for k, v in model.aliases.items()} == {"production": "1"}
    version = client.get_model_version("lead-scoring", "1")
    parent_run_id = version.tags["modelops.parent_run_id"]
    parent = client.get_run(parent_run_id)
    # MLflow → Prefect: the training subflow's run id; Prefect → MLflow: artifacts name the run.
    training_run = _api(stack, "GET", f"/flow_runs/{parent.data.tags['prefect.flow_run_id']}")
    assert training_run["parent_task_run_id"] is not None  # it ran inside the lifecycle run
    assert parent.data.tags["prefect.deployment_name"] == "lead-scoring"
    # `modelops worker` (make worker) forked the flow-run process from its warm process.
    assert parent.data.tags["modelops.warm_start"].isdigit()
    artifacts = _api(
        stack,
        "POST",
        "/artifacts/filter",
        json={"artifacts": {"flow_run_id": {"any_": [flow_run_id, training_run["id"]]}}},
    )
    by_key = {a["key"]: a for a in artifacts if a.get("key")}
    summary = by_key["lead-scoring-lifecycle-summary"]["data"]
    assert "version **1**" in summary and "quality gate**: PASSED" in summary
    assert parent_run_id in summary and "/#/models/lead-scoring/versions/1" in summary
    assert "production**: version 1" in summary
    assert parent_run_id in by_key["mlflow-run-training-lead-scoring"]["data"]

    # Runs on the worker skip Prefect's heartbeat thread (it rounds every run up to a second):
    # their state events are there, heartbeat events are not.
    events = _api(
        stack,
        "POST",
        "/events/filter",
        json={
            "filter": {
                "resource": {
                    "id": [
                        f"prefect.flow-run.{flow_run_id}",
                        f"prefect.flow-run.{training_run['id']}",
                    ]
                },
                "occurred": {"since": flow_run["created"]},
            },
            "limit": 50,
        },
    )["events"]
    names = {e["event"] for e in events}
    assert "prefect.flow-run.Completed" in names, names
    assert "prefect.flow-run.heartbeat" not in names, names

    ui = httpx.get(stack["prefect"] + "/", timeout=30)
    assert ui.status_code == 200 and "<html" in ui.text.lower()


def test_failed_run_is_reported_by_the_cli_and_changes_nothing(stack: dict[str, Any]) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=stack["mlflow"])
    before = [(v.version, v.tags) for v in client.search_model_versions("name = 'lead-scoring'")]
    run = stack["cli"](
        "deployment",
        "run",
        "lifecycle/lead-scoring",
        "-p",
        "data_path=/nonexistent/leads.csv",
        "--watch",
        "--watch-timeout",
        "600",
        timeout=700,
    )
    assert run.returncode != 0
    assert "Failed" in run.stdout + run.stderr
    flow_run = _api(stack, "GET", f"/flow_runs/{_flow_run_id(run.stdout)}")
    assert flow_run["state"]["type"] == "FAILED"
    assert "Data file not found" in flow_run["state"]["message"] or "Data file not found" in (
        run.stdout + run.stderr
    )
    after = [(v.version, v.tags) for v in client.search_model_versions("name = 'lead-scoring'")]
    assert after == before


def test_a_degraded_production_model_alerts_and_retrains_through_the_worker(
    stack: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The monitoring deployment on a drifted window: Completed/"Degraded", the event is in
    Prefect, and retraining runs on the worker — never promoted (and, on the same training
    data, reusing the version it would have trained again)."""
    import time

    import pandas as pd
    from mlflow import MlflowClient

    from modelops.data import SAMPLE_DATA

    client = MlflowClient(tracking_uri=stack["mlflow"])
    production = str(client.get_model_version_by_alias("lead-scoring", "production").version)
    versions_before = len(client.search_model_versions("name = 'lead-scoring'"))
    window = tmp_path_factory.mktemp("window") / "drifted.csv"
    drifted = pd.read_csv(SAMPLE_DATA).drop(columns="won").head(2000)
    drifted["completeness"] = drifted["completeness"] + 0.6
    drifted.to_csv(window, index=False)

    run = stack["cli"](
        "deployment",
        "run",
        "monitoring/lead-scoring-hourly",
        "-p",
        f"data_path={window}",
        "-p",
        "retrain_on_breach=true",
        "--watch",
        "--watch-timeout",
        "600",
        timeout=700,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    flow_run = _api(stack, "GET", f"/flow_runs/{_flow_run_id(run.stdout)}")
    assert (flow_run["state"]["type"], flow_run["state"]["name"]) == ("COMPLETED", "Degraded")
    assert "completeness" in flow_run["state"]["message"]

    events = _api(
        stack,
        "POST",
        "/events/filter",
        json={
            "filter": {
                "event": {"name": ["modelops.model.degraded"]},
                "occurred": {"since": flow_run["created"]},
            },
            "limit": 50,
        },
    )["events"]
    assert [e["resource"]["modelops.version"] for e in events] == [production]

    deadline = time.monotonic() + 600
    while True:  # the retraining run the monitor started, on the process worker
        retrains = _api(
            stack,
            "POST",
            "/flow_runs/filter",
            json={"flow_runs": {"tags": {"all_": ["retrain-on-breach"]}}},
        )
        states = [r["state"]["type"] for r in retrains]
        if states and states[0] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
            break
        assert time.monotonic() < deadline, states
        time.sleep(2)
    assert states == ["COMPLETED"], retrains
    # The retraining read the same training data, parameters and code as production's version:
    # it reuses that version (its training key) instead of registering a copy, and nothing
    # moves — a retrain on breach makes a new version when the training data is new.
    assert len(client.search_model_versions("name = 'lead-scoring'")) == versions_before
    retrain_run = client.search_runs(
        [e.experiment_id for e in client.search_experiments()],
        filter_string=f"tags.`prefect.flow_run_id` = '{retrains[0]['id']}'",
    )
    assert [r.data.tags.get("modelops.reused_version") for r in retrain_run] == [production]
    assert (
        str(client.get_model_version_by_alias("lead-scoring", "production").version) == production
    )
    tags = client.get_model_version("lead-scoring", production).tags
    assert "completeness" in tags["modelops.monitoring.degraded"]

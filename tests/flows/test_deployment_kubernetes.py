"""The `deployment`, `batch-scoring` and `teardown` flows against an emulated Kubernetes API
(kmock, over real HTTP; see tests/support_k8s.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kmock
import pytest
from support_k8s import DEPLOYMENTS, KEY, NAME, NS, FakeCluster, task_run_count

from flows.deployment import deployment
from modelops.errors import DeploymentFailed, PermissionDenied

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]


def _deploy(version: str = "1", **kwargs: Any) -> Any:
    return deployment(
        version=version,
        target="kubernetes",
        namespace=NS,
        image="registry.local/lead:1",
        cluster_tracking_uri_override="http://mlflow.mlops.svc:5000",
        timeout_seconds=5,
        poll_seconds=0.5,
        **kwargs,
    )


def test_first_deploy_then_redeploy_changes_nothing(
    cluster: FakeCluster, make_version: Any
) -> None:
    make_version()
    record = _deploy()
    assert record.target == "kubernetes" and record.namespace == NS
    assert record.version == "1" and record.previous_version is None
    assert record.cluster.startswith("kubeconfig ")
    live = cluster.live()
    container = live["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["modelops", "serve"]  # the project's server, by default
    assert container["args"][:3] == ["lead-scoring", "--version", "1"]
    assert {"name": "MLFLOW_TRACKING_URI", "value": "http://mlflow.mlops.svc:5000"} in container[
        "env"
    ]
    assert live["metadata"]["labels"]["modelops.io/version"] == "1"
    assert live["metadata"]["annotations"]["modelops.io/prefect-flow-run-id"]
    assert cluster.smoke_requests == 1

    writes = cluster.count(kmock.action.CREATE) + cluster.count(kmock.action.UPDATE)
    again = _deploy()
    assert again.action == "unchanged"
    assert cluster.count(kmock.action.CREATE) + cluster.count(kmock.action.UPDATE) == writes

    from modelops.settings import get_settings
    from modelops.tracking import get_client

    s = get_settings()
    tags = get_client(s.resolved_tracking_uri).get_model_version("lead-scoring", "1").tags
    assert f"modelops.deployed.kubernetes.{NS}.{NAME}" in tags


def test_failed_rollout_restores_the_previous_version(
    cluster: FakeCluster, make_version: Any
) -> None:
    make_version()
    make_version()
    _deploy("1")
    cluster.broken_versions.add("2")
    state = _deploy("2", return_state=True)
    assert state.is_failed()
    with pytest.raises(DeploymentFailed) as info:
        state.result()
    message = str(info.value)
    assert "rollout failed: not ready after 5s: 0/1 available" in message
    assert "restored version 1, which is serving again" in message
    live = cluster.live()
    assert live["metadata"]["labels"]["modelops.io/version"] == "1"
    args = live["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[:3] == ["lead-scoring", "--version", "1"]
    assert live["status"]["availableReplicas"] == 1


def test_wrong_prediction_shape_fails_the_smoke_test_and_rolls_back(
    cluster: FakeCluster, make_version: Any
) -> None:
    make_version()
    make_version()
    _deploy("1")
    cluster.wrong_shape = True
    state = _deploy("2", return_state=True)
    with pytest.raises(DeploymentFailed, match="Smoke test: expected 3 prediction"):
        state.result()
    assert cluster.live()["metadata"]["labels"]["modelops.io/version"] == "1"


def test_first_deploy_that_fails_leaves_nothing_behind(
    cluster: FakeCluster, make_version: Any
) -> None:
    make_version()
    cluster.broken_versions.add("1")
    state = _deploy("1", return_state=True)
    with pytest.raises(
        DeploymentFailed, match="first deployment, so the new Deployment and Service were deleted"
    ):
        state.result()
    assert cluster.handler.objects[KEY].deleted
    assert cluster.handler.objects["v1/services", NS, NAME].deleted


def test_server_errors_are_retried(cluster: FakeCluster, make_version: Any) -> None:
    make_version()
    calls = {"n": 0}

    def unavailable_once(request: Any) -> Any:
        calls["n"] += 1
        return (
            kmock.KubernetesError(status=503, reason="ServiceUnavailable")
            if calls["n"] == 1
            else None
        )

    cluster.handler["post", DEPLOYMENTS] << unavailable_once
    state = _deploy(return_state=True)
    assert state.is_completed(), state.message
    # kmock applies an injected write anyway (like a response lost after the write): the retry
    # finds the object, sees it is what we asked for, and converges without a second create.
    assert calls["n"] == 1
    assert task_run_count(state, "deploy_to_kubernetes") == 2
    assert cluster.live()["metadata"]["labels"]["modelops.io/version"] == "1"


def test_conflict_on_create_is_patched(cluster: FakeCluster, make_version: Any) -> None:
    make_version()
    calls = {"n": 0}

    def someone_else_created_it(request: Any) -> Any:
        calls["n"] += 1
        return (
            kmock.KubernetesError(status=409, reason="AlreadyExists") if calls["n"] == 1 else None
        )

    cluster.handler["post", DEPLOYMENTS] << someone_else_created_it
    state = _deploy(return_state=True)
    assert state.is_completed(), state.message
    assert calls["n"] == 1 and task_run_count(state, "deploy_to_kubernetes") == 1
    assert cluster.live()["metadata"]["labels"]["modelops.io/version"] == "1"


def test_new_version_is_patched_in_place(cluster: FakeCluster, make_version: Any) -> None:
    make_version()
    make_version()
    _deploy("1")
    record = _deploy("2")
    assert (record.action, record.previous_version, record.version) == (
        "patched",
        "1",
        "2",
    )
    assert cluster.live()["metadata"]["labels"]["modelops.io/version"] == "2"
    assert cluster.count(kmock.action.CREATE) == 1  # the Deployment was created once


def test_forbidden_is_a_clear_error_and_not_retried(
    cluster: FakeCluster, make_version: Any
) -> None:
    make_version()
    cluster.handler["post", DEPLOYMENTS] << kmock.KubernetesError(status=403, reason="Forbidden")
    state = _deploy(return_state=True)
    with pytest.raises(PermissionDenied, match=r"HTTP 403.*deployments/rbac/rbac.yaml"):
        state.result()
    assert cluster.count(kmock.action.CREATE) == 1
    assert task_run_count(state, "deploy_to_kubernetes") == 1  # no retry
    # kmock stores a refused write anyway; what matters is that nothing of ours stays behind:
    # the Service created just before the refused Deployment is deleted again.
    assert cluster.handler.objects["v1/services", NS, NAME].deleted


@pytest.mark.parametrize("fails", [False, True], ids=["job succeeds", "job fails"])
def test_batch_scoring_job(cluster: FakeCluster, make_version: Any, fails: bool) -> None:
    from flows.batch_scoring import batch_scoring
    from modelops.api import promote_model

    make_version()
    promote_model("lead-scoring", 1, "Production")
    cluster.job_name, cluster.job_fails = "lead-scoring-score-nightly", fails
    state = batch_scoring(
        input_uri="s3://leads/in.csv",
        output_uri="s3://leads/out.csv",
        target="kubernetes",
        namespace=NS,
        image="registry.local/lead:1",
        job_suffix="nightly",
        poll_seconds=0.2,
        timeout_seconds=10,
        cluster_tracking_uri_override="http://mlflow.mlops.svc:5000",
        return_state=True,
    )
    job = cluster.handler.objects["batch/v1/jobs", NS, "lead-scoring-score-nightly"].raw
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[:2] == ["--model-uri", "models:/lead-scoring/1"]
    assert "s3://leads/in.csv" in args and "s3://leads/out.csv" in args
    if fails:
        with pytest.raises(DeploymentFailed, match="BackoffLimitExceeded"):
            state.result()
    else:
        assert state.result()["succeeded"] is True


def test_teardown_removes_deployment_and_service(cluster: FakeCluster, make_version: Any) -> None:
    from flows.teardown import teardown

    make_version()
    _deploy()
    assert teardown(target="kubernetes", namespace=NS)["removed"] == ["Deployment", "Service"]
    assert cluster.handler.objects[KEY].deleted
    assert teardown(target="kubernetes", namespace=NS)["removed"] == []


def test_tracking_credentials_reach_pods_only_through_a_secret(
    cluster: FakeCluster, make_version: Any
) -> None:
    import base64
    import json

    from modelops.settings import get_settings
    from modelops.tracking import get_client

    make_version()
    record = deployment(
        version="1",
        target="kubernetes",
        namespace=NS,
        image="registry.local/lead:1",
        cluster_tracking_uri_override="https://alice:s3cret@mlflow.example:5000",
        timeout_seconds=5,
        poll_seconds=0.5,
    )
    env = cluster.live()["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "MLFLOW_TRACKING_URI", "value": "https://mlflow.example:5000"} in env
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in env if "valueFrom" in e}
    assert refs["MLFLOW_TRACKING_PASSWORD"] == {
        "name": f"{NAME}-mlflow",
        "key": "password",
        "optional": True,
    }
    secret = cluster.handler.objects["v1/secrets", NS, f"{NAME}-mlflow"].raw
    assert base64.b64decode(secret["data"]["password"]) == b"s3cret"
    # Nothing anyone reads afterwards holds the password: not the record, not the manifests
    # logged to MLflow, not the version's tags.
    assert "s3cret" not in record.model_dump_json()
    client = get_client(get_settings().resolved_tracking_uri)
    logged = client.search_runs(
        [client.get_experiment_by_name("tests").experiment_id],
        filter_string="tags.`modelops.flow` = 'deployment'",
    )[0]
    for artifact in ("manifests/deployment.json", "manifests/service.json", "deployment.json"):
        text = Path(client.download_artifacts(logged.info.run_id, artifact)).read_text()
        assert "s3cret" not in text and "alice" not in text, artifact
    assert "s3cret" not in json.dumps(client.get_model_version("lead-scoring", "1").tags)

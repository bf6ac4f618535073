"""The `deployment` flow against an emulated Kubernetes API (kmock) over real HTTP.

The official client is not patched: it is pointed at the emulator through a kubeconfig file, as
a user's would be. The test plays the Deployment controller by writing status (and bumping
metadata.generation, which kmock does not) whenever the spec changes.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kmock
import pytest
import yaml

from flows.deployment import deployment
from modelops.errors import DeploymentFailed, PermissionDenied
from modelops.k8s.manifests import HASH_ANNOTATION

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]

NS = "ml"
NAME = "lead-scoring-serving"
DEPLOYMENTS = kmock.resource("apps/v1/deployments")
KEY = ("apps/v1/deployments", NS, NAME)


@dataclass
class FakeCluster:
    handler: Any
    url: str
    loop: asyncio.AbstractEventLoop
    broken_versions: set[str] = field(default_factory=set)
    wrong_shape: bool = False
    smoke_requests: int = 0
    job_name: str | None = None
    job_fails: bool = False

    def live(self) -> dict[str, Any]:
        async def read() -> dict[str, Any]:
            return dict(self.handler.objects[KEY].raw)

        return asyncio.run_coroutine_threadsafe(read(), self.loop).result()

    def count(self, action: Any) -> int:
        return sum(1 for r in self.handler if r.action == action and r.resource == DEPLOYMENTS)


async def _controller(cluster: FakeCluster) -> None:
    """Roll out every new Deployment spec: ready, unless its version is marked broken."""
    seen = None
    while True:
        try:
            obj = cluster.handler.objects[KEY]
            raw = None if obj.deleted else obj.raw
        except KeyError:
            raw = None
        if raw is not None:
            meta = raw.get("metadata", {})
            spec_hash = meta.get("annotations", {}).get(HASH_ANNOTATION)
            if spec_hash != seen:
                seen = spec_hash
                generation = (meta.get("generation") or 0) + 1
                wanted = raw["spec"]["replicas"]
                ok = (
                    meta.get("labels", {}).get("modelops.io/version") not in cluster.broken_versions
                )
                obj.patch({
                    "metadata": {"generation": generation},
                    "status": {"observedGeneration": generation, "replicas": wanted,
                               "updatedReplicas": wanted, "readyReplicas": wanted if ok else 0,
                               "availableReplicas": wanted if ok else 0,
                               "unavailableReplicas": 0 if ok else wanted},
                })  # fmt: skip
        elif seen is not None:
            seen = None
        if cluster.job_name:
            try:
                job = cluster.handler.objects["batch/v1/jobs", NS, cluster.job_name]
                if not job.deleted and not (job.raw.get("status") or {}).get("conditions"):
                    kind = "Failed" if cluster.job_fails else "Complete"
                    job.patch({"status": {
                        "succeeded": 0 if cluster.job_fails else 1,
                        "failed": 3 if cluster.job_fails else 0,
                        "conditions": [{"type": kind, "status": "True",
                                        "reason": "BackoffLimitExceeded" if cluster.job_fails else "",
                                        "message": "Job has reached the specified backoff limit"
                                        if cluster.job_fails else ""}],
                    }})  # fmt: skip
            except KeyError:
                pass
        await asyncio.sleep(0.02)


@pytest.fixture
def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeCluster]:
    started = threading.Event()
    box: dict[str, Any] = {}

    def serve() -> None:
        async def main() -> None:
            box["stop"] = asyncio.Event()
            async with kmock.KubernetesEmulator() as h, kmock.Server(h) as server:
                h.resources.load_bundled()
                fake = FakeCluster(h, str(server.url).rstrip("/"), asyncio.get_running_loop())

                def invocations(request: Any) -> dict[str, Any]:
                    fake.smoke_requests += 1
                    rows = len(request.data["dataframe_split"]["data"])
                    return {"predictions": [1] * (rows - 1 if fake.wrong_shape else rows)}

                (
                    h[f"post /api/v1/namespaces/{NS}/services/{NAME}:80/proxy/invocations"]
                    << invocations
                )
                box["fake"] = fake
                task = asyncio.create_task(_controller(fake))
                started.set()
                await box["stop"].wait()
                task.cancel()

        asyncio.run(main())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert started.wait(30)
    fake: FakeCluster = box["fake"]
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "emulator",
        "clusters": [{"name": "emulator", "cluster": {"server": fake.url}}],
        "users": [{"name": "tester", "user": {}}],
        "contexts": [{"name": "emulator", "context": {"cluster": "emulator", "user": "tester"}}],
    }))  # fmt: skip
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    yield fake
    fake.loop.call_soon_threadsafe(box["stop"].set)
    thread.join(10)


def _task_run_count(state: Any, name: str) -> int:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(
                id=FlowRunFilterId(any_=[state.state_details.flow_run_id])
            )
        )
    (run,) = [r for r in runs if r.name.startswith(name)]
    return run.run_count


def _deploy(version: str = "1", **kwargs: Any) -> Any:
    return deployment(
        version=version, target="kubernetes", namespace=NS, image="registry.local/lead:1",
        cluster_tracking_uri_override="http://mlflow.mlops.svc:5000", timeout_seconds=5,
        poll_seconds=0.5, **kwargs,
    )  # fmt: skip


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
    assert container["args"][:2] == ["--model-uri", "models:/lead-scoring/1"]
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
    assert args[:2] == ["--model-uri", "models:/lead-scoring/1"]
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
    assert _task_run_count(state, "deploy_to_kubernetes") == 2
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
    assert calls["n"] == 1 and _task_run_count(state, "deploy_to_kubernetes") == 1
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
    assert _task_run_count(state, "deploy_to_kubernetes") == 1  # no retry
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
        input_uri="s3://leads/in.csv", output_uri="s3://leads/out.csv", target="kubernetes",
        namespace=NS, image="registry.local/lead:1", job_suffix="nightly", poll_seconds=0.2,
        timeout_seconds=10, cluster_tracking_uri_override="http://mlflow.mlops.svc:5000",
        return_state=True,
    )  # fmt: skip
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

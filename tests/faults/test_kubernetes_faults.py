"""Kubernetes API faults during a rollout: each is survived or refused clearly, and nothing of
ours is left half-applied."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import kmock
import pytest
from proxy import FaultProxy, http_response
from support_k8s import DEPLOYMENTS, NAME, NS, FakeCluster, task_run_count, write_kubeconfig

from flows.deployment import deployment
from modelops.errors import ConfigurationError, DeploymentFailed

pytestmark = [pytest.mark.slow, pytest.mark.faults, pytest.mark.usefixtures("prefect_harness")]
SERVICES = kmock.resource("v1/services")


def _deploy(version: str = "1", model_name: str = "lead-scoring", **kwargs: Any) -> Any:
    return deployment(
        model_name=model_name,
        version=version,
        target="kubernetes",
        namespace=NS,
        image="registry.local/lead:1",
        cluster_tracking_uri_override="http://mlflow.mlops:5000",
        timeout_seconds=8,
        poll_seconds=0.3,
        return_state=True,
        **kwargs,
    )


def _live_version(cluster: FakeCluster) -> str:
    return cluster.live()["metadata"]["labels"]["modelops.io/version"]


def _deployed_tags(version: str) -> list[str]:
    from modelops.settings import get_settings
    from modelops.tracking import get_client

    s = get_settings()
    tags = get_client(s.resolved_tracking_uri).get_model_version("lead-scoring", version).tags
    return [k for k in tags if k.startswith("modelops.deployed.")]


def _failing(times: int, error: Any) -> Any:
    calls = {"n": 0}

    def reaction(request: Any) -> Any:
        calls["n"] += 1
        return error if calls["n"] <= times else None

    reaction.calls = calls  # type: ignore[attr-defined]
    return reaction


def test_a_burst_of_server_errors_is_retried(
    cluster: FakeCluster, make_version: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_version()
    # A 503 on the create (kmock stores a write it answers with an error, as a server that lost
    # the response would: the retried create finds the object) ...
    errors = _failing(1, kmock.KubernetesError(status=503, reason="ServiceUnavailable"))
    cluster.handler["post", DEPLOYMENTS] << errors
    # ... then a burst of 500s and 503s while the rollout is being watched.
    proxy = FaultProxy(int(cluster.url.rsplit(":", 1)[1]))
    monkeypatch.setenv("KUBECONFIG", str(write_kubeconfig(tmp_path / "proxied", proxy.url)))
    burst = [500, 503, 500, 503]

    def flaky(method: str, path: str) -> bytes | None:
        if (
            method == "GET"
            and path.endswith(f"/deployments/{NAME}")
            and errors.calls["n"]
            and burst
        ):
            return http_response(burst.pop(0), b'{"kind": "Status", "status": "Failure"}')
        return None

    proxy.before = flaky
    try:
        state = _deploy()
    finally:
        proxy.close()
    assert state.is_completed(), state.message
    assert errors.calls["n"] == 1 and burst == []
    assert _live_version(cluster) == "1" and _deployed_tags("1")


def test_429_waits_as_long_as_retry_after_asks(
    cluster: FakeCluster, make_version: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_version()
    throttled = kmock.Response(
        status=429,
        headers={"Retry-After": "2"},
        payload={"kind": "Status", "code": 429, "reason": "TooManyRequests"},
    )
    cluster.handler["post", DEPLOYMENTS] << _failing(1, throttled)
    proxy = FaultProxy(int(cluster.url.rsplit(":", 1)[1]))  # to see when each create is sent
    monkeypatch.setenv("KUBECONFIG", str(write_kubeconfig(tmp_path / "proxied", proxy.url)))
    creates: list[float] = []

    def clock(method: str, path: str) -> None:
        if method == "POST" and path.endswith("/deployments"):
            creates.append(time.monotonic())

    proxy.after = clock
    try:
        state = _deploy()
    finally:
        proxy.close()
    assert state.is_completed(), state.message
    assert len(creates) == 2 and creates[1] - creates[0] >= 2.0  # it waited, in the step...
    assert task_run_count(state, "deploy_to_kubernetes") == 1  # ...not by failing the task


def test_a_conflict_on_update_is_resolved_by_looking_again(
    cluster: FakeCluster, make_version: Any
) -> None:
    make_version()
    make_version()
    assert _deploy("1").is_completed()
    conflict = _failing(1, kmock.KubernetesError(status=409, reason="Conflict"))
    cluster.handler["patch", DEPLOYMENTS] << conflict
    state = _deploy("2")
    assert state.is_completed(), state.message
    assert conflict.calls["n"] == 1 and _live_version(cluster) == "2"


def test_a_missing_namespace_is_a_clear_final_error(
    cluster: FakeCluster, make_version: Any, registry_snapshot: Any
) -> None:
    make_version()
    before = registry_snapshot()
    missing = kmock.KubernetesError(
        status=404, reason="NotFound", message=f'namespaces "{NS}" not found'
    )
    cluster.handler["post", SERVICES] << missing
    state = _deploy()
    with pytest.raises(ConfigurationError, match=f"namespace '{NS}' does not exist"):
        state.result()
    assert task_run_count(state, "deploy_to_kubernetes") == 1
    assert registry_snapshot() == before


def test_connections_dropped_mid_rollout_are_survived(
    cluster: FakeCluster, make_version: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_version()
    proxy = FaultProxy(int(cluster.url.rsplit(":", 1)[1]))
    monkeypatch.setenv("KUBECONFIG", str(write_kubeconfig(tmp_path / "proxied", proxy.url)))
    created = threading.Event()
    outage = threading.Event()

    def cut(method: str, path: str) -> None:
        if method == "POST" and "/deployments" in path:
            created.set()
        elif (
            method == "GET"
            and path.endswith(f"/deployments/{NAME}")
            and created.is_set()
            and not outage.is_set()
        ):  # the first look at the rollout: the network goes away for a while
            outage.set()
            proxy.refuse()
            threading.Timer(1.5, proxy.accept).start()

    proxy.before = cut
    try:
        state = _deploy()
    finally:
        proxy.close()
    assert outage.is_set()
    assert state.is_completed(), state.message
    assert _live_version(cluster) == "1"


def test_a_rollout_that_never_becomes_ready_keeps_the_old_version(
    cluster: FakeCluster, make_version: Any
) -> None:
    make_version()
    make_version()
    assert _deploy("1").is_completed()
    cluster.broken_versions.add("2")
    state = _deploy("2")
    with pytest.raises(DeploymentFailed, match="restored version 1, which is serving again"):
        state.result()
    assert _live_version(cluster) == "1"
    assert _deployed_tags("1") and not _deployed_tags("2")  # the failed one is not "deployed"


def test_an_object_of_another_owner_is_never_touched(
    cluster: FakeCluster, make_version: Any
) -> None:
    import asyncio

    make_version()

    async def plant() -> None:
        cluster.handler.objects["apps/v1/deployments", NS, NAME] = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": NAME, "namespace": NS, "labels": {"team": "other"}},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "x"}}, "template": {}},
        }

    asyncio.run_coroutine_threadsafe(plant(), cluster.loop).result()
    state = _deploy()
    with pytest.raises(ConfigurationError, match="belongs to something not deployed by modelops"):
        state.result()
    assert cluster.live()["spec"]["replicas"] == 3  # unchanged


def test_two_names_that_sanitise_alike_get_two_servers(
    cluster: FakeCluster, version_factory: Any, mlflow_store: str
) -> None:
    from modelops.naming import serving_name

    version_factory("churn model")
    version_factory("churn-model")
    cluster.deployments |= {serving_name("churn model"), serving_name("churn-model")}
    first, second = _deploy(model_name="churn model"), _deploy(model_name="churn-model")
    assert first.is_completed() and second.is_completed(), (first.message, second.message)
    assert first.result().deployment != second.result().deployment == "churn-model-serving"

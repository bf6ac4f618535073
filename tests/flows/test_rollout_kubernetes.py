"""The `rollout` flow on the Kubernetes target, against the emulated API server (kmock over real
HTTP) with real pods: the test's kubelet runs every Deployment spec the flow applies as a real
`modelops serve` process, which reads its models from a real `mlflow server`, and clients reach
it through the API server's Service proxy, as in-cluster clients reach a Service."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import kubernetes_validate
import pytest
from support import Client, mlflow_server, one_row_requests
from support_k8s import NS, FakeCluster, Kubelet

from flows.deployment import deployment
from flows.rollout import rollout
from modelops.k8s.manifests import CANDIDATE_LABEL, ROLLOUT_LABEL, rollout_secret_name
from modelops.naming import serving_name

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]
NAME = "K8s rollout (EU) model"
SERVICE = serving_name(NAME)


@pytest.fixture
def pods_mlflow(mlflow_store: str, tmp_path: Path) -> Iterator[str]:
    """A real `mlflow server` over this test's store: the tracking server the pods read."""
    with mlflow_server(mlflow_store, tmp_path / "mlflow-server.log", "--workers", "1") as url:
        yield url


class Traffic(Client):
    """One-row requests through the Service, each followed by its true label on
    ``/feedback`` (through the Service too: with one pod, the pod that answered)."""

    def __init__(self, api: str) -> None:
        super().__init__()
        self.payloads, self.truth = one_row_requests()
        self.base = f"{api}/api/v1/namespaces/{NS}/services/{SERVICE}:80/proxy"
        self.answers: Counter[tuple[int, str]] = Counter()
        self.failures: list[str] = []

    def run(self) -> None:
        with httpx.Client(timeout=30) as client:
            i = 0
            while not self.stop.is_set():
                row = i % len(self.payloads)
                i += 1
                r = client.post(f"{self.base}/invocations", json=self.payloads[row])
                version = r.headers.get("X-Model-Version", "?")
                self.answers[(r.status_code, version)] += 1
                if r.status_code != 200 or r.json().get("model_version") != version:
                    self.failures.append(f"{r.status_code}: {r.text[:200]}")
                    continue
                label = {"request_id": r.headers["X-Request-Id"], "label": self.truth[row]}
                client.post(f"{self.base}/feedback", json=label)  # 404 from a one-version pod


def _container(spec: dict[str, Any]) -> dict[str, Any]:
    return spec["spec"]["template"]["spec"]["containers"][0]


def _schema_valid(live: dict[str, Any]) -> None:
    """What the flow applied, without what the API server and controller added to it."""
    applied = {k: v for k, v in live.items() if k != "status"}
    meta = applied["metadata"]
    applied["metadata"] = {k: v for k, v in meta.items() if k not in ("generation", "uid")}
    kubernetes_validate.validate(applied, "1.30", strict=True)


def _v1_in_production(make_version: Any, pods_mlflow: str, good: bool = True) -> dict[str, Any]:
    """v1 in production, v2 staged; the flows' Kubernetes parameters."""
    from modelops.api import promote_model

    make_version(NAME)
    promote_model(NAME, 1, "Production")
    make_version(NAME, good=good)
    return {
        "target": "kubernetes",
        "namespace": NS,
        "image": "registry.local/modelops:1",
        "cluster_tracking_uri_override": pods_mlflow,
    }


def test_a_worse_candidate_in_the_pods_is_aborted_and_the_deployment_serves_stable_alone(
    cluster: FakeCluster, make_version: Any, pods_mlflow: str, tmp_path: Path
) -> None:
    from modelops.registry.aliases import AliasState
    from modelops.registry.audit import read_events
    from modelops.rollouts import control
    from modelops.rollouts.control import ABORTED_TAG
    from modelops.settings import get_settings
    from modelops.tracking import get_client

    where = _v1_in_production(make_version, pods_mlflow, good=False)  # v2: shuffled labels
    with Kubelet(cluster, SERVICE, tmp_path / "pods") as kubelet:
        deployment(NAME, timeout_seconds=180, poll_seconds=0.5, **where)
        assert len(kubelet.specs) == 1, kubelet.failures
        with Traffic(cluster.url) as traffic:
            result = rollout(
                NAME,
                steps=[20, 50],
                min_labels=50,
                poll_seconds=0.5,
                max_step_seconds=120,
                min_requests=100,
                timeout_seconds=180,
                **where,
            )
            time.sleep(1)  # the stable-only pod answers the client too
        specs = list(kubelet.specs)
    assert kubelet.failures == []
    assert result.outcome == "aborted" and len(result.steps) == 1, result
    assert result.steps[0]["verdict"] == "fail"
    assert traffic.failures == []
    assert {status for (status, _) in traffic.answers} == {200}
    assert {version for (_, version) in traffic.answers} == {"1", "2"}

    # The Deployment carried the candidate in every pod during the rollout, then only v1.
    assert len(specs) == 3
    before, during, after = specs
    assert "--candidate" not in _container(before)["args"]
    assert _container(during)["args"][-6:] == [
        *("--candidate", "2", "--mode", "canary", "--weight", "0.2"),
    ]
    assert during["spec"]["template"]["metadata"]["labels"][CANDIDATE_LABEL] == "2"
    assert _container(after)["args"][:3] == [NAME, "--version", "1"]
    assert "--candidate" not in _container(after)["args"]
    labels = after["spec"]["template"]["metadata"]["labels"]
    assert CANDIDATE_LABEL not in labels and ROLLOUT_LABEL not in labels
    assert after["metadata"]["labels"]["modelops.io/version"] == "1"
    for spec in specs:
        _schema_valid(spec)
    live = cluster.live(SERVICE)
    assert live["metadata"]["annotations"] == after["metadata"]["annotations"]
    # The token reached the pods through a Secret, which is gone with the rollout.
    assert "MODELOPS_ROLLOUT_TOKEN" in json.dumps(_container(during)["env"])
    assert cluster.secret(rollout_secret_name(NAME)) is None

    s = get_settings()
    client = get_client(s.resolved_tracking_uri, s.resolved_registry_uri)
    state = AliasState.read(client, NAME)
    assert state.production == "1" and state.staging == "2"
    mv = client.get_model_version(NAME, "2")
    assert mv.tags[ABORTED_TAG] == result.reason
    events = [e for e in read_events(mv) if e.action == "rollout-aborted"]
    assert len(events) == 1 and events[0].model_extra["rollout"][0]["verdict"] == "fail"
    assert control.load(s.home_dir, NAME) is None  # the rollout ended: nothing left running


def test_a_candidate_whose_pods_never_get_ready_leaves_the_stable_deployment_and_nothing_else(
    cluster: FakeCluster, make_version: Any, pods_mlflow: str, tmp_path: Path
) -> None:
    from modelops.errors import DeploymentFailed
    from modelops.registry.aliases import AliasState
    from modelops.rollouts import control
    from modelops.rollouts.control import ABORTED_TAG
    from modelops.settings import get_settings
    from modelops.tracking import get_client

    where = _v1_in_production(make_version, pods_mlflow)
    with Kubelet(cluster, SERVICE, tmp_path / "pods") as kubelet:
        deployment(NAME, timeout_seconds=180, poll_seconds=0.5, **where)
        stable = cluster.live(SERVICE)["metadata"]["annotations"]
        kubelet.broken = lambda spec: CANDIDATE_LABEL in spec["metadata"]["labels"]
        with Traffic(cluster.url) as traffic, pytest.raises(DeploymentFailed) as failed:
            rollout(NAME, steps=[20, 50], poll_seconds=0.5, timeout_seconds=15, **where)
        specs = list(kubelet.specs)
    assert "restored version 1, which is serving again" in str(failed.value), failed.value
    # The old pod kept answering throughout, and only version 1 answered.
    assert traffic.failures == [] and {v for (_, v) in traffic.answers} == {"1"}
    assert len(specs) == 2 and "--candidate" not in _container(specs[-1])["args"]
    live = cluster.live(SERVICE)
    assert live["metadata"]["annotations"] == stable  # the spec of before, exactly
    assert cluster.secret(rollout_secret_name(NAME)) is None  # no token left behind
    s = get_settings()
    assert control.load(s.home_dir, NAME) is None  # no rollout recorded
    client = get_client(s.resolved_tracking_uri, s.resolved_registry_uri)
    state = AliasState.read(client, NAME)
    assert state.production == "1" and state.staging == "2"
    assert ABORTED_TAG not in client.get_model_version(NAME, "2").tags

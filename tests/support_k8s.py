"""An emulated Kubernetes API (kmock) over real HTTP, with the test playing the controllers.

The official client is not patched: it is pointed at the emulator through a kubeconfig file, as
a user's would be. The controller writes status (and bumps metadata.generation, which kmock does
not) whenever a Deployment's spec changes, and finishes Jobs.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kmock
import pytest
import yaml

from modelops.k8s.manifests import HASH_ANNOTATION

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
    deployments: set[str] = field(default_factory=lambda: {NAME})  # the ones the controller runs
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
    seen: dict[str, str | None] = {}
    while True:
        for name in list(cluster.deployments):
            try:
                obj = cluster.handler.objects["apps/v1/deployments", NS, name]
                raw = None if obj.deleted else obj.raw
            except KeyError:
                raw = None
            if raw is None:
                seen.pop(name, None)
                continue
            meta = raw.get("metadata", {})
            spec_hash = meta.get("annotations", {}).get(HASH_ANNOTATION)
            if spec_hash != seen.get(name):
                seen[name] = spec_hash
                generation = (meta.get("generation") or 0) + 1
                wanted = raw["spec"]["replicas"]
                ok = (
                    meta.get("labels", {}).get("modelops.io/version") not in cluster.broken_versions
                )
                obj.patch(
                    {
                        "metadata": {"generation": generation},
                        "status": {
                            "observedGeneration": generation,
                            "replicas": wanted,
                            "updatedReplicas": wanted,
                            "readyReplicas": wanted if ok else 0,
                            "availableReplicas": wanted if ok else 0,
                            "unavailableReplicas": 0 if ok else wanted,
                        },
                    }
                )
        if cluster.job_name:
            try:
                job = cluster.handler.objects["batch/v1/jobs", NS, cluster.job_name]
                if not job.deleted and not (job.raw.get("status") or {}).get("conditions"):
                    kind = "Failed" if cluster.job_fails else "Complete"
                    job.patch(
                        {
                            "status": {
                                "succeeded": 0 if cluster.job_fails else 1,
                                "failed": 3 if cluster.job_fails else 0,
                                "conditions": [
                                    {
                                        "type": kind,
                                        "status": "True",
                                        "reason": "BackoffLimitExceeded"
                                        if cluster.job_fails
                                        else "",
                                        "message": "Job has reached the specified backoff limit"
                                        if cluster.job_fails
                                        else "",
                                    }
                                ],
                            }
                        }
                    )
            except KeyError:
                pass
        await asyncio.sleep(0.02)


def write_kubeconfig(path: Path, server: str) -> Path:
    """A kubeconfig whose only cluster is ``server``."""
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "emulator",
                "clusters": [{"name": "emulator", "cluster": {"server": server}}],
                "users": [{"name": "tester", "user": {}}],
                "contexts": [
                    {"name": "emulator", "context": {"cluster": "emulator", "user": "tester"}}
                ],
            }
        )
    )
    return path


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
                    h[
                        "post",
                        re.compile(rf"/api/v1/namespaces/{NS}/services/[^/]+:80/proxy/invocations"),
                    ]
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
    monkeypatch.setenv("KUBECONFIG", str(write_kubeconfig(tmp_path / "kubeconfig", fake.url)))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    yield fake
    fake.loop.call_soon_threadsafe(box["stop"].set)
    thread.join(10)


def task_run_count(state: Any, name: str) -> int:
    """How many times the flow run's task ``name`` ran (1 = no retry)."""
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

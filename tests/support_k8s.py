"""An emulated Kubernetes API (kmock) over real HTTP, with the test playing the controllers.

The official client is not patched: it is pointed at the emulator through a kubeconfig file, as
a user's would be. The controller writes status (and bumps metadata.generation, which kmock does
not) whenever a Deployment's spec changes, and finishes Jobs. A :class:`Kubelet` goes further
for the Deployments it is given: it runs each new spec's container as a real process (a pod on
127.0.0.1) and the API server's Service and pod proxies reach it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import random
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kmock
import pytest
import yaml
from support import stop_group

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
    kubelet: Kubelet | None = None  # runs real pods for its Deployment (None: fake answers)

    def live(self, name: str = NAME) -> dict[str, Any]:
        async def read() -> dict[str, Any]:
            return dict(self.handler.objects["apps/v1/deployments", NS, name].raw)

        return asyncio.run_coroutine_threadsafe(read(), self.loop).result()

    def secret(self, name: str) -> dict[str, Any] | None:
        """The Secret ``name``, None when there is none (never created, or deleted)."""

        async def read() -> dict[str, Any] | None:
            try:
                obj = self.handler.objects["v1/secrets", NS, name]
            except KeyError:
                return None
            return None if obj.deleted else dict(obj.raw)

        return asyncio.run_coroutine_threadsafe(read(), self.loop).result()

    def count(self, action: Any) -> int:
        return sum(1 for r in self.handler if r.action == action and r.resource == DEPLOYMENTS)


def _rolled(raw: dict[str, Any], generation: int, ready: bool) -> dict[str, Any]:
    """A Deployment's status once the controller rolled out generation ``generation``."""
    wanted = raw["spec"]["replicas"]
    return {
        "observedGeneration": generation,
        "replicas": wanted,
        "updatedReplicas": wanted,
        "readyReplicas": wanted if ready else 0,
        "availableReplicas": wanted if ready else 0,
        "unavailableReplicas": 0 if ready else wanted,
    }


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
                ok = (
                    meta.get("labels", {}).get("modelops.io/version") not in cluster.broken_versions
                )
                obj.patch(
                    {"metadata": {"generation": generation}, "status": _rolled(raw, generation, ok)}
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


@dataclass
class Pod:
    name: str
    url: str
    labels: dict[str, str]
    proc: subprocess.Popen


class Kubelet(threading.Thread):
    """Plays the Deployment controller and the kubelet for one Deployment: each new spec is
    run as one pod, the container's own command and arguments as a process on 127.0.0.1 (its
    port a free one, its MODELOPS_HOME a folder of its own: the pod's emptyDir), with the
    environment the spec gives it (Secrets resolved as the kubelet would). The new pod must
    answer ``/ping`` before the status says ready and the old pod stops (maxUnavailable 0).
    ``specs`` keeps every spec it rolled out."""

    def __init__(self, fake: FakeCluster, name: str, folder: Path) -> None:
        super().__init__(daemon=True)
        self.fake, self.name, self.folder = fake, name, folder
        self.pods: dict[str, Pod] = {}
        self.specs: list[dict[str, Any]] = []
        self.halt = threading.Event()
        self.failures: list[str] = []
        # Specs whose pods never become ready (an image that crashes, say): the old pod stays.
        self.broken: Any = lambda spec: False

    def __enter__(self) -> Kubelet:
        self.fake.kubelet = self
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.halt.set()
        self.join(timeout=60)
        for pod in self.pods.values():
            stop_group(pod.proc)
        self.fake.kubelet = None

    def _in_loop(self, fn: Any) -> Any:
        async def call() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(call(), self.fake.loop).result(30)

    def _object(self, key: tuple[str, str, str]) -> Any:
        def find() -> Any:
            try:
                obj = self.fake.handler.objects[key]
            except KeyError:
                return None
            return None if obj.deleted else obj

        return self._in_loop(find)

    def run(self) -> None:
        seen = None
        while not self.halt.is_set():
            obj = self._object(("apps/v1/deployments", NS, self.name))
            raw = None if obj is None else self._in_loop(lambda o=obj: dict(o.raw))
            spec_hash = None if raw is None else raw["metadata"]["annotations"][HASH_ANNOTATION]
            if spec_hash != seen:
                seen = spec_hash
                if raw is not None:  # a new spec, a new generation (as the API server counts)
                    raw = self._next_generation(obj, raw)
                old = dict(self.pods)
                pod = None if raw is None or self.broken(raw) else self._start(raw)
                if pod is not None:
                    self.specs.append(raw)
                    self.pods = {pod.name: pod}
                    time.sleep(0.5)  # what the old pod was answering, it finishes
                if pod is not None or raw is None:
                    for gone in old.values():
                        stop_group(gone.proc)
                if raw is not None:
                    self._status(obj, raw, ready=pod is not None)
            time.sleep(0.05)

    def _start(self, raw: dict[str, Any]) -> Pod | None:
        from modelops.serving.local import free_port

        template = raw["spec"]["template"]
        container = template["spec"]["containers"][0]
        name = (
            f"{self.name}-{raw['metadata']['annotations'][HASH_ANNOTATION][:8]}-{len(self.specs)}"
        )
        home = self.folder / name
        home.mkdir(parents=True)
        port = free_port()
        args = list(container["args"])
        args[args.index("--host") + 1] = "127.0.0.1"
        args[args.index("--port") + 1] = str(port)
        env = {**os.environ, "MODELOPS_WARM": "false"}
        for item in container["env"]:
            env[item["name"]] = self._value(item)
        env["MODELOPS_HOME"] = str(home)  # the pod's emptyDir at /var/lib/modelops
        command = [str(Path(sys.executable).parent / container["command"][0])]
        log = open(home / "pod.log", "wb")  # noqa: SIM115  (closed with the process)
        proc = subprocess.Popen(
            [*command, *container["command"][1:], *args],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        url = f"http://127.0.0.1:{port}"
        import httpx

        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and proc.poll() is None:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/ping", timeout=2).status_code == 200:
                    return Pod(name, url, dict(template["metadata"]["labels"]), proc)
            time.sleep(0.1)
        self.failures.append(f"{name} never answered: {(home / 'pod.log').read_text()[-2000:]}")
        stop_group(proc)
        return None

    def _value(self, item: dict[str, Any]) -> str:
        if "value" in item:
            return str(item["value"])
        ref = item["valueFrom"]["secretKeyRef"]
        secret = self._object(("v1/secrets", NS, ref["name"]))
        assert secret is not None, f"the pod reads Secret {ref['name']}, which does not exist"
        data = self._in_loop(lambda: dict(secret.raw.get("data") or {}))
        return base64.b64decode(data[ref["key"]]).decode()

    def _next_generation(self, obj: Any, raw: dict[str, Any]) -> dict[str, Any]:
        generation = (raw["metadata"].get("generation") or 0) + 1
        self._in_loop(lambda: obj.patch({"metadata": {"generation": generation}}))
        return {**raw, "metadata": {**raw["metadata"], "generation": generation}}

    def _status(self, obj: Any, raw: dict[str, Any], ready: bool) -> None:
        status = _rolled(raw, raw["metadata"]["generation"], ready)
        self._in_loop(lambda: obj.patch({"status": status}))

    def pod_list(self, selector: str) -> dict[str, Any]:
        wanted = dict(part.split("=", 1) for part in selector.split(",") if part)
        items = [
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": pod.name, "namespace": NS, "labels": pod.labels},
                "status": {
                    "phase": "Running",
                    "conditions": [{"type": "Ready", "status": "True"}],
                },
            }
            for pod in self.pods.values()
            if wanted.items() <= pod.labels.items()
        ]
        return {"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": items}

    async def to_service(self, request: Any) -> Any:
        pods = list(self.pods.values())
        if not pods:
            return kmock.Response(status=503, payload=b"no endpoints available")
        rest = str(request.url.path).split("/proxy", 1)[1]
        return await _forward(request, random.choice(pods).url + rest)

    async def to_pod(self, request: Any) -> Any:
        where, rest = str(request.url.path).split("/pods/", 1)[1].split("/proxy", 1)
        pod = self.pods.get(where.split(":")[0])
        if pod is None:
            return kmock.Response(status=404, payload=b"pod not found")
        return await _forward(request, pod.url + rest)


async def _forward(request: Any, url: str) -> Any:
    import aiohttp

    headers = {
        k: v for k, v in request.headers.items() if k.lower() in ("authorization", "content-type")
    }
    async with (
        aiohttp.ClientSession() as session,
        session.request(
            str(request.method.value).upper(),
            url,
            params=request.params,
            data=request.body,
            headers=headers,
        ) as answer,
    ):
        body = await answer.read()
        kept = {
            k: v for k, v in answer.headers.items() if k.lower().startswith(("content-type", "x-"))
        }
        return kmock.Response(status=answer.status, payload=body, headers=kept)


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

                async def invocations(request: Any) -> Any:
                    fake.smoke_requests += 1
                    if fake.kubelet is not None:
                        return await fake.kubelet.to_service(request)
                    rows = len(request.data["dataframe_split"]["data"])
                    return {"predictions": [1] * (rows - 1 if fake.wrong_shape else rows)}

                async def service_proxy(request: Any) -> Any:
                    assert fake.kubelet is not None, f"no pods behind {request.url}"
                    return await fake.kubelet.to_service(request)

                async def pod_list(request: Any) -> Any:
                    assert fake.kubelet is not None, "no pods in this cluster"
                    return fake.kubelet.pod_list(request.params.get("labelSelector", ""))

                async def pod_proxy(request: Any) -> Any:
                    assert fake.kubelet is not None, "no pods in this cluster"
                    return await fake.kubelet.to_pod(request)

                services = rf"/api/v1/namespaces/{NS}/services/[^/]+:80/proxy"
                h["post", re.compile(rf"{services}/invocations")] << invocations
                h[re.compile(rf"{services}/.+")] << service_proxy
                h[re.compile(rf"/api/v1/namespaces/{NS}/pods/[^/]+/proxy/.*")] << pod_proxy
                h["get", re.compile(rf"/api/v1/namespaces/{NS}/pods$")] << pod_list
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

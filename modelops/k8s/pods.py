"""Each pod of a Deployment, one by one, through the API server's pod proxy: what a rollout
needs where a Service would pick one pod at random (every pod holds its own traffic split and
its own evidence)."""

from __future__ import annotations

from typing import Any

from modelops.errors import DeploymentFailed, PermissionDenied, TransientError
from modelops.k8s.cluster import Cluster, call


def ready_pods(cluster: Cluster, namespace: str, labels: dict[str, str]) -> list[str]:
    """The names of the running, ready pods carrying ``labels``."""
    from functools import partial

    from kubernetes.client import CoreV1Api

    selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
    listing = partial(CoreV1Api(cluster.api).list_namespaced_pod, label_selector=selector)
    found = call("list pods", listing, namespace, idempotent=True)
    names = []
    for pod in found.items:
        if pod.metadata.deletion_timestamp is not None or pod.status.phase != "Running":
            continue
        conditions = pod.status.conditions or []
        if any(c.type == "Ready" and c.status == "True" for c in conditions):
            names.append(pod.metadata.name)
    return sorted(names)


def pod_request(
    cluster: Cluster,
    namespace: str,
    pod: str,
    port: int,
    method: str,
    path: str,
    *,
    body: Any = None,
    query: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30,
) -> tuple[int, bytes]:
    """``method path`` on one pod; its status and body.

    Raises:
        TransientError: the API server or the pod did not answer, or answered 5xx/429.
        PermissionDenied: the API refused the proxy (401/403 from the API server itself).
    """
    method_, url, sent, payload, _ = cluster.api.param_serialize(
        method,
        "/api/v1/namespaces/{namespace}/pods/{name}/proxy/{path}",
        path_params={"namespace": namespace, "name": f"{pod}:{port}", "path": path.lstrip("/")},
        query_params=list((query or {}).items()),
        header_params={"Content-Type": "application/json", **(headers or {})},
        body=body,
        auth_settings=["BearerToken"],
    )
    try:
        response = cluster.api.call_api(
            method_, url, header_params=sent, body=payload, _request_timeout=timeout
        )
        data = response.read() or b""
    except Exception as exc:
        raise TransientError(f"Pod {namespace}/{pod} did not answer {path}: {exc}") from exc
    status = response.status
    if status in (401, 403) and b"rollout token" not in data:
        raise PermissionDenied(
            f"Kubernetes refused {method} {path} through pods/proxy (HTTP {status}); grant "
            f"'get' and 'create' on pods/proxy (deployments/rbac/rbac.yaml)."
        )
    if status == 429 or status >= 500:
        raise TransientError(f"Pod {namespace}/{pod} answered {path} with HTTP {status}")
    if status == 404 and not data.startswith(b"{"):
        raise DeploymentFailed(f"Pod {namespace}/{pod} is not a model server ({path}: 404)")
    return status, data

"""Talking to the Kubernetes API with the official client: connect, read, apply, restore.

Apply is idempotent through the spec-hash annotation of :mod:`modelops.k8s.manifests`, and
writes use JSON Patch (exactly what we send is what the server stores). 401/403 become a final
:class:`~modelops.errors.PermissionDenied`; 5xx/429 propagate for the task's retry policy.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelops.errors import ConfigurationError, PermissionDenied
from modelops.k8s.manifests import HASH_ANNOTATION

if TYPE_CHECKING:
    from kubernetes.client import ApiClient


@dataclass
class Cluster:
    """An API client and how it was configured (in-cluster, kubeconfig, Prefect block)."""

    api: ApiClient
    source: str


def connect(kubeconfig: dict[str, Any] | None = None, context: str | None = None) -> Cluster:
    """Find cluster credentials: in-cluster config, then a kubeconfig file, then ``kubeconfig``
    (e.g. the config of a prefect-kubernetes credentials block).

    Raises:
        ConfigurationError: none of them is available.
    """
    from kubernetes import config
    from kubernetes.client import ApiClient, Configuration

    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        cfg = Configuration()
        config.load_incluster_config(client_configuration=cfg)
        return Cluster(ApiClient(cfg), "in-cluster service account")
    path = os.environ.get("KUBECONFIG", "").split(os.pathsep)[0] or str(
        Path.home() / ".kube" / "config"
    )
    if Path(path).is_file():
        cfg = Configuration()
        config.load_kube_config(config_file=path, context=context, client_configuration=cfg)
        return Cluster(
            ApiClient(cfg), f"kubeconfig {path}" + (f" (context {context})" if context else "")
        )
    if kubeconfig:
        cfg = Configuration()
        config.load_kube_config_from_dict(kubeconfig, context=context, client_configuration=cfg)
        return Cluster(ApiClient(cfg), "Prefect KubernetesClusterConfig block")
    raise ConfigurationError(
        "No Kubernetes cluster configured: not running in a cluster, no kubeconfig at "
        f"{path} (set KUBECONFIG), and no prefect-kubernetes credentials block given. "
        "Use target='local' to serve on this machine."
    )


def _api_error(exc: Exception, action: str) -> Exception:
    """Turn a 401/403 into a clear, final PermissionDenied; leave the rest to the caller."""
    status = getattr(exc, "status", None)
    if status in (401, 403):
        return PermissionDenied(
            f"Kubernetes refused to {action} (HTTP {status}: {getattr(exc, 'reason', '')}). "
            f"Grant the flow's identity the Role in deployments/rbac/rbac.yaml in that namespace."
        )
    return exc


_KINDS = {
    ("apps/v1", "Deployment"): ("AppsV1Api", "namespaced_deployment"),
    ("v1", "Service"): ("CoreV1Api", "namespaced_service"),
    ("batch/v1", "Job"): ("BatchV1Api", "namespaced_job"),
}


def _ops(cluster: Cluster, manifest: dict[str, Any]) -> tuple[Any, str]:
    import kubernetes.client as k

    try:
        api_name, suffix = _KINDS[(manifest["apiVersion"], manifest["kind"])]
    except KeyError as exc:
        raise ConfigurationError(f"Unsupported kind {manifest.get('kind')!r}") from exc
    return getattr(k, api_name)(cluster.api), suffix


def read(cluster: Cluster, manifest: dict[str, Any]) -> dict[str, Any] | None:
    """The live object named like ``manifest``, as a plain dict, or None if absent."""
    from kubernetes.client.exceptions import ApiException

    api, suffix = _ops(cluster, manifest)
    meta = manifest["metadata"]
    try:
        obj = getattr(api, f"read_{suffix}")(meta["name"], meta["namespace"])
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise _api_error(exc, f"read {manifest['kind']} {meta['name']}") from exc
    return cluster.api.sanitize_for_serialization(obj)


def apply(cluster: Cluster, manifest: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
    """Create the object, or patch it if it differs from what we ask for.

    Returns:
        ``("created" | "patched" | "unchanged", the live object before the change or None)``.
    """
    from kubernetes.client.exceptions import ApiException

    api, suffix = _ops(cluster, manifest)
    meta = manifest["metadata"]
    before = read(cluster, manifest)
    if before is None:
        try:
            getattr(api, f"create_{suffix}")(meta["namespace"], manifest)
            return "created", None
        except ApiException as exc:
            if exc.status != 409:  # created meanwhile (or by our own earlier attempt): patch
                raise _api_error(exc, f"create {manifest['kind']} {meta['name']}") from exc
            before = read(cluster, manifest)
    wanted = manifest["metadata"]["annotations"].get(HASH_ANNOTATION)
    if before and before.get("metadata", {}).get("annotations", {}).get(HASH_ANNOTATION) == wanted:
        return "unchanged", before
    patch = [
        {"op": "add", "path": "/metadata/labels", "value": meta.get("labels", {})},
        {"op": "add", "path": "/metadata/annotations", "value": meta.get("annotations", {})},
        {"op": "replace", "path": "/spec", "value": manifest["spec"]},
    ]
    try:
        getattr(api, f"patch_{suffix}")(meta["name"], meta["namespace"], patch)
    except ApiException as exc:
        raise _api_error(exc, f"patch {manifest['kind']} {meta['name']}") from exc
    return "patched", before


def restore(cluster: Cluster, manifest: dict[str, Any], before: dict[str, Any] | None) -> str:
    """Put an object back as it was before :func:`apply` (delete it if it did not exist)."""
    from kubernetes.client.exceptions import ApiException

    api, suffix = _ops(cluster, manifest)
    meta = manifest["metadata"]
    if before is None:
        try:
            getattr(api, f"delete_{suffix}")(meta["name"], meta["namespace"])
        except ApiException as exc:
            if exc.status != 404:
                raise _api_error(exc, f"delete {manifest['kind']} {meta['name']}") from exc
        return "deleted"
    old_meta = before.get("metadata", {})
    patch = [
        {"op": "add", "path": "/metadata/labels", "value": old_meta.get("labels") or {}},
        {"op": "add", "path": "/metadata/annotations", "value": old_meta.get("annotations") or {}},
        {"op": "replace", "path": "/spec", "value": before["spec"]},
    ]
    try:
        getattr(api, f"patch_{suffix}")(meta["name"], meta["namespace"], patch)
    except ApiException as exc:
        raise _api_error(exc, f"restore {manifest['kind']} {meta['name']}") from exc
    return "restored"


def delete(cluster: Cluster, manifest: dict[str, Any]) -> bool:
    """Delete the object if it exists; True when something was deleted."""
    if read(cluster, manifest) is None:
        return False
    restore(cluster, manifest, None)
    return True

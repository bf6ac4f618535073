"""Talking to the Kubernetes API with the official client: connect, read, apply, restore.

Apply is idempotent through the spec-hash annotation of :mod:`modelops.k8s.manifests`, and
writes use JSON Patch (exactly what we send is what the server stores). 401/403 become a final
:class:`~modelops.errors.PermissionDenied`; 5xx/429 propagate for the task's retry policy.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelops.errors import ConfigurationError, PermissionDenied
from modelops.k8s.manifests import HASH_ANNOTATION, MODEL_ANNOTATION

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


MAX_RETRY_AFTER = 60.0  # seconds: a longer wait is left to the task's retry policy


def _retry_after(exc: Exception) -> float | None:
    """The wait a 429 asks for (``Retry-After`` seconds), when it is short enough to honour."""
    if getattr(exc, "status", None) != 429:
        return None
    headers = getattr(exc, "headers", None) or {}
    try:
        wait = float(headers.get("Retry-After", headers.get("retry-after", 1)))
    except (TypeError, ValueError):
        wait = 1.0
    return wait if 0 <= wait <= MAX_RETRY_AFTER else None


def call(action: str, fn: Any, *args: Any, attempts: int = 5, idempotent: bool = False) -> Any:
    """Call the API, waiting as long as a 429's ``Retry-After`` asks (the task's own backoff
    would not), and turning 401/403 into :class:`PermissionDenied`.

    An ``idempotent`` call (a read) also rides out a short burst of 5xx answers and dropped
    connections (0.5 s, 1 s, 2 s apart); anything longer, and every other error, propagates to
    the task's retry policy.
    """
    from kubernetes.client.exceptions import ApiException

    from modelops.errors import is_transient

    for attempt in range(attempts):
        try:
            return fn(*args)
        except ApiException as exc:
            wait = _retry_after(exc)
            if wait is None and idempotent and is_transient(exc):
                wait = 0.5 * 2**attempt
            if wait is None or attempt == attempts - 1:
                raise _api_error(exc, action) from exc
            time.sleep(wait)
        except Exception as exc:  # urllib3: connection refused, reset, ...
            if not (idempotent and is_transient(exc)) or attempt >= 3:
                raise
            time.sleep(0.5 * 2**attempt)
    raise AssertionError("unreachable")


_KINDS = {
    ("apps/v1", "Deployment"): ("AppsV1Api", "namespaced_deployment"),
    ("v1", "Service"): ("CoreV1Api", "namespaced_service"),
    ("batch/v1", "Job"): ("BatchV1Api", "namespaced_job"),
    ("v1", "Secret"): ("CoreV1Api", "namespaced_secret"),
}


def _body(manifest: dict[str, Any]) -> str:
    """The field that holds what an object is: ``data`` for a Secret, ``spec`` otherwise."""
    return "data" if manifest.get("kind") == "Secret" else "spec"


def _whole_patch(
    manifest: dict[str, Any], labels: Any, annotations: Any, body: Any
) -> list[dict[str, Any]]:
    """A JSON patch that sets labels, annotations and the whole body: what we send instead of a
    strategic merge, which would keep fields (and containers) the new object no longer has."""
    return [
        {"op": "add", "path": "/metadata/labels", "value": labels},
        {"op": "add", "path": "/metadata/annotations", "value": annotations},
        {"op": "replace", "path": f"/{_body(manifest)}", "value": body},
    ]


def _named_call(action: str, api: Any, method: str, manifest: dict[str, Any], *args: Any) -> Any:
    """:func:`call` an API method that takes the object's name and namespace first."""
    meta = manifest["metadata"]
    return call(action, getattr(api, method), meta["name"], meta["namespace"], *args)


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
        obj = call(
            f"read {manifest['kind']} {meta['name']}",
            getattr(api, f"read_{suffix}"),
            meta["name"],
            meta["namespace"],
            attempts=4,
            idempotent=True,
        )
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return cluster.api.sanitize_for_serialization(obj)


def check_owner(manifest: dict[str, Any], live: dict[str, Any] | None) -> None:
    """Refuse to touch a live object that belongs to another model (or to nobody we know).

    Object names are unique per model name (:mod:`modelops.naming`), and the exact model name
    is kept in the ``modelops.io/model-name`` annotation: checked here before every write.

    Raises:
        ConfigurationError: the object's annotation names another model, or it has none.
    """
    if live is None:
        return
    ours = (manifest.get("metadata", {}).get("annotations") or {}).get(MODEL_ANNOTATION)
    theirs = (live.get("metadata", {}).get("annotations") or {}).get(MODEL_ANNOTATION)
    if ours is not None and theirs != ours:
        meta = manifest["metadata"]
        owner = f"model {theirs!r}" if theirs else "something not deployed by modelops"
        raise ConfigurationError(
            f"{manifest['kind']} {meta['namespace']}/{meta['name']} belongs to {owner}, not to "
            f"{ours!r}; nothing was changed. Remove it, or deploy into another namespace."
        )


def apply(cluster: Cluster, manifest: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
    """Create the object, or patch it if it differs from what we ask for.

    Returns:
        ``("created" | "patched" | "unchanged", the live object before the change or None)``.
    """
    from kubernetes.client.exceptions import ApiException

    api, suffix = _ops(cluster, manifest)
    meta = manifest["metadata"]
    what = f"{manifest['kind']} {meta['namespace']}/{meta['name']}"
    before = read(cluster, manifest)
    if before is None:
        try:
            call(f"create {what}", getattr(api, f"create_{suffix}"), meta["namespace"], manifest)
            return "created", None
        except ApiException as exc:
            if exc.status == 404:
                raise ConfigurationError(
                    f"Cannot create {what}: namespace {meta['namespace']!r} does not exist (or "
                    f"is not visible to this identity). Create it, or deploy elsewhere "
                    f"(--namespace, or ML_MODEL_DEPLOY_NAMESPACE)."
                ) from exc
            if exc.status != 409:  # 409: created meanwhile (or by our own earlier attempt)
                raise
            before = read(cluster, manifest)
    check_owner(manifest, before)
    wanted = manifest["metadata"]["annotations"].get(HASH_ANNOTATION)
    for attempt in range(2):
        if (before or {}).get("metadata", {}).get("annotations", {}).get(HASH_ANNOTATION) == wanted:
            return "unchanged", before
        patch = _whole_patch(
            manifest, meta.get("labels", {}), meta.get("annotations", {}), manifest[_body(manifest)]
        )
        try:
            _named_call(f"patch {what}", api, f"patch_{suffix}", manifest, patch)
            return "patched", before
        except ApiException as exc:
            if exc.status != 409 or attempt:  # a conflict: someone wrote meanwhile; look again
                raise
            before = read(cluster, manifest)
            check_owner(manifest, before)
    raise AssertionError("unreachable")


def restore(cluster: Cluster, manifest: dict[str, Any], before: dict[str, Any] | None) -> str:
    """Put an object back as it was before :func:`apply` (delete it if it did not exist)."""
    from kubernetes.client.exceptions import ApiException

    api, suffix = _ops(cluster, manifest)
    meta = manifest["metadata"]
    if before is None:
        try:
            _named_call(
                f"delete {manifest['kind']} {meta['name']}", api, f"delete_{suffix}", manifest
            )
        except ApiException as exc:
            if exc.status != 404:
                raise
        return "deleted"
    old_meta = before.get("metadata", {})
    patch = _whole_patch(
        manifest,
        old_meta.get("labels") or {},
        old_meta.get("annotations") or {},
        before.get(_body(manifest)),
    )
    _named_call(
        f"restore {manifest['kind']} {meta['name']}", api, f"patch_{suffix}", manifest, patch
    )
    return "restored"


def delete(cluster: Cluster, manifest: dict[str, Any]) -> bool:
    """Delete the object if it exists and is the model's own; True when something was deleted.

    Raises:
        ConfigurationError: the object belongs to another model (see :func:`check_owner`).
    """
    live = read(cluster, manifest)
    if live is None:
        return False
    check_owner(manifest, live)
    restore(cluster, manifest, None)
    return True

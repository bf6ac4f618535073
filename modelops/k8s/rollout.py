"""Rolling out and verifying: wait for a Deployment or Job, smoke-test, restore on failure."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from modelops.errors import DeploymentFailed, PermissionDenied, is_transient
from modelops.k8s.cluster import Cluster, apply, read, restore
from modelops.k8s.manifests import VERSION_LABEL, ServingSpec, render_serving
from modelops.serving.scoring import check_predictions


@dataclass
class Rollout:
    """How a rollout ended."""

    ready: bool
    seconds: float
    status: dict[str, Any] = field(default_factory=dict)
    reason: str = ""


def wait_for_rollout(
    cluster: Cluster, deployment: dict[str, Any], timeout: float, poll: float = 2.0
) -> Rollout:
    """Wait until the Deployment's controller has rolled out every replica of the new spec.

    Ready means: the controller observed this generation, and updated, available and total
    replicas all equal the desired count (no old pods left). A ProgressDeadlineExceeded
    condition ends the wait early.
    """
    meta = deployment["metadata"]
    wanted = deployment["spec"]["replicas"]
    started = time.monotonic()
    status: dict[str, Any] = {}
    while True:
        # Look only after a poll interval: the status read right after a write may still
        # describe the previous spec on servers that do not report metadata.generation.
        time.sleep(poll)
        try:
            live = read(cluster, deployment) or {}
        except Exception as exc:  # a dropped connection or a 5xx while waiting: look again
            if not is_transient(exc) or time.monotonic() - started >= timeout:
                raise
            continue
        status = live.get("status") or {}
        generation = (live.get("metadata") or {}).get("generation")
        observed = status.get("observedGeneration")
        current = generation is None or (observed is not None and observed >= generation)
        if (
            current
            and status.get("updatedReplicas") == wanted
            and status.get("availableReplicas") == wanted
            and status.get("replicas", wanted) == wanted
        ):
            return Rollout(True, time.monotonic() - started, status)
        for cond in status.get("conditions") or []:
            if (
                cond.get("type") == "Progressing"
                and cond.get("reason") == "ProgressDeadlineExceeded"
            ):
                return Rollout(
                    False,
                    time.monotonic() - started,
                    status,
                    f"progress deadline exceeded: {cond.get('message', '')}",
                )
        if time.monotonic() - started >= timeout:
            return Rollout(
                False,
                time.monotonic() - started,
                status,
                f"not ready after {timeout:.0f}s: {status.get('availableReplicas') or 0}/{wanted} "
                f"available, {status.get('updatedReplicas') or 0}/{wanted} updated "
                f"({meta['namespace']}/{meta['name']})",
            )


def smoke_test(
    cluster: Cluster,
    service: dict[str, Any],
    payload: dict[str, Any],
    rows: int,
    timeout: float = 30,
) -> list[Any]:
    """POST ``payload`` to the Service's ``/invocations`` through the API server's proxy.

    Raises:
        DeploymentFailed: the request failed or the predictions have the wrong shape.
    """
    meta = service["metadata"]
    port = service["spec"]["ports"][0]["port"]
    method, url, headers, body, _ = cluster.api.param_serialize(
        "POST",
        "/api/v1/namespaces/{namespace}/services/{name}/proxy/{path}",
        path_params={
            "namespace": meta["namespace"],
            "name": f"{meta['name']}:{port}",
            "path": "invocations",
        },
        header_params={"Content-Type": "application/json", "Accept": "application/json"},
        body=payload,
        auth_settings=["BearerToken"],
    )
    try:
        response = cluster.api.call_api(
            method, url, header_params=headers, body=body, _request_timeout=timeout
        )
        response.read()
    except Exception as exc:
        raise DeploymentFailed(f"Smoke test request to {meta['name']} failed: {exc}") from exc
    if response.status in (401, 403):
        raise PermissionDenied(
            f"Kubernetes refused the smoke test through services/proxy (HTTP {response.status}); "
            f"grant 'create' on services/proxy (deployments/rbac/rbac.yaml)."
        )
    data = response.data or b""
    if response.status != 200:
        raise DeploymentFailed(
            f"Smoke test got HTTP {response.status} from {meta['name']}: {data[:500]!r}"
        )
    try:
        answer = json.loads(data)
    except ValueError as exc:
        raise DeploymentFailed(f"Smoke test: the answer is not JSON: {data[:300]!r}") from exc
    return check_predictions(answer, rows)


def job_outcome(
    cluster: Cluster, job: dict[str, Any], timeout: float, poll: float = 2.0
) -> Rollout:
    """Wait for a Job to succeed or fail."""
    started = time.monotonic()
    while True:
        try:
            status = (read(cluster, job) or {}).get("status") or {}
        except Exception as exc:  # a dropped connection or a 5xx while waiting: look again
            if not is_transient(exc) or time.monotonic() - started >= timeout:
                raise
            time.sleep(poll)
            continue
        for cond in status.get("conditions") or []:
            if cond.get("status") == "True" and cond.get("type") in ("Complete", "Failed"):
                ok = cond["type"] == "Complete"
                return Rollout(
                    ok,
                    time.monotonic() - started,
                    status,
                    "" if ok else f"{cond.get('reason')}: {cond.get('message')}",
                )
        if status.get("succeeded"):
            return Rollout(True, time.monotonic() - started, status)
        if time.monotonic() - started >= timeout:
            return Rollout(
                False, time.monotonic() - started, status, f"Job not finished after {timeout:.0f}s"
            )
        time.sleep(poll)


def _undo(
    cluster: Cluster, applied: list[tuple[dict[str, Any], str, dict[str, Any] | None]]
) -> None:
    """Put objects applied by this rollout back as they were, newest first."""
    for manifest, action, before in reversed(applied):
        if action != "unchanged":
            restore(cluster, manifest, before)


@dataclass
class ServingOutcome:
    """What a serving deployment did."""

    namespace: str
    name: str
    version: str
    previous_version: str | None
    deployment_action: str
    service_action: str
    apply_seconds: float
    rollout_seconds: float
    smoke_seconds: float
    predictions: list[Any] = field(default_factory=list)


def deploy_serving(
    cluster: Cluster,
    spec: ServingSpec,
    payload: dict[str, Any],
    rows: int,
    timeout: float,
    poll: float = 2.0,
    log: Any = None,
    secret: dict[str, Any] | None = None,
) -> ServingOutcome:
    """Apply, wait for the rollout, smoke-test; on failure restore what was there before.

    ``secret`` (the tracking credentials pods read, see
    :func:`~modelops.k8s.manifests.render_credentials_secret`) is applied first.

    Raises:
        DeploymentFailed: the rollout or the smoke test failed; the message says what was
            restored (the previous Deployment spec, or nothing because it was the first).
        PermissionDenied: the API refused an operation (401/403).
    """
    say = log or (lambda *a: None)
    deployment, service = render_serving(spec)
    started = time.monotonic()
    applied: list[tuple[dict[str, Any], str, dict[str, Any] | None]] = []
    try:
        if secret is not None:  # the pods' tracking credentials, before anything reads them
            applied.append((secret, *apply(cluster, secret)))
        applied.append((service, *apply(cluster, service)))
        deployment_action, deployment_before = apply(cluster, deployment)
    except BaseException:
        # Never leave a half-applied set: a Service (or Secret) created or changed for a
        # Deployment the API refused goes back to how it was.
        _undo(cluster, applied)
        raise
    service_action = applied[-1][1]
    apply_seconds = time.monotonic() - started
    previous = ((deployment_before or {}).get("metadata", {}).get("labels") or {}).get(
        VERSION_LABEL
    )
    say(
        f"{deployment_action} Deployment, {service_action} Service "
        f"{spec.namespace}/{spec.name} for {spec.model_uri}"
    )
    rollout = wait_for_rollout(cluster, deployment, timeout, poll)
    failure = None if rollout.ready else f"rollout failed: {rollout.reason}"
    predictions: list[Any] = []
    smoke_started = time.monotonic()
    if failure is None:
        try:
            predictions = smoke_test(cluster, service, payload, rows)
        except DeploymentFailed as exc:
            failure = str(exc)
    smoke_seconds = time.monotonic() - smoke_started
    if failure is None:
        return ServingOutcome(
            spec.namespace,
            spec.name,
            spec.version,
            previous,
            deployment_action,
            service_action,
            apply_seconds,
            rollout.seconds,
            smoke_seconds,
            predictions,
        )

    if deployment_action == "unchanged":
        raise DeploymentFailed(
            f"Version {spec.version} of {spec.model_name} is deployed but unhealthy: {failure}. "
            f"Nothing was changed by this run."
        )
    restore(cluster, deployment, deployment_before)
    _undo(cluster, applied)
    if deployment_before is None:
        raise DeploymentFailed(
            f"Deploying version {spec.version} of {spec.model_name} to "
            f"{spec.namespace}/{spec.name} failed ({failure}). It was the first deployment, "
            f"so the new Deployment and Service were deleted."
        )
    back = wait_for_rollout(
        cluster, {**deployment, "spec": deployment_before["spec"]}, timeout, poll
    )
    restored = (
        f"restored version {previous}, which is serving again"
        if back.ready
        else f"restored the spec of version {previous}, but it is not ready yet ({back.reason})"
    )
    raise DeploymentFailed(
        f"Deploying version {spec.version} of {spec.model_name} to {spec.namespace}/{spec.name} "
        f"failed ({failure}); {restored}."
    )

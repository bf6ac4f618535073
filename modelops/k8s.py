"""Serving a registered model on Kubernetes with the official client.

Manifests come from the templates in ``deployments/`` (structure, probes, security context);
modelops sets only the fields that depend on the model, from validated values, never by text
substitution. Apply is idempotent through a hash of the desired object kept as an annotation,
and writes use JSON Patch (exactly what we send is what the server stores).
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field, field_validator

from modelops.errors import ConfigurationError, DeploymentFailed, PermissionDenied

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

TEMPLATES = Path(
    os.environ.get("MODELOPS_TEMPLATES_DIR", Path(__file__).resolve().parents[1] / "deployments")
)
HASH_ANNOTATION = "modelops.io/spec-hash"
FLOW_RUN_ANNOTATION = "modelops.io/prefect-flow-run-id"
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_QUANTITY = re.compile(r"^\d+(\.\d+)?(m|k|Ki|Mi|Gi|Ti|M|G|T)?$")
_IMAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@-]{0,254}$")


def dns_label(text: str, suffix: str = "") -> str:
    """A valid DNS-1123 label (<= 63 chars) derived from free text, e.g. a model name.

    Lower-cases, turns every run of other characters into ``-``, trims dashes, and when the
    result is too long keeps a prefix plus a short hash so distinct names stay distinct.

    Raises:
        ConfigurationError: nothing usable is left (e.g. the name has no letters or digits).
    """
    base = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    if not base:
        raise ConfigurationError(
            f"Cannot derive a Kubernetes name from {text!r}: it needs letters or digits."
        )
    tail = f"-{suffix}" if suffix else ""
    if len(base) + len(tail) > 63:
        digest = hashlib.sha256(text.encode()).hexdigest()[:6]
        base = base[: 63 - len(tail) - 7].rstrip("-") + "-" + digest
    name = base + tail
    assert _DNS1123_LABEL.match(name), name
    return name


def label_value(text: str) -> str:
    """A valid label value (<= 63 chars of [A-Za-z0-9-_.]) from free text."""
    value = re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-_.")[:63].rstrip("-_.")
    return value if _LABEL_VALUE.match(value) else ""


def check_namespace(namespace: str) -> str:
    """Reject anything that is not a valid namespace name (no sanitising: it must exist)."""
    if not namespace or len(namespace) > 63 or not _DNS1123_LABEL.match(namespace):
        raise ConfigurationError(
            f"Invalid namespace {namespace!r}: use lower-case letters, digits and '-' (max 63)."
        )
    return namespace


class Resources(BaseModel):
    """CPU/memory requests and limits for the model server container."""

    cpu_request: str | None = "250m"
    memory_request: str | None = "512Mi"
    cpu_limit: str | None = None
    memory_limit: str | None = "1Gi"

    @field_validator("*")
    @classmethod
    def _quantity(cls, value: str | None) -> str | None:
        if value is not None and not _QUANTITY.match(value):
            raise ValueError(f"{value!r} is not a Kubernetes quantity (e.g. 500m, 1Gi)")
        return value

    def manifest(self) -> dict[str, dict[str, str]]:
        """The container ``resources`` block."""
        out: dict[str, dict[str, str]] = {}
        for kind, cpu, mem in (
            ("requests", self.cpu_request, self.memory_request),
            ("limits", self.cpu_limit, self.memory_limit),
        ):
            block = {k: v for k, v in (("cpu", cpu), ("memory", mem)) if v}
            if block:
                out[kind] = block
        return out


class ServingSpec(BaseModel):
    """Everything needed to render the serving objects for one model version."""

    model_name: str
    version: str
    run_id: str | None = None
    namespace: str
    image: str
    tracking_uri: str
    replicas: int = Field(default=1, ge=1, le=100)
    workers: int = Field(default=2, ge=1, le=64)
    env_manager: Literal["local", "virtualenv", "uv", "conda"] = "local"
    resources: Resources = Field(default_factory=Resources)
    flow_run_id: str | None = None

    @field_validator("image")
    @classmethod
    def _image(cls, value: str) -> str:
        if not _IMAGE.match(value):
            raise ValueError(f"{value!r} is not a container image reference")
        return value

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        try:
            return check_namespace(value)
        except ConfigurationError as exc:
            raise ValueError(str(exc)) from exc

    @field_validator("version")
    @classmethod
    def _version(cls, value: str) -> str:
        if not str(value).isdigit():
            raise ValueError(f"version must be a registered version number, got {value!r}")
        return str(value)

    @property
    def name(self) -> str:
        """The Deployment and Service name (stable across versions of the model)."""
        return dns_label(self.model_name, "serving")

    @property
    def model_uri(self) -> str:
        """What the server loads."""
        return f"models:/{self.model_name}/{self.version}"


def _template(relative: str) -> dict[str, Any]:
    import yaml

    path = TEMPLATES / relative
    try:
        return yaml.safe_load(path.read_text())
    except FileNotFoundError as exc:
        raise ConfigurationError(
            f"Manifest template {path} is missing; set MODELOPS_TEMPLATES_DIR to the folder "
            f"holding serving/ and batch/."
        ) from exc


def spec_hash(manifest: dict[str, Any]) -> str:
    """Hash of what we ask for (our own annotation excluded)."""
    clean = copy.deepcopy(manifest)
    for key in (HASH_ANNOTATION, FLOW_RUN_ANNOTATION):  # who deployed it is not what it is
        clean.get("metadata", {}).get("annotations", {}).pop(key, None)
    return hashlib.sha256(json.dumps(clean, sort_keys=True).encode()).hexdigest()[:16]


def _stamp(manifest: dict[str, Any]) -> dict[str, Any]:
    manifest["metadata"].setdefault("annotations", {})[HASH_ANNOTATION] = spec_hash(manifest)
    return manifest


def _labels(spec: ServingSpec) -> tuple[dict[str, str], dict[str, str]]:
    selector = {"app.kubernetes.io/name": spec.name, "app.kubernetes.io/instance": spec.name}
    labels = {
        **selector,
        "modelops.io/model": label_value(spec.model_name),
        "modelops.io/version": spec.version,
        "modelops.io/run-id": label_value(spec.run_id or ""),
    }
    return selector, {k: v for k, v in labels.items() if v}


def _container_env(spec: ServingSpec) -> list[dict[str, str]]:
    return [
        {"name": "MLFLOW_TRACKING_URI", "value": spec.tracking_uri},
        {"name": "MODEL_NAME", "value": spec.model_name},
        {"name": "MODEL_VERSION", "value": spec.version},
    ]


def render_serving(spec: ServingSpec) -> tuple[dict[str, Any], dict[str, Any]]:
    """The Deployment and Service for ``spec``, from the templates."""
    selector, labels = _labels(spec)
    annotations = {
        "modelops.io/model-name": spec.model_name,
        "modelops.io/model-uri": spec.model_uri,
    }
    # The flow run goes on the Deployment only: on the pod template it would restart every pod
    # on every run, even when nothing about the model changed.
    run = {FLOW_RUN_ANNOTATION: spec.flow_run_id} if spec.flow_run_id else {}

    dep = _template("serving/deployment.yaml")
    dep["metadata"].update(name=spec.name, namespace=spec.namespace)
    dep["metadata"]["labels"] = {**dep["metadata"].get("labels", {}), **labels}
    dep["metadata"]["annotations"] = {
        **dep["metadata"].get("annotations", {}),
        **annotations,
        **run,
    }
    dep["spec"]["replicas"] = spec.replicas
    dep["spec"]["selector"] = {"matchLabels": selector}
    pod = dep["spec"]["template"]
    pod["metadata"]["labels"] = {**pod["metadata"].get("labels", {}), **labels}
    pod["metadata"]["annotations"] = {**(pod["metadata"].get("annotations") or {}), **annotations}
    container = pod["spec"]["containers"][0]
    port = container["ports"][0]["containerPort"]
    container["image"] = spec.image
    container["args"] = [
        "--model-uri", spec.model_uri, "--host", "0.0.0.0", "--port", str(port),
        "--workers", str(spec.workers), "--env-manager", spec.env_manager,
    ]  # fmt: skip
    container["env"] = _container_env(spec)
    container["resources"] = spec.resources.manifest()

    svc = _template("serving/service.yaml")
    svc["metadata"].update(name=spec.name, namespace=spec.namespace)
    svc["metadata"]["labels"] = {**svc["metadata"].get("labels", {}), **labels}
    svc["metadata"]["annotations"] = annotations
    svc["spec"]["selector"] = selector
    return _stamp(dep), _stamp(svc)


def render_batch_job(
    spec: ServingSpec, input_uri: str, output_uri: str, job_suffix: str
) -> dict[str, Any]:
    """A Job scoring ``input_uri`` into ``output_uri`` with the version in ``spec``."""
    for value, what in ((input_uri, "input"), (output_uri, "output")):
        if not value or any(c.isspace() for c in value) or len(value) > 2048:
            raise ConfigurationError(f"Invalid {what} URI {value!r}")
    _selector, labels = _labels(spec)
    job = _template("batch/job.yaml")
    name = dns_label(spec.model_name, f"score-{dns_label(job_suffix)}"[:20].rstrip("-"))
    job["metadata"].update(name=name, namespace=spec.namespace)
    job["metadata"]["labels"] = {**job["metadata"].get("labels", {}), **labels}
    job["metadata"]["annotations"] = {"modelops.io/model-uri": spec.model_uri}
    pod = job["spec"]["template"]
    pod["metadata"]["labels"] = {**pod["metadata"].get("labels", {}), **labels}
    container = pod["spec"]["containers"][0]
    container["image"] = spec.image
    container["args"] = [
        "--model-uri", spec.model_uri, "--input-path", input_uri, "--output-path", output_uri,
        "--content-type", "csv", "--env-manager", spec.env_manager,
    ]  # fmt: skip
    container["env"] = _container_env(spec)
    container["resources"] = spec.resources.manifest()
    return job


# ---------------------------------------------------------------------------- cluster access


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
        live = read(cluster, deployment) or {}
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
                return Rollout(False, time.monotonic() - started, status,
                               f"progress deadline exceeded: {cond.get('message', '')}")  # fmt: skip
        if time.monotonic() - started >= timeout:
            return Rollout(
                False, time.monotonic() - started, status,
                f"not ready after {timeout:.0f}s: {status.get('availableReplicas') or 0}/{wanted} "
                f"available, {status.get('updatedReplicas') or 0}/{wanted} updated "
                f"({meta['namespace']}/{meta['name']})",
            )  # fmt: skip


def smoke_test(
    cluster: Cluster, service: dict[str, Any], payload: dict[str, Any], rows: int,
    timeout: float = 30,
) -> list[Any]:  # fmt: skip
    """POST ``payload`` to the Service's ``/invocations`` through the API server's proxy.

    Raises:
        DeploymentFailed: the request failed or the predictions have the wrong shape.
    """
    meta = service["metadata"]
    port = service["spec"]["ports"][0]["port"]
    method, url, headers, body, _ = cluster.api.param_serialize(
        "POST",
        "/api/v1/namespaces/{namespace}/services/{name}/proxy/{path}",
        path_params={"namespace": meta["namespace"], "name": f"{meta['name']}:{port}",
                     "path": "invocations"},
        header_params={"Content-Type": "application/json", "Accept": "application/json"},
        body=payload,
        auth_settings=["BearerToken"],
    )  # fmt: skip
    try:
        response = cluster.api.call_api(method, url, header_params=headers, body=body,
                                        _request_timeout=timeout)  # fmt: skip
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


def check_predictions(answer: Any, rows: int) -> list[Any]:
    """The predictions in a scoring-server answer, if there is exactly one per input row.

    Raises:
        DeploymentFailed: the answer has another shape.
    """
    predictions = answer.get("predictions") if isinstance(answer, dict) else None
    if not isinstance(predictions, list) or len(predictions) != rows:
        got = len(predictions) if isinstance(predictions, list) else type(predictions).__name__
        raise DeploymentFailed(
            f"Smoke test: expected {rows} prediction(s), got {got}: {str(answer)[:300]}"
        )
    return predictions


def job_outcome(
    cluster: Cluster, job: dict[str, Any], timeout: float, poll: float = 2.0
) -> Rollout:
    """Wait for a Job to succeed or fail."""
    started = time.monotonic()
    while True:
        status = (read(cluster, job) or {}).get("status") or {}
        for cond in status.get("conditions") or []:
            if cond.get("status") == "True" and cond.get("type") in ("Complete", "Failed"):
                ok = cond["type"] == "Complete"
                return Rollout(ok, time.monotonic() - started, status,
                               "" if ok else f"{cond.get('reason')}: {cond.get('message')}")  # fmt: skip
        if status.get("succeeded"):
            return Rollout(True, time.monotonic() - started, status)
        if time.monotonic() - started >= timeout:
            return Rollout(False, time.monotonic() - started, status,
                           f"Job not finished after {timeout:.0f}s")  # fmt: skip
        time.sleep(poll)


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
) -> ServingOutcome:
    """Apply, wait for the rollout, smoke-test; on failure restore what was there before.

    Raises:
        DeploymentFailed: the rollout or the smoke test failed; the message says what was
            restored (the previous Deployment spec, or nothing because it was the first).
        PermissionDenied: the API refused an operation (401/403).
    """
    say = log or (lambda *a: None)
    deployment, service = render_serving(spec)
    started = time.monotonic()
    service_action, service_before = apply(cluster, service)
    try:
        deployment_action, deployment_before = apply(cluster, deployment)
    except BaseException:
        # Never leave a half-applied pair: a Service created or changed for a Deployment the
        # API refused goes back to how it was.
        if service_action != "unchanged":
            restore(cluster, service, service_before)
        raise
    apply_seconds = time.monotonic() - started
    previous = ((deployment_before or {}).get("metadata", {}).get("labels") or {}).get(
        "modelops.io/version"
    )
    say(f"{deployment_action} Deployment, {service_action} Service "
        f"{spec.namespace}/{spec.name} for {spec.model_uri}")  # fmt: skip
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
        return ServingOutcome(spec.namespace, spec.name, spec.version, previous,
                              deployment_action, service_action, apply_seconds,
                              rollout.seconds, smoke_seconds, predictions)  # fmt: skip

    if deployment_action == "unchanged":
        raise DeploymentFailed(
            f"Version {spec.version} of {spec.model_name} is deployed but unhealthy: {failure}. "
            f"Nothing was changed by this run."
        )
    restore(cluster, deployment, deployment_before)
    if service_action != "unchanged":
        restore(cluster, service, service_before)
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

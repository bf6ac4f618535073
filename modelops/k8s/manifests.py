"""Kubernetes manifests for serving a model version, rendered from templates (no API calls).

The templates (``deployments/serving``, ``deployments/batch``, shipped in the package as
``modelops.templates``) carry structure, probes and security context; this module sets only the
fields that depend on the model, from validated values, never by text substitution. Each
manifest carries a hash of itself as an annotation, which makes apply idempotent.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from importlib.resources import files
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from modelops.errors import ConfigurationError
from modelops.naming import is_dns_label, job_name, label_value, serving_name
from modelops.registry.versions import model_uri
from modelops.serving.traffic import ROLLOUT_TOKEN_ENV, Rollout
from modelops.settings import Settings, get_settings
from modelops.uris import redact, split_credentials

HASH_ANNOTATION = "modelops.io/spec-hash"
MODEL_ANNOTATION = "modelops.io/model-name"  # the exact registered name: whose object this is
FLOW_RUN_ANNOTATION = "modelops.io/prefect-flow-run-id"
VERSION_LABEL = "modelops.io/version"
CANDIDATE_LABEL = "modelops.io/candidate"  # a live rollout's candidate, served beside the version
ROLLOUT_LABEL = "modelops.io/rollout"  # which rollout's pods: the ones holding its token
_QUANTITY = re.compile(r"^\d+(\.\d+)?(m|k|Ki|Mi|Gi|Ti|M|G|T)?$")
_IMAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@-]{0,254}$")


def check_namespace(namespace: str) -> str:
    """Reject anything that is not a valid namespace name (no sanitising: it must exist)."""
    if not is_dns_label(namespace):
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
    server: Literal["modelops", "mlflow"] = Field(
        default="modelops",
        description="modelops serve (lineage in every answer, telemetry, ONNX fast path), or "
        "mlflow models serve for an image without this project.",
    )
    env_manager: Literal["local", "virtualenv", "uv", "conda"] = "local"
    resources: Resources = Field(default_factory=Resources)
    flow_run_id: str | None = None
    credentials_secret: str | None = Field(
        default=None,
        description="A Secret holding the tracking server's credentials (keys username, "
        "password, token); pods read them through secretKeyRef, never as literal values.",
    )
    rollout: Rollout | None = Field(
        default=None,
        description="A live rollout's candidate, served beside the version in every pod; its "
        "token reaches the pods through the Secret of rollout_secret_name, never the manifest.",
    )

    @field_validator("tracking_uri")
    @classmethod
    def _no_credentials(cls, value: str) -> str:
        if split_credentials(value)[1:] != (None, None):
            raise ValueError(
                "the tracking URI holds credentials: pass them through a Secret "
                "(credentials_secret), never in a manifest"
            )
        return value

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
        return serving_name(self.model_name)

    @property
    def model_uri(self) -> str:
        """What the server loads."""
        return model_uri(self.model_name, self.version)


def templates_root(settings: Settings | None = None) -> Path:
    """The folder holding ``serving/`` and ``batch/``: ``MODELOPS_TEMPLATES_DIR``, else the
    templates installed with the package."""
    settings = settings or get_settings()
    if settings.templates_dir is not None:
        return settings.templates_dir
    return Path(str(files("modelops.templates")))


def _template(relative: str) -> dict[str, Any]:
    import yaml

    path = templates_root() / relative
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
        VERSION_LABEL: spec.version,
        "modelops.io/run-id": label_value(spec.run_id or ""),
    }
    if spec.rollout is not None:
        labels[CANDIDATE_LABEL] = spec.rollout.candidate
        labels[ROLLOUT_LABEL] = spec.rollout.rollout_id
    return selector, {k: v for k, v in labels.items() if v}


CREDENTIAL_KEYS = {
    "username": "MLFLOW_TRACKING_USERNAME",
    "password": "MLFLOW_TRACKING_PASSWORD",
    "token": "MLFLOW_TRACKING_TOKEN",
}


def _container_env(spec: ServingSpec) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [
        {"name": "MLFLOW_TRACKING_URI", "value": spec.tracking_uri},
        {"name": "MODEL_NAME", "value": spec.model_name},
        {"name": "MODEL_VERSION", "value": spec.version},
        {"name": "MODELOPS_HOME", "value": "/var/lib/modelops"},
    ]
    if spec.credentials_secret:
        env += [
            {
                "name": variable,
                "valueFrom": {
                    "secretKeyRef": {"name": spec.credentials_secret, "key": key, "optional": True}
                },
            }
            for key, variable in CREDENTIAL_KEYS.items()
        ]
    if spec.rollout is not None:
        env += [{"name": k, "value": v} for k, v in spec.rollout.public_environment().items()]
        env.append(
            {
                "name": ROLLOUT_TOKEN_ENV,
                "valueFrom": {
                    "secretKeyRef": {"name": rollout_secret_name(spec.model_name), "key": "token"}
                },
            }
        )
    return env


def rollout_secret_name(model_name: str) -> str:
    """The Secret holding a running rollout's token (what its PUT /rollout/traffic shows)."""
    return serving_name(model_name) + "-rollout"


def render_rollout_secret(spec: ServingSpec) -> dict[str, Any]:
    """The Secret the pods of ``spec.rollout`` read their token from."""
    if spec.rollout is None:
        raise ConfigurationError("This serving spec holds no rollout: it needs no token.")
    return _secret(spec, rollout_secret_name(spec.model_name), {"token": spec.rollout.token})


def credentials_secret_name(model_name: str) -> str:
    """The Secret this project creates for a model's tracking credentials."""
    return serving_name(model_name) + "-mlflow"


def render_credentials_secret(spec: ServingSpec, credentials: dict[str, str]) -> dict[str, Any]:
    """The Secret pods read the tracking server's credentials from (never logged anywhere)."""
    return _secret(
        spec, spec.credentials_secret or credentials_secret_name(spec.model_name), credentials
    )


def _secret(spec: ServingSpec, name: str, values: dict[str, str]) -> dict[str, Any]:
    import base64

    data = {k: base64.b64encode(v.encode()).decode() for k, v in sorted(values.items())}
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "data": data,
        "metadata": {
            "name": name,
            "namespace": spec.namespace,
            "annotations": {MODEL_ANNOTATION: spec.model_name},
        },
    }
    return _stamp(secret)


def render_serving(spec: ServingSpec) -> tuple[dict[str, Any], dict[str, Any]]:
    """The Deployment and Service for ``spec``, from the templates."""
    selector, labels = _labels(spec)
    annotations = {
        MODEL_ANNOTATION: spec.model_name,
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
    listen = ["--host", "0.0.0.0", "--port", str(port), "--workers", str(spec.workers)]
    if spec.server == "modelops":
        container["command"] = ["modelops", "serve"]
        container["args"] = [spec.model_name, "--version", spec.version, *listen]
        if spec.rollout is not None:
            container["args"] += spec.rollout.serve_options()
    else:
        container["command"] = ["mlflow", "models", "serve"]
        container["args"] = [
            "--model-uri",
            spec.model_uri,
            *listen,
            "--env-manager",
            spec.env_manager,
        ]
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
    name = job_name(spec.model_name, job_suffix)
    job["metadata"].update(name=name, namespace=spec.namespace)
    job["metadata"]["labels"] = {**job["metadata"].get("labels", {}), **labels}
    job["metadata"]["annotations"] = {
        MODEL_ANNOTATION: spec.model_name,
        "modelops.io/model-uri": spec.model_uri,
    }
    pod = job["spec"]["template"]
    pod["metadata"]["labels"] = {**pod["metadata"].get("labels", {}), **labels}
    container = pod["spec"]["containers"][0]
    container["image"] = spec.image
    container["args"] = [
        "--model-uri",
        spec.model_uri,
        "--input-path",
        input_uri,
        "--output-path",
        output_uri,
        "--content-type",
        "csv",
        "--env-manager",
        spec.env_manager,
    ]
    container["env"] = _container_env(spec)
    container["resources"] = spec.resources.manifest()
    return job


def serving_spec(
    model_name: str,
    version: str,
    run_id: str | None,
    *,
    namespace: str | None = None,
    image: str | None = None,
    tracking_uri: str | None = None,
    flow_run_id: str | None = None,
    settings: Settings | None = None,
    **options: Any,
) -> ServingSpec:
    """What to run on the cluster, with the defaults filled in: namespace from
    ML_MODEL_DEPLOY_NAMESPACE, image from ML_MODEL_DEPLOY_IMAGE (else the MLflow image matching
    the installed MLflow), and a tracking URI the pods can reach (a local file will not do).

    Raises:
        ConfigurationError: the tracking store is not a server the cluster could reach.
    """
    settings = settings or get_settings()
    uri = tracking_uri or settings.resolved_tracking_uri
    if not uri.startswith(("http://", "https://", "databricks")):
        raise ConfigurationError(
            f"Pods cannot read the MLflow store {redact(uri)!r} on this machine: set "
            f"MLFLOW_TRACKING_URI to a tracking server the cluster can reach, or pass "
            f"cluster_tracking_uri_override."
        )
    clean, _, _ = split_credentials(uri)
    if tracking_credentials(uri) and not options.get("credentials_secret"):
        options["credentials_secret"] = credentials_secret_name(model_name)
    return ServingSpec(
        model_name=model_name,
        version=version,
        run_id=run_id,
        namespace=namespace or settings.deploy_namespace,
        image=image or settings.deploy_image or default_image(options.get("server", "modelops")),
        tracking_uri=clean,
        flow_run_id=flow_run_id,
        **options,
    )


def default_image(server: str) -> str:
    """The image a server runs in when none is named: this project's (built from the repo's
    Dockerfile, ``docker build -t modelops-flows:<version> .``), or MLflow's own."""
    from importlib.metadata import version as installed

    if server == "mlflow":
        return f"ghcr.io/mlflow/mlflow:v{installed('mlflow')}"
    return f"modelops-flows:{installed('modelops-flows')}"


def tracking_credentials(uri: str) -> dict[str, str]:
    """The tracking server credentials pods need: from the URI's user-info, else from
    MLFLOW_TRACKING_USERNAME / _PASSWORD / _TOKEN in this process's environment."""
    import os

    _, user, password = split_credentials(uri)
    found = {
        "username": user or os.environ.get("MLFLOW_TRACKING_USERNAME"),
        "password": password or os.environ.get("MLFLOW_TRACKING_PASSWORD"),
        "token": os.environ.get("MLFLOW_TRACKING_TOKEN"),
    }
    return {k: v for k, v in found.items() if v}


def removable_objects(model_name: str, namespace: str) -> list[dict[str, Any]]:
    """The objects that serve ``model_name`` in ``namespace``, named as :func:`render_serving`
    names them: enough to find and delete them (teardown)."""
    return [
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": _owned(model_name, namespace)},
        {"apiVersion": "v1", "kind": "Service", "metadata": _owned(model_name, namespace)},
        rollout_secret_ref(model_name, namespace),
    ]


def rollout_secret_ref(model_name: str, namespace: str) -> dict[str, Any]:
    """The rollout's token Secret, named: enough to delete it when the rollout ends."""
    metadata = {**_owned(model_name, namespace), "name": rollout_secret_name(model_name)}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": metadata}


def _owned(model_name: str, namespace: str) -> dict[str, Any]:
    return {
        "name": serving_name(model_name),
        "namespace": check_namespace(namespace),
        "annotations": {MODEL_ANNOTATION: model_name},
    }

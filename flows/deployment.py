"""The `deployment` flow: serve a registered version on Kubernetes (or locally), verified."""

from __future__ import annotations

from typing import Annotated, Literal

from prefect import flow
from pydantic import Field

from modelops.k8s.manifests import Resources, serving_spec
from modelops.params import ModelName
from modelops.types import DeploymentRecord
from tasks.serving import (
    deploy_locally,
    deploy_to_kubernetes,
    record_deployment,
    resolve_serving_version,
)
from tasks.tracking import flow_run


@flow(name="deployment", log_prints=True)
def deployment(
    model_name: ModelName = "lead-scoring",
    version: str = "production",
    target: Literal["local", "kubernetes"] = "local",
    namespace: str | None = None,
    image: str | None = None,
    replicas: Annotated[int, Field(ge=1, le=100)] = 1,
    resources: Resources = Resources(),  # never mutated
    workers: Annotated[int, Field(ge=1, le=64)] = 2,
    server: Literal["modelops", "mlflow"] = "modelops",
    env_manager: Literal["local", "virtualenv", "uv", "conda"] = "local",
    timeout_seconds: Annotated[float, Field(gt=0)] = 600,
    poll_seconds: Annotated[float, Field(gt=0)] = 2.0,
    cluster_tracking_uri_override: str | None = None,
    credentials_block: str | None = None,
) -> DeploymentRecord:
    """Serve a model version behind HTTP, wait until it is healthy and smoke-test it.

    On Kubernetes a failed rollout or smoke test restores the previous Deployment spec (the
    previous version keeps serving) and fails the run; locally the old server keeps running.

    Args:
        model_name: the registered model.
        version: a version number or alias (default: production).
        target: "local" (a server on 127.0.0.1) or "kubernetes".
        server: "modelops" (modelops serve: lineage in every answer, telemetry, a verified
            ONNX fast path) or "mlflow" (mlflow models serve, for images without this project).
        namespace: Kubernetes namespace (default: ML_MODEL_DEPLOY_NAMESPACE).
        image: serving image (default: ML_MODEL_DEPLOY_IMAGE, else modelops-flows:<version>
            built from the Dockerfile, or MLflow's image for server "mlflow").
        replicas: pod count.
        resources: CPU/memory requests and limits.
        workers: scoring server workers per pod/process.
        env_manager: (server "mlflow") how it gets the model's Python packages.
        timeout_seconds: how long the rollout may take.
        poll_seconds: how often to check the rollout.
        cluster_tracking_uri_override: MLflow URI for pods, if it differs from ours.
        credentials_block: prefect-kubernetes KubernetesCredentials block (after in-cluster
            and kubeconfig discovery).
    """
    params = {
        "model_name": model_name,
        "version": version,
        "target": target,
        "replicas": replicas,
        "workers": workers,
    }
    with flow_run("deployment", model_name, params, lock="deployment") as ctx:
        resolved = resolve_serving_version(ctx, model_name, version)
        if target == "local":
            record = deploy_locally(ctx, resolved, workers, timeout_seconds, server)
        else:
            spec = serving_spec(
                resolved.name,
                resolved.version,
                resolved.run_id,
                namespace=namespace,
                image=image,
                tracking_uri=cluster_tracking_uri_override,
                flow_run_id=ctx.flow_run_id,
                replicas=replicas,
                workers=workers,
                env_manager=env_manager,
                resources=resources,
                server=server,
            )
            record = deploy_to_kubernetes(
                ctx,
                resolved,
                spec,
                timeout_seconds,
                poll_seconds,
                credentials_block,
                cluster_tracking_uri_override,
            )
        return record_deployment(ctx, resolved, record)


if __name__ == "__main__":
    import sys

    from modelops.cli import run

    run(["deploy", *sys.argv[1:]])

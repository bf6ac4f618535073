"""Serving tasks: resolve the version, roll it out (Kubernetes or local), record where it runs,
score files, and take a model's server down."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task

from modelops.k8s import manifests
from modelops.orchestration.cluster import connect
from modelops.steps import serving as steps
from modelops.tracking import TrackingContext
from modelops.types import DeploymentRecord, ServingTarget
from tasks.common import IO_TASK, artifact_key, markdown_artifact

resolve_serving_version = task(name="resolve_serving_version", **IO_TASK)(
    steps.resolve_serving_version
)
score_file_locally = task(name="score_file_locally", **IO_TASK)(steps.score_file_locally)


@task(name="deploy_to_kubernetes", **IO_TASK)
def deploy_to_kubernetes(
    ctx: TrackingContext,
    target: ServingTarget,
    spec: manifests.ServingSpec,
    timeout_seconds: float,
    poll_seconds: float = 2.0,
    credentials_block: str | None = None,
    pods_tracking_uri: str | None = None,
) -> DeploymentRecord:
    """Apply the Deployment and Service, wait for the rollout, smoke-test; restore on failure."""
    cluster = connect(credentials_block)
    return steps.deploy_to_kubernetes(
        ctx,
        target,
        spec,
        cluster,
        timeout_seconds,
        poll_seconds,
        log=get_run_logger().info,
        pods_tracking_uri=pods_tracking_uri,
    )


@task(name="deploy_locally", **IO_TASK)
def deploy_locally(
    ctx: TrackingContext,
    target: ServingTarget,
    workers: int,
    timeout_seconds: float,
    server: str = "modelops",
) -> DeploymentRecord:
    """Serve the version on 127.0.0.1 (blue/green: the old local server stops only after the
    new one answers the smoke test)."""
    record = steps.deploy_locally(ctx, target, workers, timeout_seconds, server)
    get_run_logger().info(
        "Serving %s v%s at %s/invocations (stop: modelops stop %s)",
        target.name,
        target.version,
        record.url,
        target.name,
    )
    return record


@task(name="record_deployment", **IO_TASK)
def record_deployment(
    ctx: TrackingContext, target: ServingTarget, record: DeploymentRecord
) -> DeploymentRecord:
    """Write the deployment record to MLflow and tag the version with where it is served."""
    record = steps.record_deployment(ctx, target, record)
    markdown_artifact(
        f"**{target.name} v{target.version} is serving** ({record.target})\n\n"
        + "\n".join(f"- {k}: `{v}`" for k, v in record.model_dump().items() if v is not None),
        key=artifact_key(target.name, "deployment"),
        description=f"{target.name} deployment",
    )
    return record


@task(name="run_scoring_job", **IO_TASK)
def run_scoring_job(
    ctx: TrackingContext,
    spec: manifests.ServingSpec,
    input_uri: str,
    output_uri: str,
    job_suffix: str,
    timeout_seconds: float,
    poll_seconds: float = 2.0,
    credentials_block: str | None = None,
) -> dict[str, Any]:
    """Create the scoring Job, wait for it to finish, and report how it ended."""
    cluster = connect(credentials_block)
    return steps.run_scoring_job(
        ctx, spec, cluster, input_uri, output_uri, job_suffix, timeout_seconds, poll_seconds
    )


@task(name="remove_serving", **IO_TASK)
def remove_serving(model_name: str, target: str, namespace: str) -> dict[str, Any]:
    """Delete what serves the model; deleting what is already gone is not an error."""
    removed = steps.remove_serving(model_name, target, namespace, connect)
    get_run_logger().info("Removed from %s: %s", target, removed)
    return removed

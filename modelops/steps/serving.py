"""The serving steps: resolve the version, roll it out (Kubernetes or local), record where it
runs, batch-score files."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelops import tracking
from modelops.k8s import cluster as k8s_cluster
from modelops.k8s import manifests, rollout
from modelops.naming import serving_name
from modelops.registry.versions import resolve_version
from modelops.serving import local, scoring
from modelops.settings import get_settings
from modelops.types import DeploymentRecord, ServingTarget

if TYPE_CHECKING:
    from mlflow import MlflowClient


def resolve_serving_version(
    ctx: tracking.TrackingContext, model_name: str, version: str
) -> ServingTarget:
    """Resolve an alias or number to a version, with its input example as the smoke request
    (logged on the run as the version it resolved to)."""
    target = serving_target(ctx.client(), model_name, version)
    tracking.log_params(
        ctx,
        ctx.parent_run_id,
        {"resolved_version": target.version, "model_run_id": target.run_id or ""},
    )
    return target


def serving_target(client: MlflowClient, model_name: str, version: str) -> ServingTarget:
    """A version (number or alias) and the smoke request built from its input example."""
    mv = resolve_version(client, model_name, version)
    payload, rows, flavors = scoring.example_and_flavors(client, model_name, str(mv.version))
    return ServingTarget(
        name=model_name,
        version=str(mv.version),
        run_id=mv.run_id,
        payload=payload,
        rows=rows,
        flavors=flavors,
    )


def deploy_to_kubernetes(
    ctx: tracking.TrackingContext,
    target: ServingTarget,
    spec: manifests.ServingSpec,
    cluster: k8s_cluster.Cluster,
    timeout_seconds: float,
    poll_seconds: float = 2.0,
    log: Any = None,
    pods_tracking_uri: str | None = None,
) -> DeploymentRecord:
    """Apply the Deployment and Service, wait for the rollout, smoke-test; restore on failure.

    When the tracking server needs credentials (user-info in the pods' tracking URI, which is
    ``pods_tracking_uri`` or this run's, or MLFLOW_TRACKING_USERNAME/_PASSWORD/_TOKEN), they
    go into a Secret the pods read through secretKeyRef; no manifest or log ever holds them.

    Raises:
        DeploymentFailed: the rollout or smoke test failed (the previous spec was restored).
        PermissionDenied: the cluster refused an operation (401/403).
    """
    deployment, service = manifests.render_serving(spec)
    for manifest in (deployment, service):  # what is logged refers to the Secret, never holds it
        tracking.log_json(
            ctx, ctx.parent_run_id, manifest, f"manifests/{manifest['kind'].lower()}.json"
        )
    credentials = manifests.tracking_credentials(pods_tracking_uri or ctx.tracking_uri)
    secret = None
    if (
        spec.credentials_secret == manifests.credentials_secret_name(spec.model_name)
        and credentials
    ):
        secret = manifests.render_credentials_secret(spec, credentials)
    outcome = rollout.deploy_serving(
        cluster,
        spec,
        target.payload,
        target.rows,
        timeout_seconds,
        poll_seconds,
        log=log,
        secret=secret,
    )
    tracking.log_metrics(
        ctx,
        ctx.parent_run_id,
        {
            "apply_seconds": outcome.apply_seconds,
            "rollout_seconds": outcome.rollout_seconds,
            "smoke_seconds": outcome.smoke_seconds,
        },
    )
    return DeploymentRecord(
        target="kubernetes",
        version=outcome.version,
        previous_version=outcome.previous_version,
        url=f"http://{outcome.name}.{outcome.namespace}.svc.cluster.local/invocations",
        namespace=outcome.namespace,
        deployment=outcome.name,
        service=outcome.name,
        image=spec.image,
        action=outcome.deployment_action,
        cluster=cluster.source,
    )


def deploy_locally(
    ctx: tracking.TrackingContext,
    target: ServingTarget,
    workers: int,
    timeout_seconds: float,
    server: str = "modelops",
) -> DeploymentRecord:
    """Serve the version on 127.0.0.1, blue/green; when that version already serves and
    answers its smoke test, leave the server as it is (a re-run changes nothing).

    Raises:
        DeploymentFailed: the new server failed; the old one (if any) keeps serving.
    """
    settings = get_settings()
    kept = already_serving(settings.home_dir, target)
    if kept is not None:
        tracking.set_tags(ctx, ctx.parent_run_id, {"modelops.deployment": "unchanged"})
        return kept
    record, timings = local.serve_locally(
        settings.home_dir, settings.resolved_tracking_uri, target, workers, timeout_seconds, server
    )
    tracking.log_metrics(ctx, ctx.parent_run_id, timings)
    return record


def already_serving(home: Path, target: ServingTarget) -> DeploymentRecord | None:
    """The local server of the model, when it runs ``target``'s version and answers the smoke
    request; None when it must be (re)started."""
    from modelops.errors import DeploymentFailed

    server = local.running_server(home, target.name)
    if server is None or server.version != target.version or server.candidate is not None:
        return None  # not that version, or a rollout's server (the candidate beside it)
    try:
        scoring.score_http(server.url, target.payload, target.rows)
    except DeploymentFailed:
        return None  # running but not answering: start a healthy one (blue/green)
    return DeploymentRecord(
        target="local",
        version=server.version,
        url=server.url,
        previous_version=server.version,
        pid=server.pid,
        log=server.log,
        stop=f"modelops stop {target.name}",
        action="unchanged",
    )


def record_deployment(
    ctx: tracking.TrackingContext, target: ServingTarget, record: DeploymentRecord
) -> DeploymentRecord:
    """Write the deployment record to MLflow and tag the version with where it is served."""
    record = record.model_copy(
        update={
            "time": datetime.now(UTC).isoformat(),
            "flow_run_id": ctx.flow_run_id,
            "mlflow_run_id": ctx.parent_run_id,
            "example": scoring.first_row(target.payload),
        }
    )
    data = record.model_dump(mode="json")
    tracking.log_json(ctx, ctx.parent_run_id, data, "deployment.json")
    tracking.log_params(
        ctx,
        ctx.parent_run_id,
        {
            f"deployment.{k}": v
            for k, v in data.items()
            if k in ("target", "namespace", "deployment", "image", "url")
        },
    )
    where = (
        f"kubernetes.{data['namespace']}.{data['deployment']}"
        if record.target == "kubernetes"
        else "local"
    )
    ctx.client().set_model_version_tag(
        target.name, target.version, f"modelops.deployed.{where}", json.dumps(data, default=str)
    )
    return record


def run_scoring_job(
    ctx: tracking.TrackingContext,
    spec: manifests.ServingSpec,
    cluster: k8s_cluster.Cluster,
    input_uri: str,
    output_uri: str,
    job_suffix: str,
    timeout_seconds: float,
    poll_seconds: float = 2.0,
) -> dict[str, Any]:
    """Create the scoring Job, wait for it to finish, and report how it ended.

    Raises:
        DeploymentFailed: the Job did not succeed (the message says how to read its logs).
    """
    from modelops.errors import DeploymentFailed

    job = manifests.render_batch_job(spec, input_uri, output_uri, job_suffix)
    tracking.log_json(ctx, ctx.parent_run_id, job, "manifests/job.json")
    action, _ = k8s_cluster.apply(cluster, job)
    outcome = rollout.job_outcome(cluster, job, timeout_seconds, poll_seconds)
    tracking.log_metrics(ctx, ctx.parent_run_id, {"job_seconds": outcome.seconds})
    name = job["metadata"]["name"]
    record = {
        "target": "kubernetes",
        "namespace": spec.namespace,
        "job": name,
        "action": action,
        "succeeded": outcome.ready,
        "input": input_uri,
        "output": output_uri,
        "version": spec.version,
        "cluster": cluster.source,
    }
    tracking.log_json(ctx, ctx.parent_run_id, record, "batch_scoring.json")
    if not outcome.ready:
        raise DeploymentFailed(
            f"Batch scoring Job {spec.namespace}/{name} did not succeed: {outcome.reason}. Its "
            f"pods' logs say why: kubectl -n {spec.namespace} logs job/{name}"
        )
    return record


def score_file_locally(
    ctx: tracking.TrackingContext, target: ServingTarget, input_uri: str, output_uri: str
) -> dict[str, Any]:
    """Score a CSV/Parquet file in this process; every output row names its version and run."""
    result = scoring.score_file(ctx.client(), target, input_uri, output_uri)
    seconds = result["seconds"]
    tracking.log_metrics(
        ctx,
        ctx.parent_run_id,
        {
            "rows": result["rows"],
            "latency_ms_total": seconds * 1000,
            "latency_ms_per_row": seconds * 1000 / max(result["rows"], 1),
        },
    )
    return result


def remove_serving(
    model_name: str, target: str, namespace: str, connect: Callable[[], k8s_cluster.Cluster]
) -> dict[str, Any]:
    """Delete what serves the model (the local server, or its Deployment and Service through
    ``connect``'s cluster); what is already gone is not an error."""
    if target == "local":
        stopped = local.stop_local(get_settings().home_dir, model_name)
        return {"target": "local", "stopped": stopped.url if stopped else None}
    cluster = connect()
    removed = manifests.removable_objects(model_name, namespace)
    gone = [m["kind"] for m in removed if k8s_cluster.delete(cluster, m)]
    name = serving_name(model_name)
    return {"target": "kubernetes", "namespace": namespace, "name": name, "removed": gone}

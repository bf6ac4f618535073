"""Serving tasks: resolve the version, roll it out (Kubernetes or local), record where it runs."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from importlib.metadata import version as installed
from typing import Any

from prefect import get_run_logger, task
from pydantic import BaseModel

from modelops import k8s, promotion, serving, tracking
from modelops.errors import ConfigurationError, DeploymentFailed
from modelops.settings import get_settings
from tasks.common import IO_TASK, artifact_key, flow_run_info, markdown_artifact


class ServingTarget(BaseModel):
    """A resolved model version and the request that smoke-tests it."""

    name: str
    version: str
    run_id: str | None
    payload: dict[str, Any]
    rows: int
    flavors: list[str] = []


@task(name="resolve_serving_version", **IO_TASK)
def resolve_serving_version(
    ctx: tracking.TrackingContext, model_name: str, version: str
) -> ServingTarget:
    """Resolve an alias or number to a version, with its input example as the smoke request."""
    client = ctx.client()
    mv = promotion.resolve_version(client, model_name, version)
    payload, rows, flavors = serving.example_and_flavors(client, model_name, str(mv.version))
    tracking.log_params(
        ctx, ctx.parent_run_id,
        {"resolved_version": str(mv.version), "model_run_id": mv.run_id or ""},
    )  # fmt: skip
    return ServingTarget(name=model_name, version=str(mv.version), run_id=mv.run_id,
                         payload=payload, rows=rows, flavors=flavors)  # fmt: skip


def cluster_spec(
    target: ServingTarget,
    namespace: str | None,
    image: str | None,
    tracking_uri: str | None,
    **options: Any,
) -> k8s.ServingSpec:
    """What to run on the cluster, with the defaults filled in: namespace from
    ML_MODEL_DEPLOY_NAMESPACE, image from ML_MODEL_DEPLOY_IMAGE (else the MLflow image matching
    the installed MLflow), and a tracking URI the pods can reach (a local file will not do).

    Raises:
        ConfigurationError: the tracking store is not a server the cluster could reach.
    """
    settings = get_settings()
    uri = tracking_uri or settings.resolved_tracking_uri
    if not uri.startswith(("http://", "https://", "databricks")):
        raise ConfigurationError(
            f"Pods cannot read the MLflow store {uri!r} on this machine: set MLFLOW_TRACKING_URI "
            f"to a tracking server the cluster can reach, or pass cluster_tracking_uri_override."
        )
    return k8s.ServingSpec(
        model_name=target.name, version=target.version, run_id=target.run_id,
        namespace=namespace or settings.deploy_namespace,
        image=image or settings.deploy_image or f"ghcr.io/mlflow/mlflow:v{installed('mlflow')}",
        tracking_uri=uri, flow_run_id=flow_run_info()["prefect.flow_run_id"] or None, **options,
    )  # fmt: skip


def _connect(credentials_block: str | None) -> k8s.Cluster:
    kubeconfig = None
    if credentials_block:
        from prefect_kubernetes.credentials import KubernetesCredentials

        creds = KubernetesCredentials.load(credentials_block)
        if creds.cluster_config is not None:
            kubeconfig = creds.cluster_config.config
    cluster = k8s.connect(kubeconfig=kubeconfig)
    get_run_logger().info("Kubernetes access: %s", cluster.source)
    return cluster


@task(name="deploy_to_kubernetes", **IO_TASK)
def deploy_to_kubernetes(
    ctx: tracking.TrackingContext,
    target: ServingTarget,
    spec: k8s.ServingSpec,
    timeout_seconds: float,
    poll_seconds: float = 2.0,
    credentials_block: str | None = None,
) -> dict[str, Any]:
    """Apply the Deployment and Service, wait for the rollout, smoke-test; restore on failure."""
    cluster = _connect(credentials_block)
    deployment, service = k8s.render_serving(spec)
    for manifest in (deployment, service):
        tracking.log_json(ctx, ctx.parent_run_id, manifest,
                          f"manifests/{manifest['kind'].lower()}.json")  # fmt: skip
    logger = get_run_logger()
    outcome = k8s.deploy_serving(
        cluster, spec, target.payload, target.rows, timeout_seconds, poll_seconds,
        log=logger.info,
    )  # fmt: skip
    tracking.log_metrics(ctx, ctx.parent_run_id, {
        "apply_seconds": outcome.apply_seconds, "rollout_seconds": outcome.rollout_seconds,
        "smoke_seconds": outcome.smoke_seconds,
    })  # fmt: skip
    return {
        "target": "kubernetes", "namespace": outcome.namespace, "deployment": outcome.name,
        "service": outcome.name, "image": spec.image, "version": outcome.version,
        "previous_version": outcome.previous_version, "action": outcome.deployment_action,
        "cluster": cluster.source,
        "url": f"http://{outcome.name}.{outcome.namespace}.svc.cluster.local/invocations",
    }  # fmt: skip


@task(name="deploy_locally", **IO_TASK)
def deploy_locally(
    ctx: tracking.TrackingContext, target: ServingTarget, workers: int, timeout_seconds: float
) -> dict[str, Any]:
    """Serve the version on 127.0.0.1 (blue/green: the old local server stops only after the
    new one answers the smoke test)."""
    settings = get_settings()
    home = settings.home.resolve()
    old = serving.running_server(home, target.name)
    started = time.monotonic()
    new = serving.start_local_server(home, settings.resolved_tracking_uri, target.name,
                                     target.version, workers=workers, timeout=timeout_seconds)  # fmt: skip
    rollout_seconds = time.monotonic() - started
    try:
        smoke_started = time.monotonic()
        serving.score_http(new.url, target.payload, target.rows)
        smoke_seconds = time.monotonic() - smoke_started
    except DeploymentFailed as exc:
        serving.stop_server(new)
        kept = f"version {old.version} keeps serving at {old.url}" if old else "nothing was serving"
        raise DeploymentFailed(f"{exc} The new server was stopped; {kept}.") from exc
    if old is not None and old.pid != new.pid:
        serving.stop_server(old)
    serving.record_server(home, new)
    tracking.log_metrics(ctx, ctx.parent_run_id,
                         {"rollout_seconds": rollout_seconds, "smoke_seconds": smoke_seconds})  # fmt: skip
    get_run_logger().info(
        "Serving %s v%s at %s/invocations (stop: python -m modelops stop %s)",
        target.name,
        target.version,
        new.url,
        target.name,
    )
    return {
        "target": "local", "url": new.url, "pid": new.pid, "version": new.version,
        "previous_version": old.version if old else None, "log": new.log,
        "stop": f"python -m modelops stop {target.name}",
    }  # fmt: skip


@task(name="record_deployment", **IO_TASK)
def record_deployment(
    ctx: tracking.TrackingContext, target: ServingTarget, record: dict[str, Any]
) -> dict[str, Any]:
    """Write the deployment record to MLflow and tag the version with where it is served."""
    record = {**record, "time": datetime.now(UTC).isoformat(),
              "flow_run_id": flow_run_info()["prefect.flow_run_id"] or None,
              "mlflow_run_id": ctx.parent_run_id}  # fmt: skip
    tracking.log_json(ctx, ctx.parent_run_id, record, "deployment.json")
    tracking.log_params(ctx, ctx.parent_run_id, {f"deployment.{k}": v for k, v in record.items()
                                                  if k in ("target", "namespace", "deployment",
                                                           "image", "url")})  # fmt: skip
    where = (f"kubernetes.{record['namespace']}.{record['deployment']}"
             if record["target"] == "kubernetes" else "local")  # fmt: skip
    ctx.client().set_model_version_tag(
        target.name, target.version, f"modelops.deployed.{where}", json.dumps(record, default=str)
    )
    markdown_artifact(
        f"**{target.name} v{target.version} is serving** ({record['target']})\n\n"
        + "\n".join(f"- {k}: `{v}`" for k, v in record.items() if v is not None),
        key=artifact_key(target.name, "deployment"),
        description=f"{target.name} deployment",
    )
    return record


@task(name="run_scoring_job", **IO_TASK)
def run_scoring_job(
    ctx: tracking.TrackingContext,
    spec: k8s.ServingSpec,
    input_uri: str,
    output_uri: str,
    job_suffix: str,
    timeout_seconds: float,
    poll_seconds: float = 2.0,
    credentials_block: str | None = None,
) -> dict[str, Any]:
    """Create the scoring Job, wait for it to finish, and report how it ended."""
    cluster = _connect(credentials_block)
    job = k8s.render_batch_job(spec, input_uri, output_uri, job_suffix)
    tracking.log_json(ctx, ctx.parent_run_id, job, "manifests/job.json")
    action, _ = k8s.apply(cluster, job)
    outcome = k8s.job_outcome(cluster, job, timeout_seconds, poll_seconds)
    tracking.log_metrics(ctx, ctx.parent_run_id, {"job_seconds": outcome.seconds})
    record = {"target": "kubernetes", "namespace": spec.namespace, "job": job["metadata"]["name"],
              "action": action, "succeeded": outcome.ready, "input": input_uri,
              "output": output_uri, "version": spec.version, "cluster": cluster.source}  # fmt: skip
    tracking.log_json(ctx, ctx.parent_run_id, record, "batch_scoring.json")
    if not outcome.ready:
        raise DeploymentFailed(
            f"Batch scoring Job {spec.namespace}/{job['metadata']['name']} did not succeed: "
            f"{outcome.reason}. Its pods' logs say why: kubectl -n {spec.namespace} logs "
            f"job/{job['metadata']['name']}"
        )
    return record


@task(name="score_file_locally", **IO_TASK)
def score_file_locally(
    ctx: tracking.TrackingContext, target: ServingTarget, input_uri: str, output_uri: str
) -> dict[str, Any]:
    """Score a CSV/Parquet file in this process; every output row names its model version and
    MLflow run, so a prediction can be traced back to how it was made."""
    import mlflow.pyfunc

    from modelops.data import load_table, write_table
    from modelops.tracking import use_tracking_uri

    frame = load_table(input_uri)
    started = time.monotonic()
    with use_tracking_uri(ctx.tracking_uri):
        model = mlflow.pyfunc.load_model(f"models:/{target.name}/{target.version}")
    inputs = model.metadata.get_input_schema()
    columns = inputs.input_names() if inputs is not None else list(frame.columns)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ConfigurationError(f"{input_uri!r} lacks the model's input column(s) {missing}")
    features = frame[columns]
    numeric = [c for c in columns if features[c].dtype.kind in "iub"]
    if numeric:
        features = features.astype(dict.fromkeys(numeric, "float64"))
    out = frame.copy()
    out["prediction"] = list(model.predict(features))
    out["model_version"] = target.version
    out["mlflow_run_id"] = target.run_id
    seconds = time.monotonic() - started
    write_table(out, output_uri)
    tracking.log_metrics(ctx, ctx.parent_run_id, {
        "rows": len(out), "latency_ms_total": seconds * 1000,
        "latency_ms_per_row": seconds * 1000 / max(len(out), 1),
    })  # fmt: skip
    return {"target": "local", "rows": len(out), "output": output_uri, "version": target.version,
            "seconds": round(seconds, 3)}  # fmt: skip

"""The `batch-scoring` flow: score a data file with a model version (Kubernetes Job or here)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from prefect import flow
from pydantic import Field

from modelops.k8s.manifests import Resources, serving_spec
from modelops.params import ModelName
from tasks.serving import resolve_serving_version, run_scoring_job, score_file_locally
from tasks.tracking import flow_run


@flow(name="batch-scoring", log_prints=True)
def batch_scoring(
    input_uri: str,
    output_uri: str,
    model_name: ModelName = "lead-scoring",
    version: str = "production",
    target: Literal["local", "kubernetes"] = "local",
    namespace: str | None = None,
    image: str | None = None,
    resources: Resources = Resources(),  # never mutated
    timeout_seconds: Annotated[float, Field(gt=0)] = 3600,
    poll_seconds: Annotated[float, Field(gt=0)] = 5.0,
    job_suffix: str | None = None,
    cluster_tracking_uri_override: str | None = None,
    credentials_block: str | None = None,
    text_column: str = "text",
    batch_size: Annotated[int, Field(ge=1)] = 64,
    decision_threshold: Annotated[float, Field(gt=0, le=1)] = 0.5,
) -> dict[str, Any]:
    """Score ``input_uri`` into ``output_uri`` with a registered model version.

    Args:
        input_uri: CSV/Parquet to score (for Kubernetes: a URI the pod can read, e.g. s3://).
        output_uri: where predictions go (same rule).
        model_name: the registered model.
        version: a version number or alias (default: production).
        target: "local" (this process) or "kubernetes" (a Job).
        namespace: Kubernetes namespace (default: ML_MODEL_DEPLOY_NAMESPACE).
        image: scoring image (default: ML_MODEL_DEPLOY_IMAGE, else the MLflow image).
        resources: CPU/memory for the Job's pod.
        timeout_seconds: how long the Job may take.
        poll_seconds: how often to check the Job.
        job_suffix: Job name suffix (default: from the flow run id).
        cluster_tracking_uri_override: MLflow URI for pods, if it differs from ours.
        credentials_block: prefect-kubernetes KubernetesCredentials block.
        text_column: (text models) the column holding the texts.
        batch_size: (text models) texts per batch; telemetry is logged per batch.
        decision_threshold: (text models) score a label needs to count as dominant.
    """
    params = {
        "model_name": model_name,
        "version": version,
        "target": target,
        "input_uri": input_uri,
        "output_uri": output_uri,
    }
    with flow_run("batch-scoring", model_name, params) as ctx:
        resolved = resolve_serving_version(ctx, model_name, version)
        if target == "local" and "transformers" in resolved.flavors:
            from tasks.text import score_texts_locally

            return score_texts_locally(
                ctx, resolved, input_uri, output_uri, text_column, batch_size, decision_threshold
            )
        if target == "local":
            return score_file_locally(ctx, resolved, input_uri, output_uri)
        spec = serving_spec(
            resolved.name,
            resolved.version,
            resolved.run_id,
            namespace=namespace,
            image=image,
            tracking_uri=cluster_tracking_uri_override,
            flow_run_id=ctx.flow_run_id,
            resources=resources,
        )
        suffix = job_suffix or (ctx.flow_run_id or "manual")[:8]
        return run_scoring_job(
            ctx,
            spec,
            input_uri,
            output_uri,
            suffix,
            timeout_seconds,
            poll_seconds,
            credentials_block,
        )


if __name__ == "__main__":
    import sys

    from modelops.cli import run

    run(["score", *sys.argv[1:]])

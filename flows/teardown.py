"""The `teardown` flow: stop serving a model (delete its Deployment and Service, or the local
server)."""

from __future__ import annotations

from typing import Any, Literal

from prefect import flow, get_run_logger, task

from modelops import k8s, serving
from modelops.settings import get_settings
from tasks.common import IO_TASK, model_lock


@task(name="remove_serving", **IO_TASK)
def remove_serving(model_name: str, target: str, namespace: str) -> dict[str, Any]:
    """Delete what serves the model; deleting what is already gone is not an error."""
    if target == "local":
        stopped = serving.stop_local(get_settings().home.resolve(), model_name)
        return {"target": "local", "stopped": stopped.url if stopped else None}
    cluster = k8s.connect()
    spec = k8s.ServingSpec(model_name=model_name, version="0", namespace=namespace,
                           image="unused", tracking_uri="unused")  # fmt: skip
    deployment, service = k8s.render_serving(spec)
    removed = [m["kind"] for m in (deployment, service) if k8s.delete(cluster, m)]
    get_run_logger().info("Removed %s from %s/%s", removed or "nothing", namespace, spec.name)
    return {"target": "kubernetes", "namespace": namespace, "name": spec.name, "removed": removed}


@flow(name="teardown", log_prints=True)
def teardown(
    model_name: str = "lead-scoring",
    target: Literal["local", "kubernetes"] = "local",
    namespace: str | None = None,
) -> dict[str, Any]:
    """Stop serving a model."""
    with model_lock("deployment", model_name):
        return remove_serving(model_name, target, namespace or get_settings().deploy_namespace)

"""The `teardown` flow: stop serving a model (delete its Deployment and Service, or the local
server)."""

from __future__ import annotations

from typing import Any, Literal

from prefect import flow

from modelops.params import ModelName
from modelops.settings import get_settings
from tasks.common import model_lock
from tasks.serving import remove_serving


@flow(name="teardown", log_prints=True)
def teardown(
    model_name: ModelName = "lead-scoring",
    target: Literal["local", "kubernetes"] = "local",
    namespace: str | None = None,
) -> dict[str, Any]:
    """Stop serving a model.

    Args:
        model_name: the registered model whose server goes away.
        target: "local" (the server on this machine) or "kubernetes" (Deployment and Service).
        namespace: Kubernetes namespace (default: ML_MODEL_DEPLOY_NAMESPACE).
    """
    with model_lock("deployment", model_name):
        return remove_serving(model_name, target, namespace or get_settings().deploy_namespace)

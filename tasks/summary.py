"""The run summary people read at a glance in the Prefect UI."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.runtime import flow_run

from modelops.settings import get_settings
from modelops.steps import summary as steps
from modelops.types import DeploymentRecord, LifecycleResult, PromotionResult, TrainingResult
from tasks.common import IO_TASK, artifact_key, markdown_artifact


@task(name="publish_lifecycle_summary", **IO_TASK)
def publish_lifecycle_summary(
    trained: TrainingResult,
    promoted: PromotionResult | None,
    served: DeploymentRecord | None,
    promote_to: str,
    deploy: Any,
) -> LifecycleResult:
    """One markdown artifact: data, validation, gate, version and aliases, deployment, links."""
    result, markdown = steps.summarize_lifecycle(
        trained,
        promoted,
        served,
        promote_to,
        deploy,
        str(flow_run.name),
        get_settings().ui_base_url,
    )
    markdown_artifact(
        markdown,
        key=artifact_key(trained.model_name, "lifecycle-summary"),
        description=f"{trained.model_name} lifecycle summary",
    )
    return result

"""The lifecycle's last step: its typed result and the summary page people read.

The rendering is :mod:`modelops.summary`'s (the command line prints from it too).
"""

from __future__ import annotations

from typing import Any

from modelops.summary import lifecycle_markdown, lifecycle_result
from modelops.types import DeploymentRecord, LifecycleResult, PromotionResult, TrainingResult


def summarize_lifecycle(
    trained: TrainingResult,
    promoted: PromotionResult | None,
    served: DeploymentRecord | None,
    promote_to: str,
    deploy: Any,
    run_name: str,
    ui_url: str | None,
) -> tuple[LifecycleResult, str]:
    """The lifecycle's result and its markdown page: data, validation, gate, version and
    aliases, deployment, links."""
    result = lifecycle_result(trained, promoted, served)
    markdown = lifecycle_markdown(
        trained, result, promoted, served, promote_to, deploy, run_name, ui_url
    )
    return result, markdown

"""The `rollback` flow: production back to the previous production version, in one step."""

from __future__ import annotations

from typing import Any

from prefect import flow

from tasks.common import model_lock
from tasks.promotion import rollback_model
from tasks.tracking import mlflow_parent_run


@flow(name="rollback", log_prints=True)
def rollback(
    model_name: str = "lead-scoring", reason: str = "", actor: str | None = None
) -> dict[str, Any]:
    """Put production back on the previous production version and record why.

    Args:
        model_name: the registered model.
        reason: why production is being reverted (required).
        actor: who, for the audit trail (default: the deployment or OS user).
    """
    with model_lock("promotion", model_name), mlflow_parent_run(
        f"rollback-{model_name}", params={"model_name": model_name, "reason": reason},
        tags={"modelops.flow": "rollback"},
    ) as ctx:  # fmt: skip
        return rollback_model(ctx, model_name, reason, actor)


if __name__ == "__main__":
    rollback()

"""The `rollback` flow: production back to the previous production version, in one step."""

from __future__ import annotations

from prefect import flow

from modelops.params import ModelName
from modelops.types import RollbackResult
from tasks.promotion import recover_interrupted, rollback_model
from tasks.tracking import flow_run


@flow(name="rollback", log_prints=True)
def rollback(
    model_name: ModelName = "lead-scoring", reason: str = "", actor: str | None = None
) -> RollbackResult:
    """Put production back on the previous production version and record why.

    Args:
        model_name: the registered model.
        reason: why production is being reverted (required).
        actor: who, for the audit trail (default: the deployment or OS user).
    """
    params = {"model_name": model_name, "reason": reason}
    with flow_run("rollback", model_name, params, lock="promotion") as ctx:
        recover_interrupted(ctx, model_name)
        return rollback_model(ctx, model_name, reason, actor)


if __name__ == "__main__":
    import sys

    from modelops.cli import run

    run(["rollback", *sys.argv[1:]])

"""The `promotion` flow: a staged version → production, after a champion/challenger check."""

from __future__ import annotations

from typing import Annotated, Any

from prefect import flow
from pydantic import Field

from tasks.common import model_lock
from tasks.promotion import compare_with_champion, promote_candidate, resolve_candidate
from tasks.tracking import mlflow_parent_run


@flow(name="promotion", log_prints=True)
def promotion(
    model_name: str = "lead-scoring",
    version: str = "staging",
    held_out_path: str | None = None,
    target: str | None = None,
    compare_metrics: list[str] = ["roc_auc"],  # noqa: B006 (never mutated)
    margin: Annotated[float, Field(ge=0)] = 0.0,
    override_staging_reason: str | None = None,
    archive_existing: bool = True,
    reason: str = "staged version passed the champion/challenger check",
    actor: str | None = None,
) -> dict[str, Any]:
    """Promote a model version to production (champion/challenger when a champion exists).

    Args:
        model_name: the registered model.
        version: a version number, 'latest', an alias such as 'staging', or models:/name/N.
        held_out_path: CSV/Parquet with features and target, to score champion and challenger.
        target: the target column in the held-out data (default: the one the model was
            trained on).
        compare_metrics: metrics the challenger must not be worse on.
        margin: how much worse (absolute) the challenger may be and still win.
        override_staging_reason: promote a version that is not staged; recorded in the audit.
        archive_existing: tag the replaced production version archived.
        reason: why, for the audit trail.
        actor: who, for the audit trail (default: the deployment or OS user).
    """
    # One promotion per model at a time, across processes and workers: both runs would
    # otherwise compare against, and archive, the same champion.
    with model_lock("promotion", model_name), mlflow_parent_run(
        f"promotion-{model_name}",
        params={"model_name": model_name, "version": version, "margin": margin,
                "compare_metrics": compare_metrics, "held_out_path": held_out_path},
        tags={"modelops.flow": "promotion"},
    ) as ctx:  # fmt: skip
        candidate = resolve_candidate(ctx, model_name, version, override_staging_reason, actor)
        comparison = compare_with_champion(
            ctx, candidate, held_out_path, compare_metrics, margin, target, actor
        )
        return promote_candidate(ctx, candidate, comparison, reason, archive_existing, actor)


if __name__ == "__main__":
    promotion()

"""The `register-pretrained` flow: version a Hugging Face snapshot in the registry, untrained."""

from __future__ import annotations

from typing import Literal

from prefect import flow

from modelops.errors import ConfigurationError
from modelops.params import ModelName
from modelops.registry.aliases import STAGING
from modelops.types import SnapshotResult
from tasks.registry import register_model, set_model_alias
from tasks.text import log_pretrained_snapshot
from tasks.tracking import flow_run


@flow(name="register-pretrained", log_prints=True)
def register_pretrained(
    source: str | None = None,
    revision: str | None = None,
    model_name: ModelName = "all-minilm-l6-v2",
    task: Literal["text-classification", "feature-extraction"] = "feature-extraction",
    labels: list[str] | None = None,
    description: str = "",
    tags: dict[str, str] = {},  # noqa: B006 (never mutated)
    stage: bool = False,
    actor: str | None = None,
) -> SnapshotResult:
    """Register an existing snapshot (hub id + revision, or a local directory) as a new version.

    Args:
        source: hub id or local model directory; default: the bundled all-MiniLM-L6-v2.
        revision: hub revision (branch, tag or commit); not allowed for local directories.
        model_name: the registered model name.
        task: the transformers pipeline task the model serves.
        labels: class labels (text-classification; default: the model's own).
        description: what this model is (model-metadata.json and the registered model).
        tags: tags for the new model version (and model-metadata.json); `stage=staging` stages it.
        stage: also point the `staging` alias at the new version.
        actor: who, for the audit trail.
    """
    from modelops.text.training import default_base_model

    wanted_stage = tags.get("stage")
    if wanted_stage not in (None, STAGING):
        raise ConfigurationError(
            f"tag stage={wanted_stage!r}: a snapshot can only be staged when it is registered "
            f"(stage=staging); production is reached through the promotion flow."
        )
    chosen = source or default_base_model()
    params = {"source": chosen, "revision": revision, "task": task}
    with flow_run("register-pretrained", model_name, params) as ctx:
        logged, metadata = log_pretrained_snapshot(
            ctx, chosen, revision, task, labels, description, tags
        )
        version = register_model(ctx, model_name, logged, description=description, tags=tags)
        alias = None
        if stage or wanted_stage == STAGING:
            set_model_alias(ctx, version, reason="registered pre-trained snapshot", actor=actor)
            alias = STAGING
    return SnapshotResult(
        model_name=model_name,
        version=version.version,
        alias=alias,
        mlflow_run_id=ctx.parent_run_id,
        metadata=metadata,
    )


if __name__ == "__main__":
    import sys

    from modelops.cli import run

    run(["register-pretrained", *sys.argv[1:]])

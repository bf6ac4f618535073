"""The `register-pretrained` flow: version a Hugging Face snapshot in the registry, untrained."""

from __future__ import annotations

from typing import Any, Literal

from prefect import flow

from tasks.registry import register_model, set_model_alias
from tasks.text import log_pretrained_snapshot
from tasks.tracking import mlflow_parent_run
from tasks.training import TrainedModel


@flow(name="register-pretrained", log_prints=True)
def register_pretrained(
    source: str | None = None,
    revision: str | None = None,
    model_name: str = "all-minilm-l6-v2",
    task: Literal["text-classification", "feature-extraction"] = "feature-extraction",
    labels: list[str] | None = None,
    description: str = "",
    tags: dict[str, str] = {},  # noqa: B006
    stage: bool = False,
    actor: str | None = None,
) -> dict[str, Any]:
    """Register an existing snapshot (hub id + revision, or a local directory) as a new version.

    Args:
        source: hub id or local model directory; default: the bundled all-MiniLM-L6-v2.
        revision: hub revision (branch, tag or commit); not allowed for local directories.
        model_name: the registered model name.
        task: the transformers pipeline task the model serves.
        labels: class labels (text-classification; default: the model's own).
        description: what this model is, for model-metadata.json.
        tags: free-form tags for model-metadata.json.
        stage: also point the `staging` alias at the new version.
        actor: who, for the audit trail.
    """
    from modelops.text import default_base_model

    chosen = source or default_base_model()
    with mlflow_parent_run(f"register-pretrained-{model_name}",
                           params={"source": chosen, "revision": revision, "task": task}) as ctx:  # fmt: skip
        logged = log_pretrained_snapshot(ctx, chosen, revision, task, labels, description, tags)
        version = register_model(ctx, model_name, TrainedModel(
            pipeline=None, run_id=logged["run_id"], model_id=logged["model_id"],
            model_uri=f"models:/{logged['model_id']}", labels=("", "")),
            description=description)  # fmt: skip
        if stage:
            set_model_alias(ctx, version, "staging", reason="registered pre-trained snapshot",
                            actor=actor)  # fmt: skip
    return {"model_name": model_name, "version": version.version, **logged["metadata"]}

"""Text models in MLflow: log a fine-tuned classifier or an existing snapshot (transformers
flavour, explicit requirements), and identify a snapshot's exact revision."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelops.errors import ConfigurationError
from modelops.model_io import log_model, pinned_requirements
from modelops.text.training import FineTuned, cannot_load_error, quiet_transformers

if TYPE_CHECKING:
    from mlflow.models import Model

    from modelops.tracking import TrackingContext
    from modelops.types import LoggedModel


def text_requirements() -> list[str]:
    """What serving a transformers model needs (explicit: MLflow's inference adds torchvision,
    which does not install here and would pull a CUDA torch elsewhere)."""
    return pinned_requirements("mlflow", "transformers", "tokenizers", "torch", "numpy", "pandas")


def log_transformers_model(
    ctx: TrackingContext,
    run_id: str,
    model: Any,
    tokenizer: Any,
    task: str,
    example: list[str],
    metadata: dict[str, Any] | None = None,
) -> LoggedModel:
    """Log with MLflow's transformers flavour: task, tokenizer, input example, requirements."""
    import mlflow.transformers

    def save(path: str, mlmodel: Model) -> None:
        mlflow.transformers.save_model(
            transformers_model={"model": model, "tokenizer": tokenizer},
            path=path,
            task=task,
            mlflow_model=mlmodel,
            input_example=example,
            pip_requirements=text_requirements(),
            metadata=metadata,
        )

    return log_model(ctx, run_id, save, flavor="transformers", metadata=metadata)


def log_text_model(
    ctx: TrackingContext,
    run_id: str,
    tuned: FineTuned,
    example: list[str],
    metadata: dict[str, Any] | None = None,
) -> LoggedModel:
    """Log a fine-tuned classifier with its label map."""
    return log_transformers_model(
        ctx,
        run_id,
        tuned.model,
        tuned.tokenizer,
        "text-classification",
        example,
        {"labels": tuned.labels, **(metadata or {})},
    )


def snapshot_identity(source: str, revision: str | None, config: Any) -> str:
    """The exact revision of a snapshot: the hub commit, or a content hash of a local folder.

    Raises:
        ConfigurationError: a revision was given for a local folder (it would be ignored).
    """
    import hashlib

    local = Path(source)
    if local.exists():
        if revision:
            raise ConfigurationError(
                f"revision={revision!r} only applies to hub ids; {source!r} is a local folder. "
                f"Drop the revision, or name the model by its hub id."
            )
        digest = hashlib.sha256()
        for path in sorted(p for p in local.rglob("*") if p.is_file()):
            digest.update(str(path.relative_to(local)).encode())
            with open(path, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(chunk)
        return f"local-sha256:{digest.hexdigest()[:16]}"
    return getattr(config, "_commit_hash", None) or revision or "main"


def load_snapshot(source: str, revision: str | None, task: str) -> tuple[Any, Any]:
    """Tokenizer and model of an existing snapshot (no training), by task.

    Raises:
        ConfigurationError: not a model, unknown task, or the id/revision cannot be loaded.
    """
    quiet_transformers()
    from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

    classes = {
        "text-classification": AutoModelForSequenceClassification,
        "feature-extraction": AutoModel,
    }
    if task not in classes:
        raise ConfigurationError(f"Unsupported task {task!r}; use one of {sorted(classes)}")
    local = Path(source)
    if local.exists() and not (local / "config.json").is_file():
        raise ConfigurationError(f"{source!r} is not a model directory (no config.json).")
    if local.exists() and revision:
        snapshot_identity(source, revision, None)  # raises: revision on a local folder
    try:
        return (
            AutoTokenizer.from_pretrained(source, revision=revision),
            classes[task].from_pretrained(source, revision=revision),
        )
    except (OSError, ValueError) as exc:
        raise cannot_load_error(source, revision, exc) from exc


def log_pretrained(
    ctx: TrackingContext,
    run_id: str,
    source: str,
    revision: str | None,
    task: str,
    labels: list[str] | None,
    description: str,
    tags: dict[str, str],
) -> tuple[LoggedModel, dict[str, Any]]:
    """Log an existing snapshot (no training) with a ``model-metadata.json`` artifact: id,
    requested and resolved revision, task, labels, description and tags.

    Raises:
        ConfigurationError: not a model, unknown task, or the id/revision cannot be loaded.
    """
    from modelops import tracking

    tokenizer, model = load_snapshot(source, revision, task)
    resolved = snapshot_identity(source, revision, model.config)
    known = labels or [str(v) for v in (getattr(model.config, "id2label", None) or {}).values()]
    metadata = {
        "id": source,
        "requested_revision": revision,
        "resolved_revision": resolved,
        "task": task,
        "labels": known if task == "text-classification" else [],
        "description": description,
        "tags": tags,
    }
    logged = log_transformers_model(
        ctx, run_id, model, tokenizer, task, ["an example sentence"], metadata
    )
    tracking.log_json(ctx, run_id, metadata, "model-metadata.json")
    tracking.log_params(ctx, run_id, {k: v for k, v in metadata.items() if k != "tags"})
    return logged, metadata

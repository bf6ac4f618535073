"""The `text-training` flow: labelled texts → fine-tuned transformer → gated → registered → staged."""

from __future__ import annotations

from typing import Annotated, Any

from prefect import flow
from pydantic import Field

from modelops.text import FineTuneConfig
from tasks.registry import register_model, set_model_alias
from tasks.text import (
    check_text_thresholds,
    evaluate_text_model,
    fine_tune_text_model,
    load_text_dataset,
)
from tasks.tracking import mlflow_parent_run
from tasks.training import TrainedModel


@flow(name="text-training", log_prints=True)
def text_training(
    data_path: str | None = None,
    text_column: str = "text",
    label_column: str = "label",
    labels: list[str] | None = None,
    model_name: str = "emotion-classifier",
    base_model: str | None = None,
    revision: str | None = None,
    fine_tune: FineTuneConfig = FineTuneConfig(),  # never mutated
    thresholds: dict[str, float] = {"macro_f1": 0.5},  # noqa: B006
    test_size: Annotated[float, Field(gt=0, lt=1)] = 0.2,
    random_seed: int = 42,
    actor: str | None = None,
) -> dict[str, Any]:
    """Fine-tune a Hugging Face sequence classifier, gate it, register it and stage it.

    Args:
        data_path: CSV/Parquet with text and label columns; empty for the bundled sample.
        text_column: the text column.
        label_column: the label column.
        labels: the known labels (others are refused); default: those in the data.
        model_name: the registered model name.
        base_model: a model directory or hub id; default: the bundled all-MiniLM-L6-v2.
        revision: hub revision (branch, tag or commit) of base_model.
        fine_tune: epochs, batch size, learning rate, max length.
        thresholds: minimum accuracy / macro_f1 to register.
        test_size: held-out fraction.
        random_seed: seed for the split, the head and the shuffling.
        actor: who, for the audit trail.
    """
    check_text_thresholds(thresholds)
    with mlflow_parent_run(f"text-training-{model_name}",
                           params={"model_name": model_name, "base_model": base_model or "bundled",
                                   "thresholds": thresholds}) as ctx:  # fmt: skip
        data = load_text_dataset(ctx, data_path, text_column, label_column, labels, test_size,
                                 random_seed)  # fmt: skip
        tuned, logged = fine_tune_text_model(
            ctx, data, base_model, revision, fine_tune, random_seed
        )
        decision = evaluate_text_model(ctx, tuned, data, thresholds, model_name)
        version = register_model(ctx, model_name, TrainedModel(
            pipeline=None, run_id=logged["run_id"], model_id=logged["model_id"],
            model_uri=f"models:/{logged['model_id']}", labels=tuple(data.labels)))  # fmt: skip
        set_model_alias(ctx, version, "staging", reason="passed the quality gate",
                        metrics={r["metric"]: r["value"] for r in decision.rows}, actor=actor)  # fmt: skip
    return {"model_name": model_name, "version": version.version, "labels": data.labels,
            "metrics": {r["metric"]: r["value"] for r in decision.rows},
            "train_samples_per_second": tuned.samples_per_second,
            "mlflow_run_id": ctx.parent_run_id}  # fmt: skip

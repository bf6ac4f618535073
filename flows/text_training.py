"""The `text-training` flow: labelled texts → fine-tuned transformer → gated → registered → staged."""

from __future__ import annotations

from typing import Annotated

from prefect import flow
from pydantic import Field

from modelops.params import ModelName, TextThresholds
from modelops.text.training import FineTuneConfig
from modelops.types import TextTrainingResult
from tasks.common import model_lock
from tasks.evaluation import check_quality_gate
from tasks.registry import (
    find_reusable_version,
    register_model,
    set_model_alias,
    stage_reused_version,
)
from tasks.text import (
    compute_text_key,
    evaluate_text_model,
    fine_tune_text_model,
    load_text_dataset,
)
from tasks.tracking import flow_run


@flow(name="text-training", log_prints=True)
def text_training(
    data_path: str | None = None,
    text_column: str = "text",
    label_column: str = "label",
    labels: list[str] | None = None,
    model_name: ModelName = "emotion-classifier",
    base_model: str | None = None,
    revision: str | None = None,
    fine_tune: FineTuneConfig = FineTuneConfig(),  # never mutated
    thresholds: TextThresholds = {"macro_f1": 0.5},  # noqa: B006
    test_size: Annotated[float, Field(gt=0, lt=1)] = 0.2,
    random_seed: int = 42,
    actor: str | None = None,
    force_retrain: bool = False,
) -> TextTrainingResult:
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
        force_retrain: fine-tune even when a registered version has this run's training key
            (the same data, base model, settings and code), which is otherwise reused.
    """
    params = {
        "model_name": model_name,
        "base_model": base_model or "bundled",
        "thresholds": thresholds,
    }
    with flow_run("text-training", model_name, params) as ctx:
        # Key lookup to registration under one lock: identical runs make one version.
        with model_lock("registration", model_name):
            data = load_text_dataset(
                ctx, data_path, text_column, label_column, labels, test_size, random_seed
            )
            key = compute_text_key(
                ctx,
                data,
                (text_column, label_column),
                base_model,
                revision,
                fine_tune,
                thresholds,
                test_size,
                random_seed,
            )
            reuse = find_reusable_version(ctx, model_name, key, force_retrain)
            if reuse.version is None:
                tuned, logged = fine_tune_text_model(
                    ctx, data, base_model, revision, fine_tune, random_seed
                )
                decision = evaluate_text_model(ctx, tuned, data, thresholds, model_name)
                metrics = {r["metric"]: r["value"] for r in decision.rows}
                version = register_model(ctx, model_name, logged, key=key)
                samples_per_second, reused = tuned.samples_per_second, None
            else:
                version, metrics, samples_per_second = reuse.version, reuse.metrics, 0.0
                decision = check_quality_gate(ctx, metrics, thresholds, model_name)
                reused = reuse.reason
        if reused:
            stage_reused_version(ctx, version, reason=reused, metrics=metrics, actor=actor)
        else:
            set_model_alias(
                ctx, version, reason="passed the quality gate", metrics=metrics, actor=actor
            )
    return TextTrainingResult(
        model_name=model_name,
        version=version.version,
        alias="staging",
        mlflow_run_id=ctx.parent_run_id,
        mlflow_experiment_id=ctx.experiment_id,
        metrics=metrics,
        rows=len(data.train_texts) + len(data.test_texts),
        gate=decision.rows,
        labels=data.labels,
        train_samples_per_second=samples_per_second,
        training_key=key.digest,
        reused=reused,
    )

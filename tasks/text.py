"""Text classifier tasks: load and validate texts, fine-tune, evaluate, log snapshots, score."""

from __future__ import annotations

import json

from prefect import get_run_logger, task

from modelops.errors import DataValidationError
from modelops.evaluation import GateDecision
from modelops.steps import text as steps
from modelops.text.scoring import score_texts
from modelops.text.training import FineTuneConfig, FineTuned
from modelops.tracking import TrackingContext
from modelops.types import LoggedModel, TextData, TrainingKey
from tasks.common import IO_TASK, artifact_key, markdown_artifact


@task(name="load_text_dataset", **IO_TASK)
def load_text_dataset(
    ctx: TrackingContext,
    data_path: str | None,
    text_col: str,
    label_col: str,
    labels: list[str] | None,
    test_size: float,
    seed: int,
) -> TextData:
    """Read and validate the labelled texts (class balance report kept), then split them."""
    try:
        data = steps.load_text_dataset(ctx, data_path, text_col, label_col, labels, test_size, seed)
    except DataValidationError as exc:
        markdown_artifact(
            "**Text validation: FAILED**\n\n" + "\n".join(f"- {f}" for f in exc.failures),
            key=artifact_key("text-validation"),
            description="Text data validation",
        )
        raise
    markdown_artifact(
        steps.balance_markdown(data.report),
        key=artifact_key("text-class-balance"),
        description="Labels in the training data",
    )
    return data


@task(name="compute_text_key", **IO_TASK)
def compute_text_key(
    ctx: TrackingContext,
    data: TextData,
    columns: tuple[str, str],
    base_model: str | None,
    revision: str | None,
    config: FineTuneConfig,
    thresholds: dict[str, float],
    test_size: float,
    seed: int,
) -> TrainingKey:
    """The run's training key: data digest, base snapshot, labels, settings, code, libraries."""
    key = steps.text_key(
        ctx, data, columns, base_model, revision, config, thresholds, test_size, seed
    )
    get_run_logger().info("Training key %s", key.short)
    return key


@task(name="fine_tune_text_model", **IO_TASK)
def fine_tune_text_model(
    ctx: TrackingContext,
    data: TextData,
    base_model: str | None,
    revision: str | None,
    config: FineTuneConfig,
    seed: int,
) -> tuple[FineTuned, LoggedModel]:
    """Fine-tune a sequence classifier from a base model directory or hub id, and log it."""
    tuned, logged = steps.fine_tune_text_model(ctx, data, base_model, revision, config, seed)
    get_run_logger().info("Fine-tuned: %.1f samples/s", tuned.samples_per_second)
    return tuned, logged


@task(name="evaluate_text_model", **IO_TASK)
def evaluate_text_model(
    ctx: TrackingContext,
    tuned: FineTuned,
    data: TextData,
    thresholds: dict[str, float],
    model_name: str,
) -> GateDecision:
    """Accuracy, macro-F1, per-class precision/recall, confusion matrix; then the gate."""
    decision, result = steps.evaluate_text_model(ctx, tuned, data, thresholds)
    markdown_artifact(
        decision.markdown() + "\n\n" + json.dumps(result["per_class"], indent=1),
        key=artifact_key(model_name, "quality-gate"),
        description="Text gate",
    )
    decision.raise_if_failed()
    return decision


log_pretrained_snapshot = task(name="log_pretrained_snapshot", **IO_TASK)(
    steps.log_pretrained_snapshot
)
score_texts_locally = task(name="score_texts_locally", **IO_TASK)(score_texts)

"""The text classifier steps: load and validate texts, fine-tune, evaluate, log snapshots.

Registration, staging and the gate's bookkeeping are the tabular steps' own
(:mod:`modelops.steps.registry`): a text model is registered and audited like any other.
"""

from __future__ import annotations

from typing import Any

from modelops import tracking
from modelops.data import dataset_digest, describe_dataset, load_table, resolve_data_uri
from modelops.errors import DataValidationError
from modelops.evaluation import GateDecision
from modelops.steps.evaluation import check_gate
from modelops.steps.training import record_key
from modelops.text import models as text_models
from modelops.text import training as text_training
from modelops.training_key import TEXT_LIBRARIES, make_key
from modelops.types import LoggedModel, TextData, TrainingKey


def load_text_dataset(
    ctx: tracking.TrackingContext,
    data_path: str | None,
    text_col: str,
    label_col: str,
    labels: list[str] | None,
    test_size: float,
    seed: int,
) -> TextData:
    """Read and validate the labelled texts (class balance report kept), then split them.

    Raises:
        DataValidationError: empty texts, unknown labels, fewer than two classes, ...
    """
    from modelops.text.sample import SAMPLE_TEXTS

    uri = resolve_data_uri(data_path) if data_path else str(SAMPLE_TEXTS)
    with tracking.child_run(ctx, "load_text_dataset") as run_id:
        frame = load_table(uri)
        try:
            report = text_training.validate_texts(frame, text_col, label_col, labels)
        except DataValidationError as exc:
            tracking.log_json(
                ctx, run_id, exc.report or {"failures": exc.failures}, "validation/report.json"
            )
            raise
        tracking.log_json(ctx, run_id, report, "validation/report.json")
        for run in (run_id, ctx.parent_run_id):
            tracking.log_dataset(ctx, run, describe_dataset(frame, uri, label_col), "training")
        known = labels or sorted(report["balance"])
        data = text_training.split_texts(frame, text_col, label_col, known, report, test_size, seed)
    data.source, data.digest = uri, dataset_digest(frame)
    return data


def text_key(
    ctx: tracking.TrackingContext | None,
    data: TextData,
    columns: tuple[str, str],
    base_model: str | None,
    revision: str | None,
    config: text_training.FineTuneConfig,
    thresholds: dict[str, float],
    test_size: float,
    seed: int,
) -> TrainingKey:
    """The key of a ``text-training`` run: the data digest, the text and label columns, the
    labels, the base model snapshot (its content digest for a local folder, the revision for
    a hub id), the fine-tuning settings, split, seed and gate, the code and library versions
    (transformers, tokenizers, torch). Recorded on the parent run."""
    base = base_model or text_training.default_base_model()
    key = make_key(
        "text",
        {"digest": data.digest, "rows": len(data.train_texts) + len(data.test_texts)}
        | {"source": data.source},
        {
            "columns": list(columns),
            "labels": data.labels,
            "base_model": text_models.snapshot_identity(base, revision, None),
            "fine_tune": config.model_dump(mode="json"),
            "thresholds": thresholds,
            "test_size": test_size,
            "random_seed": seed,
        },
        TEXT_LIBRARIES,
    )
    record_key(ctx, ctx.parent_run_id if ctx else None, key)
    return key


def balance_markdown(report: dict[str, Any]) -> str:
    """The class balance of a text table as markdown."""
    return "**Class balance**\n\n| label | count | share |\n|---|---:|---:|\n" + "\n".join(
        f"| {k} | {v['count']} | {v['share']:.1%} |" for k, v in report["balance"].items()
    )


def fine_tune_text_model(
    ctx: tracking.TrackingContext,
    data: TextData,
    base_model: str | None,
    revision: str | None,
    config: text_training.FineTuneConfig,
    seed: int,
) -> tuple[text_training.FineTuned, LoggedModel]:
    """Fine-tune a sequence classifier from a base model directory or hub id, and log it."""
    import torch

    base = base_model or text_training.default_base_model()
    with tracking.child_run(ctx, "fine_tune_text_model") as run_id:
        # A new classification head is drawn from torch's generator while the base loads:
        # seeded here, so the same seed gives the same head (and `reproduce` the same model).
        torch.manual_seed(seed)
        tokenizer, model = text_training.load_base(base, revision, data.labels)
        tracking.log_params(
            ctx, run_id, {"base_model": base, "revision": revision or "", **config.model_dump()}
        )
        tuned = text_training.fine_tune(
            tokenizer, model, data.train_texts, data.train_targets, data.labels, config, seed
        )
        tracking.log_metrics(
            ctx,
            run_id,
            {
                "train_samples_per_second": tuned.samples_per_second,
                "train_seconds": tuned.seconds,
                "final_loss": tuned.losses[-1],
            },
        )
        logged = text_models.log_text_model(
            ctx, run_id, tuned, data.test_texts[:3], metadata={"base_model": base}
        )
    return tuned, logged


def evaluate_text_model(
    ctx: tracking.TrackingContext,
    tuned: text_training.FineTuned,
    data: TextData,
    thresholds: dict[str, float],
) -> tuple[GateDecision, dict[str, Any]]:
    """Accuracy, macro-F1, per-class precision/recall and the confusion matrix; then the
    gate's decision (recorded, not yet enforced)."""
    with tracking.child_run(ctx, "evaluate_text_model") as run_id:
        proba = text_training.predict_proba(tuned.tokenizer, tuned.model, data.test_texts)
        result = text_training.evaluate_texts(data.test_targets, proba, data.labels)
        for run in (run_id, ctx.parent_run_id):
            tracking.log_metrics(ctx, run, result["metrics"])
        tracking.log_json(ctx, run_id, result["per_class"], "per_class.json")
        figure = text_training.confusion_figure(result["confusion"], data.labels)
        tracking.log_figures(ctx, run_id, {"confusion_matrix.png": figure})
        record_text_reference(ctx, data, [data.labels[i] for i in proba.argmax(axis=1)])
    return check_gate(ctx, result["metrics"], thresholds), result


def record_text_reference(
    ctx: tracking.TrackingContext, data: TextData, predicted: list[str]
) -> None:
    """The reference the monitoring flow compares served texts with, on the flow's parent run
    (where the version's run points): training text lengths and predicted-label frequencies."""
    from modelops import monitoring

    profile = monitoring.build_text_profile(data.train_texts, predicted, data.labels)
    tracking.log_json(ctx, ctx.parent_run_id, profile, monitoring.PROFILE_FILE)


def log_pretrained_snapshot(
    ctx: tracking.TrackingContext,
    source: str,
    revision: str | None,
    task: str,
    labels: list[str] | None,
    description: str,
    tags: dict[str, str],
) -> tuple[LoggedModel, dict[str, Any]]:
    """Load an existing snapshot and log it with a model-metadata.json artifact (no training)."""
    with tracking.child_run(ctx, "log_pretrained_snapshot") as run_id:
        return text_models.log_pretrained(
            ctx, run_id, source, revision, task, labels, description, tags
        )

"""Text classifier tasks: load and validate texts, fine-tune, evaluate, log with transformers."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from prefect import get_run_logger, task

from modelops import text, tracking
from modelops.data import load_table, resolve_data_uri, write_table
from modelops.errors import DataValidationError
from modelops.evaluation import GateDecision, apply_gate
from tasks.common import COMPUTE_TASK, IO_TASK, artifact_key, markdown_artifact


@dataclass
class TextData:
    """A validated text table split for training and evaluation."""

    train_texts: list[str]
    train_targets: list[int]
    test_texts: list[str]
    test_targets: list[int]
    labels: list[str]
    report: dict[str, Any]


@task(name="load_text_dataset", **IO_TASK)
def load_text_dataset(
    ctx: tracking.TrackingContext, data_path: str | None, text_col: str, label_col: str,
    labels: list[str] | None, test_size: float, seed: int,
) -> TextData:  # fmt: skip
    """Read and validate the labelled texts (class balance report kept), then split them."""
    from sklearn.model_selection import train_test_split

    from modelops.data import describe_dataset

    uri = resolve_data_uri(data_path) if data_path else str(_sample_path())
    with tracking.child_run(ctx, "load_text_dataset") as run_id:
        frame = load_table(uri)
        try:
            report = text.validate_texts(frame, text_col, label_col, labels)
        except DataValidationError as exc:
            tracking.log_json(ctx, run_id, exc.report or {"failures": exc.failures},
                              "validation/report.json")  # fmt: skip
            markdown_artifact("**Text validation: FAILED**\n\n" + "\n".join(
                f"- {f}" for f in exc.failures), key=artifact_key("text-validation"),
                description="Text data validation")  # fmt: skip
            raise
        tracking.log_json(ctx, run_id, report, "validation/report.json")
        for run in (run_id, ctx.parent_run_id):
            tracking.log_dataset(ctx, run, describe_dataset(frame, uri, label_col), "training")
        known = labels or sorted(report["balance"])
        targets = [known.index(str(v)) for v in frame[label_col]]
        texts = frame[text_col].astype(str).tolist()
        a, b, c, d = train_test_split(texts, targets, test_size=test_size, random_state=seed,
                                      stratify=targets)  # fmt: skip
    markdown_artifact(
        "**Class balance**\n\n| label | count | share |\n|---|---:|---:|\n" + "\n".join(
            f"| {k} | {v['count']} | {v['share']:.1%} |" for k, v in report["balance"].items()),
        key=artifact_key("text-class-balance"), description="Labels in the training data",
    )  # fmt: skip
    return TextData(a, c, b, d, known, report)


def _sample_path() -> Any:
    """The bundled sample (written by modelops.text_sample.write_emotions)."""
    from modelops.data import SAMPLE_DATA

    return SAMPLE_DATA.parent / "emotions.csv"


@task(name="fine_tune_text_model", **IO_TASK)
def fine_tune_text_model(
    ctx: tracking.TrackingContext, data: TextData, base_model: str | None, revision: str | None,
    config: text.FineTuneConfig, seed: int,
) -> tuple[text.FineTuned, Any]:  # fmt: skip
    """Fine-tune a sequence classifier from a base model directory or hub id, and log it."""
    base = base_model or text.default_base_model()
    with tracking.child_run(ctx, "fine_tune_text_model") as run_id:
        tokenizer, model = text.load_base(base, revision, data.labels)
        tracking.log_params(ctx, run_id, {"base_model": base, "revision": revision or "",
                                          **config.model_dump()})  # fmt: skip
        tuned = text.fine_tune(tokenizer, model, data.train_texts, data.train_targets,
                               data.labels, config, seed)  # fmt: skip
        tracking.log_metrics(ctx, run_id, {"train_samples_per_second": tuned.samples_per_second,
                                           "train_seconds": tuned.seconds,
                                           "final_loss": tuned.losses[-1]})  # fmt: skip
        info = text.log_text_model(ctx, run_id, tuned, data.test_texts[:3],
                                   metadata={"base_model": base})  # fmt: skip
    get_run_logger().info("Fine-tuned %s: %.1f samples/s", base, tuned.samples_per_second)
    return tuned, {"run_id": run_id, "model_id": info.model_id}


@task(name="evaluate_text_model", **IO_TASK)
def evaluate_text_model(
    ctx: tracking.TrackingContext, tuned: text.FineTuned, data: TextData, thresholds: dict[str, float],
    model_name: str,
) -> GateDecision:  # fmt: skip
    """Accuracy, macro-F1, per-class precision/recall, confusion matrix; then the gate."""
    with tracking.child_run(ctx, "evaluate_text_model") as run_id:
        proba = text.predict_proba(tuned.tokenizer, tuned.model, data.test_texts)
        result = text.evaluate_texts(data.test_targets, proba, data.labels)
        for run in (run_id, ctx.parent_run_id):
            tracking.log_metrics(ctx, run, result["metrics"])
        tracking.log_json(ctx, run_id, result["per_class"], "per_class.json")
        tracking.log_figures(ctx, run_id, {"confusion_matrix.png":
                                           text.confusion_figure(result["confusion"], data.labels)})  # fmt: skip
    decision = apply_gate(result["metrics"], thresholds)
    tracking.set_tags(
        ctx, ctx.parent_run_id, {"modelops.gate": "passed" if decision.passed else "failed"}
    )
    markdown_artifact(decision.markdown() + "\n\n" + json.dumps(result["per_class"], indent=1),
                      key=artifact_key(model_name, "quality-gate"), description="Text gate")  # fmt: skip
    decision.raise_if_failed()
    return decision


@task(name="check_text_thresholds", **COMPUTE_TASK)
def check_text_thresholds(thresholds: dict[str, float]) -> None:
    """Text models report accuracy and macro_f1: refuse anything else before training."""
    from modelops.errors import ConfigurationError

    unknown = sorted(set(thresholds) - {"accuracy", "macro_f1"})
    if unknown:
        raise ConfigurationError(
            f"Text classifiers are gated on accuracy and macro_f1; unknown: {', '.join(unknown)}"
        )


@task(name="log_pretrained_snapshot", **IO_TASK)
def log_pretrained_snapshot(
    ctx: tracking.TrackingContext, source: str, revision: str | None, task_name: str,
    labels: list[str] | None, description: str, tags: dict[str, str],
) -> dict[str, Any]:  # fmt: skip
    """Load an existing snapshot and log it with a model-metadata.json artifact (no training)."""
    import mlflow.transformers

    from modelops.tracking import active_run

    tokenizer, model = text.load_snapshot(source, revision, task_name)
    resolved = text.snapshot_identity(source, revision, model.config)
    known = labels or [str(v) for v in (getattr(model.config, "id2label", None) or {}).values()]
    metadata = {"id": source, "requested_revision": revision, "resolved_revision": resolved,
                "task": task_name, "labels": known if task_name == "text-classification" else [],
                "description": description, "tags": tags}  # fmt: skip
    with tracking.child_run(ctx, "log_pretrained_snapshot") as run_id:
        with active_run(ctx, run_id):
            info = mlflow.transformers.log_model(
                transformers_model={"model": model, "tokenizer": tokenizer}, name="model",
                task=task_name, input_example=["an example sentence"],
                pip_requirements=text.text_requirements(), metadata=metadata,
            )  # fmt: skip
        tracking.log_json(ctx, run_id, metadata, "model-metadata.json")
        tracking.log_params(ctx, run_id, {k: v for k, v in metadata.items() if k != "tags"})
    return {"run_id": run_id, "model_id": info.model_id, "metadata": metadata}


@task(name="score_texts_locally", **IO_TASK)
def score_texts_locally(
    ctx: tracking.TrackingContext, target: Any, input_uri: str, output_uri: str,
    text_column: str, batch_size: int, decision_threshold: float,
) -> dict[str, Any]:  # fmt: skip
    """Score a text file batch by batch, logging inference telemetry to MLflow per batch; every
    output row carries the model version and its MLflow run id."""
    import platform
    import time
    from importlib.metadata import version as installed

    import mlflow.transformers

    from modelops.errors import ConfigurationError
    from modelops.tracking import use_tracking_uri

    text.quiet_transformers()
    frame = load_table(resolve_data_uri(input_uri))
    if text_column not in frame.columns:
        raise ConfigurationError(f"{input_uri!r} has no text column {text_column!r}")
    texts = frame[text_column].fillna("").astype(str).tolist()
    with use_tracking_uri(ctx.tracking_uri):
        pipe = mlflow.transformers.load_model(f"models:/{target.name}/{target.version}",
                                              return_type="pipeline")  # fmt: skip
    engine = f"transformers-{installed('transformers')}/torch-{installed('torch')}/{pipe.device}"
    tracking.set_tags(ctx, ctx.parent_run_id, {"inference.engine_id": engine,
                                               "inference.environment": f"{platform.node()} "
                                               f"{platform.platform()} py{platform.python_version()}"})  # fmt: skip
    labels_out, scores_out, per_batch = [], [], []
    started_all = time.perf_counter()
    for step, start in enumerate(range(0, len(texts), batch_size)):
        batch = texts[start : start + batch_size]
        started = time.perf_counter()
        results = pipe(batch, top_k=None, batch_size=batch_size, truncation=True)
        ms = (time.perf_counter() - started) * 1000
        candidates = sum(len(r) for r in results)
        dominant = [c["label"] for r in results for c in r if c["score"] >= decision_threshold]
        best = [max(r, key=lambda c: c["score"]) for r in results]
        labels_out += [b["label"] for b in best]
        scores_out += [float(b["score"]) for b in best]
        tracking.log_metrics(ctx, ctx.parent_run_id, {
            "batch.latency_ms": ms, "batch.latency_ms_per_item": ms / len(batch),
            "batch.candidate_labels": candidates, "batch.dominant_labels": len(dominant),
        }, step=step)  # fmt: skip
        per_batch.append({"step": step, "items": len(batch), "latency_ms": round(ms, 2),
                          "dominant_labels": sorted(set(dominant))})  # fmt: skip
    total_ms = (time.perf_counter() - started_all) * 1000
    out = frame.copy()
    out["label"], out["score"] = labels_out, scores_out
    out["model_version"], out["mlflow_run_id"] = target.version, target.run_id
    write_table(out, output_uri)
    tracking.log_metrics(ctx, ctx.parent_run_id, {"latency_ms_total": total_ms,
                                                  "latency_ms_per_item": total_ms / max(len(out), 1),
                                                  "items": len(out)})  # fmt: skip
    tracking.log_json(ctx, ctx.parent_run_id, per_batch, "telemetry/batches.json")
    return {"target": "local", "rows": len(out), "output": output_uri, "version": target.version,
            "items_per_second": len(out) / (total_ms / 1000), "engine_id": engine}  # fmt: skip
